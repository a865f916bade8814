"""Issue 14, item 5: per-site rate limits shared through the cache; refusals recorded in the ledger."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from decimal import Decimal

import pytest

from integrations.ai.gateway.service import AIService
from integrations.ai.ledger import usage
from integrations.ai.providers.errors import BudgetExceeded, InvalidRequest, RateLimited
from integrations.models import AIProviderSettings, AIUsage, APIToken, ModelPrice, ProviderCredential

from .factories import SiteFactory, SiteMembershipFactory, UserFactory, may_use_ai
from .test_scaleout import ROOT, child_env, needs_redis

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _not_at_a_window_edge():
    """The limits count in one-minute windows: start each test well inside one, so it cannot straddle two."""
    into = time.time() % 60
    if into > 45:
        time.sleep(60 - into + 0.05)


def test_requests_per_minute_refuses_with_retry_after_and_no_upstream_request(emulated_site, upstream):
    site = emulated_site("openai", requests_per_minute=2)
    other = emulated_site("openai", requests_per_minute=2)
    service = AIService(site=site, service="pages.meta")
    service.generate_content("one")
    service.generate_content("two")
    with pytest.raises(RateLimited) as caught:
        service.generate_content("three")
    assert 0 < caught.value.retry_after <= 60
    assert caught.value.code == "rate_limited"
    assert "requests-per-minute" in str(caught.value)
    assert len(upstream.requests) == 2
    AIService(site=other).generate_content("another site has its own window")
    assert len(upstream.requests) == 3
    usage.flush()
    refused = AIUsage.objects.get(site=site, status="refused")
    assert (refused.error_class, refused.service, refused.cost) == ("RateLimited", "pages.meta", Decimal(0))
    assert AIUsage.objects.filter(site=site, status="ok").count() == 2


def test_tokens_per_minute_counts_the_tokens_really_used(emulated_site, upstream):
    # Each call reserves ~prompt/3 + 16 + max_tokens = 76 tokens and settles to the ~10 the emulator uses;
    # without settling, the second call (76 + 76 > 100) would be refused.
    site = emulated_site("openai", tokens_per_minute=100)
    service = AIService(site=site)
    service.generate_content("hi", max_tokens=60)
    service.generate_content("hi", max_tokens=60)
    assert len(upstream.requests) == 2
    with pytest.raises(InvalidRequest, match="lower max_tokens"):
        service.generate_content("hi", max_tokens=200)  # could never fit in one minute
    upstream.script(flavor="openai", usage={"prompt_tokens": 40, "completion_tokens": 60, "total_tokens": 100})
    service.generate_content("hi", max_tokens=60)  # really uses 100 tokens
    with pytest.raises(RateLimited, match="tokens per minute"):
        service.generate_content("hi", max_tokens=60)
    assert len(upstream.requests) == 3


def test_api_answers_429_with_retry_after(client, upstream, settings):
    settings.ALLOWED_HOSTS = ["*"]
    site = SiteFactory(domain="limited.example.test")
    record = AIProviderSettings.objects.create(site=site, provider_type="openai", requests_per_minute=1)
    ProviderCredential.objects.create(
        settings=record, provider="openai", api_key="sk-proj-" + "ab" * 24, base_url=upstream.openai_base_url
    )
    user = UserFactory()
    SiteMembershipFactory(user=user, site=site)
    may_use_ai(user)
    raw = APIToken.issue(user, "t")[1]

    def call():
        return client.post(
            "/api/ai/generate/",
            data=json.dumps({"prompt": "hi"}),
            content_type="application/json",
            HTTP_HOST="limited.example.test",
            HTTP_AUTHORIZATION=f"Token {raw}",
        )

    assert call().status_code == 200
    response = call()
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= 60
    assert len(upstream.requests) == 1


def test_budget_refusals_are_recorded(emulated_site, upstream):
    ModelPrice.objects.create(
        provider="openai", model_id="gpt-4o", prompt_per_million=Decimal("2.5"), completion_per_million=Decimal("10")
    )
    site = emulated_site("openai", monthly_budget=Decimal("0.0001"))
    with pytest.raises(BudgetExceeded):
        AIService(site=site, service="blocks").generate_content("hi", model="gpt-4o", max_tokens=500)
    assert upstream.requests == []
    usage.flush()
    row = AIUsage.objects.get(site=site)
    assert (row.status, row.error_class, row.requested_model) == ("refused", "BudgetExceeded", "gpt-4o")


CHILD = """
import json, sys
sys.path.insert(0, "backend")
import django
django.setup()
from integrations.ai.providers.errors import RateLimited
from integrations.ai.gateway.service import AIService
try:
    AIService(site=int(sys.argv[1])).generate_content("From the second process")
    print(json.dumps({"ok": True}))
except RateLimited as exc:
    print(json.dumps({"ok": False, "retry_after": exc.retry_after}))
"""


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_the_limit_is_shared_by_two_processes(emulated_site, upstream):
    site = emulated_site("openai", requests_per_minute=2)
    AIService(site=site).generate_content("one")
    AIService(site=site).generate_content("two")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(site.id)],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer["ok"] is False and 0 < answer["retry_after"] <= 60
    assert len(upstream.requests) == 2
