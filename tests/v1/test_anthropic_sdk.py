"""The real `anthropic` SDK against `POST /v1/messages` and `GET /v1/models` (issue 21)."""

from __future__ import annotations

import json
from decimal import Decimal

import anthropic
import pytest

from integrations.ai.ledger import usage
from integrations.models import AIUsage, ModelPrice

from .conftest import MODEL_FOR

pytestmark = pytest.mark.django_db(transaction=True)
ASK = [{"role": "user", "content": "Name a bakery"}]


@pytest.mark.parametrize("provider", ["openai", "anthropic", "openrouter"])
def test_plain_message_from_each_upstream_in_anthropics_format(emulated_site, make_key, ant, upstream, provider):
    site = emulated_site(provider)
    reply = ant(make_key(site)).messages.create(
        model=MODEL_FOR[provider], max_tokens=64, system="Be brief.", messages=ASK
    )
    assert reply.type == "message" and reply.id.startswith("msg_") and reply.role == "assistant"
    assert reply.content[0].type == "text" and reply.content[0].text.startswith(f"Emulated {provider} reply")
    assert reply.stop_reason == "end_turn"
    assert reply.usage.output_tokens == len(reply.content[0].text.split()) and reply.usage.input_tokens > 0
    sent = upstream.requests_for(provider)[-1].json
    assert sent["max_tokens"] == 64
    system = sent.get("system") or next(m["content"] for m in sent["messages"] if m["role"] == "system")
    assert "Be brief." in str(system)
    usage.flush()
    row = AIUsage.objects.get()
    assert (row.site_id, row.service, row.status) == (site.pk, "v1.messages", "ok") and row.api_key_id


@pytest.mark.parametrize("provider", ["openai", "anthropic", "openrouter"])
def test_streamed_message_events_and_final_usage(emulated_site, make_key, ant, provider):
    client = ant(make_key(emulated_site(provider)))
    with client.messages.stream(model=MODEL_FOR[provider], max_tokens=64, messages=ASK) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.startswith(f"Emulated {provider} reply") and final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == len(text.split()) and final.usage.input_tokens > 0

    events = [
        e.type for e in client.messages.create(model=MODEL_FOR[provider], max_tokens=64, messages=ASK, stream=True)
    ]
    assert events[:2] == ["message_start", "content_block_start"]
    assert events[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(events[2:-3]) == {"content_block_delta"}


def test_max_tokens_cut_is_stop_reason_max_tokens(emulated_site, make_key, ant):
    reply = ant(make_key(emulated_site("anthropic"))).messages.create(
        model="claude-3-5-haiku", max_tokens=3, messages=ASK
    )
    assert reply.stop_reason == "max_tokens" and reply.usage.output_tokens == 3


TOOLS = [
    {
        "name": "lookup",
        "description": "Find a bakery in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]
PNG = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


@pytest.mark.parametrize("provider", ["openai", "anthropic", "openrouter"])
def test_a_two_step_tool_conversation_on_each_upstream(emulated_site, make_key, ant, upstream, provider):
    """tool_use out, tool_result back in: the conversation goes through whichever provider serves the site."""
    client = ant(make_key(emulated_site(provider)))
    upstream.script(flavor=provider, tool_calls=[{"name": "lookup", "arguments": {"city": "Lyon"}}])
    first = client.messages.create(model=MODEL_FOR[provider], max_tokens=64, messages=ASK, tools=TOOLS)
    assert first.stop_reason == "tool_use"
    call = next(b for b in first.content if b.type == "tool_use")
    assert (call.name, call.input) == ("lookup", {"city": "Lyon"})
    history = [
        *ASK,
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "Chez Paul"}]},
    ]
    final = client.messages.create(model=MODEL_FOR[provider], max_tokens=64, messages=history, tools=TOOLS)
    assert final.stop_reason == "end_turn" and final.content[0].type == "text"
    sent = json.dumps(upstream.requests_for(provider)[-1].json)
    assert "Chez Paul" in sent and call.id in sent  # the result reached the vendor, tied to its call
    usage.flush()
    assert AIUsage.objects.filter(service="v1.messages", status="ok").count() == 2


