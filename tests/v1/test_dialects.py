"""The dialect translators on their own: requests to one gateway call, results and errors back (issue 21)."""

from __future__ import annotations

import json
import math

import pytest

from integrations.ai.providers import errors
from integrations.ai.providers.types import GenerationResult
from integrations.api.v1 import anthropic_dialect, openai_dialect
from integrations.api.v1.calls import BadField, Unsupported
from integrations.api.v1.failures import failure_for

USER = [{"role": "user", "content": "hi"}]


def test_openai_request_becomes_one_gateway_call():
    call = openai_dialect.parse(
        {
            "model": "gpt-4o-mini",
            "max_completion_tokens": 77,
            "temperature": 0.2,
            "top_p": 0.9,
            "seed": 7,
            "stop": "END",
            "user": "u-1",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            ],
            "store": False,
            "metadata": {"x": "y"},
        }
    )
    assert call.messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "a\nb"}]
    assert (call.model, call.max_tokens, call.temperature, call.stream, call.include_usage) == (
        "gpt-4o-mini",
        77,
        0.2,
        True,
        True,
    )
    assert call.options == {
        "top_p": 0.9,
        "seed": 7,
        "stop": ["END"],
        "user": "u-1",
    }


@pytest.mark.parametrize(
    ("body", "param", "kind"),
    [
        ({"messages": USER}, "model", BadField),
        ({"model": "m", "messages": []}, "messages", BadField),
        ({"model": "m", "messages": USER, "n": 2}, "n", Unsupported),
        ({"model": "m", "messages": USER, "functions": [{"name": "f"}]}, "functions", Unsupported),
        ({"model": "m", "messages": USER, "tool_choice": "required"}, "tool_choice", BadField),
        ({"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id", BadField),
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": 3}]}]},
            "messages[0].content[0]",
            BadField,
        ),
        ({"model": "m", "messages": USER, "temperature": "hot"}, "temperature", BadField),
        ({"model": "m", "messages": USER, "max_tokens": 1.5}, "max_tokens", BadField),
        ({"model": "m", "messages": USER, "response_format": {"type": "yaml"}}, "response_format", BadField),
        ({"model": "m", "messages": USER, "parallel_tool_calls": "no"}, "parallel_tool_calls", BadField),
        ({"model": "m", "messages": USER, "verbosity": 2}, "verbosity", BadField),
        ({"model": "m", "messages": USER, "reasoning_effort": 2}, "reasoning_effort", BadField),
    ],
)
def test_openai_request_errors_name_the_field(body, param, kind):
    with pytest.raises(kind) as caught:
        openai_dialect.parse(body)
    assert caught.value.param == param
    failure = failure_for(caught.value)
    assert failure.status == 400 and openai_dialect.error_body(failure)["error"]["param"] == param


def test_anthropic_request_becomes_one_gateway_call():
    call = anthropic_dialect.parse(
        {
            "model": "claude-3-5-haiku",
            "max_tokens": 10,
            "system": [{"type": "text", "text": "Be brief."}],
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"},
                {"role": "user", "content": [{"type": "text", "text": "c"}]},
            ],
            "stop_sequences": ["END"],
            "top_k": 5,
            "metadata": {"user_id": "u-1"},
        }
    )
    assert call.system_prompt == "Be brief." and [m["content"] for m in call.messages] == ["a", "b", "c"]
    assert call.options == {"top_k": 5, "stop": ["END"], "user": "u-1"} and call.temperature == 1.0


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m", "messages": USER}, "max_tokens"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "tool", "content": "s"}]}, "messages.0.role"),
        ({"model": "m", "max_tokens": 5, "messages": USER, "thinking": {"type": "sometimes"}}, "thinking"),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}
                        ],
                    }
                ],
            },
            "messages.0.content[0]",
        ),
    ],
)
def test_anthropic_request_errors_name_the_field(body, param):
    with pytest.raises(BadField) as caught:
        anthropic_dialect.parse(body)
    assert caught.value.param == param
    assert anthropic_dialect.error_body(failure_for(caught.value))["error"]["type"] == "invalid_request_error"


