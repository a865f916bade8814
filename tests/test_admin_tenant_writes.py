"""Issue 10, deliverables 1 and 2, the way a hostile site admin tried them: crafted POSTs with an
empty or foreign site, custom views without the model permission, and check-key reading the
deployment account's credit."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from integrations.models import ModelMapping

from .factories import (
    AIProviderSettingsFactory,
    ModelMappingFactory,
    SiteFactory,
    SiteMembershipFactory,
    SuperUserFactory,
    UserFactory,
)
from .factories_cms import PageFactory

pytestmark = pytest.mark.django_db

DEPLOYMENT_OR_KEY = "sk-or-v1-" + "d0" * 24


def member(site, *codenames: str):
    user = UserFactory()
    SiteMembershipFactory(user=user, site=site)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


MAPPING_PERMS = ("view_modelmapping", "add_modelmapping", "change_modelmapping", "delete_modelmapping")


def test_crafted_mapping_posts_with_empty_or_foreign_site_are_form_errors(client):
    site_a, site_b = SiteFactory(domain="a.example.test"), SiteFactory(domain="b.example.test")
    own = ModelMappingFactory(site=site_a, logical_name="gpt-4o-mini", provider_model_id="gpt-4o-mini")
    client.force_login(member(site_a, *MAPPING_PERMS))
    fields = {"logical_name": "gpt-4o-mini", "provider": "openai", "provider_model_id": "gpt-4.1", "is_active": "on"}
    for site in ("", site_b.pk):
        add = client.post(reverse("admin:integrations_modelmapping_add"), {**fields, "site": site})
        assert add.status_code == 200 and "site" in add.context["adminform"].form.errors
        change = client.post(reverse("admin:integrations_modelmapping_change", args=[own.pk]), {**fields, "site": site})
        assert change.status_code == 200 and "site" in change.context["adminform"].form.errors
    assert (
        "This field is required."
        in client.post(reverse("admin:integrations_modelmapping_add"), {**fields, "site": ""}).content.decode()
    )
    assert list(ModelMapping.objects.values_list("site_id", "provider_model_id")) == [(site_a.pk, "gpt-4o-mini")]


def test_superuser_still_writes_global_rows(client):
    client.force_login(SuperUserFactory())
    response = client.post(
        reverse("admin:integrations_modelmapping_add"),
        {"site": "", "logical_name": "shared", "provider": "openai", "provider_model_id": "gpt-4o", "is_active": "on"},
    )
    assert response.status_code == 302
    assert ModelMapping.objects.get().site_id is None


def test_check_key_never_shows_the_deployment_account_to_a_site_admin(client, ai_settings, upstream):
    ai_settings.OPENROUTER_API_KEY = DEPLOYMENT_OR_KEY
    record = AIProviderSettingsFactory(provider_type="openrouter")  # no key of its own: the deployment's is used
    url = reverse("admin:integrations_aiprovidersettings_check_key", args=[record.pk, "openrouter"])
    client.force_login(member(record.site, "view_aiprovidersettings", "change_aiprovidersettings"))
    change_form = client.get(reverse("admin:integrations_aiprovidersettings_change", args=[record.pk])).content.decode()
    assert "Check openrouter key" not in change_form  # the button is offered only for the site's own keys
    text = client.post(url, follow=True).content.decode()
    assert "has no OpenRouter key of its own" in text and "key works" not in text and "limit $" not in text
    assert upstream.requests == []
    client.force_login(SuperUserFactory())
    assert "OpenRouter key works" in client.post(url, follow=True).content.decode()
    assert upstream.requests[-1].headers["authorization"] == f"Bearer {DEPLOYMENT_OR_KEY}"


def test_custom_views_need_the_change_permission_not_just_membership(client, upstream):
    record = AIProviderSettingsFactory(
        provider_type="openrouter",
        openrouter_api_key="sk-or-v1-" + "a1" * 24,
        openrouter_base_url=upstream.openrouter_base_url,
    )
    page = PageFactory(site=record.site)
    client.force_login(member(record.site, "view_aiprovidersettings", "view_page"))
    for name, args in [
        ("integrations_aiprovidersettings_test", [record.pk]),
        ("integrations_aiprovidersettings_test_stream", [record.pk]),
        ("integrations_aiprovidersettings_check_key", [record.pk, "openrouter"]),
        ("pages_page_generate_block", [page.pk]),
    ]:
        assert client.post(reverse(f"admin:{name}", args=args), {"prompt": "hi", "type": "text"}).status_code == 403
    changelist = client.get(reverse("admin:pages_page_changelist"))
    assert "generate_meta" not in changelist.content.decode()  # the action needs the change permission
    assert upstream.requests == []


def test_prompt_run_filter_lists_only_the_users_templates(client):
    from .factories_cms import PromptRunFactory, PromptTemplateFactory

    site_a, site_b = SiteFactory(domain="a.example.test"), SiteFactory(domain="b.example.test")
    PromptRunFactory(site=site_a, template=PromptTemplateFactory(site=site_a, name="Alpha blurb"))
    PromptRunFactory(site=site_b, template=PromptTemplateFactory(site=site_b, name="Bravo secret launch"))
    client.force_login(member(site_a, "view_promptrun"))
    html = client.get(reverse("admin:prompts_promptrun_changelist")).content.decode()
    assert "Alpha blurb" in html and "Bravo secret launch" not in html and "b.example.test" not in html
