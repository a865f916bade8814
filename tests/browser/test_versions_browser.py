"""Prompt template versions in Chromium (issue 15): save, save as draft, history with diff, rollback."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from prompts.models import PromptTemplate
from tests.factories import SiteFactory, SiteMembershipFactory, UserFactory
from tests.factories_cms import PromptTemplateFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_version_history_diff_and_rollback(page, live_server, admin_login, emulated_site, screenshot, upstream):
    site = emulated_site("openai", site=SiteFactory(domain="localhost", name="Bakery"))
    template = PromptTemplateFactory(
        site=site,
        name="Product blurb",
        slug="product-blurb",
        template="Write a blurb for {product} aimed at {audience}.",
    )
    user = UserFactory(username="browser-versions")
    SiteMembershipFactory(user=user, site=site)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="prompts",
            codename__in=["view_prompttemplate", "change_prompttemplate", "add_promptrun", "view_promptrun"],
        )
    )
    admin_login("browser-versions")

    change = f"{live_server.url}/admin/prompts/prompttemplate/{template.pk}/change/"
    page.goto(change)
    page.fill("#id_template", "Sell {product} to {audience} in one line.")
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist")
    page.fill("#id_template", "DRAFT: {product} for {audience}, playful.")
    page.check("#id_save_as_draft")
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist")
    screenshot("1-form-with-labels")
    assert "v2" in page.inner_text(".field-production_label") and "v3" in page.inner_text(".field-draft_label")

    page.click("a.versions-link")
    page.wait_for_selector("#version-3")
    screenshot("2-history")
    v3 = page.locator("#version-3")
    assert "draft" in v3.locator("h2").inner_text()
    assert "+ DRAFT: {product} for {audience}, playful." in v3.locator(".add").inner_text()
    assert "- Sell {product} to {audience} in one line." in v3.locator(".del").inner_text()
    assert "production" in page.locator("#version-2 h2").inner_text()

    page.locator("#version-1 button.rollback").click()
    page.wait_for_selector("#version-4")
    screenshot("3-after-rollback")
    assert "rollback to v1" in page.inner_text("#version-4 h2") and "production" in page.inner_text("#version-4 h2")
    template = PromptTemplate.objects.get(pk=template.pk)
    assert template.production_version.text == "Write a blurb for {product} aimed at {audience}."

    # the next run sends the rolled-back text
    page.goto(f"{live_server.url}/admin/prompts/prompttemplate/{template.pk}/run/")
    page.fill("#id_product", "rye")
    page.fill("#id_audience", "students")
    assert page.input_value("#id_site") == str(site.pk)  # their one site, not asked (issue 28)
    page.click("#content-main form [type=submit]")
    page.wait_for_selector("#save-form")
    assert upstream.requests[-1].json["messages"][-1]["content"] == "Write a blurb for rye aimed at students."

    page.goto(f"{live_server.url}/admin/prompts/prompttemplate/{template.pk}/versions/")
    page.locator("#version-3 button.promote").click()
    page.wait_for_selector(".messagelist")
    screenshot("4-draft-promoted")
    assert "production" in page.inner_text("#version-3 h2")


def test_trial_side_by_side_then_promote(page, live_server, admin_login, emulated_site, screenshot, upstream):
    from prompts.models import PromptRun

    site = emulated_site("openrouter", site=SiteFactory(domain="localhost", name="Bakery"))
    template = PromptTemplateFactory(
        site=site,
        name="Product blurb",
        slug="product-blurb",
        default_model="",
        template="Write a blurb for {product} aimed at {audience}.",
    )
    user = UserFactory(username="browser-trial")
    SiteMembershipFactory(user=user, site=site)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="prompts",
            codename__in=["view_prompttemplate", "change_prompttemplate", "add_promptrun", "view_promptrun"],
        )
    )
    admin_login("browser-trial")
    for product in ("rye bread", "croissants"):
        page.goto(f"{live_server.url}/admin/prompts/prompttemplate/{template.pk}/run/")
        page.fill("#id_product", product)
        page.fill("#id_audience", "students")
        assert page.input_value("#id_site") == str(site.pk)  # their one site, not asked (issue 28)
        page.click("#content-main form [type=submit]")
        page.wait_for_selector("#save-form")
        page.click("#save-form [name=_save]")
        page.wait_for_selector(".messagelist")
    assert PromptRun.objects.filter(template=template).count() == 2

    page.goto(f"{live_server.url}/admin/prompts/prompttemplate/{template.pk}/change/")
    page.fill("#id_template", "Pitch {product} to {audience} in a cheerful tone.")
    page.check("#id_save_as_draft")
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist")
    page.click("a.versions-link")
    page.wait_for_selector("#trial-form")
    assert page.locator("#id_version option:checked").inner_text() == "Product blurb v2"
    page.fill("#id_items", "2")
    page.click("button.start-trial")
    page.wait_for_selector("#trial-items")
    screenshot("1-side-by-side")
    assert "Done" in page.inner_text("#trial-status") and "2/2" in page.inner_text("#trial-status")
    rows = page.locator("tr.trial-item")
    assert rows.count() == 2
    assert "Pitch" not in rows.first.locator("td.old").inner_text()
    assert "tokens" in rows.first.locator("td.new .numbers").inner_text()
    assert " ms" in rows.first.locator("td.new .numbers").inner_text()
    assert "$" in page.inner_text("#trial-totals .new-total")
    assert upstream.requests[-1].json["messages"][-1]["content"].startswith("Pitch ")

    page.click("button.promote")
    page.wait_for_selector("#version-2")
    screenshot("2-promoted")
    assert "production" in page.inner_text("#version-2 h2")
