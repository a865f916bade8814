"""Budget alerts in the admin (issue 28, item 6): the sent alerts listed read-only, per site for a site
admin, and a warning on the budget screen when nobody would receive an alert."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from integrations.models import BudgetAlert

from .factories import AIProviderSettingsFactory, SiteFactory, SiteMembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

ADMIN_PERMS = ["view_aiprovidersettings", "change_aiprovidersettings", "view_aiusage"]


def site_admin(site, **fields):
    user = UserFactory(**fields)
    SiteMembershipFactory(user=user, site=site)
    user.user_permissions.set(Permission.objects.filter(codename__in=ADMIN_PERMS))
    return user


def alert(site, window="day", threshold=80):
    return BudgetAlert.objects.create(
        site=site,
        window=window,
        period_start=datetime.date(2026, 12, 1),
        threshold=threshold,
        cap=Decimal("5.000000"),
        spent=Decimal("4.00000001"),
    )


def test_site_admin_lists_their_sites_alerts_only_and_cannot_change_them(client):
    mine, theirs = SiteFactory(name="Bakery"), SiteFactory(name="Bookshop")
    own = alert(mine, "day", 80)
    alert(mine, "service:pages.generate_meta", 50)
    other = alert(theirs, "month", 100)
    client.force_login(site_admin(mine))
    listing = client.get(reverse("admin:integrations_budgetalert_changelist")).content.decode()
    assert "Daily budget" in listing and "80%" in listing and "$4.00 of $5.00" in listing
    assert "Budget of the service pages.generate_meta" in listing
    assert "Bookshop" not in listing and "Monthly budget" not in listing
    assert client.get(reverse("admin:integrations_budgetalert_change", args=[own.pk])).status_code == 200
    assert client.get(reverse("admin:integrations_budgetalert_change", args=[other.pk])).status_code in (302, 404)
    assert client.get(reverse("admin:integrations_budgetalert_add")).status_code == 403
    posted = client.post(reverse("admin:integrations_budgetalert_delete", args=[own.pk]), {"post": "yes"})
    assert posted.status_code == 403 and BudgetAlert.objects.filter(pk=own.pk).exists()
    index = client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:integrations_budgetalert_changelist") in index


def test_budget_screen_warns_when_no_member_has_an_email(client):
    site = SiteFactory(name="Bakery")
    record = AIProviderSettingsFactory(site=site, monthly_budget=Decimal("5"))
    user = site_admin(site, email="")
    client.force_login(user)
    url = reverse("admin:integrations_aiprovidersettings_change", args=[record.pk])
    assert "Budget alerts of Bakery" in client.get(url).content.decode()
    user.email = "admin@bakery.example.test"
    user.save()
    assert "Budget alerts of Bakery" not in client.get(url).content.decode()


def test_no_warning_without_any_cap(client):
    site = SiteFactory(name="Bakery")
    record = AIProviderSettingsFactory(site=site)
    client.force_login(site_admin(site, email=""))
    html = client.get(reverse("admin:integrations_aiprovidersettings_change", args=[record.pk])).content.decode()
    assert "reach nobody" not in html
