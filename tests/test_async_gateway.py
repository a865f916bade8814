"""The async driver's own guarantees (issue 22): budget races under asyncio concurrency, a stream the caller
leaves cancelled upstream at once and settled with what was streamed, and the per-process stream cap.

The shared behaviour (failover, retries, cooldowns, budgets, cache, streaming) runs over both drivers in
test_gateway.py (the `driver` fixture); these are the cases concurrency and cancellation add.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync

from integrations.ai.gateway.service import AIService
from integrations.ai.governance import budget
from integrations.ai.ledger import usage
from integrations.ai.providers import errors
from integrations.ai.runtime import pauses, stream_slots
from integrations.ai.runtime.shared_cache import cache
from integrations.models import AIUsage, ModelPrice

from .factories import AIProviderSettingsFactory

OAI_KEY = "sk-proj-" + "5e" * 24
PROMPT = "Describe our spring sale in one line"
LONG = " ".join(f"w{n}" for n in range(200))  # 200 tokens, as the streaming benchmark's


@pytest.fixture
def capped(db, upstream):
    ModelPrice.objects.create(
        provider="openai", model_id="gpt-4o", prompt_per_million=Decimal("2.5"), completion_per_million=Decimal("10")
    )
    return AIProviderSettingsFactory(
        provider_type="openai",
        openai_api_key=OAI_KEY,
        openai_base_url=upstream.openai_base_url,
        monthly_budget=Decimal("0.0005"),
    )


def nothing_reserved(site_id: int) -> bool:
    """The month's counters agree: spent + reserved == spent (every reservation settled)."""
    used_key, spent_key = budget.counter_keys(site_id)
    return cache.get(used_key) == cache.get(spent_key)


def ledger(site):
    usage.flush()
    return list(AIUsage.objects.filter(site=site).order_by("id"))


def test_a_budget_race_under_asyncio_concurrency_never_spends_past_the_cap(capped, upstream):
    service = AIService(site=capped.site)

    async def race() -> list:
        calls = [service.agenerate_content(f"{PROMPT} {n}", model="gpt-4o", max_tokens=20) for n in range(30)]
        return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = async_to_sync(race)()
    served = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, errors.BudgetExceeded)]
    assert served and refused and len(served) + len(refused) == 30, outcomes
    assert len(upstream.requests) == len(served)  # a refused call never reached the vendor
    spent = sum(r.cost for r in ledger(capped.site) if r.status == "ok")
    assert 0 < spent <= Decimal("0.0005")
    assert nothing_reserved(capped.site_id)


def _open_and_leave(driver, service: AIService, deltas: int) -> list[str]:
    """Start a stream, take `deltas` deltas, then go away (`close()` / `aclose()`: what a disconnect does)."""
    received: list[str] = []
    if driver.name == "sync":
        pieces = iter(service.generate_stream(PROMPT, model="gpt-4o", max_tokens=300))
        received += [next(pieces) for _ in range(deltas)]
        pieces.close()
        return received

    async def run() -> None:
        stream = await service.astream(PROMPT, model="gpt-4o", max_tokens=300)
        pieces = aiter(stream)
        for _ in range(deltas):
            received.append(await anext(pieces))
        await pieces.aclose()  # type: ignore[attr-defined]

    async_to_sync(run)()
    return received


def test_a_stream_left_mid_way_is_cancelled_upstream_and_settled_with_what_was_streamed(
    capped, upstream, settings, driver
):
    capped.monthly_budget = Decimal("1")
    capped.save()
    upstream.script(flavor="openai", content=LONG, token_rate=20)  # 10 s to stream: the cancel must be at once
    received = _open_and_leave(driver, AIService(site=capped.site), deltas=3)
    assert len(received) == 3
    assert upstream.stream_aborted.wait(5), "the upstream request was not closed when the caller left"
    (row,) = ledger(capped.site)
    assert (row.status, row.error_class) == ("cancelled", "StreamCancelled")
    assert row.completion_tokens > 0 and row.prompt_tokens > 0  # what was streamed, and the prompt sent
    assert row.cost > 0 and row.cost_source == "estimated"  # never free, and marked as an estimate
    assert nothing_reserved(capped.site_id)
    assert stream_slots.held() == 0


def test_past_the_stream_cap_a_stream_is_refused_at_once_and_holds_nothing(capped, upstream, settings, driver):
    settings.AI_MAX_STREAMS = 1
    capped.monthly_budget = Decimal("1")
    capped.save()
    upstream.script(flavor="openai", content=LONG, token_rate=50)
    service = AIService(site=capped.site)
    first = iter(service.generate_stream(PROMPT, model="gpt-4o", max_tokens=300))
    try:
        assert next(first)  # one stream open: the process holds its cap
        with pytest.raises(errors.Overloaded, match="AI_MAX_STREAMS") as refused:
            driver.stream(service, PROMPT + "?", model="gpt-4o", max_tokens=300)
        assert refused.value.retry_after == 1.0
    finally:
        first.close()
    assert len(upstream.requests) == 1  # the refused stream never reached the vendor
    rows = ledger(capped.site)
    assert sorted((r.status, r.error_class) for r in rows) == [
        ("cancelled", "StreamCancelled"),
        ("refused", "Overloaded"),
    ]
    assert nothing_reserved(capped.site_id)
    assert stream_slots.held() == 0


