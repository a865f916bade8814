"""Issue 19: every call priced from a kept catalogue (genai-prices), overrides win, unknown is never zero.

Every call goes through the real SDKs to the loopback emulator, which answers the way vendors do
(dated snapshot ids, Anthropic cache-write tokens, OpenAI cached and reasoning tokens); each ledger row's
cost is checked against `genai_prices.calc_price` itself, the catalogue's own evaluation.
"""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price

from integrations.ai import pricing
from integrations.ai.gateway.service import AIService
from integrations.ai.governance import budget_windows
from integrations.ai.governance.budget import counter_keys
from integrations.ai.ledger import usage
from integrations.ai.providers.errors import BudgetExceeded, PolicyViolation, UnpricedModel
from integrations.ai.runtime.shared_cache import cache
from integrations.ai.sites.site_config import get_snapshot
from integrations.models import AIUsage, ModelPrice

from .test_exact_costs import run  # one call, plain or streamed, and its ledger row

pytestmark = pytest.mark.django_db
MILLION = Decimal(1_000_000)
SYSTEM = "You are the house style guide of a small newspaper, answer briefly and in plain words " * 3


def catalogue(provider_id: str, model: str, row: AIUsage) -> Decimal:
    """What genai-prices itself says the row's tokens cost."""
    return calc_price(
        Usage(
            input_tokens=row.prompt_tokens,
            cache_read_tokens=row.cached_tokens,
            cache_write_tokens=row.cache_write_tokens,
            output_tokens=row.completion_tokens,
            output_reasoning_tokens=row.reasoning_tokens,
        ),
        model,
        provider_id=provider_id,
        genai_request_timestamp=datetime.datetime.now(datetime.UTC),
    ).total_price


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_openai_dated_snapshot_with_cached_and_reasoning_tokens_costs_the_catalogues_price(
    emulated_site, upstream, stream
):
    site = emulated_site("openai")
    upstream.dated = True
    upstream.script(
        flavor="openai",
        usage={
            "prompt_tokens": 4000,
            "completion_tokens": 1200,
            "total_tokens": 5200,
            "prompt_tokens_details": {"cached_tokens": 3200},
            "completion_tokens_details": {"reasoning_tokens": 500},
        },
    )
    result, row = run(site, stream, model="gpt-4o-mini")
    assert result.model == row.served_model == "gpt-4o-mini-2024-07-18"
    assert (row.cached_tokens, row.reasoning_tokens) == (3200, 500)
    assert row.cost_source == "catalogue"
    assert row.cost == catalogue("openai", "gpt-4o-mini-2024-07-18", row) > 0
    # the cache read is priced below the prompt price (gpt-4o-mini: 0.075 against 0.15 per million)
    assert row.cost == (Decimal("0.15") * 800 + Decimal("0.075") * 3200 + Decimal("0.6") * 1200) / MILLION


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_anthropic_latest_alias_with_cache_writes_then_reads_costs_the_catalogues_price(
    emulated_site, upstream, stream
):
    site = emulated_site("anthropic")
    upstream.dated = True
    _, first = run(site, stream, model="claude-3-5-haiku-latest", system_prompt=SYSTEM, cache_system=True)
    _, second = run(site, stream, model="claude-3-5-haiku-latest", system_prompt=SYSTEM, cache_system=True)
    assert first.served_model == "claude-3-5-haiku-20241022"
    assert first.cache_write_tokens > 0 and second.cached_tokens > 0
    for row in (first, second):
        assert row.cost_source == "catalogue"
        assert row.cost == catalogue("anthropic", "claude-3-5-haiku-20241022", row) > 0
    # a cache write costs more than the prompt price (1.00 against 0.80 per million), a read less
    uncached = (Decimal("0.8") * first.prompt_tokens + Decimal(4) * first.completion_tokens) / MILLION
    assert first.cost > uncached


def test_openrouter_reported_cost_wins_and_an_unreported_one_comes_from_the_catalogue(emulated_site, upstream):
    site = emulated_site("openrouter")
    reported, row = run(site, False, model="gpt-4o-mini")
    assert row.cost_source == "reported" and row.cost == reported.cost
    ModelPrice.objects.create(
        provider="openrouter",
        model_id="openai/gpt-4o-mini",
        prompt_per_million=Decimal(99),
        completion_per_million=Decimal(99),
    )
    _, row = run(site, False, model="gpt-4o-mini")
    assert row.cost_source == "reported" and row.cost == reported.cost  # over any table, overrides included
    ModelPrice.objects.all().delete()
    upstream.script(
        flavor="openrouter",
        usage={
            "cost": None,
            "prompt_tokens": 100,
            "completion_tokens": 20,
            "total_tokens": 120,
            "prompt_tokens_details": {"cached_tokens": 64},
        },
    )
    _, row = run(site, False, model="gpt-4o-mini")
    assert row.served_model == "openai/gpt-4o-mini"
    assert row.cost_source == "catalogue" and row.cost == catalogue("openrouter", "openai/gpt-4o-mini", row) > 0