def test_a_streamed_tool_call_arrives_as_a_tool_use_block(emulated_site, make_key, ant, upstream):
    client = ant(make_key(emulated_site("openai")))
    upstream.script(flavor="openai", tool_calls=[{"name": "lookup", "arguments": {"city": "Lyon"}}])
    with client.messages.stream(model=MODEL_FOR["openai"], max_tokens=64, messages=ASK, tools=TOOLS) as stream:
        final = stream.get_final_message()
    (call,) = final.content  # one tool_use block: no empty text block before it, as Anthropic sends none
    assert (call.type, call.name, call.input, final.stop_reason) == ("tool_use", "lookup", {"city": "Lyon"}, "tool_use")


def test_tool_choice_any_is_required_and_server_tools_are_refused(emulated_site, make_key, ant, upstream):
    client = ant(make_key(emulated_site("openai")))
    client.messages.create(
        model=MODEL_FOR["openai"], max_tokens=64, messages=ASK, tools=TOOLS, tool_choice={"type": "any"}
    )
    assert upstream.requests_for("openai")[-1].json["tool_choice"] == "required"
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(
            model=MODEL_FOR["openai"],
            max_tokens=64,
            messages=ASK,
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
        )
    assert "server tool" in caught.value.body["error"]["message"]


def test_an_image_block_reaches_the_vendor_in_its_format(emulated_site, make_key, ant, upstream):
    client = ant(make_key(emulated_site("openai")))
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    client.messages.create(
        model="gpt-4o-mini",
        max_tokens=64,
        messages=[{"role": "user", "content": [image, {"type": "text", "text": "Describe it"}]}],
    )
    parts = upstream.requests_for("openai")[-1].json["messages"][-1]["content"]
    assert parts[0]["type"] == "image_url" and parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert parts[1] == {"type": "text", "text": "Describe it"}


def test_models_list_in_anthropics_format(emulated_site, make_key, ant):
    site = emulated_site("anthropic", allowed_models=["claude-3-5-*"])
    listed = [m.id for m in ant(make_key(site)).models.list()]
    assert listed == ["claude-3-5-haiku", "claude-3-5-sonnet"]


def test_over_budget_key_is_rate_limit_error_and_disallowed_model_permission_denied(
    emulated_site, make_key, ant, upstream
):
    site = emulated_site("anthropic")
    ModelPrice.objects.create(
        provider="anthropic",
        model_id="claude-3-5-haiku-20241022",
        prompt_per_million=Decimal("1000"),
        completion_per_million=Decimal("1000"),
    )
    poor = ant(make_key(site, "poor", monthly_budget=Decimal("0.01")), max_retries=2)
    with pytest.raises(anthropic.RateLimitError) as caught:  # 1000 output tokens could cost $1: over $0.01
        poor.messages.create(model="claude-3-5-haiku", max_tokens=1000, messages=ASK)
    assert caught.value.body["error"]["type"] == "rate_limit_error"
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert "monthly budget of the API key" in caught.value.body["error"]["message"]

    narrow = ant(make_key(site, "narrow", allowed_models=["claude-3-5-sonnet"]))
    with pytest.raises(anthropic.PermissionDeniedError) as denied:
        narrow.messages.create(model="claude-3-5-haiku", max_tokens=10, messages=ASK)
    assert denied.value.body["error"]["type"] == "permission_error"
    assert upstream.requests == []  # neither reached the vendor, and the SDK did not retry the budget refusal
    usage.flush()
    assert sorted(AIUsage.objects.values_list("status", "error_class")) == [
        ("refused", "BudgetExceeded"),
        ("refused", "PolicyViolation"),
    ]


