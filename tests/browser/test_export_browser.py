"""The ledger's Export in Chromium, as a site admin and as a superuser: narrow the list with a filter, press
Export, choose CSV, press Submit, and read the file the browser downloads. A site admin's file holds their
site's rows only (`tenancy.access`); the filter the list showed carries into the export. Screens go to
var/screenshots/.
"""

from __future__ import annotations

import csv
import io

import pytest

from tests.factories import AIUsageFactory, SiteFactory, SuperUserFactory

from .test_admin_truth_browser import SITE_ADMIN, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _export(page, screenshot, step: str) -> list[dict[str, str]]:
    """Press the list's Export button, choose CSV, submit: the downloaded file's rows."""
    page.click("a.export_link, a:has-text('Export')")
    page.wait_for_selector("select[name=format]")
    page.select_option("select[name=format]", label="csv")
    screenshot(step)
    with page.expect_download() as download:
        page.click("#content form [type=submit]")
    return list(csv.DictReader(io.StringIO(download.value.path().read_text())))


@pytest.mark.parametrize("role", ["site admin", "superuser"])
def test_export_downloads_what_the_list_shows_and_nothing_of_another_site(
    page, live_server, admin_login, screenshot, role
):
    bakery, bookshop = SiteFactory(domain="localhost", name="Bakery"), SiteFactory(domain="bookshop.test")
    for n in range(3):
        AIUsageFactory(site=bakery, service=f"bakery-call-{n}", served_model=f"bakery-model-{n}")
    AIUsageFactory(site=bookshop, service="bookshop-call", served_model="bookshop-model")
    user = member(bakery, "exporter", SITE_ADMIN) if role == "site admin" else SuperUserFactory(username="exporter")

    admin_login(user.username)
    page.goto(f"{live_server.url}/admin/integrations/aiusage/")
    screenshot(f"1-list-{role}")
    rows = _export(page, screenshot, f"2-export-form-{role}")
    expected = ["bakery-call-0", "bakery-call-1", "bakery-call-2"]
    if role == "superuser":
        expected.append("bookshop-call")
    assert sorted(r["service"] for r in rows) == expected
    if role == "site admin":
        assert not any("bookshop" in value for r in rows for value in r.values())

    page.goto(f"{live_server.url}/admin/integrations/aiusage/")
    page.click("#changelist-filter a:has-text('bakery-model-1')")  # the served-model filter, as a person clicks it
    page.wait_for_url("**served_model=bakery-model-1**")
    screenshot(f"3-filtered-{role}")
    assert [r["service"] for r in _export(page, screenshot, f"4-export-filtered-{role}")] == ["bakery-call-1"]
