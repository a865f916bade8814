"""The usage dashboard in a real browser (issue 14): Chart.js draws it, and a site admin's page
holds none of another site's numbers, in the charts' data or anywhere on the page."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from integrations.models import AIUsage
from integrations.usage import rollups as usage_rollups
from tests.factories import AIProviderSettingsFactory, SiteFactory, SiteMembershipFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def spread(site, model: str, service: str, cost: str, days: int = 10, users: tuple = ()) -> None:
    """A plausible fortnight of ledger rows for one site, with errors, cache hits and refusals; the
    answered calls made for `users` in turn (none: no user known)."""
    today = timezone.localdate()
    for n in range(days):
        day = today - datetime.timedelta(days=n)
        made = []
        for i in range(3 + n % 4):
            made.append(
                AIUsage.objects.create(
                    site=site,
                    service=service if i % 2 else "pages.meta",
                    provider="openrouter" if i % 3 else "anthropic",
                    served_model=model if i % 3 else "claude-3-5-sonnet-20241022",
                    status="ok",
                    prompt_tokens=300 + 10 * i,
                    completion_tokens=120,
                    total_tokens=420 + 10 * i,
                    cached_tokens=100 if i == 0 else 0,
                    cost=Decimal(cost) * (1 + i),
                    saved_cost=Decimal("0.0004"),
                    latency_ms=200 + 150 * i + 10 * n,
                    user=users[i % len(users)] if users else None,
                )
            )
        made.append(
            AIUsage.objects.create(
                site=site,
                service="pages.meta",
                provider="openrouter",
                served_model=model,
                status="error",
                error_class="ProviderUnavailable",
                latency_ms=3000,
            )
        )
        if n % 3 == 0:
            made.append(
                AIUsage.objects.create(
                    site=site,
                    service="pages.meta",
                    provider="openrouter",
                    served_model=model,
                    status="cached",
                    cache_hit=True,
                    cost=0,
                    saved_cost=Decimal(cost),
                )
            )
            made.append(
                AIUsage.objects.create(
                    site=site,
                    service="pages.meta",
                    provider="openrouter",
                    requested_model=model,
                    status="refused",
                    error_class="BudgetExceeded" if n else "RateLimited",
                )
            )
        AIUsage.objects.filter(pk__in=[m.pk for m in made]).update(
            created_at=timezone.make_aware(datetime.datetime.combine(day, datetime.time(10)))
        )
        usage_rollups.add(AIUsage.objects.filter(pk__in=[m.pk for m in made]))  # as the ledger writer does


@pytest.fixture
def two_sites(db):
    SiteFactory(domain="localhost", name="Admin host")  # the live server's host
    site_a = SiteFactory(domain="a.example.test", name="Site A")
    site_b = SiteFactory(domain="b.example.test", name="Site B")
    AIProviderSettingsFactory(site=site_a, monthly_budget=Decimal("5"))
    AIProviderSettingsFactory(site=site_b, monthly_budget=Decimal("900"))
    spread(site_a, "openai/gpt-4o-mini", "pages.summary", "0.004")
    spread(site_b, "b-secret/model-x", "b.private.service", "0.9")
    return site_a, site_b


def chart_labels(page, canvas_id: str) -> list[str]:
    return page.evaluate(f"Chart.getChart('{canvas_id}').data.datasets.map(d => d.label)")


def test_superuser_dashboard_with_site_filter(page, live_server, admin_login, two_sites, screenshot):
    _, site_b = two_sites
    UserFactory(username="dash-root", is_superuser=True)
    admin_login("dash-root")
    page.click("text=AI usage dashboard")
    page.wait_for_function("window.Chart && Chart.getChart('chart-cost')")
    assert page.inner_text("#dashboard-scope") == "all sites"
    assert set(chart_labels(page, "chart-cost")) == {"OpenRouter", "Anthropic"}  # providers as words
    page.check("input[name=dimension][value=model]")
    assert "b-secret/model-x" in chart_labels(page, "chart-cost")
    screenshot("all-sites")
    page.select_option("#dashboard-site", str(site_b.pk))
    page.click("input[type=submit][value=Show]")
    page.wait_for_function("window.Chart && Chart.getChart('chart-cost')")
    assert page.inner_text("#dashboard-scope") == "Site B (b.example.test)"
    page.check("input[name=dimension][value=service]")
    assert "pages.summary" not in chart_labels(page, "chart-cost")
    screenshot("site-b")


def test_site_admin_sees_no_numbers_of_another_site(page, live_server, admin_login, two_sites, screenshot):
    site_a, _ = two_sites
    user = UserFactory(username="dash-a")
    SiteMembershipFactory(user=user, site=site_a)
    user.user_permissions.set(Permission.objects.filter(codename__in=["view_aiusage"]))
    admin_login("dash-a")
    page.click("#content-main a[href$='/integrations/aiusage/']")  # the ledger, then its dashboard link
    page.click("#usage-dashboard-link a")
    page.wait_for_function("window.Chart && Chart.getChart('chart-budget')")
    assert page.locator("#dashboard-site").count() == 0  # one site: no filter to offer
    for dimension in ("provider", "model", "service"):
        page.check(f"input[name=dimension][value={dimension}]")
        for canvas in ("chart-cost", "chart-requests", "chart-tokens"):
            labels = chart_labels(page, canvas)
            assert labels and not any("b-secret" in x or "b.private" in x for x in labels)
    data = page.inner_text("#dashboard-data")
    html = page.content()
    for leak in ("b-secret", "b.private.service", "b.example.test", "900.00"):
        assert leak not in data and leak not in html
    assert page.evaluate("Chart.getChart('chart-latency').data.labels").count("OpenRouter · openai/gpt-4o-mini") == 1
    assert set(page.evaluate("Chart.getChart('chart-refusals').data.labels")) == {"Budget exceeded", "Rate limited"}
    screenshot("site-a")
    with page.expect_download() as download:
        page.click("#dashboard-csv")
    text = download.value.path().read_text()
    assert "a.example.test" in text and "b.example.test" not in text and "b-secret" not in text


def test_site_admin_sees_spend_by_their_sites_editors_only(page, live_server, admin_login, screenshot):
    """Issue 27: the per-editor breakdown, in the page a site admin gets and in its CSV download."""
    SiteFactory(domain="localhost", name="Admin host")
    site_a = SiteFactory(domain="a.example.test", name="Site A")
    site_b = SiteFactory(domain="b.example.test", name="Site B")
    AIProviderSettingsFactory(site=site_a, monthly_budget=Decimal("5"))
    AIProviderSettingsFactory(site=site_b, monthly_budget=Decimal("900"))
    writers = (UserFactory(username="anna-writer"), UserFactory(username="ben-writer"))
    spread(site_a, "openai/gpt-4o-mini", "pages.summary", "0.004", users=writers)
    spread(site_b, "b-secret/model-x", "b.private.service", "0.9", users=(UserFactory(username="b-only-editor"),))
    viewer = UserFactory(username="dash-editors")
    SiteMembershipFactory(user=viewer, site=site_a)
    viewer.user_permissions.set(Permission.objects.filter(codename__in=["view_aiusage"]))
    admin_login("dash-editors")
    page.goto(f"{live_server.url}/admin/integrations/aiusage/dashboard/")
    rows = page.locator("#editor-table tbody tr")
    names = [rows.nth(i).locator("td").first.inner_text() for i in range(rows.count())]
    assert sorted(names) == ["anna-writer", "ben-writer"]
    costs = {user.username: sum(r.cost for r in AIUsage.objects.filter(user=user, site=site_a)) for user in writers}
    first = rows.nth(0).locator("td")
    assert first.nth(1).inner_text() == "a.example.test"
    assert first.nth(5).inner_text() == f"${costs[names[0]]:.4f}"
    assert "b-only-editor" not in page.content()
    screenshot("editors")
    with page.expect_download() as download:
        page.click("#dashboard-csv")
    text = download.value.path().read_text()
    editors = [line.split(",")[1] for line in text.splitlines() if line.startswith("editors,")]
    assert sorted(editors) == ["anna-writer", "ben-writer"] and "b-only-editor" not in text