def test_a_revoked_or_expired_key_is_authentication_error(emulated_site, make_key, ant):
    import datetime

    from django.utils import timezone

    from integrations.models import VirtualKey

    site = emulated_site("anthropic")
    raw = make_key(site, "to-revoke")
    client = ant(raw)
    assert client.messages.create(model="claude-3-5-haiku", max_tokens=10, messages=ASK).content  # warm
    key = VirtualKey.objects.get(name="to-revoke")
    key.revoked_at = timezone.now()
    key.save()
    with pytest.raises(anthropic.AuthenticationError) as caught:
        client.messages.create(model="claude-3-5-haiku", max_tokens=10, messages=ASK)
    assert caught.value.body["error"]["type"] == "authentication_error"

    expired = ant(make_key(site, "old", expires_at=timezone.now() - datetime.timedelta(seconds=1)))
    with pytest.raises(anthropic.AuthenticationError) as caught:
        expired.messages.create(model="claude-3-5-haiku", max_tokens=10, messages=ASK)
    assert "expired" in caught.value.body["error"]["message"]


def test_a_missing_max_tokens_is_invalid_request(emulated_site, make_key, live_server):
    import httpx2

    raw = make_key(emulated_site("anthropic"))
    answer = httpx2.post(
        f"{live_server.url}/v1/messages",
        headers={"x-api-key": raw, "anthropic-version": "2023-06-01"},
        json={"model": "claude-3-5-haiku", "messages": ASK},
    )
    assert answer.status_code == 400
    assert answer.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens is required."},
    }


def test_a_stream_broken_after_its_first_token_ends_with_an_error_event(emulated_site, make_key, ant, upstream):
    upstream.script(flavor="anthropic", cut_after=2)
    received = []
    client = ant(make_key(emulated_site("anthropic")))
    with (
        pytest.raises(anthropic.APIStatusError) as caught,  # the SDK raises on an `error` event
        client.messages.stream(model="claude-3-5-haiku", max_tokens=64, messages=ASK) as stream,
    ):
        received.extend(stream.text_stream)
    assert "".join(received) == "Emulated anthropic "
    assert caught.value.body["error"]["type"] == "api_error"
    usage.flush()
    assert AIUsage.objects.get().status == "error"


TOOL = {"name": "lookup", "description": "Find a bakery", "input_schema": {"type": "object", "properties": {}}}


def test_count_tokens_is_the_vendors_count_of_what_a_message_would_send(emulated_site, make_key, ant, upstream):
    """`messages.count_tokens` (and the beta path Claude Code calls) answers the input tokens the same request is
    billed as a message, counted by Anthropic; it spends nothing and takes no rate-limit ticket, and each count
    is one free usage row."""
    site = emulated_site("anthropic", monthly_budget=Decimal("5"), requests_per_minute=1)
    client = ant(make_key(site))
    ask = {"model": "claude-3-5-haiku", "system": "Be brief.", "messages": ASK, "tools": [TOOL]}

    counted = client.messages.count_tokens(**ask)
    beta = client.beta.messages.count_tokens(**ask)  # POST /v1/messages/count_tokens?beta=true
    sent = upstream.requests_for("anthropic")
    assert [r.path.split("?")[0] for r in sent] == ["/anthropic/v1/messages/count_tokens"] * 2
    assert "max_tokens" not in sent[0].json and sent[0].json["tools"][0]["name"] == "lookup"
    billed = client.messages.create(**ask, max_tokens=50).usage.input_tokens  # the one request a minute: still free
    assert counted.input_tokens == beta.input_tokens == billed > 0
    usage.flush()
    rows = AIUsage.objects.order_by("id")
    assert [(r.service, r.status) for r in rows] == [("v1.count_tokens", "ok")] * 2 + [("v1.messages", "ok")]
    count_row = rows[0]  # one row per upstream request: free, nothing billed, the key named
    assert (count_row.cost, count_row.cost_source, count_row.prompt_tokens, count_row.completion_tokens) == (
        0,
        "free",
        0,
        0,
    )
    assert count_row.api_key_id and count_row.served_model == "claude-3-5-haiku-20241022"


