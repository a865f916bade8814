"""The usage dashboard (issue 14, item 1): scoping to the user's sites, its numbers, its CSV.

Ledger rows are made the way the gateway makes them where it matters (one call through the
emulator), and written directly with chosen days and latencies where the numbers must be exact
(with their daily roll-ups, which the dashboard reads, added as the ledger writer adds them).
"""

from __future__ import annotations

import csv
import datetime
import io
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from integrations.ai.gateway.service import AIService
from integrations.ai.ledger import usage
from integrations.models import AIUsage
from integrations.usage import rollups as usage_rollups
from integrations.usage.dashboard import percentile

from .factories import AIProviderSettingsFactory, SiteFactory, SiteMembershipFactory, UserFactory

pytestmark = pytest.mark.django_db
URL = "/admin/integrations/aiusage/dashboard/"
CSV_URL = "/admin/integrations/aiusage/dashboard/export.csv"


def member(site, *codenames: str):
    user = UserFactory()
    SiteMembershipFactory(user=user, site=site)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


def at(day: datetime.date, hour: int = 12) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time(hour)))


def row(site, day: datetime.date, **fields) -> AIUsage:
    values = {
        "service": "pages.meta",
        "provider": "openai",
        "served_model": "gpt-4o",
        "status": "ok",
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "cost": Decimal("0.01"),
        "latency_ms": 100,
        **fields,
    }
    made = AIUsage.objects.create(site=site, **values)
    AIUsage.objects.filter(pk=made.pk).update(created_at=at(day))
    made.refresh_from_db()
    usage_rollups.add([made])  # what the ledger writer does with the rows it writes
    return made


@pytest.fixture
def ledger():
    """Site A: known numbers on two days; site B: its own model, service and a big spend."""
    today = timezone.localdate()
    day1, day2 = today - datetime.timedelta(days=2), today - datetime.timedelta(days=1)
    site_a = SiteFactory(domain="a.example.test")
    site_b = SiteFactory(domain="b.example.test")
    AIProviderSettingsFactory(site=site_a, monthly_budget=Decimal("10"))
    AIProviderSettingsFactory(site=site_b, monthly_budget=Decimal("500"))
    for latency in (100, 200, 300, 400):
        row(site_a, day1, latency_ms=latency)
    row(
        site_a,
        day1,
        status="error",
        error_class="ProviderUnavailable",
        cost=None,
        prompt_tokens=0,
        completion_tokens=0,
        total_tokens=0,
        latency_ms=900,
    )
    row(
        site_a,
        day2,
        provider="anthropic",
        served_model="claude-3-5-sonnet-20241022",
        service="pages.summary",
        cost=Decimal("0.05"),
        cached_tokens=8,
        saved_cost=Decimal("0.002"),
        latency_ms=1000,
    )
    row(site_a, day2, status="cached", cache_hit=True, cost=Decimal(0), saved_cost=Decimal("0.01"), latency_ms=1)
    row(
        site_a,
        day2,
        status="refused",
        error_class="BudgetExceeded",
        cost=Decimal(0),
        served_model="",
        requested_model="gpt-4o",
        total_tokens=0,
    )
    row(
        site_a,
        day2,
        status="refused",
        error_class="RateLimited",
        cost=Decimal(0),
        served_model="",
        requested_model="gpt-4o",
        total_tokens=0,
    )
    row(
        site_b,
        day2,
        served_model="secret-b-model",
        service="b.private.service",
        cost=Decimal("123.45"),
        total_tokens=777777,
        latency_ms=4321,
    )
    row(site_b, day2, status="refused", error_class="PolicyViolation", cost=Decimal(0))
    return {"a": site_a, "b": site_b, "day1": day1, "day2": day2}


def page_data(response) -> dict:
    assert response.status_code == 200, response.content[:500]
    return response.context["data"]


