"""Warn on save about settings that can never apply (issue 28, item 7): a fallback to a provider with
no key anywhere, or one the site's own policy blocks."""

from __future__ import annotations

import pytest
from django.urls import reverse

from integrations.admin.settings_warnings import never_apply

from .conftest import EMULATED_KEYS
from .factories import AIProviderSettingsFactory, SiteFactory, SuperUserFactory
from .settings_forms import settings_form_data

pytestmark = pytest.mark.django_db


def saved_warnings(client, record, **changes) -> list[str]:
    client.force_login(SuperUserFactory())
    url = reverse("admin:integrations_aiprovidersettings_change", args=[record.pk])
    response = client.post(url, settings_form_data(record, **changes), follow=True)
    assert response.redirect_chain, response.content.decode()[:2000]  # saved
    return [str(m) for m in response.context["messages"] if m.level_tag == "warning"]


def test_a_fallback_without_any_key_is_warned_on_save(client, ai_settings):
    record = AIProviderSettingsFactory(
        site=SiteFactory(), provider_type="openai", openai_api_key=EMULATED_KEYS["openai"]
    )
    warnings = saved_warnings(client, record, fallback_chain=[{"provider": "anthropic", "model": ""}])
    assert warnings == [
        "Fallback 1 (Anthropic) can never apply: Anthropic has no API key, neither the site's nor the "
        "deployment's. Add a key for it or remove it from the failover chain."
    ]
    ai_settings.ANTHROPIC_API_KEY = EMULATED_KEYS["anthropic"]  # the deployment's key makes it usable
    assert never_apply(record.site_id) == []


def test_a_fallback_the_policy_blocks_is_warned_on_save(client):
    record = AIProviderSettingsFactory(
        site=SiteFactory(),
        provider_type="openai",
        openai_api_key=EMULATED_KEYS["openai"],
        anthropic_api_key=EMULATED_KEYS["anthropic"],
    )
    warnings = saved_warnings(
        client,
        record,
        fallback_chain=[{"provider": "anthropic", "model": "claude-3-5-haiku"}, {"provider": "openai", "model": ""}],
        allowed_providers=["openai"],
    )
    assert len(warnings) == 1
    assert warnings[0].startswith("Fallback 1 (Anthropic, claude-3-5-haiku) can never apply: the site's policy blocks")
    assert "allowed_providers" in warnings[0]


def test_a_blocked_model_and_a_clean_chain(client):
    record = AIProviderSettingsFactory(
        site=SiteFactory(), provider_type="openai", openai_api_key=EMULATED_KEYS["openai"]
    )
    warnings = saved_warnings(
        client, record, fallback_chain=[{"provider": "openai", "model": "gpt-4o"}], allowed_models=["gpt-4o-mini"]
    )
    assert len(warnings) == 1 and "does not allow the model gpt-4o" in warnings[0]
    assert saved_warnings(client, record, fallback_chain=[{"provider": "openai", "model": "gpt-4o-mini"}]) == []