def test_count_tokens_follows_the_sites_policy_masking_and_provider(emulated_site, make_key, ant, upstream):
    site = emulated_site("anthropic", guard_mask_pii=True)
    ant(make_key(site)).messages.count_tokens(
        model="claude-3-5-haiku", messages=[{"role": "user", "content": "write to ana@example.com"}]
    )
    assert "<EMAIL_ADDRESS>" in json.dumps(upstream.requests_for("anthropic")[-1].json)  # masked before it is sent
    with pytest.raises(anthropic.PermissionDeniedError):  # the key's allowed models hold for counts too
        ant(make_key(site, allowed_models=["claude-sonnet-4"])).messages.count_tokens(
            model="claude-3-5-haiku", messages=ASK
        )
    usage.flush()
    assert list(AIUsage.objects.order_by("id").values_list("service", "status")) == [
        ("v1.count_tokens", "ok"),
        ("v1.count_tokens", "refused"),
    ]
    routed = emulated_site("openrouter")
    with pytest.raises(anthropic.BadRequestError) as refused:  # no counting endpoint there: no guess either
        ant(make_key(routed)).messages.count_tokens(model="anthropic/claude-3.5-haiku", messages=ASK)
    assert "no token counting endpoint" in refused.value.message
    assert upstream.requests_for("openrouter") == []
    usage.flush()
    assert not AIUsage.objects.filter(site=routed).exists()  # no request was made: no row


def test_a_count_the_vendor_refuses_is_an_error_row(emulated_site, make_key, ant, upstream):
    site = emulated_site("anthropic", anthropic_api_key="sk-ant-api03-invalid-" + "c3" * 30)
    with pytest.raises(anthropic.InternalServerError) as failed:  # the site's key, not the client's: a 502
        ant(make_key(site)).messages.count_tokens(model="claude-3-5-haiku", messages=ASK)
    assert failed.value.status_code == 502 and "c3c3" not in failed.value.message
    usage.flush()
    row = AIUsage.objects.get(site=site)
    assert (row.service, row.status, row.error_class) == ("v1.count_tokens", "error", "AuthenticationFailed")
    assert row.cost is None  # as any upstream error that produced nothing


THINK = {"type": "enabled", "budget_tokens": 1024}


def test_extended_thinking_comes_back_signed_and_goes_back_through_a_tool_loop(emulated_site, make_key, ant, upstream):
    """Claude Code's default: `thinking` on, its blocks given back in the next turn, signature intact (the emulator
    refuses any other, as Anthropic does)."""
    client = ant(make_key(emulated_site("anthropic")))
    reply = client.messages.create(model="claude-sonnet-4", max_tokens=2048, thinking=THINK, messages=ASK)
    thought, text = reply.content
    assert (thought.type, text.type) == ("thinking", "text") and thought.signature and thought.thinking
    assert reply.usage.output_tokens == len(thought.thinking.split()) + len(text.text.split())
    assert upstream.requests_for("anthropic")[-1].json["thinking"] == THINK

    upstream.script(flavor="anthropic", tool_calls=[{"name": "lookup", "arguments": {"city": "Lyon"}}])
    first = client.messages.create(model="claude-sonnet-4", max_tokens=2048, thinking=THINK, messages=ASK, tools=TOOLS)
    assert [b.type for b in first.content] == ["thinking", "tool_use"] and first.stop_reason == "tool_use"
    call = first.content[1]
    history = [
        *ASK,
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "Chez Paul"}]},
    ]
    final = client.messages.create(model="claude-sonnet-4", max_tokens=2048, thinking=THINK, messages=history)
    assert final.content[-1].type == "text" and final.stop_reason == "end_turn"
    assert upstream.requests_for("anthropic")[-1].json["messages"][1]["content"][0] == first.content[0].model_dump()
    tampered = [*history]
    tampered[1] = {
        "role": "assistant",
        "content": [{**history[1]["content"][0], "thinking": "edited"}, history[1]["content"][1]],
    }
    with pytest.raises(anthropic.BadRequestError, match="Invalid `signature`"):  # the vendor's refusal, relayed
        client.messages.create(model="claude-sonnet-4", max_tokens=2048, thinking=THINK, messages=tampered)


