"""Money in one format everywhere (issue 28, item 4): governance.money.usd, the `money` filter, and the
screens that show sums (index, usage log, budgets, dashboard, test screen) without float noise."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.template import Context, Template
from django.urls import reverse

from integrations.ai.governance.money import usd
from integrations.usage import rollups as usage_rollups

from .conftest import EMULATED_KEYS
from .factories import AIProviderSettingsFactory, AIUsageFactory, SiteFactory, SiteMembershipFactory, UserFactory

NOISE = re.compile(r"\$[\d,]*\.\d*[1-9]0{4,}\d|\$[\d.]+[eE]|\$\d+\.\d*000\b")  # 0.00427750000000001, 2.5E-5, 5.000000


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (Decimal("5.000000"), "$5.00"),
        (0.00427750000000001, "$0.00428"),
        (Decimal("2.5E-5"), "$0.000025"),
        ("0.00000012", "$0.00000012"),
        (Decimal("1234.5"), "$1,234.50"),
        (0, "$0.00"),
        (Decimal("0.009999"), "$0.01"),
        (Decimal("-3"), "-$3.00"),
        (12.345, "$12.35"),
        (None, ""),
        ("abc", ""),
        (float("nan"), ""),
    ],
)
def test_usd_one_format(value, shown):
    assert usd(value) == shown


def test_money_filter_and_its_placeholder():
    rendered = Template("{% load ai_money %}{{ a|money }} {{ b|money }} {{ c|money:'not known' }}").render(
        Context({"a": Decimal("2.500000E-5"), "b": None, "c": None})
    )
    assert rendered == "$0.000025 — not known"


@pytest.mark.django_db
def test_index_usage_log_and_dashboard_show_sums_without_noise(client):
    site = SiteFactory(domain="bakery.example.test", name="Bakery")
    AIProviderSettingsFactory(
        site=site, provider_type="openai", openai_api_key=EMULATED_KEYS["openai"], monthly_budget=Decimal("5")
    )
    for cost in ("0.0012345", "0.0030430", "0.00000001"):  # an SQLite SUM of these is a float with noise
        usage_rollups.add([AIUsageFactory(site=site, cost=Decimal(cost))])  # as the ledger writer does
    user = UserFactory()
    SiteMembershipFactory(user=user, site=site)
    from django.contrib.auth.models import Permission

    user.user_permissions.set(Permission.objects.filter(codename__in=["view_aiusage", "view_aiprovidersettings"]))
    client.force_login(user)
    index = client.get(reverse("admin:index")).content.decode()
    assert "$0.00428 of $5.00" in index
    log = client.get(reverse("admin:integrations_aiusage_changelist")).content.decode()
    assert "$0.00428 of $5.00" in log and "$0.00123" in log  # budgets block and the cost column
    dashboard = client.get(reverse("admin:integrations_aiusage_dashboard")).content.decode()
    assert 'data-total="cost">$0.00428<' in dashboard
    for html in (index, log, dashboard):
        assert not NOISE.search(html), NOISE.search(html)


@pytest.mark.parametrize(
    ("value", "shown"),
    [(Decimal("5.000000"), "5.00"), (Decimal("0.000025"), "0.000025"), (Decimal("12.345"), "12.345"), (None, "")],
)
def test_editable_keeps_every_digit_and_drops_trailing_zeros(value, shown):
    from integrations.ai.governance.money import editable

    assert editable(value) == shown


@pytest.mark.django_db
def test_budget_screen_shows_caps_in_the_one_format(client):
    from django.contrib.auth.models import Permission

    site = SiteFactory(name="Bakery")
    record = AIProviderSettingsFactory(
        site=site, monthly_budget=Decimal("5"), daily_budget=Decimal("0.5"), service_budgets={"pages.meta": "2.5"}
    )
    record.refresh_from_db()  # as stored: 5.000000
    url = reverse("admin:integrations_aiprovidersettings_change", args=[record.pk])
    editor_of_settings = UserFactory()
    SiteMembershipFactory(user=editor_of_settings, site=site)
    editor_of_settings.user_permissions.set(
        Permission.objects.filter(codename__in=["view_aiprovidersettings", "change_aiprovidersettings"])
    )
    client.force_login(editor_of_settings)
    form = client.get(url).content.decode()
    assert 'name="monthly_budget" value="5.00"' in form and 'name="daily_budget" value="0.50"' in form
    viewer = UserFactory()
    SiteMembershipFactory(user=viewer, site=site)
    viewer.user_permissions.set(Permission.objects.filter(codename__in=["view_aiprovidersettings"]))
    client.force_login(viewer)
    readonly = client.get(url).content.decode()
    assert "$5.00" in readonly and "$0.50" in readonly and "$2.50 a month" in readonly
    assert "5.000000" not in readonly and "5.000000" not in form
