"""The real `openai` SDK against `POST /v1/chat/completions` and `GET /v1/models` (issue 21).

Panel is the server (live_server), the emulator the vendors behind it; each site is served by a
different upstream, and whatever served, the client reads OpenAI's format.
"""

from __future__ import annotations

import json
from decimal import Decimal

import openai
import pydantic
import pytest

from integrations.ai.ledger import usage
from integrations.models import AIUsage, ModelPrice

from .conftest import MODEL_FOR

pytestmark = pytest.mark.django_db(transaction=True)
HELLO = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a bakery"}]


@pytest.mark.parametrize("provider", ["openai", "anthropic", "openrouter"])
def test_plain_completion_from_each_upstream_in_openais_format(emulated_site, make_key, oai, upstream, provider):
    site = emulated_site(provider)
    reply = oai(make_key(site)).chat.completions.create(model=MODEL_FOR[provider], messages=HELLO, max_tokens=50)

    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    assert reply.choices[0].message.content.startswith(f"Emulated {provider} reply")
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens > 0
    assert reply.usage.prompt_tokens_details.cached_tokens == 0
    assert reply.usage.completion_tokens_details.reasoning_tokens == 0
    sent = upstream.requests_for(provider)[-1].json
    assert sent["max_tokens"] == 50  # the client's parameters reached the vendor through the gateway
    usage.flush()
    row = AIUsage.objects.get()
    assert (row.site_id, row.status, row.service, row.prompt_tokens) == (
        site.pk,
        "ok",
        "v1.chat",
        reply.usage.prompt_tokens,
    )
    assert row.api_key.site_id == site.pk


@pytest.mark.parametrize("provider", ["openai", "anthropic", "openrouter"])
def test_streamed_completion_with_usage_chunk(emulated_site, make_key, oai, provider):
    site = emulated_site(provider)
    chunks = list(
        oai(make_key(site)).chat.completions.create(
            model=MODEL_FOR[provider], messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )

    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith(f"Emulated {provider} reply")
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    last = chunks[-1]
    assert last.choices == [] and last.usage.completion_tokens == len(text.split())
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1 and all(c.object == "chat.completion.chunk" for c in chunks)
    usage.flush()
    assert AIUsage.objects.get().completion_tokens == last.usage.completion_tokens


def test_stream_without_include_usage_has_no_usage_chunk(emulated_site, make_key, oai):
    chunks = list(
        oai(make_key(emulated_site("openai"))).chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)
    )
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


def test_json_schema_response_format_reaches_an_openai_upstream(emulated_site, make_key, oai, upstream):
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}},
        "required": ["name"],
        "additionalProperties": False,
    }
    reply = oai(make_key(emulated_site("openai"))).chat.completions.create(
        model="gpt-4o-mini",
        messages=HELLO,
        response_format={"type": "json_schema", "json_schema": {"name": "bakery", "schema": schema, "strict": True}},
    )
    assert set(json.loads(reply.choices[0].message.content)) == {"name"}
    assert upstream.requests_for("openai")[-1].json["response_format"]["json_schema"]["schema"] == schema


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Find a bakery",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


