"""The admin tells the truth and explains itself (issue 28), in Chromium at 1366 and 375 px, as a
superuser, a site admin and an editor, clicking the real buttons:

- the test screen tests the chosen provider and key only (a rejected key, a model the policy forbids
  are shown as such), the site's chain only when "use the site's fallback chain" is ticked;
- batch jobs: the starter and the site's admins cancel and retry, editors see and cancel their own;
- every refusal is a page of the admin saying what is needed and whom to ask;
- Back after accepting generated meta sends no paid call again.
Screens go to var/screenshots/.
"""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import Permission

from integrations.ai.sites.site_config import invalidate_site
from integrations.models import AIProviderSettings, BatchJob
from pages.models import Page
from tests.factories import SiteFactory, SiteMembershipFactory, SuperUserFactory, UserFactory
from tests.factories_cms import PageFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = [1366, 375]
# As the demo's groups (fixtures/demo.json): a site admin manages the site's AI settings; an editor does not.
SITE_ADMIN = [
    "view_aiprovidersettings",
    "add_aiprovidersettings",
    "change_aiprovidersettings",
    "view_modelmapping",
    "view_aiusage",
    "view_batchjob",
    "view_page",
    "add_page",
    "change_page",
    "view_prompttemplate",
    "add_promptrun",
    "use_ai",
]
EDITOR = ["view_page", "change_page", "view_prompttemplate", "view_promptrun", "add_promptrun", "use_ai"]


def member(site, username: str, codenames: list[str], **fields):
    user = UserFactory(username=username, **fields)
    SiteMembershipFactory(user=user, site=site)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


def person(role: str, site):
    if role == "superuser":
        return SuperUserFactory(username="browser-root")
    if role == "site admin":
        return member(site, "browser-site-admin", SITE_ADMIN, first_name="Sam", last_name="Siteadmin")
    return member(site, "browser-editor", EDITOR)


def at(page, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 900})


def no_sideways_scroll(page) -> None:
    """The refusal and result boxes fit the window (no content cut off to the right at 375 px)."""
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


# -- 1. the test screen -------------------------------------------------------------------------------------
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("role", ["superuser", "site admin"])
def test_the_test_screen_tests_that_provider_and_key_only(
    page, live_server, admin_login, emulated_site, upstream, screenshot, role, width
):
    site = emulated_site(
        "openai",
        also=("anthropic",),
        site=SiteFactory(domain="localhost", name="Bakery"),
        fallback_chain=[{"provider": "anthropic", "model": ""}],
    )
    record = AIProviderSettings.objects.get(site=site)
    user = person(role, site)
    at(page, width)
    admin_login(user.username)

    page.goto(f"{live_server.url}/admin/integrations/aiprovidersettings/{record.pk}/test/")
    assert not page.is_checked("#id_use_chain")  # off unless asked for
    upstream.script(flavor="openai", status=401, times=2)  # the OpenAI key is rejected
    page.select_option("#id_provider", "openai")
    page.fill("#id_prompt", "Say hello")
    page.click("input[name=_send]")
    page.wait_for_selector("#test-error")
    screenshot(f"1-rejected-key-{width}")
    error = page.inner_text("#test-error")
    assert "authentication" in error.lower() and "#test-result" not in page.content()
    assert upstream.requests_for("anthropic") == []  # not silently answered by the fallback
    no_sideways_scroll(page)

    page.check("#id_use_chain")  # explicitly: the site's chain
    # the first priced answer of the server process loads the price catalogue: slow on a loaded machine
    page.click("input[name=_send]", timeout=60_000)
    page.wait_for_selector("#test-result")
    screenshot(f"2-with-chain-{width}")
    assert page.inner_text("#result-provider").lower().startswith("anthropic")
    assert "2 attempts" in page.inner_text("#result-latency")
    cost = page.inner_text("#result-cost")
    assert re.match(r"\$\d+\.\d+ \((from the price catalogue|from the price table|reported by the provider)\)", cost)

    AIProviderSettings.objects.filter(pk=record.pk).update(allowed_models=["gpt-4o-mini"])
    invalidate_site(site.pk)
    page.goto(f"{live_server.url}/admin/integrations/aiprovidersettings/{record.pk}/test/")
    page.select_option("#id_provider", "openai")
    page.select_option("#id_model", "gpt-4o")
    page.fill("#id_prompt", "Say hello")
    before = len(upstream.requests)
    page.click("input[name=_send]")
    page.wait_for_selector("#test-error")
    screenshot(f"3-policy-refusal-{width}")
    assert "does not allow the model gpt-4o" in page.inner_text("#test-error")
    assert len(upstream.requests) == before  # refused before any request, not swapped for another model


