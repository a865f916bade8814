"""Issue 25: a site cap held only by calls in flight is a retryable 429 in each /v1 dialect, not a spent budget.

The real SDKs are the clients (retries off): OpenAI's `RateLimitError` with `code: budget_busy`, Anthropic's
with `type: rate_limit_error`, both with `Retry-After` and `x-should-retry: true`; once the call in flight
settles, the same request is served.
"""

from __future__ import annotations

from decimal import Decimal

import anthropic
import openai
import pytest

from integrations.ai.gateway.service import AIService
from integrations.models import ModelPrice

pytestmark = pytest.mark.django_db(transaction=True)
ASK = [{"role": "user", "content": "Name a bakery"}]
# $2.5/$10 per million: a call of 100 output tokens may cost ~$0.001; a $0.0015 cap holds one at a time
MODELS = {"openai": ("gpt-4o-mini", "gpt-4o-mini"), "anthropic": ("claude-3-5-haiku", "claude-3-5-haiku-20241022")}


def capped_site(emulated_site, provider: str, settings):
    settings.ALLOWED_HOSTS = ["*"]
    ModelPrice.objects.create(
        provider=provider,
        model_id=MODELS[provider][1],
        prompt_per_million=Decimal("2.5"),
        completion_per_million=Decimal("10"),
    )
    return emulated_site(provider, monthly_budget=Decimal("0.0015"))


def in_flight(site, provider: str):
    """A call holding its reservation: a stream reserves when made and settles when consumed."""
    return AIService(site=site).generate_stream(
        "Name a bakery", provider=provider, model=MODELS[provider][0], max_tokens=100
    )


def test_openai_dialect(emulated_site, make_key, oai, upstream, settings):
    site = capped_site(emulated_site, "openai", settings)
    client = oai(make_key(site))
    running = in_flight(site, "openai")
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=ASK, max_tokens=100)
    headers = caught.value.response.headers
    assert caught.value.body["code"] == "budget_busy" and "in flight" in caught.value.message
    assert headers["x-should-retry"] == "true" and int(headers["retry-after"]) >= 1
    assert upstream.requests == []
    list(running)
    assert client.chat.completions.create(model="gpt-4o-mini", messages=ASK, max_tokens=100).choices[0].message.content


def test_anthropic_dialect(emulated_site, make_key, ant, upstream, settings):
    site = capped_site(emulated_site, "anthropic", settings)
    client = ant(make_key(site))
    running = in_flight(site, "anthropic")
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(model="claude-3-5-haiku", max_tokens=100, messages=ASK)
    headers = caught.value.response.headers
    assert caught.value.body["error"]["type"] == "rate_limit_error" and "in flight" in caught.value.message
    assert headers["x-should-retry"] == "true" and int(headers["retry-after"]) >= 1
    list(running)
    assert client.messages.create(model="claude-3-5-haiku", max_tokens=100, messages=ASK).content[0].text