@pytest.mark.parametrize("provider", ["openai", "anthropic", "openrouter"])
def test_parallel_tool_calls_false_holds_the_model_to_one_call_on_each_upstream(
    emulated_site, make_key, oai, upstream, provider
):
    """`parallel_tool_calls: false` (Codex sends it for most models) reaches each vendor in its own shape, and the
    model makes one call a turn; without it, both calls the model wants come back."""
    client = oai(make_key(emulated_site(provider)))
    two = [{"name": "lookup", "arguments": {"city": "Lyon"}}, {"name": "lookup", "arguments": {"city": "Nice"}}]
    ask = [{"role": "user", "content": "Find bakeries in Lyon and Nice"}]
    upstream.script(flavor=provider, tool_calls=two)
    both = client.chat.completions.create(model=MODEL_FOR[provider], messages=ask, tools=TOOLS)
    upstream.script(flavor=provider, tool_calls=two)
    one = client.chat.completions.create(
        model=MODEL_FOR[provider], messages=ask, tools=TOOLS, parallel_tool_calls=False
    )
    assert len(both.choices[0].message.tool_calls) == 2 and len(one.choices[0].message.tool_calls) == 1
    sent = upstream.requests_for(provider)[-1].json
    if provider == "anthropic":
        assert sent["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    else:
        assert sent["parallel_tool_calls"] is False
    plain = client.chat.completions.create(model=MODEL_FOR[provider], messages=ask, parallel_tool_calls=False)
    assert plain.choices[0].message.content  # no tools: nothing to hold to one call, and nothing sent for it
    assert "parallel_tool_calls" not in upstream.requests_for(provider)[-1].json


@pytest.mark.parametrize("provider", ["openai", "anthropic", "openrouter"])
def test_a_two_step_tool_conversation_on_each_upstream(emulated_site, make_key, oai, upstream, provider):
    site = emulated_site(provider)
    client = oai(make_key(site))
    upstream.script(flavor=provider, tool_calls=[{"name": "lookup", "arguments": {"city": "Lyon"}}])
    first = client.chat.completions.create(model=MODEL_FOR[provider], messages=HELLO, tools=TOOLS)

    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert (call.type, call.function.name, json.loads(call.function.arguments)) == (
        "function",
        "lookup",
        {"city": "Lyon"},
    )
    history = [
        *HELLO,
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Chez Paul, rue Neuve"},
    ]
    final = client.chat.completions.create(model=MODEL_FOR[provider], messages=history, tools=TOOLS)
    assert final.choices[0].finish_reason == "stop" and final.choices[0].message.content
    sent = json.dumps(upstream.requests_for(provider)[-1].json)
    assert "Chez Paul, rue Neuve" in sent and call.id in sent  # the tool result reached the vendor, tied to its call
    usage.flush()
    rows = AIUsage.objects.filter(site=site)
    assert rows.count() == 2 and all(r.api_key_id and r.cost > 0 for r in rows)


@pytest.mark.parametrize("provider", ["openai", "anthropic", "openrouter"])
def test_a_streamed_tool_call_assembled_by_the_sdk(emulated_site, make_key, oai, upstream, provider):
    client = oai(make_key(emulated_site(provider)))
    upstream.script(flavor=provider, tool_calls=[{"name": "lookup", "arguments": {"city": "Lyon"}}])
    with client.beta.chat.completions.stream(model=MODEL_FOR[provider], messages=HELLO, tools=TOOLS) as stream:
        for _ in stream:
            pass
        done = stream.get_final_completion()
    call = done.choices[0].message.tool_calls[0]
    assert done.choices[0].finish_reason == "tool_calls"
    assert (call.function.name, json.loads(call.function.arguments)) == ("lookup", {"city": "Lyon"})


class Bakery(pydantic.BaseModel):
    name: str


@pytest.mark.parametrize("provider", ["openai", "anthropic", "openrouter"])
def test_json_schema_on_each_upstream_parses_into_a_pydantic_model(emulated_site, make_key, oai, upstream, provider):
    site = emulated_site(provider)
    reply = oai(make_key(site)).beta.chat.completions.parse(
        model=MODEL_FOR[provider], messages=HELLO, response_format=Bakery
    )
    assert isinstance(reply.choices[0].message.parsed, Bakery)
    assert reply.choices[0].finish_reason == "stop"  # Anthropic's forced answer tool is not a call to run
    usage.flush()
    assert AIUsage.objects.filter(site=site, status="ok").exists()


def test_a_streamed_json_schema_arrives_validated_and_parses_in_the_sdks_stream(emulated_site, make_key, oai, upstream):
    """Structured output asked for as a stream (clients that stream every call): the answer is validated first (a
    stream cannot be, as it goes), then sent as the dialect's stream in one piece, which the SDK's stream helper
    parses into the model."""
    site = emulated_site("anthropic")
    client = oai(make_key(site))
    with client.beta.chat.completions.stream(
        model="claude-3-5-haiku", messages=HELLO, response_format=Bakery
    ) as stream:
        chunks = list(stream)
        final = stream.get_final_completion()
    assert isinstance(final.choices[0].message.parsed, Bakery) and final.choices[0].finish_reason == "stop"
    assert chunks and upstream.requests_for("anthropic")[-1].json["tool_choice"]["type"] == "tool"  # a forced tool
    usage.flush()
    assert AIUsage.objects.filter(site=site, status="ok", service="v1.chat").count() == 1


PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQ"
    "DwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@pytest.mark.parametrize("provider", ["openai", "anthropic", "openrouter"])
def test_an_image_part_reaches_each_upstream(emulated_site, make_key, oai, upstream, provider):
    content = [{"type": "text", "text": "Describe this"}, {"type": "image_url", "image_url": {"url": PNG}}]
    model = "claude-sonnet-4-20250514" if provider == "anthropic" else MODEL_FOR[provider]  # 3.5 Haiku has no vision
    reply = oai(make_key(emulated_site(provider))).chat.completions.create(
        model=model, messages=[{"role": "user", "content": content}], max_tokens=50
    )
    assert reply.choices[0].message.content
    sent = json.dumps(upstream.requests_for(provider)[-1].json)
    assert "iVBORw0KGgo" in sent  # the image's bytes reached the vendor in its own format


def test_models_list_is_the_sites_models_the_key_may_call(emulated_site, make_key, oai):
    site = emulated_site("anthropic", allowed_models=["claude-3-5-*", "claude-sonnet-4"])
    listed = {m.id: m.owned_by for m in oai(make_key(site)).models.list()}
    assert listed == {"claude-3-5-haiku": "anthropic", "claude-3-5-sonnet": "anthropic", "claude-sonnet-4": "anthropic"}
    narrowed = {m.id for m in oai(make_key(site, allowed_models=["*haiku*"])).models.list()}
    assert narrowed == {"claude-3-5-haiku"}
    assert oai(make_key(site)).models.retrieve("claude-sonnet-4").id == "claude-sonnet-4"
    with pytest.raises(openai.NotFoundError):
        oai(make_key(site, allowed_models=["*haiku*"])).models.retrieve("claude-sonnet-4")


def test_models_list_has_what_an_openai_compatible_endpoint_serves(emulated_site, make_key, oai, upstream, settings):
    """A local server (Ollama, vLLM) names its own models, so no table knows them: the list has what its own
    `GET /models` lists (a client's model picker is filled from this), beside the site's other providers'
    models, narrowed by the key's allowed models like any other. An endpoint that is down adds only its default
    model, one the outbound policy refuses adds nothing, and the list still answers."""
    import socket

    from integrations.models import AIProviderSettings
    from tests.factories import ProviderCredentialFactory

    with socket.socket() as probe:  # a loopback port nothing listens on, allowlisted like the emulator's
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    settings.AI_OUTBOUND_ALLOWLIST = [*settings.AI_OUTBOUND_ALLOWLIST, f"127.0.0.1:{closed}"]
    site = emulated_site("openai")
    record = AIProviderSettings.objects.get(site=site)
    for name, base_url, default in (
        ("ollama", upstream.compatible_base_url, ""),
        ("vllm", f"http://127.0.0.1:{closed}/v1", "served-model"),
        ("lmstudio", "http://10.0.0.7:1234/v1", "refused-model"),
    ):
        ProviderCredentialFactory(
            settings=record, provider="openai_compatible", name=name, base_url=base_url, default_model=default
        )
    key = make_key(site)

    listed = {m.id: m.owned_by for m in oai(key).models.list()}
    assert {m: listed.get(m) for m in ("llama3.1", "mistral", "qwen2.5")} == dict.fromkeys(
        ("llama3.1", "mistral", "qwen2.5"), "ollama"
    )
    assert listed["gpt-4o-mini"] == "openai"
    assert listed["served-model"] == "vllm"
    assert "refused-model" not in listed and "lmstudio" not in listed.values()
    assert oai(key).models.retrieve("qwen2.5").owned_by == "ollama"
    assert {m.id for m in oai(make_key(site, allowed_models=["llama*"])).models.list()} == {"llama3.1"}
    reply = oai(key).chat.completions.create(model="qwen2.5", messages=HELLO, max_tokens=20)
    assert reply.choices[0].message.content.startswith("Emulated compatible reply (qwen2.5)")


def test_a_model_outside_the_keys_allowed_models_is_permission_denied(emulated_site, make_key, oai, upstream):
    client = oai(make_key(emulated_site("openai"), allowed_models=["gpt-4o-mini"]))
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert "allowed models" in caught.value.message and caught.value.body["code"] == "model_not_allowed"
    assert upstream.requests == []
    usage.flush()
    assert AIUsage.objects.get().status == "refused"
    assert client.chat.completions.create(model="gpt-4o-mini", messages=HELLO).choices[0].message.content


@pytest.mark.parametrize("model", ["gpt-4o", "claude-9-imaginary"])
def test_a_model_the_site_cannot_serve_is_not_found(emulated_site, make_key, oai, upstream, model):
    with pytest.raises(openai.NotFoundError) as caught:
        oai(make_key(emulated_site("anthropic"))).chat.completions.create(model=model, messages=HELLO)
    assert caught.value.body["code"] == "model_not_found" and model in caught.value.message


def _price(provider: str, model: str) -> None:
    ModelPrice.objects.create(
        provider=provider, model_id=model, prompt_per_million=Decimal("10"), completion_per_million=Decimal("10")
    )


def test_a_key_over_its_budget_gets_rate_limit_error_and_no_retry(emulated_site, make_key, oai, upstream):
    site = emulated_site("openai")
    _price("openai", "gpt-4o-mini")
    spent, fresh = make_key(site, "spent", monthly_budget=Decimal("0.01")), make_key(site, "fresh")
    client = oai(spent, max_retries=2)  # the SDK's own retries are on: the answer must tell it not to
    reply = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10)
    assert reply.parse().choices[0].message.content
    usage.flush()
    AIUsage.objects.filter(api_key__name="spent").update(cost=Decimal("0.02"))  # the month's spend, past the cap
    from integrations.ai.runtime.shared_cache import cache

    cache.clear()  # cold counters: reseeded from the ledger, the key's rows only

    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10)
    error = caught.value
    assert error.body["code"] == "insufficient_quota" and "API key" in error.message
    assert error.response.headers["x-should-retry"] == "false" and int(error.response.headers["retry-after"]) > 0
    assert len(upstream.requests_for("openai")) == 1  # refused before any upstream request, and not retried
    usage.flush()
    refused = AIUsage.objects.get(status="refused")
    assert refused.error_class == "BudgetExceeded" and refused.api_key.name == "spent"
    # The budget is the key's, not the site's: another key of the site still works.
    assert oai(fresh).chat.completions.create(model="gpt-4o-mini", messages=HELLO).choices[0].message.content