# -- 3. refusals in the admin's layout -------------------------------------------------------------------------
@pytest.mark.parametrize("width", WIDTHS)
def test_an_editor_is_refused_inside_the_admin_with_what_is_needed_and_whom_to_ask(
    page, live_server, admin_login, emulated_site, screenshot, width
):
    site = emulated_site("openai", site=SiteFactory(domain="localhost", name="Bakery"))
    record = AIProviderSettings.objects.get(site=site)
    member(site, "sam", SITE_ADMIN, first_name="Sam", last_name="Siteadmin", email="sam@bakery.example.test")
    other = SiteFactory(domain="books.example.test", name="Bookshop")
    member(other, "bob", SITE_ADMIN, first_name="Bob", last_name="Books")  # another tenant's admin: never named
    editor = person("editor", site)
    at(page, width)
    admin_login(editor.username)
    screens = {
        "test-screen": (
            f"/admin/integrations/aiprovidersettings/{record.pk}/test/",
            "permission to change this site's AI provider settings",
        ),
        "dashboard": ("/admin/integrations/aiusage/dashboard/", "permission to view AI usage"),
        "batch-jobs": ("/admin/integrations/batchjob/", "permission to view batch jobs"),
        "page-add": ("/admin/pages/page/add/", "permission to add pages"),
    }
    for name, (path, needed) in screens.items():
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 403
        screenshot(f"{name}-{width}")
        assert page.locator("#user-tools").is_visible()  # the admin's layout, logged in
        assert "403 Forbidden" not in page.content()
        assert needed in page.inner_text("#refusal-needed")
        admins = page.inner_text("#refusal-admins")
        assert "Sam Siteadmin" in admins and "sam@bakery.example.test" in admins and "Bob" not in admins
        no_sideways_scroll(page)
    page.click("text=Back to the overview")
    page.wait_for_selector("#content-main")
    assert page.url.endswith("/admin/")


# -- 2. batch controls ---------------------------------------------------------------------------------------
def pending_job(site, user, pages):
    """A job as the batch action starts it, not yet picked up by a worker (so cancelling it is immediate)."""
    ids = [p.pk for p in pages]
    return BatchJob.objects.create(
        kind="pages.generate_meta",
        site=site,
        created_by=user,
        status="pending",
        total=len(ids),
        params={"page_ids": ids, "keys": ids, "model": ""},
    )


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("role", ["superuser", "site admin", "editor"])
def test_batch_owners_cancel_and_retry_with_the_real_buttons(
    page, live_server, admin_login, emulated_site, upstream, screenshot, role, width
):
    site = emulated_site("openai", site=SiteFactory(domain="localhost", name="Bakery"))
    pages = PageFactory.create_batch(2, site=site, meta_title="", meta_description="")
    user = person(role, site)
    starter = user if role != "superuser" else member(site, "browser-starter", SITE_ADMIN)
    job = pending_job(site, starter, pages)
    at(page, width)
    admin_login(user.username)

    page.goto(f"{live_server.url}/admin/integrations/batchjob/")
    screenshot(f"1-list-{width}")
    assert f"#{job.pk}" in page.inner_text("#result_list")
    page.goto(f"{live_server.url}/admin/integrations/batchjob/{job.pk}/change/")
    page.click("form.batch-cancel button")
    page.wait_for_selector(".messagelist")
    screenshot(f"2-cancelled-{width}")
    assert f"Job #{job.pk} is cancelled" in page.inner_text(".messagelist")
    assert page.inner_text("#batch-status").startswith("Cancelled")
    job.refresh_from_db()
    assert job.status == "cancelled" and job.cancel_requested

    upstream.script(content=json.dumps({"meta_title": "Fresh bread", "meta_description": "Baked daily."}), times=2)
    page.click("form.batch-retry button")  # the unreached pages again
    page.wait_for_selector("#batch-job")
    assert f"over the 2 failed or unfinished item(s) of job #{job.pk}" in page.inner_text(".messagelist")
    page.wait_for_function("document.getElementById('batch-status').textContent.trim() === 'Done'", timeout=30_000)
    screenshot(f"3-retried-{width}")
    retried = BatchJob.objects.get(retry_of=job)
    assert retried.created_by == user and retried.succeeded == 2
    assert Page.objects.filter(site=site, meta_title="Fresh bread").count() == 2