@pytest.mark.parametrize("provider", ["anthropic", "openrouter"])
def test_streamed_thinking_is_its_own_block_before_the_text(emulated_site, make_key, ant, provider):
    """On Anthropic as it streams; on OpenRouter (the default provider) from its `reasoning_details` deltas."""
    client = ant(make_key(emulated_site(provider)))
    model = {"anthropic": "claude-sonnet-4", "openrouter": "anthropic/claude-3.7-sonnet"}[provider]
    with client.messages.stream(model=model, max_tokens=2048, thinking=THINK, messages=ASK) as stream:
        events = list(stream)  # the SDK's own stream state: each delta must land on a block of its kind
        final = stream.get_final_message()
    thought, text = final.content
    assert thought.type == "thinking" and thought.signature and thought.thinking.startswith("Emulated")
    assert text.type == "text" and text.text.startswith(f"Emulated {provider} reply")
    kinds = [(e.type, getattr(getattr(e, "delta", None), "type", None)) for e in events]
    assert ("content_block_delta", "thinking_delta") in kinds and ("content_block_delta", "signature_delta") in kinds
    assert [e.index for e in events if e.type == "content_block_start"] == [0, 1]
    history = [*ASK, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in final.content]}]
    again = client.messages.create(
        model=model,
        max_tokens=2048,
        thinking=THINK,
        messages=[*history, {"role": "user", "content": "More"}],
    )
    assert again.content[0].type == "thinking"  # the streamed block's signature held


def test_thinking_is_refused_by_name_where_the_provider_cannot_think(emulated_site, make_key, ant, upstream):
    client = ant(make_key(emulated_site("openai")))
    with pytest.raises(anthropic.BadRequestError, match="thinking"):
        client.messages.create(model=MODEL_FOR["openai"], max_tokens=2048, thinking=THINK, messages=ASK)
    with pytest.raises(anthropic.BadRequestError, match="budget_tokens must be an integer of at least 1024"):
        ant(make_key(emulated_site("anthropic"))).messages.create(
            model="claude-sonnet-4", max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 10}, messages=ASK
        )
    assert upstream.requests_for("openai") == [] and upstream.requests_for("anthropic") == []
    disabled = client.messages.create(
        model=MODEL_FOR["openai"], max_tokens=64, thinking={"type": "disabled"}, messages=ASK
    )
    assert disabled.content[0].type == "text"


def test_a_count_takes_the_thinking_config(emulated_site, make_key, ant, upstream):
    client = ant(make_key(emulated_site("anthropic")))
    counted = client.messages.count_tokens(model="claude-sonnet-4", thinking=THINK, messages=ASK)
    assert counted.input_tokens > 0 and upstream.requests_for("anthropic")[-1].json["thinking"] == THINK