def test_a_key_over_its_rate_limit_gets_429_with_retry_after(emulated_site, make_key, oai, upstream):
    site = emulated_site("openai")
    client = oai(make_key(site, requests_per_minute=1))
    client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    headers = caught.value.response.headers
    assert 1 <= int(headers["retry-after"]) <= 60 and headers["x-should-retry"] == "true"
    assert "API key" in caught.value.message
    assert len(upstream.requests_for("openai")) == 1
    assert oai(make_key(site)).chat.completions.create(model="gpt-4o-mini", messages=HELLO)  # its own scope


def test_the_sdks_retry_rides_over_an_upstream_failure(emulated_site, make_key, oai, upstream, settings):
    settings.AI_MAX_RETRIES = 0  # the gateway does not retry: the 502 reaches the SDK, which retries once
    upstream.script(flavor="openai", status=500)
    client = oai(make_key(emulated_site("openai")), max_retries=1)
    reply = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)
    assert reply.retries_taken == 1 and reply.parse().choices[0].message.content
    usage.flush()
    assert sorted(AIUsage.objects.values_list("status", flat=True)) == ["error", "ok"]


def test_upstream_down_is_a_502_in_openais_shape(emulated_site, make_key, oai, upstream, settings):
    settings.AI_MAX_RETRIES = 0
    upstream.script(flavor="openai", status=503)
    with pytest.raises(openai.InternalServerError) as caught:
        oai(make_key(emulated_site("openai"))).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert caught.value.status_code == 502 and caught.value.body["type"] == "server_error"


