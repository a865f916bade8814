"""The admin index: branded, no dead "View site", and a per-site overview scoped to the user (issue 13, 7)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from integrations.models import AIUsage

from .conftest import EMULATED_KEYS
from .factories import AIProviderSettingsFactory, AIUsageFactory, SiteFactory, SiteMembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_overview_shows_only_my_sites_with_keys_spend_errors_and_last_test(client):
    mine = SiteFactory(domain="bakery.example.test", name="Bakery (OpenRouter)")
    theirs = SiteFactory(domain="books.example.test", name="Bookshop (Anthropic)")
    AIProviderSettingsFactory(
        site=mine,
        provider_type="openrouter",
        openrouter_api_key=EMULATED_KEYS["openrouter"],
        monthly_budget=Decimal("10"),
    )
    AIProviderSettingsFactory(site=theirs, provider_type="anthropic", anthropic_api_key=EMULATED_KEYS["anthropic"])
    AIUsageFactory(site=mine, status=AIUsage.STATUS_OK, cost=Decimal("2.5"), service="admin.test")
    AIUsageFactory(site=mine, status=AIUsage.STATUS_ERROR, cost=Decimal("0"))
    old = AIUsageFactory(site=mine, status=AIUsage.STATUS_ERROR, cost=Decimal("0"))
    AIUsage.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=30))  # outside 24 h
    user = UserFactory()
    SiteMembershipFactory(user=user, site=mine)
    client.force_login(user)
    html = client.get(reverse("admin:index")).content.decode()
    assert "<title>Overview | Panel AI</title>" in html and '<a href="/admin/">Panel AI</a>' in html
    assert "View site" not in html
    assert "Bakery (OpenRouter)" in html and "Bookshop" not in html and "books.example.test" not in html
    assert '<span class="key-chip">OpenRouter</span>' in html and EMULATED_KEYS["openrouter"][-6:] not in html
    assert "$2.50 of $10.00" in html and 'value="25"' in html
    assert "50%</span>" in html  # one error of two calls in the last 24 h (the older one is not counted)
    assert "ago" in html.split(f'data-site="{mine.pk}"')[1]  # last test


def test_superuser_sees_every_site_by_name(client):
    from .factories import SuperUserFactory

    SiteFactory(domain="a.example.test", name="Alpha shop")
    SiteFactory(domain="b.example.test", name="Beta shop")
    client.force_login(SuperUserFactory())
    html = client.get(reverse("admin:index")).content.decode()
    assert "Alpha shop" in html and "Beta shop" in html and "never" in html