@pytest.mark.parametrize(
    ("provider", "sent_as"), [("anthropic", "claude-sonnet-4-6"), ("openrouter", "anthropic/claude-sonnet-4.6")]
)
def test_claude_codes_own_model_ids_reach_either_provider(emulated_site, make_key, ant, upstream, provider, sent_as):
    """Claude Code names Anthropic's ids (and thinks by default, adaptively on current models): an OpenRouter site
    routes them by OpenRouter's names (a rule: no mapping row needed), an Anthropic site sends them as they are."""
    client = ant(make_key(emulated_site(provider)))
    adaptive = {"type": "adaptive"}
    with client.messages.stream(model="claude-sonnet-4-6", max_tokens=4096, thinking=adaptive, messages=ASK) as stream:
        thought, text = stream.get_final_message().content
    assert thought.type == "thinking" and text.text.startswith(f"Emulated {provider} reply")
    sent = upstream.requests_for(provider)[-1].json
    assert sent["model"] == sent_as
    assert sent.get("thinking", sent.get("reasoning")) == (adaptive if provider == "anthropic" else {"enabled": True})
    client.messages.create(model="claude-haiku-4-5-20251001", max_tokens=64, messages=ASK)  # its small fast model
    expected = "claude-haiku-4-5-20251001" if provider == "anthropic" else "anthropic/claude-haiku-4.5"
    assert upstream.requests_for(provider)[-1].json["model"] == expected


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_a_system_message_mid_conversation_is_taken(emulated_site, make_key, ant, upstream, provider):
    """Claude Code appends system messages inside `messages`: an OpenAI-format vendor gets it in place, Anthropic
    (on the pinned API version) as part of the system prompt; never a 400."""
    client = ant(make_key(emulated_site(provider)))
    history = [*ASK, {"role": "assistant", "content": "Chez Paul"}, {"role": "system", "content": "Answer in French."}]
    reply = client.messages.create(
        model=MODEL_FOR[provider], max_tokens=64, system="Be brief.", messages=[*history, *ASK]
    )
    assert reply.content[0].text.startswith(f"Emulated {provider} reply")
    sent = upstream.requests_for(provider)[-1].json
    if provider == "anthropic":
        assert sent["system"] == "Be brief.\n\nAnswer in French." and all(
            m["role"] != "system" for m in sent["messages"]
        )
    else:
        assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "system", "user"]
        assert sent["messages"][3]["content"] == "Answer in French."


@pytest.mark.parametrize(
    ("provider", "sent"),
    [
        ("anthropic", {"output_config": {"effort": "max"}, "thinking": {"type": "adaptive"}}),
        ("openrouter", {"reasoning": {"effort": "xhigh"}}),  # OpenRouter's highest level
    ],
)
def test_claude_codes_effort_reaches_the_vendor(emulated_site, make_key, ant, upstream, provider, sent):
    """Claude Code sends `output_config.effort` with adaptive thinking by default: Anthropic gets it as it is,
    OpenRouter as its reasoning effort; a provider without one refuses it by name, never drops it."""
    client = ant(make_key(emulated_site(provider)))
    model = {"anthropic": "claude-sonnet-4-6", "openrouter": "claude-sonnet-4-6"}[provider]
    reply = client.messages.create(
        model=model, max_tokens=4096, thinking={"type": "adaptive"}, output_config={"effort": "max"}, messages=ASK
    )
    assert reply.content[-1].text.startswith(f"Emulated {provider} reply")
    body = upstream.requests_for(provider)[-1].json
    assert {key: body.get(key) for key in sent} == sent
    with pytest.raises(anthropic.BadRequestError, match="effort"):
        ant(make_key(emulated_site("openai"))).messages.create(
            model="gpt-4o-mini", max_tokens=64, output_config={"effort": "high"}, messages=ASK
        )
    with pytest.raises(anthropic.BadRequestError, match=r"output_config\.effort must be one of"):
        client.messages.create(model=model, max_tokens=64, output_config={"effort": "extreme"}, messages=ASK)
    assert upstream.requests_for("openai") == []


@pytest.mark.parametrize("provider", ["anthropic", "openai", "openrouter"])
def test_output_config_format_is_a_validated_json_answer_on_each_upstream(emulated_site, make_key, ant, provider):
    """`output_config.format` (Anthropic's structured outputs) is the gateway's structured output: never dropped,
    so the text block is JSON valid against the schema whichever vendor served it."""
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    client = ant(make_key(emulated_site(provider)))
    reply = client.messages.create(
        model=MODEL_FOR[provider],
        max_tokens=200,
        output_config={"format": {"type": "json_schema", "schema": schema}},
        messages=ASK,
    )
    (block,) = reply.content
    assert isinstance(json.loads(block.text)["name"], str) and reply.stop_reason == "end_turn"
    with client.messages.stream(
        model=MODEL_FOR[provider],
        max_tokens=200,
        output_config={"format": {"type": "json_schema", "schema": schema}},
        messages=ASK,
    ) as stream:  # validated first, then sent as one stream
        assert "name" in json.loads(stream.get_final_message().content[0].text)
    with pytest.raises(anthropic.BadRequestError, match=r"output_config\.format must be"):
        client.messages.create(
            model=MODEL_FOR[provider], max_tokens=64, output_config={"format": {"type": "xml"}}, messages=ASK
        )