@pytest.mark.parametrize("width", WIDTHS)
def test_an_editor_is_refused_another_persons_batch(page, live_server, admin_login, emulated_site, screenshot, width):
    site = emulated_site("openai", site=SiteFactory(domain="localhost", name="Bakery"))
    pages = PageFactory.create_batch(1, site=site)
    colleague = member(site, "colleague", EDITOR)
    theirs = pending_job(site, colleague, pages)
    editor = person("editor", site)
    mine = pending_job(site, editor, pages)
    at(page, width)
    admin_login(editor.username)
    page.goto(f"{live_server.url}/admin/integrations/batchjob/")
    listed = page.inner_text("#result_list")
    assert f"#{mine.pk}" in listed and f"#{theirs.pk}" not in listed  # an editor's list: their own jobs
    response = page.goto(f"{live_server.url}/admin/integrations/batchjob/{theirs.pk}/change/")
    screenshot(f"refused-{width}")
    assert response.status == 403
    assert "to have started this one" in page.inner_text("#refusal-needed")


# -- 5. Back after accepting meta -------------------------------------------------------------------------------
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("role", ["superuser", "site admin", "editor"])
def test_back_after_accepting_meta_sends_no_paid_call_again(
    page, live_server, admin_login, emulated_site, upstream, screenshot, role, width
):
    site = emulated_site("openai", site=SiteFactory(domain="localhost", name="Bakery"))
    target = PageFactory(site=site, title="Opening hours", meta_title="", meta_description="")
    user = person(role, site)
    upstream.script(content=json.dumps({"meta_title": "Open daily", "meta_description": "From seven."}), times=3)
    at(page, width)
    admin_login(user.username)
    page.goto(f"{live_server.url}/admin/pages/page/{target.pk}/change/")
    page.click("a.generate-meta-link")
    page.click("input[name=_generate]")
    page.wait_for_selector("#accept-meta-form")
    assert "/admin/pages/page/meta/review/?token=" in page.url  # the paid POST answered with a redirect
    screenshot(f"1-review-{width}")
    calls = len(upstream.requests)
    assert calls == 1
    page.reload()  # a reload of the review is a GET: no new call
    page.wait_for_selector("#accept-meta-form")
    assert len(upstream.requests) == calls
    page.click("input[name=_accept]")
    page.wait_for_selector(".messagelist")
    assert "Saved meta for 1 page(s)" in page.inner_text(".messagelist")
    target.refresh_from_db()
    assert target.meta_title == "Open daily"

    page.go_back()  # to the review screen: its proposal is saved, so back to the pages, no resubmission
    page.wait_for_selector(".messagelist")
    screenshot(f"2-after-back-{width}")
    assert "already saved or have expired" in page.inner_text(".messagelist")
    assert len(upstream.requests) == calls
    page.go_back()  # once more: the generate form itself, a GET
    page.wait_for_selector("input[name=_generate]")
    assert len(upstream.requests) == calls


# -- 4. money on the dashboard's chart axes ----------------------------------------------------------------------
@pytest.mark.parametrize("width", WIDTHS)
def test_dashboard_chart_axes_show_money_in_the_one_format(page, live_server, admin_login, screenshot, width):
    from decimal import Decimal

    from integrations.usage import rollups
    from tests.factories import AIProviderSettingsFactory, AIUsageFactory

    site = SiteFactory(domain="localhost", name="Bakery")
    AIProviderSettingsFactory(site=site, monthly_budget=Decimal("0.0001"))
    for cost in ("0.000025", "0.0000125"):  # Chart.js alone labels such an axis 2.5e-5
        rollups.add([AIUsageFactory(site=site, cost=Decimal(cost))])
    user = person("site admin", site)
    at(page, width)
    admin_login(user.username)
    page.goto(f"{live_server.url}/admin/integrations/aiusage/dashboard/")
    page.wait_for_function("window.panelCharts && window.panelCharts['chart-budget']")
    screenshot(f"dashboard-{width}")
    assert page.inner_text("[data-total=cost]") == "$0.0000375"
    for chart in ("chart-cost", "chart-budget"):
        labels = page.evaluate(f"window.panelCharts['{chart}'].scales.y.ticks.map((t) => t.label)")
        assert labels and all(re.fullmatch(r"\$\d[\d,]*\.\d+", str(label)) for label in labels), labels
    assert page.evaluate("[window.panelMoney(0.0000375), window.panelMoney(5), window.panelMoney(1234.5)]") == [
        "$0.0000375",
        "$5.00",
        "$1,234.50",
    ]