def test_site_admin_sees_only_their_sites_numbers(client, ledger):
    user = member(ledger["a"], "view_aiusage")
    client.force_login(user)
    response = client.get(URL)
    data = page_data(response)
    body = response.content.decode()
    for leak in (
        "secret-b-model",
        "b.private.service",
        "b.example.test",
        "123.45",
        "777777",
        "4321",
        "PolicyViolation",
        "500.00",
    ):
        assert leak not in body
    totals = data["totals"]
    assert totals["cost"] == Decimal("0.09")  # 4 x 0.01 + 0.05 + 0 (error, cache hit, refusals)
    assert totals["requests"] == 7  # ok 5, error 1, cache hit 1; refusals counted apart
    assert totals["refused"] == 2 and totals["cache_hits"] == 1
    assert totals["error_rate"] == round(100 / 6, 2)  # 1 error of 6 upstream attempts
    assert totals["saved"] == Decimal("0.012")
    assert [s["site"] for s in data["budget"]["sites"]] == ["a.example.test"]
    assert data["budget"]["cap"] == Decimal("10")
    # a site filter naming another site's id is a 404, like any of its records
    assert client.get(URL, {"site": ledger["b"].pk}).status_code == 404
    assert client.get(CSV_URL, {"site": ledger["b"].pk}).status_code == 404


def test_site_admin_csv_holds_their_rows_only(client, ledger):
    client.force_login(member(ledger["a"], "view_aiusage"))
    response = client.get(CSV_URL)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    text = response.content.decode()
    assert "secret-b-model" not in text and "b.example.test" not in text and "123.45" not in text
    daily = [r for r in csv.reader(io.StringIO(text)) if r and r[0] == "daily"]
    assert {r[2] for r in daily} == {"a.example.test"}
    assert sum(Decimal(r[15]) for r in daily) == Decimal("0.09")
    refusals = {r[1]: int(r[2]) for r in csv.reader(io.StringIO(text)) if r and r[0] == "refusals"}
    assert refusals == {"BudgetExceeded": 1, "RateLimited": 1}


def test_superuser_sees_every_site_and_can_filter_to_one(client, ledger):
    client.force_login(UserFactory(is_superuser=True))
    everything = page_data(client.get(URL))
    assert everything["totals"]["cost"] == Decimal("123.54")
    assert {s["site"] for s in everything["budget"]["sites"]} == {"a.example.test", "b.example.test"}
    only_b = page_data(client.get(URL, {"site": ledger["b"].pk}))
    assert only_b["totals"]["cost"] == Decimal("123.45")
    assert only_b["refusals"] == [{"reason": "PolicyViolation", "count": 1}]
    assert "secret-b-model" in only_b["series"]["model"]["cost"]
    assert "gpt-4o" not in only_b["series"]["model"]["cost"]


def test_daily_series_latency_cache_and_refusals(client, ledger):
    client.force_login(member(ledger["a"], "view_aiusage"))
    data = page_data(client.get(URL, {"start": ledger["day1"].isoformat(), "end": ledger["day2"].isoformat()}))
    assert data["days"] == [ledger["day1"].isoformat(), ledger["day2"].isoformat()]
    by_provider = data["series"]["provider"]
    assert by_provider["cost"]["openai"] == pytest.approx([0.04, 0.0])
    assert by_provider["cost"]["anthropic"] == pytest.approx([0.0, 0.05])
    assert by_provider["requests"]["openai"] == [5, 1]  # four answers and an error; the cache hit
    assert data["series"]["service"]["requests"]["pages.summary"] == [0, 1]
    assert data["error_rate"] == [20.0, 0.0]
    assert data["cache"]["hits"] == [0, 1]
    assert data["cache"]["saved"] == pytest.approx([0.0, 0.012])
    latency = {(r["provider"], r["model"]): r for r in data["latency"]}
    assert (latency[("openai", "gpt-4o")]["p50"], latency[("openai", "gpt-4o")]["p95"]) == (200.0, 400.0)
    assert latency[("anthropic", "claude-3-5-sonnet-20241022")]["requests"] == 1
    assert data["refusals"] == [{"reason": "BudgetExceeded", "count": 1}, {"reason": "RateLimited", "count": 1}]