def test_a_stream_admitted_with_no_usable_provider_raises_at_its_first_step_and_holds_nothing(
    capped, upstream, settings
):
    """The async driver walks the failover chain in the hop that admits a stream (`GatewayStream.prime`):
    what the walk finds (here: the only provider cooling down) surfaces at the stream's first step, as on the
    sync driver, and the reservation made at admission is released."""
    settings.AI_COOLDOWN_AFTER_FAILURES = 1
    pauses.record_failure(capped.site_id, "openai")
    service = AIService(site=capped.site)
    admitted = []

    async def run() -> None:
        stream = await service.astream(PROMPT, model="gpt-4o", max_tokens=20)
        admitted.append(stream)
        async for _ in stream:
            pass

    with pytest.raises(errors.ProviderUnavailable, match="cooling down"):
        async_to_sync(run)()
    assert admitted and upstream.requests == []  # admitted, then refused at the first step: no request made
    assert nothing_reserved(capped.site_id)


def test_a_warm_plain_call_leaves_the_event_loop_twice(capped, upstream, monkeypatch):
    """Before the upstream request, one hop off the loop: guardrails, cache, limits, budget and the walk to the
    chain's first usable candidate (`_open_walked`); after it, one more (`_close`). Each hop is a thread hand-off
    that costs a busy server more than the work it carries."""
    from integrations.ai.gateway import service as gateway_service

    hops: list[str] = []
    real = gateway_service.offload

    async def counted(func, *args, **kwargs):
        hops.append(getattr(func, "__name__", repr(func)))
        return await real(func, *args, **kwargs)

    service = AIService(site=capped.site)
    async_to_sync(service.agenerate_content)("warm up", model="gpt-4o", max_tokens=20)
    prep = service.prepare(service.messages_for(PROMPT), model="gpt-4o", max_tokens=20)  # /v1 does it in its own hop
    monkeypatch.setattr(gateway_service, "offload", counted)
    result = async_to_sync(service.aexecute)(prep, cache=False)
    assert result.content
    assert hops == ["_open_walked", "_close"], hops

    hops.clear()  # from a prompt: prepared in the same hop
    result = async_to_sync(service.agenerate_content)(PROMPT, model="gpt-4o", max_tokens=20, cache=False)
    assert result.content
    assert hops == ["open_call", "_close"], hops


def test_a_plain_call_admitted_with_no_usable_provider_raises_and_holds_nothing(capped, upstream, settings):
    """The walk made in the admitting hop finds the only provider cooling down: the call raises what the sync
    driver raises, makes no request, and the reservation made at admission is released."""
    settings.AI_COOLDOWN_AFTER_FAILURES = 1
    pauses.record_failure(capped.site_id, "openai")
    service = AIService(site=capped.site)
    with pytest.raises(errors.ProviderUnavailable, match="cooling down"):
        async_to_sync(service.agenerate_content)(PROMPT, model="gpt-4o", max_tokens=20)
    assert upstream.requests == []
    assert nothing_reserved(capped.site_id)


def test_a_finished_stream_leaves_its_upstream_connection_for_the_next_call(capped, upstream):
    """A vendor's stream ends with `data: [DONE]` and then its chunked body's end: the reader reads that end
    (`sse.drain`), so the connection goes back to the pool and the next stream starts without a new TCP (and,
    to a vendor, TLS) handshake before its first token."""
    upstream.script(flavor="openai", keep_alive=True, content="one two three", times=4)
    service = AIService(site=capped.site)

    async def four_streams() -> list[tuple[str, int]]:  # on one event loop: its clients' pool
        done = []
        for _ in range(4):
            stream = await service.astream(PROMPT, model="gpt-4o", max_tokens=20)
            done.append(("".join([piece async for piece in stream]), upstream.connections))
        return done

    done = async_to_sync(four_streams)()
    assert [text for text, _ in done] == ["one two three"] * 4
    opened = done[0][1]
    assert [connections for _, connections in done[1:]] == [opened] * 3  # the later streams reused its connection


def test_a_finished_sync_stream_leaves_its_upstream_connection_for_the_next_call(capped, upstream):
    """The sync driver's reader reads the body's end after `[DONE]` too (`sse.drain_sync`): a CMS view that
    streams on a thread (and every stream under WSGI) reuses the vendor connection."""
    upstream.script(flavor="openai", keep_alive=True, content="one two three", times=4)
    service = AIService(site=capped.site)
    done = []
    for _ in range(4):
        stream = service.generate_stream(PROMPT, model="gpt-4o", max_tokens=20)
        done.append(("".join(stream), upstream.connections))
    assert [text for text, _ in done] == ["one two three"] * 4
    assert [connections for _, connections in done[1:]] == [done[0][1]] * 3


def test_a_vendor_slow_to_end_its_body_is_waited_for_a_tenth_of_a_second_not_until_it_ends(capped, upstream, driver):
    """A server that holds its body open after `[DONE]` costs the reader DRAIN_SECONDS, then the connection is
    dropped (on either driver): the stream's end and its ledger row do not wait for the vendor."""
    upstream.script(flavor="openai", keep_alive=True, content="one two three", end_delay=6)
    upstream.script(flavor="openai", keep_alive=True, content="four five")
    service = AIService(site=capped.site)
    started = time.monotonic()
    first = driver.stream(service, PROMPT, model="gpt-4o", max_tokens=20)
    took = time.monotonic() - started
    opened = upstream.connections
    second = driver.stream(service, PROMPT, model="gpt-4o", max_tokens=20)
    assert (first.result.content, second.result.content) == ("one two three", "four five")
    assert upstream.connections == opened + 1  # the held connection was given up, not waited for and reused
    assert took < 5  # the vendor ended its body only after 6 s