def test_a_stream_broken_after_its_first_token_ends_with_an_error_event(emulated_site, make_key, oai, upstream):
    upstream.script(flavor="openai", cut_after=2)
    stream = oai(make_key(emulated_site("openai"))).chat.completions.create(
        model="gpt-4o-mini", messages=HELLO, stream=True
    )
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "Emulated openai "
    assert "stream ended" in caught.value.message
    usage.flush()
    assert AIUsage.objects.get().status == "error"


def test_a_missing_or_unknown_key_is_401(emulated_site, oai, base_url):
    import httpx2 as httpx  # the SDKs' own HTTP client

    emulated_site("openai")
    with pytest.raises(openai.AuthenticationError) as caught:
        oai("sk-panel-not-a-real-key").models.list()
    assert caught.value.body["code"] == "invalid_api_key"
    missing = httpx.post(f"{base_url}/chat/completions", json={"model": "gpt-4o-mini", "messages": HELLO})
    assert missing.status_code == 401 and "Authorization: Bearer" in missing.json()["error"]["message"]
    assert missing.headers["x-should-retry"] == "false"


def test_a_stream_refused_before_its_first_token_gets_the_status_not_an_event(
    emulated_site, make_key, oai, upstream, settings
):
    settings.AI_MAX_RETRIES = 0
    client = oai(make_key(emulated_site("openai"), requests_per_minute=2))
    upstream.script(flavor="openai", status=503)  # the only provider fails before any token
    with pytest.raises(openai.InternalServerError) as failed:  # raised by create(): no SSE byte was sent
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)
    assert failed.value.status_code == 502
    assert list(client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True))
    with pytest.raises(openai.RateLimitError):  # the key's limit, also before the stream starts
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)
    assert len(upstream.requests_for("openai")) == 2


