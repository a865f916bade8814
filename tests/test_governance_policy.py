"""Issue 14, item 4: per-site model and data policy, applied to every call, failover included."""

from __future__ import annotations

import pytest
from django.urls import reverse

from integrations.ai.gateway.service import AIService
from integrations.ai.ledger import usage
from integrations.ai.providers.errors import AIProviderError, PolicyViolation
from integrations.ai.runtime import pauses
from integrations.models import AIProviderSettings, AIUsage

from .factories import SuperUserFactory

pytestmark = pytest.mark.django_db


def test_disallowed_model_is_refused_before_any_upstream_request_and_recorded(emulated_site, upstream):
    site = emulated_site("openai", allowed_models=["gpt-4o-mini", "claude-*"])
    with pytest.raises(PolicyViolation) as caught:
        AIService(site=site, service="pages.meta").generate_content("hi", model="gpt-4o")
    assert caught.value.code == "policy_violation"
    assert caught.value.rule == "allowed_models"
    assert "allowed_models" in str(caught.value) and "gpt-4o" in str(caught.value)
    assert isinstance(caught.value, AIProviderError)
    assert upstream.requests == []
    usage.flush()
    row = AIUsage.objects.get(site=site)
    assert (row.status, row.error_class, row.service, row.requested_model) == (
        "refused",
        "PolicyViolation",
        "pages.meta",
        "gpt-4o",
    )
    assert "allowed_models" in row.error_message
    assert pauses.health(site.id, "openai") == (False, 0)  # no cooldown, no failure counted


def test_allowed_model_by_pattern_and_logical_name_is_served(emulated_site, upstream):
    site = emulated_site("openrouter", allowed_models=["claude-3-5-*", "openai/gpt-4o-mini"])
    assert AIService(site=site).generate_content("hi", model="claude-3-5-haiku").provider == "openrouter"
    assert AIService(site=site).generate_content("hi", model="gpt-4o-mini").model == "openai/gpt-4o-mini"
    assert len(upstream.requests_for("openrouter")) == 2


def test_disallowed_provider_is_skipped_by_failover_without_a_cooldown(emulated_site, upstream, settings):
    settings.AI_COOLDOWN_AFTER_FAILURES = 1
    site = emulated_site(
        "openai",
        also=("anthropic",),
        allowed_providers=["anthropic"],
        fallback_chain=[{"provider": "anthropic", "model": ""}],
    )
    for _ in range(3):
        result = AIService(site=site).generate_content("hi")
        assert result.provider == "anthropic"
    assert upstream.requests_for("openai") == []
    assert not pauses.health(site.id, "openai")[0]  # a refusal is not a provider failure
    usage.flush()
    assert set(AIUsage.objects.filter(site=site).values_list("status", "provider")) == {("ok", "anthropic")}


def test_every_candidate_refused_names_the_rule(emulated_site, upstream):
    site = emulated_site(
        "openai",
        also=("anthropic",),
        allowed_providers=["openrouter"],
        fallback_chain=[{"provider": "anthropic", "model": ""}],
    )
    with pytest.raises(PolicyViolation, match="allowed_providers") as caught:
        AIService(site=site).generate_content("hi")
    assert caught.value.rule == "allowed_providers"
    assert upstream.requests == []


def test_streams_are_refused_too(emulated_site, upstream):
    site = emulated_site("anthropic", allowed_models=["claude-3-5-haiku"])
    with pytest.raises(PolicyViolation):
        AIService(site=site).generate_stream("hi", model="claude-3-opus")
    assert upstream.requests == []


def test_openrouter_data_policy_is_sent_on_every_call_and_disallowed_fallback_models_dropped(emulated_site, upstream):
    site = emulated_site(
        "openrouter",
        openrouter_deny_data_collection=True,
        openrouter_zero_retention=True,
        openrouter_routing={"sort": "price", "data_collection": "allow"},
        openrouter_fallback_models=["anthropic/claude-3.5-haiku", "anthropic/claude-opus-4"],
        allowed_models=["gpt-4o-mini", "anthropic/claude-3.5-haiku"],
    )
    AIService(site=site).generate_content("hi", model="gpt-4o-mini", provider="openrouter")
    AIService(site=site).generate_content("hi again", model="gpt-4o-mini")
    for request in upstream.requests_for("openrouter"):
        body = request.json
        assert body["provider"]["data_collection"] == "deny"  # the policy wins over the site's routing JSON
        assert body["provider"]["zdr"] is True
        assert body["provider"]["sort"] == "price"
        assert body["models"] == ["anthropic/claude-3.5-haiku"]


def test_data_policy_applies_to_openrouter_as_a_failover_candidate(emulated_site, upstream, settings):
    settings.AI_MAX_RETRIES = 0
    site = emulated_site(
        "openai",
        also=("openrouter",),
        openrouter_deny_data_collection=True,
        fallback_chain=[{"provider": "openrouter", "model": ""}],
    )
    upstream.script(flavor="openai", status=503)
    assert AIService(site=site).generate_content("hi").provider == "openrouter"
    assert upstream.requests_for("openrouter")[-1].json["provider"] == {"data_collection": "deny"}


def test_policy_holds_when_the_site_record_is_disabled(ai_settings, emulated_site, upstream):
    ai_settings.OPENAI_API_KEY = "sk-proj-" + "77" * 24
    site = emulated_site("openai", enabled=False, allowed_providers=["anthropic"])
    with pytest.raises(PolicyViolation):
        AIService(site=site).generate_content("hi")
    assert upstream.requests == []


def test_settings_validation_names_the_field(emulated_site):
    record = AIProviderSettings.objects.get(site=emulated_site("openai"))
    record.allowed_providers = ["openai", "acme"]
    record.allowed_models = [""]
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as caught:
        record.full_clean()
    assert set(caught.value.message_dict) >= {"allowed_providers", "allowed_models"}


def test_test_screen_shows_the_violation_with_its_rule(client, emulated_site, upstream):
    site = emulated_site("openai", allowed_models=["gpt-4o-mini"])
    record = AIProviderSettings.objects.get(site=site)
    client.force_login(SuperUserFactory())
    html = client.post(
        reverse("admin:integrations_aiprovidersettings_test", args=[record.pk]),
        {
            "provider": "",
            "model": "gpt-4o",
            "prompt": "hi",
            "max_tokens": 10,
            "temperature": 0.5,
        },
    ).content.decode()
    assert "Blocked by the site policy: " in html and "<code>policy_violation</code>" in html
    assert "rule allowed_models: gpt-4o-mini" in html
    assert upstream.requests == []


def test_api_answers_403_with_the_code(client, emulated_site, upstream):
    from django.contrib.sites.models import Site

    from tests.factories import SiteMembershipFactory

    site = emulated_site("openai", allowed_models=["gpt-4o-mini"])
    testserver = Site.objects.get(domain="testserver")
    AIProviderSettings.objects.filter(site=site).update(site=testserver)
    user = SuperUserFactory()
    SiteMembershipFactory(user=user, site=testserver)
    client.force_login(user)
    response = client.post("/api/ai/generate/", {"prompt": "hi", "model": "gpt-4o"}, content_type="application/json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "policy_violation"
    assert upstream.requests == []
