"""Spend per virtual key: in the ledger, the dashboard (by key) and its CSV, for the user's sites only (issue 21)."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from integrations.ai.ledger import usage
from integrations.models import AIUsage, ModelPrice, UsageKeyDaily

from ..factories import SiteMembershipFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)
ASK = [{"role": "user", "content": "Name a bakery"}]


def test_spend_per_key_in_ledger_dashboard_and_csv(emulated_site, make_key, oai, settings):
    settings.ALLOWED_HOSTS = ["*"]
    site_a, site_b = emulated_site("openai"), emulated_site("openai")
    ModelPrice.objects.create(
        provider="openai",
        model_id="gpt-4o-mini",
        prompt_per_million=Decimal("100"),
        completion_per_million=Decimal("100"),
    )
    shop, blog, theirs = make_key(site_a, "shop"), make_key(site_a, "blog"), make_key(site_b, "theirs")
    for key, calls in ((shop, 2), (blog, 1), (theirs, 1)):
        for _ in range(calls):
            oai(key).chat.completions.create(model="gpt-4o-mini", messages=ASK, max_tokens=20)
    usage.flush()
    cost = {name: sum(r.cost for r in AIUsage.objects.filter(api_key__name=name)) for name in ("shop", "blog")}
    assert cost["shop"] > cost["blog"] > 0
    assert UsageKeyDaily.objects.get(api_key__name="shop").requests == 2

    admin = UserFactory(username="a-admin", is_staff=True)
    SiteMembershipFactory(user=admin, site=site_a)
    admin.user_permissions.set(Permission.objects.filter(codename="view_aiusage"))
    client = Client()
    client.force_login(admin)
    page = client.get("/admin/integrations/aiusage/dashboard/").content.decode()
    assert "shop …" in page and "blog …" in page and "theirs" not in page
    rows = [
        r
        for r in csv.reader(
            io.StringIO(client.get("/admin/integrations/aiusage/dashboard/export.csv").content.decode())
        )
        if r and r[0] == "keys"
    ]
    assert [(r[1].split(" …")[0], r[3], Decimal(r[7])) for r in rows] == [
        ("shop", "2", cost["shop"]),
        ("blog", "1", cost["blog"]),
    ]