def test_each_keys_budget_counts_its_own_spend_only(emulated_site, make_key, oai):
    site = emulated_site("openai")
    _price("openai", "gpt-4o-mini")
    spender, saver = (
        make_key(site, "spender", monthly_budget=Decimal("0.05")),
        make_key(site, "saver", monthly_budget=Decimal("0.05")),
    )
    oai(spender).chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10)
    usage.flush()
    AIUsage.objects.update(cost=Decimal("0.06"))  # the spender's month is past its cap
    from integrations.ai.runtime.shared_cache import cache

    cache.clear()
    with pytest.raises(openai.RateLimitError):
        oai(spender).chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10)
    assert oai(saver).chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=10).choices


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_the_emulated_model_fills_an_enum_argument_with_one_of_its_values(emulated_site, make_key, oai, provider):
    """The emulator stands in for a model: a tool argument with an enum gets one of its values (Codex rejects a call
    whose `sandbox_permissions` is anything else), whichever prompt it answers."""
    mode = {"type": "string", "enum": ["use_default", "require_escalated"]}
    tool = {
        "type": "function",
        "function": {
            "name": "exec_command",
            "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}, "mode": mode}},
        },
    }
    reply = oai(make_key(emulated_site(provider))).chat.completions.create(
        model=MODEL_FOR[provider], messages=[{"role": "user", "content": "List the files"}], tools=[tool]
    )
    (call,) = reply.choices[0].message.tool_calls
    assert json.loads(call.function.arguments)["mode"] == "use_default"
