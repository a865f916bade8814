"""Issue 19: the admin shows the price catalogue beside the overrides, and warns about unpriced models
on the site's settings page and test screen, within the user's sites only."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from integrations.models import ModelPrice, UsageDaily

from .factories import SuperUserFactory, UserFactory
from .test_admin_settings import site_admin_for, two_sites  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db
CATALOGUE = "/admin/integrations/modelprice/catalogue/"


def unpriced_rollup(site, provider: str, model: str) -> None:
    UsageDaily.objects.create(
        site=site,
        day=timezone.localdate() - datetime.timedelta(days=1),
        provider=provider,
        model=model,
        service="general",
        status="ok",
        requests=3,
        unpriced=3,
        cost=Decimal("0.03"),
    )


def test_the_catalogue_lists_entries_beside_the_overrides(client):
    ModelPrice.objects.create(
        provider="openai", model_id="gpt-4o-mini", prompt_per_million=Decimal(1), completion_per_million=Decimal(2)
    )
    client.force_login(SuperUserFactory())
    changelist = client.get(reverse("admin:integrations_modelprice_changelist")).content.decode()
    assert 'id="price-catalogue-link"' in changelist and CATALOGUE in changelist and "genai-prices 0.2.3" in changelist
    page = client.get(CATALOGUE, {"provider": "openai", "q": "gpt-4o-mini"}).content.decode()
    assert "<td>openai</td><td>gpt-4o-mini</td>" in page and "<td>0.15</td><td>0.6</td>" in page
    assert "overridden" in page and "claude" not in page
    everything = client.get(CATALOGUE).content.decode()
    assert "page 1 of" in everything


def test_the_catalogue_needs_the_view_permission(client):
    site_user = UserFactory(is_staff=True)
    client.force_login(site_user)
    assert client.get(CATALOGUE).status_code == 403
    site_user.user_permissions.add(Permission.objects.get(codename="view_modelprice"))
    assert client.get(CATALOGUE).status_code == 200


def test_settings_page_warns_about_the_sites_own_unpriced_models_only(client, two_sites):  # noqa: F811
    record_a, record_b = two_sites
    unpriced_rollup(record_a.site, "openrouter", "acme/unlisted-a")
    unpriced_rollup(record_b.site, "anthropic", "claude-secret-b")
    unpriced_rollup(record_a.site, "openai", "gpt-4o-mini-2024-07-18")  # priced meanwhile: no warning
    client.force_login(site_admin_for(record_a.site))
    page = client.get(reverse("admin:integrations_aiprovidersettings_change", args=[record_a.pk])).content.decode()
    assert "Calls to openrouter:acme/unlisted-a have no price: add one under Model prices" in page
    assert "claude-secret-b" not in page and "gpt-4o-mini-2024-07-18" not in page


def test_the_test_screen_warns_when_the_call_it_made_had_no_price(client, two_sites, upstream):  # noqa: F811
    record_a, _ = two_sites
    client.force_login(site_admin_for(record_a.site))
    upstream.script(flavor="openrouter", served_model="acme/unlisted-answer", usage={"cost": None})
    url = reverse("admin:integrations_aiprovidersettings_test", args=[record_a.pk])
    html = client.post(
        url, {"provider": "", "model": "gpt-4o-mini", "prompt": "Name a bakery", "max_tokens": 50, "temperature": 0.5}
    ).content.decode()
    assert "Calls to openrouter:acme/unlisted-answer have no price: add one under Model prices" in html
