"""Issue 11 (3): an OpenAI-compatible endpoint (Ollama, vLLM, …) is a credential row with a name.

`ollama` with a base URL and no key becomes a provider the site can name, beside OpenAI; it serves
any model id, stands in the failover chain, the admin's test screen and the ledger under its own
name. Everything runs through the real `openai` SDK against the emulator's `/compatible/v1` server.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from integrations.ai.gateway.factory import ProviderFactory
from integrations.ai.gateway.service import AIService
from integrations.ai.ledger import usage
from integrations.ai.providers.errors import ModelNotFound, UnknownProvider
from integrations.models import AIUsage, ProviderCredential

from .factories import AIProviderSettingsFactory, ProviderCredentialFactory, SuperUserFactory
from .settings_forms import credential_errors, credentials_data, settings_form_data
from .test_admin_settings import OAI_KEY, site_admin_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def allow_emulator(settings, upstream):
    """The deployment allowlists the local server, as it would `AI_OUTBOUND_ALLOWLIST=127.0.0.1:11434`."""
    host, port = upstream.url.removeprefix("http://").split(":")
    settings.AI_OUTBOUND_ALLOWLIST = [f"{host}:{port}"]
    return settings


@pytest.fixture
def site_with_ollama(ai_settings, allow_emulator, upstream):
    record = AIProviderSettingsFactory(
        provider_type="openai", openai_api_key=OAI_KEY, openai_base_url=upstream.openai_base_url
    )
    ProviderCredentialFactory(
        settings=record, provider="openai_compatible", name="ollama", base_url=upstream.compatible_base_url
    )
    return record


def ledger(site):
    usage.flush()
    return list(AIUsage.objects.filter(site=site).order_by("id"))


def test_a_keyless_endpoint_serves_any_model_beside_openai(site_with_ollama, upstream):
    site = site_with_ollama.site
    local = AIService(site=site).generate_content("hi", provider="ollama", model="llama3.1")
    assert (local.provider, local.model) == ("ollama", "llama3.1")
    assert local.content == "Emulated compatible reply (llama3.1): hi"
    other = AIService(site=site).generate_content("hi", provider="ollama", model="mistral")
    assert other.model == "mistral"  # passed through, not mapped
    direct = AIService(site=site).generate_content("hello")  # the site's primary is still OpenAI
    assert direct.provider == "openai"
    flavors = [r.flavor for r in upstream.requests]
    assert flavors == ["compatible", "compatible", "openai"]
    local_auth = upstream.requests[0].headers.get("authorization", "")
    assert OAI_KEY not in local_auth  # the OpenAI key never goes to the endpoint
    assert [(row.provider, row.served_model) for row in ledger(site)] == [
        ("ollama", "llama3.1"),
        ("ollama", "mistral"),
        ("openai", "gpt-4o-mini"),
    ]


def test_the_endpoints_key_is_sent_when_it_has_one(site_with_ollama, upstream):
    row = site_with_ollama.credentials.get(name="ollama")
    row.api_key = "local-token-" + "7" * 12
    row.save()
    AIService(site=site_with_ollama.site).generate_content("hi", provider="ollama", model="llama3.1")
    assert upstream.requests[-1].headers["authorization"] == f"Bearer {row.api_key}"


def test_a_disabled_endpoint_is_not_a_provider(site_with_ollama):
    row = site_with_ollama.credentials.get(name="ollama")
    row.enabled = False
    row.save()
    with pytest.raises(Exception) as excinfo:
        AIService(site=site_with_ollama.site).generate_content("hi", provider="ollama", model="llama3.1")
    assert "ollama" in str(excinfo.value)


def test_another_site_cannot_name_this_sites_endpoint(site_with_ollama, ai_settings):
    other = AIProviderSettingsFactory(provider_type="openai", openai_api_key=OAI_KEY)
    with pytest.raises(Exception) as excinfo:
        ProviderFactory.create_provider("ollama", other.site)
    assert "ollama" in str(excinfo.value)


def test_the_endpoint_stands_in_the_failover_chain(site_with_ollama, upstream, settings):
    settings.AI_MAX_RETRIES = 0
    record = site_with_ollama
    record.fallback_chain = [{"provider": "ollama", "model": "llama3.1"}]
    record.full_clean()
    record.save()
    upstream.script(flavor="openai", status=503, times=3)
    result = AIService(site=record.site).generate_content("hi")
    assert (result.provider, result.model) == ("ollama", "llama3.1")
    rows = ledger(record.site)
    assert [(r.provider, r.status) for r in rows] == [("openai", AIUsage.STATUS_ERROR), ("ollama", AIUsage.STATUS_OK)]


def test_chain_entries_are_checked_against_the_registry_and_the_sites_endpoints(site_with_ollama):
    record = site_with_ollama
    record.fallback_chain = [{"provider": "vllm", "model": ""}]
    with pytest.raises(ValidationError) as excinfo:
        record.full_clean()
    message = str(excinfo.value)
    assert "Entry 1 needs a provider" in message and "ollama" in message and "anthropic" in message
    record.fallback_chain = [{"provider": "ollama", "model": ""}, {"provider": "anthropic", "model": ""}]
    record.full_clean()


def test_a_deployment_wide_endpoint_serves_every_site(ai_settings, upstream):
    ai_settings.AI_ENDPOINTS = {"vllm": {"base_url": upstream.compatible_base_url, "default_model": "qwen2.5"}}
    record = AIProviderSettingsFactory(provider_type="openai")
    result = AIService(site=record.site).generate_content("hi", provider="vllm")
    assert (result.provider, result.model) == ("vllm", "qwen2.5")


class TestCredentialRules:
    def test_an_endpoint_needs_a_name_that_is_not_a_providers(self, site_with_ollama, upstream):
        row = ProviderCredential(
            settings=site_with_ollama, provider="openai_compatible", name="", base_url=upstream.compatible_base_url
        )
        with pytest.raises(ValidationError, match="needs a name"):
            row.full_clean()
        row.name = "openai"
        with pytest.raises(ValidationError, match="provider's own name"):
            row.full_clean()
        row.name = "Not Valid"
        with pytest.raises(ValidationError, match="lowercase"):
            row.full_clean()
        row.name = "lmstudio"
        row.full_clean()

    def test_an_endpoint_needs_a_url_allowed_by_the_policy(self, site_with_ollama, settings):
        settings.AI_OUTBOUND_ALLOWLIST = []
        row = ProviderCredential(
            settings=site_with_ollama,
            provider="openai_compatible",
            name="lmstudio",
            base_url="http://127.0.0.1:1234/v1",
        )
        with pytest.raises(ValidationError) as excinfo:
            row.full_clean()
        assert "base_url" in excinfo.value.message_dict

    def test_a_direct_providers_row_takes_no_name_and_checks_openrouter_ids(self, site_with_ollama):
        row = ProviderCredential(settings=site_with_ollama, provider="openrouter", name="mine", default_model="gpt-4o")
        with pytest.raises(ValidationError) as excinfo:
            row.full_clean()
        assert set(excinfo.value.message_dict) == {"name", "default_model"}
        assert "vendor/model" in excinfo.value.message_dict["default_model"][0]

    def test_a_deployment_base_url_is_trusted_for_a_direct_provider(self, site_with_ollama, ai_settings, upstream):
        ai_settings.AI_OUTBOUND_ALLOWLIST = []
        row = ProviderCredential(
            settings=site_with_ollama, provider="anthropic", base_url=upstream.anthropic_base_url
        )  # the deployment's own URL
        row.full_clean()


class TestAdmin:
    def test_a_site_admin_adds_an_endpoint_and_names_it_in_the_chain_on_one_page(
        self, client, ai_settings, allow_emulator, upstream
    ):
        record = AIProviderSettingsFactory(
            provider_type="openai", openai_api_key=OAI_KEY, openai_base_url=upstream.openai_base_url
        )
        client.force_login(site_admin_for(record.site))
        data = settings_form_data(record, fallback_chain=[{"provider": "ollama", "model": "llama3.1"}])
        data.update(
            credentials_data(
                record,
                add=({"provider": "openai_compatible", "name": "ollama", "base_url": upstream.compatible_base_url},),
            )
        )
        response = client.post(reverse("admin:integrations_aiprovidersettings_change", args=[record.pk]), data)
        assert response.status_code == 302, credential_errors(response) or response.context["adminform"].form.errors
        row = ProviderCredential.objects.get(settings=record, name="ollama")
        assert (row.provider, row.api_key, row.base_url) == ("openai_compatible", "", upstream.compatible_base_url)
        record.refresh_from_db()
        assert record.fallback_chain == [{"provider": "ollama", "model": "llama3.1"}]

    def test_two_rows_for_one_name_are_refused(self, client, site_with_ollama, upstream):
        record = site_with_ollama
        client.force_login(SuperUserFactory())
        data = settings_form_data(record)
        data.update(
            credentials_data(
                record,
                add=({"provider": "openai_compatible", "name": "ollama", "base_url": upstream.compatible_base_url},),
            )
        )
        response = client.post(reverse("admin:integrations_aiprovidersettings_change", args=[record.pk]), data)
        assert response.status_code == 200
        assert "one row per provider or endpoint name" in str(credential_errors(response)["__all__"])
        assert ProviderCredential.objects.filter(settings=record, name="ollama").count() == 1

    def test_the_test_screen_offers_the_endpoint_and_its_models(self, client, site_with_ollama, upstream):
        record = site_with_ollama
        client.force_login(site_admin_for(record.site))
        url = reverse("admin:integrations_aiprovidersettings_test", args=[record.pk])
        page = client.get(url)
        providers = dict(page.context["form"].fields["provider"].choices)
        groups = dict(page.context["form"].fields["model"].choices[1:])  # grouped: (group, [(value, label)])
        models = {value for options in groups.values() for value, _ in options}
        assert providers.get("ollama") == "ollama" and providers.get("openai") == "OpenAI"
        assert "llama3.1" in models  # from the endpoint's own listing
        assert ("llama3.1", "llama3.1 (ollama)") in groups["Endpoint ollama"]
        response = client.post(
            url,
            {
                "provider": "ollama",
                "model": "llama3.1",
                "prompt": "from the screen",
                "max_tokens": 20,
                "temperature": 0.5,
            },
        )
        assert response.status_code == 200
        assert "Emulated compatible reply (llama3.1): from the screen" in response.content.decode()
        assert ledger(record.site)[-1].provider == "ollama"

    def test_check_key_buttons_name_each_credential_with_a_key(self, client, site_with_ollama):
        record = site_with_ollama
        row = record.credentials.get(name="ollama")
        row.api_key = "local-token-" + "7" * 12
        row.save()
        client.force_login(site_admin_for(record.site))
        html = client.get(reverse("admin:integrations_aiprovidersettings_change", args=[record.pk])).content.decode()
        assert "Check OpenAI key" in html and "Check ollama key" in html
        assert row.api_key not in html and "A key is set, ending ••••7777" in html


def test_no_endpoint_without_its_base_url(ai_settings, allow_emulator):
    """A row saved without validation (a script) and no address is not a provider: a typed error, no call."""
    record = AIProviderSettingsFactory(provider_type="openai", openai_api_key=OAI_KEY)
    ProviderCredential.objects.create(settings=record, provider="openai_compatible", name="ollama")
    with pytest.raises(UnknownProvider, match="ollama"):
        ProviderFactory.create_provider("ollama", record.site)


def test_a_model_the_endpoint_lists_is_routed_to_it_without_naming_the_provider(site_with_ollama, upstream):
    """A call that names only the model (as a /v1 client does) goes to the endpoint whose own `GET /models` lists
    it (or whose default model it is), when no direct provider's prefix claims it; the site's provider keeps the
    rest, including a model nobody lists (taken on trust as before)."""
    site = site_with_ollama.site
    service = AIService(site=site)
    assert service.generate_content("hi", model="qwen2.5").provider == "ollama"
    assert service.generate_content("hi", model="mistral").provider == "ollama"  # a router family, listed here
    assert service.generate_content("hi", model="gpt-4o-mini").provider == "openai"
    with pytest.raises(ModelNotFound) as unlisted:  # nobody lists it: OpenAI's to take on trust (it refuses)
        service.generate_content("hi", model="my-finetune")
    assert unlisted.value.provider == "openai"
    row = site_with_ollama.credentials.get(name="ollama")
    row.default_model = "my-finetune"  # not listed by the server, but its default model
    row.save()
    assert AIService(site=site).generate_content("hi", model="my-finetune").provider == "ollama"
    assert [(r.provider, r.served_model) for r in ledger(site)] == [
        ("ollama", "qwen2.5"),
        ("ollama", "mistral"),
        ("openai", "gpt-4o-mini"),
        ("openai", "my-finetune"),  # the refused call, ledgered as an error
        ("ollama", "my-finetune"),
    ]
