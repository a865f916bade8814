"""Anthropic streams read off the wire (`sse.read_named`, issue 22), on both drivers: the events' text and
totals as the SDK's stream gave them, an in-stream `error` event as a typed error after the text already
streamed, and `message_stop` as the end (the body's end read for at most a tenth of a second, so the
connection is reused, and a server that holds it open costs no more than that)."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from integrations.ai.gateway.service import AIService
from integrations.ai.ledger import usage
from integrations.ai.providers import errors
from integrations.models import AIUsage, ModelPrice

from .drivers import async_to_sync
from .factories import AIProviderSettingsFactory

ANT_KEY = "sk-ant-api03-" + "7c" * 24
PROMPT = "Describe our spring sale in one line"


@pytest.fixture
def anthropic_site(db, upstream):
    ModelPrice.objects.create(
        provider="anthropic",
        model_id="claude-3-5-haiku",
        prompt_per_million=Decimal("0.8"),
        completion_per_million=Decimal("4"),
    )
    record = AIProviderSettingsFactory(
        provider_type="anthropic", anthropic_api_key=ANT_KEY, anthropic_base_url=upstream.anthropic_base_url
    )
    return record.site


def rows(site):
    usage.flush()
    return list(AIUsage.objects.filter(site=site).order_by("id"))


def test_text_and_totals_arrive_as_the_sdks_stream_gave_them(anthropic_site, upstream, driver):
    upstream.script(flavor="anthropic", content="Tide pools hold small worlds.")
    stream = driver.stream(AIService(site=anthropic_site), PROMPT, model="claude-3-5-haiku", max_tokens=50)
    result = stream.result
    assert result.content == "Tide pools hold small worlds." and result.finish_reason == "stop"
    assert result.prompt_tokens > 0 and result.completion_tokens > 0
    (row,) = rows(anthropic_site)
    assert row.status == "ok" and row.completion_tokens == result.completion_tokens and row.cost > 0


def test_an_error_event_mid_stream_is_a_typed_error_after_the_text_streamed(anthropic_site, upstream, driver):
    upstream.script(flavor="anthropic", content="one two three four", cut_after=2, stream_error="Overloaded")
    service = AIService(site=anthropic_site)
    pieces: list[str] = []
    with pytest.raises(errors.AIProviderError) as failed:
        driver.stream(service, PROMPT, model="claude-3-5-haiku", max_tokens=50, received=pieces)
    assert "".join(pieces) == "one two "  # what reached the caller before the vendor's error
    # as an OpenAI-format stream's error chunk: the vendor failed mid-answer (its own SDK raised a "status 200"
    # error, which read as an unknown failure)
    assert isinstance(failed.value, errors.ProviderUnavailable)
    assert str(failed.value).endswith("The provider ended the stream with an error: Overloaded")
    (row,) = rows(anthropic_site)
    assert row.status == "error" and row.error_class == type(failed.value).__name__


def test_a_finished_stream_leaves_its_connection_for_the_next_call_on_either_driver(anthropic_site, upstream):
    service = AIService(site=anthropic_site)
    upstream.script(flavor="anthropic", keep_alive=True, content="one two three", times=6)
    texts, connections = [], []
    for _ in range(3):  # the sync driver: the process's client pool
        texts.append("".join(service.generate_stream(PROMPT, model="claude-3-5-haiku", max_tokens=20)))
        connections.append(upstream.connections)

    async def three_streams() -> None:  # the async driver, on one event loop: its clients' pool
        for _ in range(3):
            stream = await service.astream(PROMPT, model="claude-3-5-haiku", max_tokens=20)
            texts.append("".join([piece async for piece in stream]))
            connections.append(upstream.connections)

    async_to_sync(three_streams)()
    assert texts == ["one two three"] * 6
    # each driver opened one connection and reused it: the body's end was read after `message_stop`
    assert connections[1:3] == [connections[0]] * 2 and connections[4:] == [connections[3]] * 2


def test_a_vendor_that_holds_its_body_open_after_message_stop_costs_a_tenth_of_a_second(
    anthropic_site, upstream, driver
):
    upstream.script(flavor="anthropic", keep_alive=True, content="four five", end_delay=6)
    started = time.monotonic()
    held = driver.stream(AIService(site=anthropic_site), PROMPT, model="claude-3-5-haiku", max_tokens=20)
    assert held.result.content == "four five"
    assert time.monotonic() - started < 5  # the vendor ended its body only after 6 s