def _result(**fields) -> GenerationResult:
    values = {
        "content": "Hello",
        "model": "gpt-4o-mini-2024-07-18",
        "provider": "openai",
        "prompt_tokens": 12,
        "completion_tokens": 3,
        "total_tokens": 15,
        "cached_tokens": 4,
        "reasoning_tokens": 1,
        **fields,
    }
    return GenerationResult(**values)


def test_openai_stream_ends_with_usage_then_done():
    chunks = openai_dialect.Chunks("gpt-4o-mini", include_usage=True)
    raw = (chunks.first("") + chunks.delta("Hel") + chunks.end(_result(finish_reason="length"))).decode()
    events = raw.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    payloads = [json.loads(e[6:]) for e in events[:-2]]
    assert payloads[-2]["choices"][0]["finish_reason"] == "length"
    assert payloads[-1]["choices"] == [] and payloads[-1]["usage"]["prompt_tokens_details"]["cached_tokens"] == 4
    assert payloads[-1]["usage"]["completion_tokens_details"]["reasoning_tokens"] == 1
    assert all(p["usage"] is None for p in payloads[:-1])


def test_anthropic_usage_splits_cache_reads_from_input():
    body = anthropic_dialect.message(_result(cache_write_tokens=2))
    assert body["usage"] == {
        "input_tokens": 6,
        "output_tokens": 3,
        "cache_creation_input_tokens": 2,
        "cache_read_input_tokens": 4,
    }


@pytest.mark.parametrize(
    ("error", "status", "retry"),
    [
        (errors.BudgetExceeded("over", retry_after=3600), 429, "false"),
        (errors.RateLimited("slow down", retry_after=12.2), 429, "true"),
        (errors.PolicyViolation("no", rule="allowed_models"), 403, "false"),
        (errors.ModelNotFound("which?"), 404, "false"),
        (errors.InvalidRequest("bad"), 400, "false"),
        (errors.AuthenticationFailed("upstream key", provider="openai"), 502, "false"),
        (errors.ProviderUnavailable("down", provider="openai"), 502, None),
        (errors.ProviderUnavailable("all cooling down"), 503, None),
        (errors.ProviderTimeout("slow", provider="openai"), 504, None),
    ],
)
def test_gateway_errors_map_to_the_statuses_sdks_act_on(error, status, retry):
    failure = failure_for(error)
    assert failure.status == status and failure.headers().get("x-should-retry") == retry
    if isinstance(error, errors.RateLimited | errors.BudgetExceeded):
        assert int(failure.headers()["Retry-After"]) == math.ceil(error.retry_after)


@pytest.mark.parametrize("include_usage", [True, False])
def test_a_delta_chunk_is_byte_for_byte_the_chunk_built_from_its_fields(include_usage):
    """`Chunks.delta` reuses the stream's head and tail around the text; it must stay the chunk `_chunk` builds
    (a model name with the marker's escape in it included)."""
    chunks = openai_dialect.Chunks('odd"\x00', include_usage)  # its JSON holds the marker's: "\u0000"
    for text in ["", "plain", 'a "quoted" \\ word', "crème 🍰", "\x00", "\n\n"]:
        assert chunks.delta(text) == chunks._chunk(chunks._choice({"content": text}))


def test_an_anthropic_delta_event_is_byte_for_byte_the_event_built_from_its_fields():
    from integrations.ai.providers.types import ThinkingDelta

    events = anthropic_dialect.Events("claude-3-5-haiku")
    events.delta("opens the text block")
    after_thinking = anthropic_dialect.Events("claude-3-5-haiku")  # the text block is then block 1
    after_thinking.delta(ThinkingDelta(0, thinking="Hm", signature="sig"))
    after_thinking.delta("opens it")
    for text in ["", "plain", 'a "quoted" \\ word', "crème 🍰", "\x00", "\n\n", "</script>"]:
        assert events.delta(text) == anthropic_dialect.delta_event(text)
        assert after_thinking.delta(text) == anthropic_dialect.delta_event(text, 1)


