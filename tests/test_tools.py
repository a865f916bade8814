"""Issue 20 (1): tool calling through the gateway, on every provider, with the real SDKs against the emulator.

A two-step conversation (the model calls a tool, the tool's result goes back, the model answers with
it), a streamed tool call assembled from the vendor's deltas, and a failover between OpenAI and
Anthropic in the middle of a tool conversation: the neutral history replays in the other vendor's
format. Every call is priced in the ledger and counted in the budget.
"""

from __future__ import annotations

import json

import pytest

from integrations.ai.gateway.service import AIService
from integrations.ai.providers.errors import InvalidRequest
from integrations.ai.providers.tools import ToolCall

from .beyond_text import KINDS, assert_priced_and_budgeted, ledger, make_gateway

pytestmark = pytest.mark.django_db

WEATHER = {
    "name": "get_weather",
    "description": "The current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}
QUESTION = {"role": "user", "content": "What is the weather in Paris?"}


def wire_history(flavor: str, body: dict, call_id: str) -> None:
    """The second request carried the call and its result in the vendor's own format."""
    if flavor == "anthropic":
        assistant, results = body["messages"][1], body["messages"][2]
        assert assistant["role"] == "assistant"
        assert assistant["content"][-1] == {
            "type": "tool_use",
            "id": call_id,
            "name": "get_weather",
            "input": {"city": assistant["content"][-1]["input"]["city"]},
        }
        assert results == {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call_id, "content": '{"temp_c": 21}'}],
        }
        assert body["tools"][0]["input_schema"] == WEATHER["parameters"]
    else:
        assistant, result = body["messages"][1], body["messages"][2]
        assert assistant["content"] is None and assistant["tool_calls"][0]["id"] == call_id
        assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]).keys() == {"city"}
        assert result == {"role": "tool", "tool_call_id": call_id, "content": '{"temp_c": 21}'}
        assert body["tools"][0] == {"type": "function", "function": WEATHER}


@pytest.mark.parametrize("kind", KINDS)
def test_a_two_step_tool_conversation(kind, upstream):
    gateway = make_gateway(kind, upstream)
    ai = AIService(site=gateway.site, service="tests.tools")
    first = ai.complete([QUESTION], tools=[WEATHER], **gateway.call())
    assert first.finish_reason == "tool_calls"
    (call,) = first.tool_calls
    assert isinstance(call, ToolCall) and call.name == "get_weather"
    assert isinstance(call.arguments["city"], str)  # parsed, not JSON text
    assert call.id.startswith("toolu_" if kind == "anthropic" else "call_")

    history = [QUESTION, first.as_message(), call.result({"temp_c": 21})]
    second = ai.complete(history, tools=[WEATHER], **gateway.call())
    assert second.tool_calls == [] and second.finish_reason == "stop"
    assert 'the tool said {"temp_c": 21}' in second.content
    wire_history(gateway.flavor, upstream.requests_for(gateway.flavor)[-1].json, call.id)
    assert_priced_and_budgeted(gateway.site, calls=2)


@pytest.mark.parametrize("kind", KINDS)
def test_a_streamed_tool_call_is_assembled_from_the_deltas(kind, upstream):
    gateway = make_gateway(kind, upstream)
    stream = AIService(site=gateway.site).generate_stream(
        "What is the weather in Paris?", tools=[WEATHER], tool_choice={"name": "get_weather"}, **gateway.call()
    )
    assert list(stream) == []  # a reply of tool calls only: no text deltas
    (call,) = stream.result.tool_calls
    assert call.name == "get_weather" and set(call.arguments) == {"city"}
    assert stream.result.finish_reason == "tool_calls"
    body = upstream.requests_for(gateway.flavor)[-1].json
    assert body["stream"] is True
    forced = (
        {"type": "tool", "name": "get_weather"}
        if kind == "anthropic"
        else {"type": "function", "function": {"name": "get_weather"}}
    )
    assert body["tool_choice"] == forced
    assert_priced_and_budgeted(gateway.site, calls=1)


