"""A key of site A can never spend, read or list anything of site B, on every /v1 endpoint (issue 21)."""

from __future__ import annotations

from decimal import Decimal

import anthropic
import openai
import pytest

from integrations.ai.ledger import usage
from integrations.models import AIUsage, ModelPrice

from ..factories import ModelMappingFactory

pytestmark = pytest.mark.django_db(transaction=True)
ASK = [{"role": "user", "content": "Name a bakery"}]
KEY_A, KEY_B = "sk-proj-" + "a1" * 24, "sk-proj-" + "b2" * 24


@pytest.fixture
def sites(emulated_site):
    """Two sites on the same upstream with their own vendor keys; B has a model of its own."""
    site_a = emulated_site("openai", openai_api_key=KEY_A)
    site_b = emulated_site("openai", openai_api_key=KEY_B)
    ModelMappingFactory(site=site_b, logical_name="b-house-model", provider="openai", provider_model_id="gpt-4.1")
    return site_a, site_b


def _vendor_keys(upstream) -> list[str]:
    return [r.headers.get("authorization", r.headers.get("Authorization", "")) for r in upstream.requests]


def test_chat_completions_spend_on_the_keys_own_site_whatever_the_host(sites, make_key, oai, upstream, settings):
    settings.ALLOWED_HOSTS = ["*"]
    site_a, site_b = sites
    client = oai(make_key(site_a), default_headers={"Host": site_b.domain})
    client.chat.completions.create(model="gpt-4o-mini", messages=ASK)
    with pytest.raises(openai.NotFoundError):  # B's own model is not A's
        client.chat.completions.create(model="b-house-model", messages=ASK)
    assert set(_vendor_keys(upstream)) == {f"Bearer {KEY_A}"}  # B's model name reached A's vendor, as A's
    usage.flush()
    assert set(AIUsage.objects.values_list("site_id", flat=True)) == {site_a.pk}


def test_responses_spend_on_the_keys_own_site_whatever_the_host(sites, make_key, oai, upstream, settings):
    settings.ALLOWED_HOSTS = ["*"]
    site_a, site_b = sites
    client = oai(make_key(site_a), default_headers={"Host": site_b.domain})
    client.responses.create(model="gpt-4o-mini", input="Name a bakery")
    with pytest.raises(openai.NotFoundError):  # B's own model is not A's
        client.responses.create(model="b-house-model", input="Name a bakery")
    assert set(_vendor_keys(upstream)) == {f"Bearer {KEY_A}"}
    usage.flush()
    assert set(AIUsage.objects.values_list("site_id", flat=True)) == {site_a.pk}


def test_messages_spend_on_the_keys_own_site(sites, make_key, ant, upstream):
    site_a, _site_b = sites
    client = ant(make_key(site_a))
    client.messages.create(model="gpt-4o-mini", max_tokens=20, messages=ASK)
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="b-house-model", max_tokens=20, messages=ASK)
    assert set(_vendor_keys(upstream)) == {f"Bearer {KEY_A}"}  # B's model name reached A's vendor, as A's
    usage.flush()
    assert set(AIUsage.objects.values_list("site_id", flat=True)) == {site_a.pk}


def test_embeddings_spend_on_the_keys_own_site_and_never_read_another_sites_cache(
    sites, make_key, oai, upstream, settings
):
    settings.ALLOWED_HOSTS = ["*"]
    site_a, site_b = sites
    oai(make_key(site_b)).embeddings.create(model="text-embedding-3-small", input="our opening hours")
    upstream.requests.clear()
    client = oai(make_key(site_a), default_headers={"Host": site_b.domain})
    client.embeddings.create(model="text-embedding-3-small", input="our opening hours")  # B has it cached; A not
    assert [r.path.rsplit("/", 1)[-1] for r in upstream.requests] == ["embeddings"]
    assert set(_vendor_keys(upstream)) == {f"Bearer {KEY_A}"}
    usage.flush()
    assert list(AIUsage.objects.filter(site=site_a).values_list("status", flat=True)) == ["ok"]
    assert list(AIUsage.objects.filter(site=site_b).values_list("status", flat=True)) == ["ok"]


def test_models_lists_only_the_keys_site(sites, make_key, oai, ant):
    site_a, site_b = sites
    assert "b-house-model" in {m.id for m in oai(make_key(site_b)).models.list()}
    assert "b-house-model" not in {m.id for m in oai(make_key(site_a)).models.list()}
    assert "b-house-model" not in {m.id for m in ant(make_key(site_a)).models.list()}
    with pytest.raises(openai.NotFoundError):
        oai(make_key(site_a)).models.retrieve("b-house-model")


def test_one_sites_spend_never_counts_against_another_sites_key(sites, make_key, oai):
    site_a, site_b = sites
    ModelPrice.objects.create(
        provider="openai",
        model_id="gpt-4o-mini",
        prompt_per_million=Decimal("10"),
        completion_per_million=Decimal("10"),
    )
    key_a = make_key(site_a, monthly_budget=Decimal("0.05"))
    oai(make_key(site_b)).chat.completions.create(model="gpt-4o-mini", messages=ASK, max_tokens=10)
    usage.flush()
    AIUsage.objects.update(cost=Decimal("1"))  # site B's key spent far past A's cap
    assert oai(key_a).chat.completions.create(model="gpt-4o-mini", messages=ASK, max_tokens=10).choices


def test_token_counts_use_the_keys_own_sites_vendor_key(emulated_site, make_key, ant, upstream, settings):
    settings.ALLOWED_HOSTS = ["*"]
    site_a = emulated_site("anthropic", anthropic_api_key="sk-ant-api03-" + "a1" * 40)
    site_b = emulated_site("anthropic", anthropic_api_key="sk-ant-api03-" + "b2" * 40)
    ModelMappingFactory(
        site=site_b, logical_name="b-house-model", provider="anthropic", provider_model_id="claude-3-5-haiku-20241022"
    )
    client = ant(make_key(site_a), default_headers={"Host": site_b.domain})
    client.messages.count_tokens(model="claude-3-5-haiku", messages=ASK)
    with pytest.raises(anthropic.NotFoundError):  # B's own model is not A's
        client.messages.count_tokens(model="b-house-model", messages=ASK)
    assert {r.headers.get("x-api-key") for r in upstream.requests} == {"sk-ant-api03-" + "a1" * 40}