def test_a_responses_request_becomes_one_gateway_call_in_the_neutral_shapes():
    from integrations.api.v1 import responses_dialect

    call = responses_dialect.parse(
        {
            "model": "gpt-4o-mini",
            "instructions": "Be brief.",
            "max_output_tokens": 77,
            "temperature": 0.2,
            "top_p": 0.9,
            "safety_identifier": "u-1",
            "metadata": {"ticket": "42"},
            "store": True,
            "input": [
                {"role": "developer", "content": "Answer in French."},
                {"role": "user", "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me look."}]},
                {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": '{"city":"Lyon"}'},
                {"type": "function_call", "call_id": "call_2", "name": "lookup", "arguments": '{"city":"Nice"}'},
                {"type": "function_call_output", "call_id": "call_1", "output": "Chez Paul"},
                {
                    "type": "function_call_output",
                    "call_id": "call_2",
                    "output": [{"type": "input_text", "text": "Le Four"}],
                },
                {
                    "role": "user",
                    "content": [{"type": "input_image", "image_url": "https://x.test/a.png", "detail": "low"}],
                },
            ],
            "tools": [{"type": "function", "name": "lookup", "parameters": {"type": "object"}, "strict": True}],
            "tool_choice": {"type": "function", "name": "lookup"},
        }
    )
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"city":"Lyon"}'}},
        {"id": "call_2", "type": "function", "function": {"name": "lookup", "arguments": '{"city":"Nice"}'}},
    ]
    assert call.messages == [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "a\nb"},
        {"role": "assistant", "content": "Let me look.", "tool_calls": calls},  # one assistant turn: text and calls
        {"role": "tool", "tool_call_id": "call_1", "content": "Chez Paul"},
        {"role": "tool", "tool_call_id": "call_2", "content": "Le Four"},
        {"role": "user", "content": [{"type": "image", "url": "https://x.test/a.png", "detail": "low"}]},
    ]
    assert (call.model, call.system_prompt, call.max_tokens, call.temperature) == ("gpt-4o-mini", "Be brief.", 77, 0.2)
    assert call.options == {
        "top_p": 0.9,
        "user": "u-1",
        "tools": [
            {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}, "strict": True}}
        ],
        "tool_choice": {"type": "function", "function": {"name": "lookup"}},
    }
    assert call.echo["metadata"] == {"ticket": "42"} and call.echo["instructions"] == "Be brief."


@pytest.mark.parametrize(
    "body, param",
    [
        ({"input": [{"type": "item_reference", "id": "rs_1"}]}, "input[0]"),
        ({"input": [{"type": "reasoning", "id": "rs_1", "summary": []}]}, "input"),  # nothing left to send
        (
            {"input": [{"type": "reasoning", "encrypted_content": "gAAAA-another-servers"}, *USER]},
            "input[0].encrypted_content",
        ),
        ({"include": ["file_search_call.results"]}, "include"),
        ({"include": "reasoning.encrypted_content"}, "include"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]},
            "input[0].content[0]",
        ),
        ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}, "input[0].content[0]"),
        ({"input": [{"type": "function_call", "name": "x", "arguments": "{}"}]}, "input[0].call_id"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
        ({"tools": [{"type": "function"}]}, "tools[0].name"),
        ({"tools": [{"type": "file_search"}]}, "tools[0]"),
        (
            {
                "tools": [
                    {"type": "custom", "name": "p", "format": {"type": "grammar", "syntax": "ebnf", "definition": "x"}}
                ]
            },
            "tools[0].format",
        ),
        ({"input": [{"type": "custom_tool_call", "call_id": "c", "name": "p", "input": 3}]}, "input[0].input"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": [{"type": "function", "name": "f"}], "tool_choice": {"type": "web_search"}}, "tool_choice"),
        ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
        ({"text": {"verbosity": 2}}, "verbosity"),
        ({"metadata": {"n": 1}}, "metadata"),
        ({"reasoning": {"summary": "long"}}, "reasoning.summary"),
        ({"reasoning": {"effort": 3}}, "reasoning.effort"),
        ({"truncation": "auto"}, "truncation"),
        ({"background": True}, "background"),
        ({"parallel_tool_calls": "no"}, "parallel_tool_calls"),
    ],
)
def test_a_responses_field_the_gateway_cannot_take_is_named(body, param):
    from integrations.api.v1 import responses_dialect

    with pytest.raises(BadField) as refused:
        responses_dialect.parse({"model": "m", "input": "hi", **body})
    assert refused.value.param == param


