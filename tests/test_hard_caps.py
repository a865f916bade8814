"""Issue 25, "Ledger and money": spend caps are hard."""

from __future__ import annotations

from decimal import Decimal

import pytest

from integrations.ai.gateway.service import AIService
from integrations.ai.ledger import usage
from integrations.ai.providers import errors
from integrations.models import AIUsage

pytestmark = pytest.mark.django_db
PROMPT = "Describe our spring sale in one line"


def spend(site) -> Decimal:
    usage.flush()
    return sum((r.cost or Decimal(0) for r in AIUsage.objects.filter(site=site)), Decimal(0))


def test_failover_to_a_dearer_provider(emulated_site, upstream, settings):
    settings.AI_MAX_RETRIES = 0
    cap = Decimal("0.02")
    site = emulated_site(
        "openai",
        also=("anthropic",),
        monthly_budget=cap,
        fallback_chain=[{"provider": "anthropic", "model": "claude-3-opus-20240229"}],
    )
    upstream.script(flavor="openai", status=500, times=10_000)
    served = refused = 0
    for _ in range(40):
        try:
            AIService(site=site).generate_content(PROMPT, model="gpt-4o-mini", max_tokens=100)
            served += 1
        except errors.BudgetExceeded:
            refused += 1
    print(served, refused, spend(site))
    assert spend(site) <= cap


def test_openrouter_overshoot(emulated_site, upstream):
    cap = Decimal("0.01")
    site = emulated_site("openrouter", monthly_budget=cap)
    upstream.script(flavor="openrouter", usage={"cost": 0.004}, times=10_000)
    served = 0
    for _ in range(20):
        try:
            AIService(site=site).generate_content(PROMPT, model="openai/gpt-4o-mini", max_tokens=50)
            served += 1
        except errors.BudgetExceeded:
            pass
    print(served, spend(site))
    assert spend(site) <= cap + Decimal("0.004")