def test_a_named_endpoint_is_free_only_when_the_deployment_says_so(settings, upstream, emulated_site):
    site = emulated_site("openai")
    settings.AI_ENDPOINTS = {
        "ollama": {"base_url": upstream.compatible_base_url, "free": True},
        "vllm": {"base_url": upstream.compatible_base_url},
    }
    _, row = run(site, False, provider="ollama", model="llama3.1")
    assert (row.provider, row.cost_source, row.cost) == ("ollama", "free", Decimal(0))
    _, row = run(site, False, provider="vllm", model="llama3.1", max_tokens=50)
    assert row.cost_source == "unpriced" and row.cost > 0  # a local server nobody said was free


def test_a_named_endpoint_is_priced_by_the_catalogue_of_the_provider_its_url_belongs_to():
    book = pricing.PriceBook({}, {"together": ("openai_compatible", "https://api.together.xyz/v1", False)})
    model = "meta-llama/Llama-3.3-70B-Instruct-Turbo"
    resolution = book.resolve("together", model)
    assert resolution.source == "catalogue" and resolution.entry.startswith("genai-prices together:")
    expected = calc_price(Usage(input_tokens=1000, output_tokens=100), model, provider_id="together").total_price
    assert pricing.cost(resolution, 1000, 100) == expected


