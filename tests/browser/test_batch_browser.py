"""Batch work in Chromium as a site admin (issue 13, deliverable 5): select pages, read the estimate,
start, and watch the job page's progress reach done without reloading. Screens go to var/screenshots/."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission

from integrations.models import BatchJob
from pages.models import Page
from tests.factories import ModelPriceFactory, SiteFactory, SiteMembershipFactory, UserFactory
from tests.factories_cms import PageFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PERMS = ["view_page", "change_page", "view_batchjob", "change_batchjob"]


def test_site_admin_selects_pages_estimates_confirms_and_watches_progress(
    page, live_server, admin_login, emulated_site, upstream, screenshot
):
    site = emulated_site("openai", site=SiteFactory(domain="localhost", name="Bakery (OpenAI)"), monthly_budget=5)
    ModelPriceFactory(
        provider="openai",
        model_id="gpt-4o-mini",
        prompt_per_million=Decimal("0.15"),
        completion_per_million=Decimal("0.6"),
    )
    pages = PageFactory.create_batch(12, site=site, meta_title="", meta_description="")
    user = UserFactory(username="browser-batch-admin")
    SiteMembershipFactory(user=user, site=site)
    user.user_permissions.set(Permission.objects.filter(codename__in=PERMS))
    upstream.script(delay=0.25, times=12)  # slow enough that the page shows the job running
    admin_login(user.username)

    page.goto(f"{live_server.url}/admin/pages/page/")
    page.check("#action-toggle")
    page.select_option("select[name=action]", "generate_meta_batch")
    page.click("button[name=index]")
    page.wait_for_selector("table.batch-estimate")
    screenshot("1-estimate")
    row = page.locator("table.batch-estimate tbody tr").first
    assert row.locator(".estimate-items").inner_text() == "12"
    assert "3600" in row.locator(".estimate-tokens").inner_text()  # 12 x 300 output tokens at most
    assert row.locator(".estimate-cost").inner_text().startswith("$0.00")
    assert "left of $5.00" in row.locator(".estimate-budget").inner_text()
    assert BatchJob.objects.count() == 0 and upstream.requests == []

    page.click("input[name=_start]")
    page.wait_for_selector("#batch-job")
    job = BatchJob.objects.get()
    assert f"/admin/integrations/batchjob/{job.pk}/change/" in page.url
    screenshot("2-running")
    assert page.locator("form.batch-cancel button").is_visible()  # while it runs, it can be cancelled
    page.wait_for_function("document.getElementById('batch-status').textContent.trim() === 'Done'", timeout=30_000)
    screenshot("3-done")
    assert page.locator("#batch-bar").evaluate("el => el.value") == 100
    assert "12 of 12 done · 12 succeeded · 0 failed" in page.inner_text("#batch-counts")
    assert page.locator("#batch-items tbody tr").count() == 12
    assert page.locator("form.batch-cancel button").is_hidden() and page.locator("form.batch-retry button").is_hidden()
    assert Page.objects.filter(site=site, meta_title="").count() == 0

    page.goto(f"{live_server.url}/admin/integrations/batchjob/")
    screenshot("4-list")
    assert page.locator(".batch-progress progress").first.evaluate("el => el.value") == 100
    assert "12/12" in page.inner_text("#result_list")
    assert len(pages) == 12