def test_budget_burn_down_forecasts_month_end(client, ledger):
    client.force_login(member(ledger["a"], "view_aiusage"))
    budget = page_data(client.get(URL))["budget"]
    today = timezone.localdate()
    in_month = [d for d in (ledger["day1"], ledger["day2"]) if d.month == today.month]
    spent = (Decimal("0.04") if ledger["day1"] in in_month else 0) + (
        Decimal("0.05") if ledger["day2"] in in_month else 0
    )
    assert budget["spent"] == spent
    length = len(budget["days"])
    assert budget["forecast"] == spent / today.day * length
    assert budget["cumulative"][today.day - 1] == pytest.approx(float(spent))
    assert all(v is None for v in budget["cumulative"][today.day :])


def test_a_call_through_the_gateway_shows_on_the_dashboard(client, emulated_site, upstream):
    site = emulated_site("openai")
    AIService(site=site).generate_content("Count me", model="gpt-4o")
    assert usage.flush()
    client.force_login(member(site, "view_aiusage"))
    data = page_data(client.get(URL))
    assert data["totals"]["requests"] == 1
    assert data["series"]["model"]["tokens"]["gpt-4o"][-1] == AIUsage.objects.get(site=site).total_tokens > 0


def test_permission_and_bad_input(client, ledger):
    client.force_login(member(ledger["a"]))  # staff with a site, without view_aiusage
    assert client.get(URL).status_code == 403
    assert client.get(CSV_URL).status_code == 403
    client.force_login(member(ledger["a"], "view_aiusage"))
    response = client.get(URL, {"start": "yesterday"})
    assert response.status_code == 200 and response.context["data"] is None
    assert "start: &#x27;yesterday&#x27; is not a date" in response.content.decode()
    response = client.get(CSV_URL, {"start": "2025-02-01", "end": "2025-01-01"})
    assert response.status_code == 400 and b"start must not be after end" in response.content


def test_linked_from_the_changelist_and_the_index(client, ledger):
    client.force_login(member(ledger["a"], "view_aiusage"))
    assert URL in client.get(reverse("admin:integrations_aiusage_changelist")).content.decode()
    assert URL in client.get(reverse("admin:index")).content.decode()
    client.force_login(member(ledger["a"], "view_modelmapping"))
    assert URL not in client.get(reverse("admin:index")).content.decode()


def test_percentile_is_nearest_rank():
    assert percentile([], 0.5) is None
    assert percentile([100, 200, 300, 400], 0.5) == 200
    assert percentile(list(range(1, 101)), 0.95) == 95


def test_unpriced_calls_are_counted_per_model_and_only_the_users_sites(client, ledger):
    """Issue 19: the dashboard counts the calls no price source knew, per model, within the user's scope."""
    row(
        ledger["a"],
        ledger["day2"],
        served_model="llama-local",
        provider="vllm",
        cost_source="unpriced",
        cost=Decimal("0.0077"),
    )
    row(
        ledger["a"],
        ledger["day1"],
        served_model="llama-local",
        provider="vllm",
        cost_source="unpriced",
        cost=Decimal("0.0077"),
    )
    row(ledger["b"], ledger["day2"], served_model="secret-b-unpriced", cost_source="unpriced")
    client.force_login(member(ledger["a"], "view_aiusage"))
    response = client.get(URL)
    assert page_data(response)["unpriced"] == [{"provider": "vllm", "model": "llama-local", "count": 2}]
    body = response.content.decode()
    assert "secret-b-unpriced" not in body and 'id="unpriced-table"' in body
    text = client.get(CSV_URL).content.decode()
    assert "unpriced,vllm,llama-local,2" in text and "secret-b-unpriced" not in text
