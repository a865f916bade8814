"""The real `openai` SDK's Responses client (`client.responses.create`, `.stream`, `.parse`) against
`POST /v1/responses`.

Panel is the server (live_server: the sync driver; the last test runs the production ASGI server: the async
driver), the emulator the vendors behind it; each site is served by a different upstream, and whatever
served, the client reads the Responses format, which the SDK's stream state machine checks event by event.
"""

from __future__ import annotations

import json
from decimal import Decimal

import anthropic
import openai
import pydantic
import pytest

from integrations.ai.ledger import usage
from integrations.models import AIUsage, ModelPrice

from ..test_server_config import Server
from .conftest import MODEL_FOR

pytestmark = pytest.mark.django_db(transaction=True)
PROVIDERS = ["openai", "anthropic", "openrouter"]
TOOLS = [
    {
        "type": "function",
        "name": "lookup",
        "description": "Find a bakery",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_plain_response_from_each_upstream(emulated_site, make_key, oai, upstream, provider):
    site = emulated_site(provider)
    reply = oai(make_key(site)).responses.create(
        model=MODEL_FOR[provider], instructions="Be brief.", input="Name a bakery", max_output_tokens=50
    )

    assert reply.object == "response" and reply.id.startswith("resp_") and reply.status == "completed"
    assert reply.output_text.startswith(f"Emulated {provider} reply")
    (item,) = reply.output
    assert (item.type, item.role, item.status, item.content[0].type) == (
        "message",
        "assistant",
        "completed",
        "output_text",
    )
    assert reply.usage.total_tokens == reply.usage.input_tokens + reply.usage.output_tokens > 0
    assert reply.usage.input_tokens_details.cached_tokens == 0
    assert (reply.instructions, reply.max_output_tokens, reply.store) == ("Be brief.", 50, False)
    sent = upstream.requests_for(provider)[-1].json
    assert sent["max_tokens"] == 50 and "Be brief." in json.dumps(sent)  # instructions went as the system prompt
    usage.flush()
    row = AIUsage.objects.get()
    assert (row.site_id, row.status, row.service, row.prompt_tokens, row.completion_tokens) == (
        site.pk,
        "ok",
        "v1.responses",
        reply.usage.input_tokens,
        reply.usage.output_tokens,
    )
    assert row.api_key.site_id == site.pk


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_streamed_response_passes_the_sdks_state_machine(emulated_site, make_key, oai, provider):
    site = emulated_site(provider)
    with oai(make_key(site)).responses.stream(model=MODEL_FOR[provider], input="Name a bakery") as stream:
        events = list(stream)
        final = stream.get_final_response()

    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text.startswith(f"Emulated {provider} reply") and final.output_text == text
    assert final.status == "completed" and final.usage.output_tokens == len(text.split())
    assert len({e.response.id for e in events if hasattr(e, "response")}) == 1
    usage.flush()
    assert AIUsage.objects.get().completion_tokens == final.usage.output_tokens


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_two_step_function_call_conversation_on_each_upstream(emulated_site, make_key, oai, upstream, provider):
    site = emulated_site(provider)
    client = oai(make_key(site))
    upstream.script(flavor=provider, tool_calls=[{"name": "lookup", "arguments": {"city": "Lyon"}}])
    first = client.responses.create(model=MODEL_FOR[provider], input="Find a bakery in Lyon", tools=TOOLS)

    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and (calls[0].name, json.loads(calls[0].arguments)) == ("lookup", {"city": "Lyon"})
    history = [
        {"role": "user", "content": "Find a bakery in Lyon"},
        *[item.model_dump(exclude_none=True) for item in first.output],  # what the SDK's users send back
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "Chez Paul, rue Neuve"},
    ]
    final = client.responses.create(model=MODEL_FOR[provider], input=history, tools=TOOLS)
    assert final.status == "completed" and final.output_text
    sent = json.dumps(upstream.requests_for(provider)[-1].json)
    assert (
        "Chez Paul, rue Neuve" in sent and calls[0].call_id in sent
    )  # the output reached the vendor, tied to its call
    usage.flush()
    rows = AIUsage.objects.filter(site=site)
    assert rows.count() == 2 and all(r.api_key_id and r.cost > 0 for r in rows)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_streamed_function_call_assembled_by_the_sdk(emulated_site, make_key, oai, upstream, provider):
    client = oai(make_key(emulated_site(provider)))
    upstream.script(flavor=provider, tool_calls=[{"name": "lookup", "arguments": {"city": "Lyon"}}])
    with client.responses.stream(model=MODEL_FOR[provider], input="Find a bakery in Lyon", tools=TOOLS) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    (call,) = [item for item in final.output if item.type == "function_call"]
    assert (call.name, json.loads(call.arguments)) == ("lookup", {"city": "Lyon"})
    assert "response.function_call_arguments.done" in kinds and kinds[-1] == "response.completed"


class Bakery(pydantic.BaseModel):
    name: str


@pytest.mark.parametrize("provider", PROVIDERS)
def test_text_format_parses_into_a_pydantic_model_on_each_upstream(emulated_site, make_key, oai, provider):
    site = emulated_site(provider)
    reply = oai(make_key(site)).responses.parse(model=MODEL_FOR[provider], input="Name a bakery", text_format=Bakery)
    assert isinstance(reply.output_parsed, Bakery)
    assert reply.text.format.type == "json_schema"
    usage.flush()
    assert AIUsage.objects.filter(site=site, status="ok").exists()


def test_a_streamed_text_format_arrives_validated_and_parses_in_the_sdks_stream(emulated_site, make_key, oai):
    """`responses.stream(text_format=...)` (the Agents SDK streams structured outputs too): validated first, then
    sent as Responses' events in one piece, which the SDK's state machine takes and parses."""
    client = oai(make_key(emulated_site("anthropic")))
    with client.responses.stream(model="claude-3-5-haiku", input="Name a bakery", text_format=Bakery) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert (
        isinstance(final.output_parsed, Bakery) and kinds[0] == "response.created" and kinds[-1] == "response.completed"
    )


PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQ"
    "DwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def test_an_input_image_reaches_the_vendor(emulated_site, make_key, oai, upstream):
    content = [{"type": "input_text", "text": "Describe this"}, {"type": "input_image", "image_url": PNG}]
    reply = oai(make_key(emulated_site("anthropic"))).responses.create(
        model="claude-sonnet-4-20250514", input=[{"role": "user", "content": content}], max_output_tokens=50
    )
    assert reply.output_text
    assert "iVBORw0KGgo" in json.dumps(upstream.requests_for("anthropic")[-1].json)  # in Anthropic's own format


def test_a_response_cut_at_max_output_tokens_is_incomplete(emulated_site, make_key, oai, upstream):
    client = oai(make_key(emulated_site("openai")))
    upstream.script(flavor="openai", finish_reason="length")
    reply = client.responses.create(model="gpt-4o-mini", input="Name a bakery", max_output_tokens=5)
    assert reply.status == "incomplete" and reply.incomplete_details.reason == "max_output_tokens"
    upstream.script(flavor="openai", finish_reason="length")
    with client.responses.stream(model="gpt-4o-mini", input="Name a bakery", max_output_tokens=5) as stream:
        kinds = [event.type for event in stream]
    assert kinds[-1] == "response.incomplete"


@pytest.mark.parametrize(
    "extra, param",
    [
        ({"previous_response_id": "resp_123"}, "previous_response_id"),
        ({"tools": [{"type": "web_search"}]}, "tools[0]"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
        ({"input": ""}, "input"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
    ],
)
def test_what_the_gateway_cannot_take_is_a_400_naming_it(emulated_site, make_key, oai, upstream, extra, param):
    client = oai(make_key(emulated_site("openai")))
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(**{"model": "gpt-4o-mini", "input": "Name a bakery", **extra})
    assert refused.value.body["param"] == param, refused.value.body
    assert upstream.requests_for("openai") == []  # refused before any vendor request
    usage.flush()
    assert not AIUsage.objects.exclude(status="refused").exists()


def test_a_key_over_its_budget_gets_rate_limit_error_and_the_model_policy_holds(emulated_site, make_key, oai, upstream):
    ModelPrice.objects.create(
        provider="openai",
        model_id="gpt-4o-mini",
        prompt_per_million=Decimal(1000),
        completion_per_million=Decimal(1000),
    )
    site = emulated_site("openai")
    with pytest.raises(openai.RateLimitError) as refused:
        oai(make_key(site, monthly_budget=Decimal("0.01"))).responses.create(model="gpt-4o-mini", input="Hi")
    assert refused.value.body["code"] == "insufficient_quota"
    with pytest.raises(openai.PermissionDeniedError):
        oai(make_key(site, allowed_models=["gpt-4.1"])).responses.create(model="gpt-4o-mini", input="Hi")
    with pytest.raises(openai.NotFoundError):
        oai(make_key(site)).responses.create(model="claude-3-5-haiku", input="Hi")  # no Anthropic key on this site
    assert upstream.requests_for("openai") == []
    usage.flush()
    assert set(AIUsage.objects.filter(site=site).values_list("service", "status")) == {("v1.responses", "refused")}


def test_a_stream_broken_after_its_first_token_raises_in_the_sdk(emulated_site, make_key, oai, upstream):
    upstream.script(flavor="openai", content="one two three four", cut_after=2)
    client = oai(make_key(emulated_site("openai")))
    with pytest.raises(openai.APIError), client.responses.stream(model="gpt-4o-mini", input="Hi") as stream:
        for _ in stream:
            pass


def test_the_production_server_serves_responses_on_the_async_driver(emulated_site, make_key, upstream):
    """gunicorn with uvicorn workers (`bin/serve`'s default): plain, streamed, a function call, and a client that
    goes away mid-stream, whose call is ledgered `cancelled`; and Anthropic's token count and a stream with
    extended thinking, on the same server."""
    site = emulated_site("openai", also=("anthropic",))
    raw = make_key(site, "responder")
    server = Server(GUNICORN_WORKERS="1")
    try:
        client = openai.OpenAI(api_key=raw, base_url=f"http://127.0.0.1:{server.port}/v1", max_retries=0)
        assert client.responses.create(model="gpt-4o-mini", input="Hi").output_text.startswith("Emulated openai")
        with client.responses.stream(model="gpt-4o-mini", input="Hi") as stream:
            assert stream.get_final_response().output_text.startswith("Emulated openai")
        upstream.script(flavor="openai", tool_calls=[{"name": "lookup", "arguments": {"city": "Lyon"}}])
        with client.responses.stream(model="gpt-4o-mini", input="Hi", tools=TOOLS) as stream:
            (call,) = [i for i in stream.get_final_response().output if i.type == "function_call"]
        assert json.loads(call.arguments) == {"city": "Lyon"}
        with client.responses.stream(model="gpt-4o-mini", input="Name a bakery", text_format=Bakery) as stream:
            assert isinstance(
                stream.get_final_response().output_parsed, Bakery
            )  # structured, streamed: validated first
        ant = anthropic.Anthropic(api_key=raw, base_url=f"http://127.0.0.1:{server.port}", max_retries=0)
        hi = [{"role": "user", "content": "Hi there"}]
        assert ant.messages.count_tokens(model="claude-3-5-haiku", messages=hi).input_tokens == 2
        thinking = {"type": "enabled", "budget_tokens": 1024}  # extended thinking streamed on the async driver
        with ant.messages.stream(model="claude-sonnet-4", max_tokens=2048, thinking=thinking, messages=hi) as stream:
            thought, text = stream.get_final_message().content
        assert thought.type == "thinking" and thought.signature and text.text.startswith("Emulated anthropic")
        upstream.script(flavor="openai", content=" ".join(f"w{n}" for n in range(200)), token_rate=10)
        events = client.responses.create(model="gpt-4o-mini", input="Hi", stream=True)
        deltas = 0
        for event in events:
            deltas += event.type == "response.output_text.delta"
            if deltas == 3:
                break
        events.close()  # the client goes away
        assert upstream.stream_aborted.wait(8), "the upstream stream outlived its client"
    finally:
        assert server.stop() == 0  # the worker's exit writes the ledger
    usage.flush()
    rows = sorted(AIUsage.objects.filter(site=site).values_list("service", "status"))
    assert (
        rows
        == [("v1.count_tokens", "ok"), ("v1.messages", "ok"), ("v1.responses", "cancelled")]
        + [("v1.responses", "ok")] * 4
    )


def test_a_path_panel_does_not_serve_is_a_404_in_the_clients_dialect(emulated_site, make_key, oai, ant):
    """`client.responses.retrieve` (Panel stores no responses), Anthropic's message batches: each SDK raises its
    NotFoundError with a message naming what is served, never an HTML page in its body."""
    key = make_key(emulated_site("openai"))
    with pytest.raises(openai.NotFoundError) as missing:
        oai(key).responses.retrieve("resp_123")
    assert missing.value.body["code"] == "unknown_route" and "stores no responses" in missing.value.message
    assert "/v1/responses" in missing.value.message
    with pytest.raises(anthropic.NotFoundError) as missing_too:
        ant(key).messages.batches.list()
    assert missing_too.value.body["error"]["type"] == "not_found_error"
    assert "GET /v1/messages/batches is not served" in missing_too.value.message


def test_reasoning_effort_reaches_openrouter_and_is_a_400_where_the_provider_has_none(
    emulated_site, make_key, oai, upstream
):
    """Responses' `reasoning.effort` and Chat Completions' `reasoning_effort` are the gateway's `reasoning` option:
    OpenRouter's unified parameter (its reasoning tokens come back in the usage); a site on a provider without it
    gets a 400 naming the option, never an answer that silently ignored it."""
    routed = oai(make_key(emulated_site("openrouter")))
    reply = routed.responses.create(
        model="openai/o3-mini", input="Why?", reasoning={"effort": "low"}, max_output_tokens=400
    )
    assert upstream.requests_for("openrouter")[-1].json["reasoning"] == {"effort": "low"}
    assert reply.usage.output_tokens_details.reasoning_tokens > 0 and reply.reasoning.effort == "low"
    chat = routed.chat.completions.create(
        model="openai/o3-mini", messages=[{"role": "user", "content": "Why?"}], reasoning_effort="high"
    )
    assert upstream.requests_for("openrouter")[-1].json["reasoning"] == {"effort": "high"}
    assert chat.usage.completion_tokens_details.reasoning_tokens > 0
    # an Anthropic model's signed reasoning_details (extended thinking) stay out of these dialects' streams
    thinker = {"model": "anthropic/claude-3.7-sonnet", "max_output_tokens": 2048, "reasoning": {"effort": "low"}}
    with routed.responses.stream(input="Why?", **thinker) as stream:
        assert stream.get_final_response().output_text.startswith("Emulated openrouter reply")
    chunks = routed.chat.completions.create(
        model=thinker["model"], messages=[{"role": "user", "content": "Why?"}], reasoning_effort="low", stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("Emulated openrouter")
    direct = oai(make_key(emulated_site("openai")))
    with pytest.raises(openai.BadRequestError) as refused:
        direct.responses.create(model="gpt-4o-mini", input="Why?", reasoning={"effort": "low"})
    assert "reasoning" in refused.value.message
    with pytest.raises(openai.BadRequestError):
        direct.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Why?"}], reasoning_effort="low"
        )
    assert upstream.requests_for("openai") == []


def test_verbosity_and_one_call_a_turn_reach_the_vendor_or_are_refused_by_name(emulated_site, make_key, oai, upstream):
    """`text.verbosity` (GPT-5's answer length) goes to OpenAI as `verbosity`; a provider without it is a 400 naming
    it. `parallel_tool_calls: false` holds the model to one call a turn and is echoed."""
    client = oai(make_key(emulated_site("openai")))
    two = [{"name": "lookup", "arguments": {"city": "Lyon"}}, {"name": "lookup", "arguments": {"city": "Nice"}}]
    upstream.script(flavor="openai", tool_calls=two)
    reply = client.responses.create(
        model="gpt-4o-mini", input="Lyon and Nice?", tools=TOOLS, parallel_tool_calls=False, text={"verbosity": "low"}
    )
    sent = upstream.requests_for("openai")[-1].json
    assert sent["verbosity"] == "low" and sent["parallel_tool_calls"] is False
    assert [item.type for item in reply.output].count("function_call") == 1
    assert reply.parallel_tool_calls is False and reply.text.verbosity == "low"
    with pytest.raises(openai.BadRequestError, match="verbosity must be one of low, medium, high"):
        client.responses.create(model="gpt-4o-mini", input="Hi", text={"verbosity": "terse"})
    other = oai(make_key(emulated_site("anthropic")))
    with pytest.raises(openai.BadRequestError, match="verbosity"):
        other.responses.create(model=MODEL_FOR["anthropic"], input="Hi", text={"verbosity": "low"})
    assert upstream.requests_for("anthropic") == []


@pytest.mark.parametrize("provider", ["openrouter", "anthropic"])
@pytest.mark.parametrize("streamed", [False, True])
def test_reasoning_comes_back_signed_and_carries_a_tool_loop_as_codex_runs_it(
    emulated_site, make_key, oai, upstream, streamed, provider
):
    """What Codex sends (`reasoning.summary`, `include: ["reasoning.encrypted_content"]`, `parallel_tool_calls:
    false`, the whole history each turn, store false): a Claude model thinks (on OpenRouter by its reasoning option,
    on Anthropic as extended thinking), the response carries a reasoning item (its summary the thinking, its
    encrypted content the signed blocks), and that item sent back with the tool's output gives the vendor its
    thinking again, which a tool loop with thinking requires."""
    client = oai(make_key(emulated_site(provider)))
    ask = {
        "model": "anthropic/claude-sonnet-4" if provider == "openrouter" else "claude-sonnet-4",
        "instructions": "You are a coding agent.",
        "tools": TOOLS,
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "reasoning": {"effort": "low", "summary": "auto"},
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "extra_body": {"prompt_cache_key": "3f1c0d5e-conversation"},
        "max_output_tokens": 2048,
    }
    history: list = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Lyon?"}]}]
    upstream.script(flavor=provider, tool_calls=[{"name": "lookup", "arguments": {"city": "Lyon"}}])
    if streamed:
        with client.responses.stream(input=history, **ask) as stream:
            first = stream.get_final_response()
    else:
        first = client.responses.create(input=history, **ask)
    kinds = [item.type for item in first.output]
    assert sorted(kinds) == ["function_call", "reasoning"]
    (reasoning,) = [item for item in first.output if item.type == "reasoning"]
    assert reasoning.summary[0].text and reasoning.encrypted_content
    (call,) = [item for item in first.output if item.type == "function_call"]
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "Chez Paul"}
    turn = [item.model_dump(exclude_none=True) for item in first.output]  # as the client got them
    final = client.responses.create(input=[*history, *turn, output], **ask)
    assert final.status == "completed" and final.output_text
    turn_sent = upstream.requests_for(provider)[-1].json["messages"][-2]  # the vendor got its thinking back
    if provider == "openrouter":
        assert turn_sent["reasoning_details"][0]["signature"]
    else:
        assert turn_sent["content"][0]["type"] == "thinking" and turn_sent["content"][0]["signature"]
    # without the reasoning item the vendor refuses the loop; a changed one is refused before any vendor request
    without = [item for item in turn if item["type"] != "reasoning"]
    with pytest.raises(openai.BadRequestError, match=r"must start with a thinking block|Expected `thinking`"):
        client.responses.create(input=[*history, *without, output], **ask)
    sent_before = len(upstream.requests_for(provider))
    forged = [
        {**item, "encrypted_content": item["encrypted_content"][:-2] + "xx"} if item["type"] == "reasoning" else item
        for item in turn
    ]
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(input=[*history, *forged, output], **ask)
    assert refused.value.body["param"].endswith(".encrypted_content")
    assert len(upstream.requests_for(provider)) == sent_before
    # another server's reasoning item (no encrypted content) carries nothing a vendor could take: left out
    foreign = {"type": "reasoning", "summary": [{"type": "summary_text", "text": "hm"}], "encrypted_content": None}
    plain = client.responses.create(model=ask["model"], input=[*history, foreign], include=ask["include"])
    assert plain.output_text and [item.type for item in plain.output] == ["message"]  # no thinking, no item


APPLY_PATCH = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Edit files with a patch.",
    "format": {
        "type": "grammar",
        "syntax": "lark",
        "definition": 'start: "*** Begin Patch" /(.|\\n)*/ "*** End Patch"',
    },
}


@pytest.mark.parametrize("provider, streamed", [("openai", False), ("anthropic", True), ("openrouter", False)])
def test_a_custom_tool_is_called_with_free_text_on_each_upstream(
    emulated_site, make_key, oai, upstream, provider, streamed
):
    """Codex gives GPT-5 its `apply_patch` as a custom tool (free-form input, a Lark grammar): each vendor gets it as a
    function of one string with the grammar in its description; the call comes back as a `custom_tool_call` with
    the text, and the call and its output sent back reach the vendor as that function's call and result."""
    client = oai(make_key(emulated_site(provider)))
    patch = "*** Begin Patch\n*** Add File: hello.txt\n+hi\n*** End Patch"
    upstream.script(flavor=provider, tool_calls=[{"name": "apply_patch", "arguments": {"input": patch}}])
    ask = {"model": MODEL_FOR[provider], "tools": [APPLY_PATCH], "parallel_tool_calls": False}
    if streamed:
        with client.responses.stream(input="Add hello.txt", **ask) as stream:
            kinds = [event.type for event in stream]
            first = stream.get_final_response()
        assert "response.custom_tool_call_input.delta" in kinds
    else:
        first = client.responses.create(input="Add hello.txt", **ask)
    (call,) = first.output
    assert (call.type, call.name, call.input) == ("custom_tool_call", "apply_patch", patch)
    tool = upstream.requests_for(provider)[-1].json["tools"][0]
    schema = tool["input_schema"] if provider == "anthropic" else tool["function"]["parameters"]
    description = tool["description"] if provider == "anthropic" else tool["function"]["description"]
    assert schema["required"] == ["input"] and "*** Begin Patch" in description
    history = [
        {"role": "user", "content": "Add hello.txt"},
        call.model_dump(exclude_none=True),
        {"type": "custom_tool_call_output", "call_id": call.call_id, "output": "Done: added hello.txt"},
    ]
    final = client.responses.create(input=history, **ask)
    assert final.output_text
    sent = json.dumps(upstream.requests_for(provider)[-1].json)
    assert "Done: added hello.txt" in sent and call.call_id in sent and "Add File: hello.txt" in sent


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_an_image_in_a_function_call_output_reaches_the_vendor(emulated_site, make_key, oai, upstream, provider):
    """A tool's output may hold images (a screenshot): Anthropic gets them in the tool result, OpenAI's format in a
    user message right after the results."""
    client = oai(make_key(emulated_site(provider)))
    model = {"anthropic": "claude-sonnet-4", "openai": "gpt-4o-mini"}[provider]
    history = [
        {"role": "user", "content": "What is on screen?"},
        {"type": "function_call", "call_id": "call_shot1", "name": "lookup", "arguments": "{}"},
        {
            "type": "function_call_output",
            "call_id": "call_shot1",
            "output": [
                {"type": "input_text", "text": "screen.png"},
                {"type": "input_image", "image_url": PNG},
            ],
        },
    ]
    reply = client.responses.create(model=model, input=history, tools=TOOLS)
    assert reply.output_text
    sent = upstream.requests_for(provider)[-1].json["messages"]
    if provider == "anthropic":
        result = sent[-1]["content"][0]
        assert result["type"] == "tool_result" and [b["type"] for b in result["content"]] == ["text", "image"]
    else:
        assert sent[-2]["role"] == "tool" and sent[-1]["role"] == "user"
        assert sent[-1]["content"][-1]["type"] == "image_url"


def test_a_namespaces_tools_are_called_by_name_and_namespace(emulated_site, make_key, oai, upstream):
    """Codex groups its sub-agent tools in a `namespace` tool: the vendor gets each as its own function,
    `<namespace>__<name>`, and the call comes back under its name with its namespace, and goes back so."""
    client = oai(make_key(emulated_site("openrouter")))
    agents = {
        "type": "namespace",
        "name": "multi_agent_v1",
        "description": "Tools for sub-agents.",
        "tools": [
            {
                "type": "function",
                "name": "spawn_agent",
                "description": "Start one.",
                "parameters": {"type": "object", "properties": {"task": {"type": "string"}}, "required": ["task"]},
            }
        ],
    }
    upstream.script(
        flavor="openrouter", tool_calls=[{"name": "multi_agent_v1__spawn_agent", "arguments": {"task": "t"}}]
    )
    first = client.responses.create(model="gpt-4o-mini", input="Delegate", tools=[*TOOLS, agents])
    (call,) = first.output
    assert (call.type, call.name, call.namespace, json.loads(call.arguments)) == (
        "function_call",
        "spawn_agent",
        "multi_agent_v1",
        {"task": "t"},
    )
    offered = upstream.requests_for("openrouter")[-1].json["tools"]
    assert [t["function"]["name"] for t in offered] == ["lookup", "multi_agent_v1__spawn_agent"]
    assert offered[1]["function"]["description"] == "Tools for sub-agents. Start one."
    history = [
        {"role": "user", "content": "Delegate"},
        call.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": call.call_id, "output": "agent 7 started"},
    ]
    assert client.responses.create(model="gpt-4o-mini", input=history, tools=[*TOOLS, agents]).output_text
    turn = upstream.requests_for("openrouter")[-1].json["messages"][-2]
    assert turn["tool_calls"][0]["function"]["name"] == "multi_agent_v1__spawn_agent"
    with pytest.raises(openai.BadRequestError, match=r'web_search = \\"disabled\\"|web_search = "disabled"'):
        client.responses.create(model="gpt-4o-mini", input="Hi", tools=[{"type": "web_search"}])


@pytest.mark.parametrize("provider", ["anthropic", "openrouter", "openai"])
def test_a_conversation_with_a_prompt_cache_key_reads_the_cache_turn_after_turn(
    emulated_site, make_key, oai, upstream, provider
):
    """Codex sends its conversation's id as `prompt_cache_key` and no breakpoints: OpenAI gets the key (it caches by
    itself); a vendor that caches only where asked gets breakpoints after the conversation so far, so each turn of a
    tool loop reads what the turn before wrote. Without the key, nothing is marked."""
    client = oai(make_key(emulated_site(provider)))
    model = {"anthropic": "claude-sonnet-4", "openrouter": "anthropic/claude-sonnet-4", "openai": "gpt-4o-mini"}
    developer = {"role": "developer", "content": "You are a coding agent. Follow the repository's rules. " * 30}
    history: list = [developer, {"role": "user", "content": "Find a bakery in Lyon"}]
    ask = {"model": model[provider], "tools": TOOLS, "extra_body": {"prompt_cache_key": "conversation-42"}}
    upstream.script(flavor=provider, tool_calls=[{"name": "lookup", "arguments": {"city": "Lyon"}}])
    first = client.responses.create(input=history, **ask)
    (call,) = first.output
    history += [
        call.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": call.call_id, "output": "Chez Paul"},
    ]
    second = client.responses.create(input=history, **ask)
    sent = upstream.requests_for(provider)[-1].json
    if provider == "openai":
        assert sent["prompt_cache_key"] == "conversation-42" and "cache_control" not in json.dumps(sent)
        return
    assert first.usage.input_tokens_details.cached_tokens == 0
    assert second.usage.input_tokens_details.cached_tokens > 100  # the developer prompt and the first turn
    bare = {**ask, "extra_body": {}}
    client.responses.create(input=history, **bare)
    assert "cache_control" not in json.dumps(upstream.requests_for(provider)[-1].json)
