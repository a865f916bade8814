"""Exact costs (issue 14, item 6): cached-read, cache-write and reasoning tokens per vendor.

Every test goes through the real SDKs to the loopback emulator, plain and streamed; the ledger
row's token parts and cost are checked against numbers computed here from the price table.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from integrations.ai.gateway.service import AIService
from integrations.ai.ledger import usage
from integrations.models import AIUsage, ModelPrice

MILLION = Decimal(1_000_000)
SYSTEM = "You are the house style guide of a small newspaper, answer briefly and in plain words " * 3


def run(site, stream: bool, **kwargs):
    service = AIService(site=site)
    if stream:
        chunks = service.generate_stream("Summarise the style guide", temperature=0.3, **kwargs)
        "".join(chunks)
        result = chunks.result
    else:
        result = service.generate_content("Summarise the style guide", temperature=0.3, **kwargs)
    assert usage.flush()
    return result, AIUsage.objects.filter(site=site, status="ok").latest("id")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_openai_cached_and_reasoning_tokens_priced_from_the_table(emulated_site, upstream, stream):
    site = emulated_site("openai")
    ModelPrice.objects.create(
        provider="openai",
        model_id="gpt-4o",
        prompt_per_million=Decimal("2.5"),
        completion_per_million=Decimal("10"),
        cache_read_per_million=Decimal("1.25"),
    )
    upstream.script(
        flavor="openai",
        usage={
            "prompt_tokens": 40,
            "completion_tokens": 12,
            "total_tokens": 52,
            "prompt_tokens_details": {"cached_tokens": 32},
            "completion_tokens_details": {"reasoning_tokens": 5},
        },
    )
    result, row = run(site, stream, model="gpt-4o")
    assert (result.cached_tokens, result.reasoning_tokens) == (32, 5)
    assert (row.prompt_tokens, row.cached_tokens, row.cache_write_tokens, row.reasoning_tokens) == (40, 32, 0, 5)
    expected = (Decimal("2.5") * 8 + Decimal("1.25") * 32 + Decimal("10") * 12) / MILLION
    assert row.cost == expected and row.cost_source == "price_table"
    assert row.saved_cost == (Decimal("2.5") - Decimal("1.25")) * 32 / MILLION


def test_without_a_cache_price_cached_tokens_cost_the_prompt_price(emulated_site, upstream):
    site = emulated_site("openai")
    ModelPrice.objects.create(
        provider="openai", model_id="gpt-4o", prompt_per_million=Decimal("2.5"), completion_per_million=Decimal("10")
    )
    upstream.script(
        flavor="openai",
        usage={
            "prompt_tokens": 40,
            "completion_tokens": 12,
            "total_tokens": 52,
            "prompt_tokens_details": {"cached_tokens": 32},
        },
    )
    _, row = run(site, False, model="gpt-4o")
    assert row.cached_tokens == 32
    assert row.cost == (Decimal("2.5") * 40 + Decimal("10") * 12) / MILLION


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_openrouter_reported_cost_wins_and_parts_are_recorded(emulated_site, upstream, stream):
    site = emulated_site("openrouter")
    ModelPrice.objects.create(
        provider="openrouter",
        model_id="openai/gpt-4o",
        prompt_per_million=Decimal("99"),
        completion_per_million=Decimal("99"),
        cache_read_per_million=Decimal("1"),
        cache_write_per_million=Decimal("5"),
    )
    upstream.script(
        flavor="openrouter",
        usage={
            "prompt_tokens": 60,
            "completion_tokens": 20,
            "total_tokens": 80,
            "cost": 0.000123,
            "prompt_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 10},
            "completion_tokens_details": {"reasoning_tokens": 7},
        },
    )
    _, row = run(site, stream, model="openai/gpt-4o")
    assert (row.cached_tokens, row.cache_write_tokens, row.reasoning_tokens) == (30, 10, 7)
    assert row.cost == Decimal("0.000123") and row.cost_source == "reported"


def test_openrouter_without_a_reported_cost_prices_reads_and_writes(emulated_site, upstream):
    site = emulated_site("openrouter")
    ModelPrice.objects.create(
        provider="openrouter",
        model_id="openai/gpt-4o",
        prompt_per_million=Decimal("3"),
        completion_per_million=Decimal("15"),
        cache_read_per_million=Decimal("0.3"),
        cache_write_per_million=Decimal("3.75"),
    )
    upstream.script(
        flavor="openrouter",
        usage={
            "prompt_tokens": 60,
            "completion_tokens": 20,
            "total_tokens": 80,
            "cost": None,
            "prompt_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 10},
            "completion_tokens_details": {"reasoning_tokens": 7},
        },
    )
    _, row = run(site, False, model="openai/gpt-4o")
    expected = (Decimal(3) * 20 + Decimal("0.3") * 30 + Decimal("3.75") * 10 + Decimal(15) * 20) / MILLION
    assert row.cost == expected and row.cost_source == "price_table"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_anthropic_prompt_caching_writes_then_reads_the_system_prompt(emulated_site, upstream, stream):
    site = emulated_site("anthropic")
    model = "claude-3-5-sonnet-20241022"
    ModelPrice.objects.create(
        provider="anthropic",
        model_id=model,
        prompt_per_million=Decimal(3),
        completion_per_million=Decimal(15),
        cache_read_per_million=Decimal("0.3"),
        cache_write_per_million=Decimal("3.75"),
    )
    system_words = len(SYSTEM.split())
    _, first_row = run(site, stream, model=model, system_prompt=SYSTEM, cache_system=True)
    sent = upstream.requests[-1].json["system"]
    assert sent == [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}]
    assert (first_row.cache_write_tokens, first_row.cached_tokens) == (system_words, 0)
    _, second_row = run(site, stream, model=model, system_prompt=SYSTEM, cache_system=True)
    assert (second_row.cache_write_tokens, second_row.cached_tokens) == (0, system_words)
    # prompt_tokens stays the whole input, cached parts included
    assert second_row.prompt_tokens == first_row.prompt_tokens > system_words
    uncached = second_row.prompt_tokens - system_words
    assert (
        first_row.cost
        == (Decimal(3) * uncached + Decimal("3.75") * system_words + Decimal(15) * first_row.completion_tokens)
        / MILLION
    )
    assert (
        second_row.cost
        == (Decimal(3) * uncached + Decimal("0.3") * system_words + Decimal(15) * second_row.completion_tokens)
        / MILLION
    )
    assert second_row.cost < first_row.cost
    assert (first_row.saved_cost, second_row.saved_cost) == (0, (Decimal(3) - Decimal("0.3")) * system_words / MILLION)


def test_a_response_cache_hit_records_what_it_saved(emulated_site, upstream):
    site = emulated_site("openai")
    ModelPrice.objects.create(
        provider="openai", model_id="gpt-4o", prompt_per_million=Decimal("2.5"), completion_per_million=Decimal("10")
    )
    service = AIService(site=site)
    first = service.generate_content("Cache me", model="gpt-4o", temperature=0)
    service.generate_content("Cache me", model="gpt-4o", temperature=0)
    assert usage.flush()
    hit = AIUsage.objects.get(site=site, status="cached")
    assert hit.cost == 0
    original = (Decimal("2.5") * first.prompt_tokens + Decimal(10) * first.completion_tokens) / MILLION
    assert hit.saved_cost == original > 0


def test_anthropic_without_the_option_sends_a_plain_system_string(emulated_site, upstream):
    site = emulated_site("anthropic")
    _, row = run(site, False, model="claude-3-5-sonnet-20241022", system_prompt=SYSTEM)
    assert upstream.requests[-1].json["system"] == SYSTEM
    assert (row.cached_tokens, row.cache_write_tokens) == (0, 0)


def test_saved_by_cache_is_the_prompt_minus_the_read_price():
    price = usage.Price(Decimal(3), Decimal(15), Decimal("0.3"))
    assert usage.saved_by_cache(price, 1_000_000) == Decimal("2.7")
    assert usage.saved_by_cache(usage.Price(Decimal(3), Decimal(15)), 1_000_000) == 0