@pytest.mark.parametrize(("first", "second"), [("openai", "anthropic"), ("anthropic", "openai")])
def test_failover_in_the_middle_of_a_tool_conversation_completes_it(first, second, upstream, settings):
    settings.AI_MAX_RETRIES = 0
    gateway = make_gateway(first, upstream, also_key=second)
    ai = AIService(site=gateway.site, service="tests.tools")
    step_one = ai.complete([QUESTION], tools=[WEATHER], **gateway.call())
    (call,) = step_one.tool_calls
    assert step_one.provider == first

    upstream.script(flavor=first, status=503, times=3)
    history = [QUESTION, step_one.as_message(), call.result({"temp_c": 21})]
    step_two = ai.complete(history, tools=[WEATHER], model=gateway.model)
    assert step_two.provider == second
    assert 'the tool said {"temp_c": 21}' in step_two.content
    wire_history(second, upstream.requests_for(second)[-1].json, call.id)
    rows = assert_priced_and_budgeted(gateway.site, calls=2)
    assert [(r.provider, r.status) for r in rows] == [(first, "ok"), (first, "error"), (second, "ok")]


def test_a_tool_result_without_its_call_is_refused_before_any_request(upstream):
    gateway = make_gateway("openai", upstream)
    with pytest.raises(InvalidRequest, match="which the assistant message before it did not make"):
        AIService(site=gateway.site).complete(
            [QUESTION, {"role": "tool", "tool_call_id": "call_x", "content": "21"}], tools=[WEATHER]
        )
    with pytest.raises(InvalidRequest, match="have no result"):
        AIService(site=gateway.site).complete(
            [
                QUESTION,
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}],
                },
                {"role": "user", "content": "and?"},
            ],
            tools=[WEATHER],
        )
    with pytest.raises(InvalidRequest, match=r"tools\[0\].parameters is not a valid JSON schema"):
        AIService(site=gateway.site).complete(
            [QUESTION], tools=[{**WEATHER, "parameters": {"type": "object", "properties": {"city": {"type": 7}}}}]
        )
    assert upstream.requests == [] and ledger(gateway.site) == []


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_parallel_tool_calls_are_answered_in_one_turn(kind, upstream):
    """Two calls in one answer: OpenAI gets two tool messages, Anthropic one user turn with both results."""
    gateway = make_gateway(kind, upstream)
    ai = AIService(site=gateway.site)
    cities = [
        {"name": "get_weather", "arguments": {"city": "Paris"}},
        {"name": "get_weather", "arguments": {"city": "Lyon"}},
    ]
    upstream.script(flavor=gateway.flavor, tool_calls=cities)
    first = ai.complete([QUESTION], tools=[WEATHER], **gateway.call())
    assert [c.arguments["city"] for c in first.tool_calls] == ["Paris", "Lyon"]
    history = [QUESTION, first.as_message(), *(c.result(f"{i + 20} C") for i, c in enumerate(first.tool_calls))]
    second = ai.complete(history, tools=[WEATHER], **gateway.call())
    assert "the tool said 20 C; 21 C" in second.content
    body = upstream.requests_for(gateway.flavor)[-1].json
    if kind == "anthropic":
        assert len(body["messages"]) == 3
        assert [b["tool_use_id"] for b in body["messages"][2]["content"]] == [c.id for c in first.tool_calls]
    else:
        assert [m["role"] for m in body["messages"]] == ["user", "assistant", "tool", "tool"]


def test_the_response_cache_keeps_tool_calls_and_tells_tool_sets_apart(upstream):
    gateway = make_gateway("openai", upstream)
    ai = AIService(site=gateway.site)
    first = ai.complete([QUESTION], tools=[WEATHER], temperature=0, **gateway.call())
    again = ai.complete([QUESTION], tools=[WEATHER], temperature=0, **gateway.call())
    assert again.cached and again.tool_calls == first.tool_calls
    other = {**WEATHER, "name": "get_forecast"}
    assert ai.complete([QUESTION], tools=[other], temperature=0, **gateway.call()).tool_calls[0].name == "get_forecast"
    plain = ai.complete([QUESTION], temperature=0, **gateway.call())
    assert plain.tool_calls == [] and not plain.cached
    assert len([r for r in upstream.requests if r.method == "POST"]) == 3
