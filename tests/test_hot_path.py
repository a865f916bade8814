"""The warm path: no database query before the upstream call, one reused connection (issue 6)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from asgiref.sync import async_to_sync

from integrations.ai.gateway.factory import ProviderFactory
from integrations.ai.gateway.service import AIService
from integrations.ai.ledger import usage
from integrations.ai.providers.errors import ModelNotFound

from .factories import AIProviderSettingsFactory, ModelMappingFactory

OR_KEY = "sk-or-v1-" + "5e" * 24

pytestmark = pytest.mark.django_db


@pytest.fixture
def record(upstream):
    return AIProviderSettingsFactory(
        provider_type="openrouter", openrouter_api_key=OR_KEY, openrouter_base_url=upstream.openrouter_base_url
    )


def test_warm_path_makes_zero_queries(record, upstream, django_assert_num_queries, driver):
    service = AIService(site=record.site)
    driver.generate(service, "warm up")  # first call: loads the site's snapshot
    entries: list = []
    with usage.deferred(entries), django_assert_num_queries(0):
        result = driver.generate(AIService(site=record.site), "Second call, new service object")
    assert result.content.endswith("Second call, new service object")
    (row,) = usage.flush(entries)  # the ledger row, deferred and written now
    assert row.status == "ok" and row.total_tokens == result.total_tokens


def test_saving_settings_invalidates_only_that_site(record, upstream, django_assert_num_queries):
    other = AIProviderSettingsFactory(
        provider_type="openrouter", openrouter_api_key=OR_KEY, openrouter_base_url=upstream.openrouter_base_url
    )
    first_a = ProviderFactory.create_provider(site=record.site)
    first_b = ProviderFactory.create_provider(site=other.site)
    record.openrouter_app_name = "Renamed"
    record.save()
    with django_assert_num_queries(0):
        assert ProviderFactory.create_provider(site=other.site) is first_b
    second_a = ProviderFactory.create_provider(site=record.site)
    assert second_a is not first_a
    assert second_a.config.app_name == "Renamed"


def test_saving_a_site_mapping_invalidates_that_site(record, upstream):
    provider = ProviderFactory.create_provider(site=record.site)
    with pytest.raises(ModelNotFound):  # unknown to the built-in table and without a vendor prefix
        provider.resolve_model("house-model")
    ModelMappingFactory(
        site=record.site, logical_name="house-model", provider="openrouter", provider_model_id="mistralai/mistral-large"
    )
    AIService(site=record.site).generate_content("hi", model="house-model")
    assert upstream.requests[-1].json["model"] == "mistralai/mistral-large"


def test_one_connection_serves_many_sequential_calls(record, upstream):
    service = AIService(site=record.site)
    for n in range(20):
        service.generate_content(f"call {n}")
    assert len(upstream.requests) == 20
    assert upstream.connections == 1


def test_the_async_driver_reuses_one_connection_per_event_loop(record, upstream):
    service = AIService(site=record.site)

    async def calls() -> None:
        for n in range(20):
            await service.agenerate_content(f"call {n}")

    async_to_sync(calls)()
    assert len(upstream.requests) == 20
    assert upstream.connections == 1  # one AsyncOpenAI (and its pool) per loop and provider config


def test_importing_the_ai_package_loads_no_vendor_sdk():
    code = (
        "import sys; sys.path.insert(0, 'backend'); import integrations.ai; "
        "from integrations.ai import AIService; "
        "print(','.join(m for m in ('openai', 'anthropic', 'httpx2', 'httpx') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_every_sdk_client_shares_one_tls_context(record, upstream, settings):
    """Loading the CA bundle costs 35-50 ms: a new site's first call (its own client) must not pay it again."""
    settings.OPENAI_API_KEY = "sk-proj-" + "4d" * 24  # deployment-wide keys: the SDK's default client
    settings.ANTHROPIC_API_KEY = "sk-ant-api03-" + "4d" * 24
    other = AIProviderSettingsFactory(
        provider_type="openrouter", openrouter_api_key=OR_KEY, openrouter_base_url=upstream.openrouter_base_url
    )
    sites = [ProviderFactory.create_provider(site=s).client for s in (record.site, other.site)]
    deployment = [ProviderFactory.create_provider(name).client for name in ("openai", "anthropic")]
    assert len({id(c) for c in sites + deployment}) == 4  # four clients, each with its own pool

    def tls_context(sdk_client):  # the SDK's httpx client -> its transport's connection pool
        return sdk_client._client._transport._pool._ssl_context

    assert tls_context(sites[0]) is tls_context(sites[1])
    assert tls_context(deployment[0]) is tls_context(deployment[1])