def test_a_responses_result_renders_text_then_function_calls():
    from integrations.ai.providers.tools import ToolCall
    from integrations.api.v1 import responses_dialect

    call = responses_dialect.parse({"model": "m", "input": "hi", "metadata": {"a": "b"}})
    result = GenerationResult(
        content="Looking.",
        model="gpt-4o-mini",
        provider="openai",
        prompt_tokens=3,
        completion_tokens=4,
        finish_reason="tool_calls",
        tool_calls=[ToolCall("call_9", "lookup", {"city": "Lyon"})],
    )
    body = responses_dialect.response(result, call)
    message, function_call = body["output"]
    assert message["content"][0] == {"type": "output_text", "text": "Looking.", "annotations": [], "logprobs": []}
    assert (function_call["call_id"], function_call["name"], json.loads(function_call["arguments"])) == (
        "call_9",
        "lookup",
        {"city": "Lyon"},
    )
    assert (body["status"], body["usage"]["total_tokens"], body["metadata"], body["store"]) == (
        "completed",
        7,
        {"a": "b"},
        False,
    )


def test_anthropic_thinking_is_the_gateways_option_and_its_blocks_stay_as_signed():
    body = {"model": "m", "max_tokens": 2048, "messages": USER}
    disabled = anthropic_dialect.parse({**body, "thinking": {"type": "disabled"}})
    assert disabled.messages == USER and "thinking" not in disabled.options
    think = {"type": "enabled", "budget_tokens": 1024}
    assert anthropic_dialect.parse({**body, "thinking": think}).options["thinking"] == think
    signed = {"type": "thinking", "thinking": "Hm", "signature": "c2ln"}
    turn = {
        "role": "assistant",
        "content": [signed, {"type": "redacted_thinking", "data": "ZW5j"}, {"type": "text", "text": "Hi"}],
    }
    call = anthropic_dialect.parse({**body, "messages": [*USER, turn, *USER]})
    assert call.messages[1] == {
        "role": "assistant",
        "content": "Hi",
        "thinking": [signed, {"type": "redacted_thinking", "data": "ZW5j"}],
    }
    with pytest.raises(BadField) as unsigned:
        anthropic_dialect.parse(
            {**body, "messages": [*USER, {"role": "assistant", "content": [{"type": "thinking", "thinking": "Hm"}]}]}
        )
    assert unsigned.value.param == "messages.1.content[0]"
    with pytest.raises(Unsupported):  # thinking is the model's: a user turn cannot carry it
        anthropic_dialect.parse({**body, "messages": [{"role": "user", "content": [signed]}]})
    with pytest.raises(BadField):
        anthropic_dialect.parse(["not", "an", "object"])


def test_a_prompt_cache_key_marks_the_conversation_in_both_openai_dialects():
    """`prompt_cache_key` is the gateway's option of that name, and the conversation gets breakpoints: after the last
    message, and after the last text turn when the last is a tool's result; a client's own marks are kept as given."""
    history = [
        {"role": "user", "content": "Find a bakery"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "Chez Paul"},
    ]
    call = openai_dialect.parse({"model": "m", "messages": history, "prompt_cache_key": "k"})
    assert call.options["prompt_cache_key"] == "k"
    assert [bool(m.get("cache_control")) for m in call.messages] == [True, False, True]
    plain = openai_dialect.parse({"model": "m", "messages": history})
    assert not any(m.get("cache_control") for m in plain.messages) and "prompt_cache_key" not in plain.options
    from integrations.api.v1 import responses_dialect

    call = responses_dialect.parse({"model": "m", "input": "hi", "prompt_cache_key": "k"})
    assert call.messages == [{"role": "user", "content": "hi", "cache_control": {"type": "ephemeral"}}]
    with pytest.raises(BadField) as refused:
        responses_dialect.parse({"model": "m", "input": "hi", "prompt_cache_key": 7})
    assert refused.value.param == "prompt_cache_key"
