"""Issue 25: a call's result, and the JSON API's answer, carry the cost its ledger row records.

The ledger prices what the vendor did not (the price table, the genai-prices catalogue, an unpriced
call's worst case); the result used to carry only a vendor-reported cost, so a caller (and
`POST /api/ai/generate/`) saw `None` where the ledger had a figure.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from integrations.ai.gateway.service import AIService
from integrations.ai.ledger import usage
from integrations.ai.providers import errors
from integrations.models import AIUsage

pytestmark = pytest.mark.django_db
PROMPT = "Describe our spring sale in one line"


def ok_rows(site) -> list[AIUsage]:
    usage.flush()
    return list(AIUsage.objects.filter(site=site, status="ok").order_by("id"))


def test_a_catalogue_priced_result_carries_the_ledgers_cost(emulated_site):
    site = emulated_site("anthropic")
    result = AIService(site=site).generate_content(PROMPT, model="claude-3-5-haiku")
    (row,) = ok_rows(site)
    assert row.cost_source == "catalogue" and row.cost > 0
    assert result.cost == row.cost and result.cost_source == "catalogue"
    assert result.to_dict()["cost"] == row.cost


def test_a_failed_over_and_a_streamed_result_carry_their_rows_cost(emulated_site, upstream, settings):
    settings.AI_MAX_RETRIES = 0
    site = emulated_site("openai", also=("anthropic",), fallback_chain=[{"provider": "anthropic", "model": ""}])
    upstream.script(flavor="openai", status=500)
    served = AIService(site=site).generate_content(PROMPT)
    stream = AIService(site=site).generate_stream(PROMPT, provider="anthropic")
    list(stream)
    first, second = ok_rows(site)
    assert served.provider == "anthropic" and (served.cost, served.cost_source) == (first.cost, first.cost_source)
    assert (stream.result.cost, stream.result.cost_source) == (second.cost, "catalogue") and second.cost > 0


def test_a_cache_hit_carries_what_the_ledger_records_for_it(emulated_site):
    site = emulated_site("openai")
    service = AIService(site=site)
    first = service.generate_content(PROMPT, model="gpt-4o-mini", temperature=0)
    hit = service.generate_content(PROMPT, model="gpt-4o-mini", temperature=0)
    usage.flush()
    row = AIUsage.objects.get(site=site, status="cached")
    assert hit.cached and (hit.cost, hit.cost_source) == (Decimal(0), "cache") == (row.cost, row.cost_source)
    assert row.saved_cost == first.cost > 0  # what the hit saved is the original's cost


def test_a_broken_openrouter_stream_is_recorded_as_an_estimate(emulated_site, upstream):
    """OpenRouter reports a stream's cost in its last chunk; a stream cut off before it is priced from estimated
    tokens and says so (`estimated`), never left at NULL or passed off as a catalogue price."""
    site = emulated_site("openrouter")
    upstream.script(flavor="openrouter", cut_after=2)
    with pytest.raises(errors.ProviderUnavailable):
        list(AIService(site=site).generate_stream(PROMPT, model="openai/gpt-4o-mini"))
    usage.flush()
    (row,) = AIUsage.objects.filter(site=site)
    assert row.status == "error" and row.cost is not None and row.cost > 0
    assert row.cost_source == "estimated" and row.get_cost_source_display().startswith("Estimated")