@pytest.mark.parametrize("provider", ["anthropic", "openrouter", "openai"])
def test_the_system_prompts_cache_mark_is_kept_on_each_vendor(emulated_site, make_key, ant, upstream, provider):
    """Claude Code marks its system prompt (with the tools before it) as a cache breakpoint: Anthropic gets the mark
    on the system block, OpenRouter on the system message, OpenAI nothing (it caches long prompts itself); the
    second call reads the cache where the vendor keeps one, billed at the cache-read price."""
    client = ant(make_key(emulated_site(provider)))
    mark = {"type": "ephemeral", "ttl": "1h"}
    system = [{"type": "text", "text": "You are a careful baker. " * 40, "cache_control": mark}]
    first = client.messages.create(model=MODEL_FOR[provider], max_tokens=64, system=system, messages=ASK)
    second = client.messages.create(model=MODEL_FOR[provider], max_tokens=64, system=system, messages=ASK)
    sent = upstream.requests_for(provider)[-1].json
    if provider == "anthropic":
        assert sent["system"][0]["cache_control"] == mark
    elif provider == "openrouter":
        assert sent["messages"][0]["content"][0]["cache_control"] == mark
    else:
        assert "cache_control" not in json.dumps(sent)
    if provider != "openai":
        assert first.usage.cache_creation_input_tokens > 0 and second.usage.cache_read_input_tokens > 0


@pytest.mark.parametrize("provider", ["anthropic", "openrouter", "openai"])
def test_claude_codes_billing_line_is_dropped_so_its_prompt_cache_hits(
    emulated_site, make_key, ant, upstream, provider
):
    """Claude Code opens its system prompt with a billing line whose `cch` changes every request: left in, each
    prompt starts differently and the vendor's cache never matches. It is dropped (its own block, or the first line
    of a block), so the second turn reads the system prompt from the cache."""
    client = ant(make_key(emulated_site(provider)))
    mark = {"type": "ephemeral"}
    instructions = "You are a careful baker. " * 40

    def system(cch: str, own_block: bool) -> list[dict[str, object]]:
        line = f"x-anthropic-billing-header: cc_version=2.1.117.48f; cc_entrypoint=cli; cch={cch};"
        if own_block:
            return [{"type": "text", "text": line}, {"type": "text", "text": instructions, "cache_control": mark}]
        return [{"type": "text", "text": f"{line}\n{instructions}", "cache_control": mark}]

    for own_block in (True, False):
        first = client.messages.create(
            model=MODEL_FOR[provider], max_tokens=64, system=system("71fea", own_block), messages=ASK
        )
        second = client.messages.create(
            model=MODEL_FOR[provider], max_tokens=64, system=system("0aaa9", own_block), messages=ASK
        )
        sent = json.dumps(upstream.requests_for(provider)[-1].json)
        assert "billing" not in sent and "You are a careful baker." in sent
        if provider != "openai":
            assert second.usage.cache_read_input_tokens > 0, own_block
            assert first.usage.cache_creation_input_tokens > 0 or first.usage.cache_read_input_tokens > 0
    only_the_line = "x-anthropic-billing-header: cc_version=2.1.117.48f; cc_entrypoint=cli; cch=71fea;"
    client.messages.create(model=MODEL_FOR[provider], max_tokens=64, system=only_the_line, messages=ASK)
    sent = upstream.requests_for(provider)[-1].json
    assert "billing" not in json.dumps(sent)
    if provider == "anthropic":
        assert "system" not in sent
    else:
        assert sent["messages"][0]["role"] == "user"


