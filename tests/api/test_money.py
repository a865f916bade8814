"""Issue 25, "Ledger and money", as `POST /api/ai/generate/` answers it: the cost the ledger records (never
`null` when the ledger has a figure), a retryable 429 with `Retry-After` while only calls in flight fill the
site's cap, and the 402 it always answered once the cap is spent."""

from __future__ import annotations

from decimal import Decimal

import pytest

from integrations.ai.gateway.service import AIService
from integrations.ai.ledger import usage
from integrations.models import AIProviderSettings, AIUsage, ModelPrice

from .calls import code_of, post

pytestmark = pytest.mark.django_db
ASK = {"prompt": "Name a bakery", "model": "gpt-4o", "max_tokens": 100}


def test_an_unpriced_calls_charged_cost_is_answered_not_null(client, site, token, upstream):
    """A model no source prices is charged its worst-case estimate in the ledger; the API answered `null`."""
    upstream.script(flavor="openai", served_model="acme-finetune-7")
    data = post(client, {"prompt": "Name a bakery", "max_tokens": 50}, token).json()
    usage.flush()
    row = AIUsage.objects.get(site=site, status="ok")
    assert row.cost_source == "unpriced" and row.cost > 0
    assert Decimal(data["cost"]) == row.cost and data["cost_source"] == "unpriced"


@pytest.fixture
def capped(site):
    """$2.5/$10 per million: one call of ASK may cost ~$0.00107, so a $0.0015 cap holds one at a time."""
    ModelPrice.objects.create(
        provider="openai", model_id="gpt-4o", prompt_per_million=Decimal("2.5"), completion_per_million=Decimal("10")
    )
    record = AIProviderSettings.objects.get(site=site)
    record.monthly_budget = Decimal("0.0015")
    record.save()
    return site


def test_a_cap_held_by_a_call_in_flight_answers_a_retryable_429(client, capped, token, upstream):
    running = AIService(site=capped).generate_stream(ASK["prompt"], model="gpt-4o", max_tokens=100)  # reserved
    response = post(client, ASK, token)
    assert response.status_code == 429 and code_of(response) == "budget_busy"
    assert int(response["Retry-After"]) >= 1
    list(running)  # it settles at its real cost: the same request is now served
    assert post(client, ASK, token).status_code == 200


def test_a_spent_cap_still_answers_402(client, capped, token, upstream):
    AIUsage.objects.create(site=capped, provider="openai", status="ok", cost=Decimal("0.0015"))
    response = post(client, ASK, token)
    assert response.status_code == 402 and code_of(response) == "budget_exceeded"
    assert "Retry-After" not in response