def test_an_override_wins_and_prices_the_dated_snapshot_the_vendor_answers_with(emulated_site, upstream):
    """The issue's story: a price for gpt-4o-mini, the vendor answers gpt-4o-mini-2024-07-18."""
    ModelPrice.objects.create(
        provider="openai",
        model_id="gpt-4o-mini",
        prompt_per_million=Decimal(1000),
        completion_per_million=Decimal(1000),
    )
    site = emulated_site("openai", monthly_budget=Decimal("0.10"))
    upstream.dated = True
    upstream.script(flavor="openai", usage={"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}, times=10)
    _, row = run(site, False, model="gpt-4o-mini", max_tokens=10)
    assert row.served_model == "gpt-4o-mini-2024-07-18"
    assert row.cost_source == "price_table" and row.cost == Decimal("0.02")
    served = 1
    with pytest.raises(BudgetExceeded, match="monthly AI budget"):
        for _ in range(10):
            AIService(site=site).generate_content("Summarise the style guide", model="gpt-4o-mini", max_tokens=10)
            served += 1
    # each call costs $0.02 and reserves $0.034 (24 prompt + 10 completion tokens at $1000/M): the fifth
    # would pass the $0.10 cap ($0.08 + $0.034) and is refused before any request
    assert served == 4 and len(upstream.requests_for("openai")) == 4
    usage.flush()
    assert sum(r.cost for r in AIUsage.objects.filter(site=site, status="ok")) == Decimal("0.08")


def test_a_capped_site_is_refused_at_its_cap_on_catalogue_prices(emulated_site, upstream):
    site = emulated_site("anthropic", monthly_budget=Decimal("0.01"))
    upstream.script(flavor="anthropic", usage={"input_tokens": 1000, "output_tokens": 1000}, times=20)
    served = 0
    with pytest.raises(BudgetExceeded):
        for _ in range(20):
            AIService(site=site).generate_content("hi", model="claude-3-5-haiku", max_tokens=1000)
            served += 1
    usage.flush()
    spent = sum(r.cost for r in AIUsage.objects.filter(site=site, status="ok"))
    # each call costs $0.0048 at the catalogue's 0.8/4 per million: two fit under $0.01, the third's worst case not
    assert served == 2 and spent == Decimal("0.0096")


def test_an_unpriced_model_is_charged_its_reservation_in_every_window(emulated_site, upstream, settings):
    settings.AI_UNPRICED_PRICE = "15,75"
    site = emulated_site(
        "anthropic",
        monthly_budget=Decimal(10),
        daily_budget=Decimal(10),
        weekly_budget=Decimal(10),
        service_budgets={"pages.meta": "10"},
    )
    upstream.script(
        flavor="anthropic", served_model="claude-panel-unlisted-1", usage={"input_tokens": 5, "output_tokens": 5}
    )
    prompt = "x" * 300
    AIService(site=site, service="pages.meta").generate_content(prompt, model="claude-3-5-haiku", max_tokens=200)
    usage.flush()
    row = AIUsage.objects.get(site=site, status="ok")
    charge = (Decimal(15) * (300 // 3 + 16) + Decimal(75) * 200) / MILLION  # the worst case, not 5+5 tokens
    assert (row.cost_source, row.cost) == ("unpriced", charge)
    snapshot = get_snapshot(site.id)
    windows = budget_windows.windows_for(snapshot.policy, snapshot.monthly_budget, "pages.meta")
    assert {w.name for w in windows} == {"day", "week", "month", "service:pages.meta"}
    for window in windows:
        if window.enforce:
            used, spent = (cache.get(k) for k in window.keys(site.id))
            assert used == spent == budget_windows.micro(charge), window.name
    used, spent = (cache.get(k) for k in counter_keys(site.id))
    assert used == spent == budget_windows.micro(charge)
    # cold counters (a restart) are seeded from the ledger, which holds the same charge
    cache.clear()
    for window in windows:
        if window.enforce:
            assert budget_windows.spent_since(site.id, window) == charge


def test_with_ai_unpriced_refuse_a_capped_site_is_refused_before_any_request(emulated_site, upstream, settings):
    settings.AI_UNPRICED = "refuse"
    capped = emulated_site("openai", monthly_budget=Decimal(5), also=("openrouter",))
    settings.AI_ENDPOINTS = {"vllm": {"base_url": upstream.compatible_base_url}}
    with pytest.raises(UnpricedModel, match=r"vllm:llama3\.1 have no price") as caught:
        AIService(site=capped).generate_content("hi", provider="vllm", model="llama3.1")
    assert isinstance(caught.value, PolicyViolation) and caught.value.rule == "AI_UNPRICED"
    assert upstream.requests == []
    usage.flush()
    assert AIUsage.objects.get(site=capped).status == "refused"
    AIService(site=capped).generate_content("hi", model="gpt-4o-mini")  # priced models still run
    uncapped = emulated_site("openai")
    assert AIService(site=uncapped).generate_content("hi", provider="vllm", model="llama3.1").content


def test_the_batch_estimate_uses_the_settlements_resolution(emulated_site, upstream):
    from integrations.jobs.estimate import Call, estimate

    site = emulated_site("openai", monthly_budget=Decimal(5))
    calls = [Call([{"role": "user", "content": "x" * 30}], None, 100)] * 3
    result = estimate(site, calls, model="gpt-4o-mini")
    expected = 3 * (Decimal("0.15") * (30 // 3 + 16) + Decimal("0.6") * 100) / MILLION
    assert result.cost == expected and not result.unpriced
    ModelPrice.objects.create(
        provider="openai", model_id="gpt-4o-mini", prompt_per_million=Decimal(1), completion_per_million=Decimal(2)
    )
    result = estimate(site, calls, model="gpt-4o-mini")
    assert result.cost == 3 * (Decimal(1) * 26 + Decimal(2) * 100) / MILLION


def test_ai_prices_prints_how_an_id_resolves(db):
    from io import StringIO

    from django.core.management import CommandError, call_command

    out = StringIO()
    call_command("ai_prices", "gpt-4o-mini-2024-07-18", "--provider", "openai", stdout=out)
    assert (
        "openai:gpt-4o-mini-2024-07-18 -> catalogue: genai-prices openai:gpt-4o-mini; prompt $0.15/M, "
        "completion $0.6/M, cache read $0.075/M"
    ) in out.getvalue()
    ModelPrice.objects.create(
        provider="openai", model_id="gpt-4o-mini", prompt_per_million=Decimal(1), completion_per_million=Decimal(2)
    )
    out = StringIO()
    call_command("ai_prices", "gpt-4o-mini-2024-07-18", stdout=out)
    text = out.getvalue()
    assert "openai:gpt-4o-mini-2024-07-18 -> override: ModelPrice openai:gpt-4o-mini; prompt $1/M" in text
    assert "anthropic:gpt-4o-mini-2024-07-18 -> unpriced" in text and "genai-prices 0.2.3" in text
    with pytest.raises(CommandError, match="Unknown provider 'nope'"):
        call_command("ai_prices", "x", "--provider", "nope")