@pytest.mark.parametrize("provider", ["anthropic", "openrouter", "openai"])
def test_disable_parallel_tool_use_holds_the_model_to_one_call_on_each_vendor(
    emulated_site, make_key, ant, upstream, provider
):
    client = ant(make_key(emulated_site(provider)))
    two = [{"name": "lookup", "arguments": {"city": "Lyon"}}, {"name": "lookup", "arguments": {"city": "Nice"}}]
    upstream.script(flavor=provider, tool_calls=two)
    reply = client.messages.create(
        model=MODEL_FOR[provider],
        max_tokens=64,
        messages=ASK,
        tools=TOOLS,
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
    )
    assert [b.type for b in reply.content].count("tool_use") == 1
    sent = upstream.requests_for(provider)[-1].json
    if provider == "anthropic":
        assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    else:
        assert sent["parallel_tool_calls"] is False and sent["tool_choice"] == "required"


@pytest.mark.parametrize("provider", ["anthropic", "openrouter", "openai"])
def test_a_conversations_cache_mark_is_kept_on_each_vendor(emulated_site, make_key, ant, upstream, provider):
    """Claude Code marks the last block of the conversation so far, so the next turn reads it from the cache:
    Anthropic gets the mark on that block, OpenRouter on the message's text, OpenAI nothing (it caches by itself)."""
    client = ant(make_key(emulated_site(provider)))
    mark = {"type": "ephemeral"}
    long = "Our bakery sells bread, tarts and cakes. " * 40
    history = [
        {"role": "user", "content": long},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": [{"type": "text", "text": "Name it.", "cache_control": mark}]},
    ]
    first = client.messages.create(model=MODEL_FOR[provider], max_tokens=64, messages=history)
    second = client.messages.create(model=MODEL_FOR[provider], max_tokens=64, messages=history)
    last = upstream.requests_for(provider)[-1].json["messages"][-1]
    if provider == "anthropic":
        assert last["content"][-1] == {"type": "text", "text": "Name it.", "cache_control": mark}
    elif provider == "openrouter":
        assert last["content"] == [{"type": "text", "text": "Name it.", "cache_control": mark}]
    else:
        assert last == {"role": "user", "content": "Name it."}
    if provider != "openai":
        assert first.usage.cache_creation_input_tokens > 0 and second.usage.cache_read_input_tokens > 0


@pytest.mark.parametrize("provider", ["anthropic", "openai", "openrouter"])
def test_an_image_in_a_tool_result_reaches_each_vendor(emulated_site, make_key, ant, upstream, provider):
    """Claude Code's Read tool returns an image file as an image block inside the `tool_result`: Anthropic gets it
    there, OpenAI's format (text only in a tool message) right after the tool results, in a user message."""
    client = ant(make_key(emulated_site(provider)))
    model = {"anthropic": "claude-sonnet-4", "openai": "gpt-4o-mini", "openrouter": "gpt-4o-mini"}[provider]
    picture = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    history = [
        *ASK,
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_read1", "name": "lookup", "input": {}}]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_read1",
                    "content": [{"type": "text", "text": "logo.png"}, picture],
                }
            ],
        },
    ]
    reply = client.messages.create(model=model, max_tokens=64, messages=history, tools=TOOLS)
    assert reply.content and reply.stop_reason in ("end_turn", "tool_use")  # answered: not the 400 it was
    sent = upstream.requests_for(provider)[-1].json["messages"]
    if provider == "anthropic":
        (result,) = sent[-1]["content"]
        assert result["type"] == "tool_result" and result["content"][1]["source"]["data"] == PNG
    else:
        tool, after = sent[-2], sent[-1]
        assert (tool["role"], tool["content"]) == ("tool", "logo.png")
        assert after["role"] == "user" and after["content"][1]["image_url"]["url"].endswith(PNG)
