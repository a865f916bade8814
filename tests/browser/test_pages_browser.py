"""Generate -> preview -> accept in Chromium, as superuser, site admin and editor (issue 13, deliverable 4).

Meta proposals appear next to the current values with counts against 60/160, are edited, and only
the ticked ones are saved; a generated block is shown rendered and as its type's form, edited, then
added. Each screen is written to var/screenshots/.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from pages.models import Block, Page
from tests.factories import SiteFactory, SiteMembershipFactory, SuperUserFactory, UserFactory
from tests.factories_cms import PageFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROLE_PERMS = {
    "site_admin": ["view_page", "add_page", "change_page", "delete_page", "view_block", "add_block", "change_block"],
    "editor": ["view_page", "change_page"],
}


def make_user(role: str, site) -> str:
    if role == "superuser":
        SuperUserFactory(username="browser-root")
        return "browser-root"
    user = UserFactory(username=f"browser-{role}")
    SiteMembershipFactory(user=user, site=site)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="pages", codename__in=ROLE_PERMS[role]))
    return user.username


@pytest.mark.parametrize("role", ["superuser", "site_admin", "editor"])
def test_generate_meta_preview_edit_accept(page, live_server, admin_login, emulated_site, screenshot, role):
    site = emulated_site("anthropic", site=SiteFactory(domain="localhost", name="Bookshop (Anthropic)"))
    target = PageFactory(
        site=site,
        title="Autumn reads",
        meta_title="Old title",
        meta_description="",
        body="Our autumn picks: cosy mysteries, new poetry and books for long evenings.",
    )
    other = PageFactory(site=site, title="Events", meta_title="", meta_description="", body="Readings every Friday.")
    admin_login(make_user(role, site))

    page.goto(f"{live_server.url}/admin/pages/page/")
    page.wait_for_selector("#result_list")
    assert "Bookshop (Anthropic)" in page.inner_text("#result_list")  # sites by name
    for pk in (target.pk, other.pk):
        page.check(f"input[name=_selected_action][value='{pk}']")
    page.select_option("select[name=action]", "generate_meta")
    page.click("button[name=index]")
    page.wait_for_selector("#accept-meta-form")
    screenshot("1-review")
    box = page.locator(f".meta-proposal[data-page='{target.pk}']")
    assert "Old title" in box.locator("td.current").first.inner_text()
    title_input = box.locator("input[name^=meta_title-]")
    assert title_input.input_value().startswith("Autumn reads")
    assert Page.objects.get(pk=target.pk).meta_title == "Old title"  # nothing written yet

    title_input.fill("x" * 61)
    assert box.locator(".char-count").first.inner_text() == "61/60"
    assert "over-limit" in box.locator(".char-count").first.get_attribute("class")
    page.click("input[name=_accept]")
    page.wait_for_selector(".errornote")
    screenshot("2-over-limit")
    assert "Meta title is 61 characters; at most 60." in page.inner_text(f".meta-proposal[data-page='{target.pk}']")
    assert Page.objects.get(pk=target.pk).meta_title == "Old title"

    box = page.locator(f".meta-proposal[data-page='{target.pk}']")
    box.locator("input[name^=meta_title-]").fill("Autumn reads | Cosy books")
    page.locator(f".meta-proposal[data-page='{other.pk}'] input[type=checkbox]").uncheck()
    page.click("input[name=_accept]")
    page.wait_for_selector(".messagelist .success")
    screenshot("3-saved")
    assert "Saved meta for 1 page(s): Autumn reads." in page.inner_text(".messagelist")
    saved = Page.objects.get(pk=target.pk)
    assert saved.meta_title == "Autumn reads | Cosy books" and saved.meta_description.startswith("Our autumn picks")
    assert Page.objects.get(pk=other.pk).meta_title == ""


@pytest.mark.parametrize("role", ["superuser", "site_admin", "editor"])
def test_generate_block_preview_edit_accept(page, live_server, admin_login, emulated_site, screenshot, role):
    site = emulated_site("openrouter", site=SiteFactory(domain="localhost", name="Bakery (OpenRouter)"))
    target = PageFactory(site=site, title="Wedding cakes", body="Tiered cakes made to order.")
    admin_login(make_user(role, site))

    page.goto(f"{live_server.url}/admin/pages/page/{target.pk}/change/")
    page.click("text=Generate block with AI")
    page.wait_for_selector("#generate-block-form")
    page.select_option("#id_type", "faq")
    page.click("input[name=_generate]")
    page.wait_for_selector("#block-proposal")
    screenshot("1-proposal")
    assert "What makes wedding cakes special?" in page.inner_text(".proposal-preview dl")
    assert page.locator("#accept-block-form textarea, #accept-block-form input[type=text]").count() >= 6
    assert page.locator("#accept-block-form textarea[name=content]").count() == 0  # no raw JSON
    assert not Block.objects.filter(page=target).exists()

    page.fill("input[name='items-0-question']", "Do you deliver cakes?")
    page.click("input[name=_accept]")
    page.wait_for_selector(".messagelist .success")
    screenshot("2-added")
    assert "Added a FAQ block." in page.inner_text(".messagelist")
    block = Block.objects.get(page=target)
    assert block.content["items"][0]["question"] == "Do you deliver cakes?"
    assert "Do you deliver cakes?" in page.inner_text(".inline-group")  # rendered on the page form


@pytest.mark.parametrize("role", ["superuser", "site_admin", "editor"])
def test_admin_index_overview(page, live_server, admin_login, emulated_site, screenshot, role):
    site = emulated_site(
        "openrouter", site=SiteFactory(domain="localhost", name="Bakery (OpenRouter)"), monthly_budget=25
    )
    emulated_site("anthropic", site=SiteFactory(domain="books.example.test", name="Bookshop (Anthropic)"))
    admin_login(make_user(role, site))
    page.goto(f"{live_server.url}/admin/")
    page.wait_for_selector("#site-overview")
    screenshot("index")
    text = page.inner_text("#site-overview")
    assert "Bakery (OpenRouter)" in text and ("Bookshop (Anthropic)" in text) == (role == "superuser")
    assert page.inner_text("#site-name") == "Panel AI" and page.locator("text=View site").count() == 0
