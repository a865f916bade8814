"""OpenAI-format streams read off the wire without the SDK's per-chunk models (`providers/sse.py`, issue 22).

The gateway reads each chunk's JSON itself and builds the SDK's model only for the rare chunk (usage,
tool calls), so what the SDK decoded for us must still come out the same: text, OpenRouter's keep-alive
comments, its in-stream error event, tool-call deltas, the usage and reported cost of the last chunk.
Both drivers, against the emulator over HTTP.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from integrations.ai.gateway.service import AIService
from integrations.ai.ledger import usage
from integrations.ai.providers import errors, sse
from integrations.models import AIUsage

from .drivers import async_to_sync  # a thread of its own when Playwright left a loop running

PROMPT = "Write one sentence about tide pools."


@pytest.mark.django_db(transaction=True)
def test_an_error_event_inside_a_stream_is_a_typed_error_with_the_vendors_words(emulated_site, upstream, driver):
    """OpenRouter answers 200 and then, when the model's provider fails mid-answer, sends a chunk with `error`.
    The SDK raised its bare `APIError` for it, which surfaced as an "unexpected provider failure"."""
    site = emulated_site("openrouter")
    upstream.script(
        flavor="openrouter", content="Tide pools hold small worlds.", cut_after=2, stream_error="Provider disconnected"
    )
    received: list[str] = []
    with pytest.raises(errors.ProviderUnavailable, match="ended the stream with an error: Provider disconnected"):
        driver.stream(AIService(site=site), PROMPT, received, model="openai/gpt-4o-mini")
    assert received == ["Tide ", "pools "]  # what arrived before the error reached the caller
    usage.flush()
    (row,) = AIUsage.objects.filter(site=site)
    assert row.status == "error" and row.cost is not None and row.cost > 0  # charged what was streamed


@pytest.mark.django_db(transaction=True)
def test_a_streamed_answer_reads_the_same_as_the_sdk_read_it(emulated_site, upstream, driver):
    """Text deltas (with OpenRouter's `: OPENROUTER PROCESSING` comments between them), the finish reason, the
    served model, and the last chunk's usage with OpenRouter's reported cost."""
    site = emulated_site("openrouter")
    upstream.script(
        flavor="openrouter",
        content="Anemones close when the tide goes out.",
        usage={"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18, "cost": 0.00042},
    )
    received: list[str] = []
    stream = driver.stream(AIService(site=site), PROMPT, received, model="openai/gpt-4o-mini")
    result = stream.result
    assert "".join(received) == result.content == "Anemones close when the tide goes out."
    assert (result.prompt_tokens, result.completion_tokens, result.total_tokens) == (11, 7, 18)
    assert result.cost == Decimal("0.00042") and result.finish_reason == "stop"
    assert result.model == "openai/gpt-4o-mini"


@pytest.mark.django_db(transaction=True)
def test_streamed_tool_calls_are_assembled(emulated_site, upstream, driver):
    site = emulated_site("openai")
    upstream.script(flavor="openai", tool_calls=[{"name": "lookup", "arguments": {"city": "Oslo", "days": 3}}])
    tools = [{"name": "lookup", "description": "Weather", "parameters": {"type": "object", "properties": {}}}]
    stream = driver.stream(AIService(site=site), PROMPT, model="gpt-4o-mini", tools=tools)
    (call,) = stream.result.tool_calls
    assert (call.name, dict(call.arguments)) == ("lookup", {"city": "Oslo", "days": 3})


def test_the_decoder_joins_multi_line_data_and_skips_comments_and_other_fields():
    """The server-sent-events rules the SDK's decoder applied (WHATWG: data lines of one event joined with
    newlines, a leading space after the colon dropped, comments and unknown fields ignored)."""
    decoder = sse._Decoder()
    lines = [
        ": keep-alive",
        "id: 7",
        "retry: 10",
        "event: message",
        'data: {"a":',
        "data:1}",
        "",
        "",
        "data: [DONE]",
        "",
    ]
    events = [event for line in lines if (event := decoder.line(line)) is not None]
    assert events == [("message", '{"a":\n1}'), (None, "[DONE]")]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 64, 4096])
def test_the_async_reader_splits_lines_as_httpx_does(size):
    """`achunks` splits an unencoded body itself (`sse._Lines`): whatever the reads' sizes, the lines are
    httpx's `aiter_lines`' (every line ending, a character cut between two reads, a final line unended)."""
    import httpx2

    body = (
        'data: {"text":"crème brûlée 🍰"}\r\n\r\n: keep-alive\rdata: x\n\ndata: y\r\r\ndata: [DONE]\n\ndata: after'
    ).encode() + b"\xff"
    reads = [body[i : i + size] for i in range(0, len(body), size)]

    async def theirs() -> list[str]:
        async def chunks():
            for part in reads:
                yield part

        response = httpx2.Response(200, content=chunks())
        return [line async for line in response.aiter_lines()]

    lines = sse._Lines()
    ours = [line for part in reads for line in lines.feed(part)] + lines.end()
    assert ours == async_to_sync(theirs)()
    assert 'data: {"text":"crème brûlée 🍰"}' in ours
