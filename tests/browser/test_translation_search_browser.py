"""Translate -> review side by side -> accept -> edit the source -> stale -> re-translate, and find by meaning, in
Chromium as site admin and editor (issue 23). Each screen is written to var/screenshots/."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from pages import tasks, translation
from pages.models import PageTranslation, SiteLanguage
from tests.factories import SiteFactory, SiteMembershipFactory, UserFactory
from tests.factories_cms import BlockFactory, PageFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROLE_PERMS = {
    "site_admin": ["view_page", "add_page", "change_page", "delete_page", "view_block", "add_block", "change_block"],
    "editor": ["view_page", "change_page"],  # no add_page: the first translation (a new page) is a site admin's
}


def make_user(role: str, site) -> str:
    user = UserFactory(username=f"browser-{role}")
    SiteMembershipFactory(user=user, site=site)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="pages", codename__in=ROLE_PERMS[role]))
    return user.username


@pytest.mark.parametrize("role", ["site_admin", "editor"])
def test_translate_review_accept_then_stale_then_retranslate(
    page, live_server, admin_login, emulated_site, screenshot, role
):
    site = emulated_site("openai", site=SiteFactory(domain="localhost", name="Bakery (OpenAI)"))
    SiteLanguage.objects.create(site=site, code="en", name="English", is_default=True)
    SiteLanguage.objects.create(site=site, code="de", name="German")
    source = PageFactory(
        site=site,
        title="Sourdough bakery",
        slug="bakery",
        body="Our sourdough is baked daily.",
        meta_title="Bakery",
        meta_description="Fresh bread every morning.",
    )
    BlockFactory(page=source, type="hero", order=0, content={"heading": "Welcome", "cta_url": "/order/"})
    if role == "editor":  # an editor may not create pages: a site admin made the first translation
        proposal = translation.propose(source, "de")
        translation.accept(proposal, dict(proposal.translated))
    admin_login(make_user(role, site))

    page.goto(f"{live_server.url}/admin/pages/page/{source.pk}/change/")
    page.click("a.translate-link")
    page.wait_for_selector("#translate-form")
    page.select_option("select[name=language]", "de")
    page.click("#translate-form input[type=submit]")
    page.wait_for_selector("#accept-translation-form")
    screenshot("1-review")
    body_row = page.locator("tr[data-key=body]")
    assert body_row.locator("td.source").inner_text() == "Our sourdough is baked daily."
    assert body_row.locator("textarea, input[type=text]").input_value() == "[de] Our sourdough is baked daily."
    page.locator("tr[data-key=title] input[type=text]").fill("Sauerteig-Bäckerei")
    page.click("input[name=_accept]")
    page.wait_for_selector(".messagelist .success")
    screenshot("2-saved")
    translated = PageTranslation.objects.get(source=source, language="de").page
    assert page.url.endswith(f"/admin/pages/page/{translated.pk}/change/")
    assert translated.title == "Sauerteig-Bäckerei" and translated.body == "[de] Our sourdough is baked daily."
    assert translated.blocks.get().content == {"heading": "[de] Welcome", "cta_url": "/order/"}
    assert "The de translation of" in page.inner_text(".field-translations")
    assert "pages.translate" in page.inner_text(".field-ai_provenance")

    # The source changes: the translation shows as stale in the list and on the source's form.
    page.goto(f"{live_server.url}/admin/pages/page/{source.pk}/change/")
    page.fill("textarea[name=body]", "Our sourdough is baked twice a day.")
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist .success")
    assert "stale (1 field changed in the source)" in page.inner_text(".field-translations")
    page.goto(f"{live_server.url}/admin/pages/page/")
    assert "translation stale (1)" in page.inner_text(f"#result_list tr:has(a[href$='/{translated.pk}/change/'])")
    screenshot("3-stale")

    # Re-translate only what changed: one field reviewed, the person's title kept.
    page.goto(f"{live_server.url}/admin/pages/page/{source.pk}/translate/")
    assert "stale: body (changed in the source)" in page.inner_text("#translations")
    page.select_option("select[name=language]", "de")
    page.check("input[name=only_stale]")
    page.click("#translate-form input[type=submit]")
    page.wait_for_selector("#accept-translation-form")
    screenshot("4-retranslate")
    assert page.locator("tr[data-key]").count() == 1
    assert page.locator("tr[data-key=body] td.current").inner_text() == "[de] Our sourdough is baked daily."
    page.click("input[name=_accept]")
    page.wait_for_selector(".messagelist .success")
    translated.refresh_from_db()
    assert translated.title == "Sauerteig-Bäckerei" and translated.body == "[de] Our sourdough is baked twice a day."
    assert translation.stale_units(translated.translation_of) == {}


@pytest.mark.parametrize("role", ["site_admin", "editor"])
def test_find_by_meaning_puts_the_expected_page_first(page, live_server, admin_login, emulated_site, screenshot, role):
    site = emulated_site("openai", site=SiteFactory(domain="localhost", name="Town (OpenAI)"))
    seeded = {
        "bakery": ("The bakery", "Sourdough bread, rye bread and baking recipes from our ovens."),
        "florist": ("Flower shop", "Roses, tulips and wedding bouquets arranged by hand."),
        "garage": ("Car repairs", "Brakes, tyres and engine servicing for every car."),
        "cafe": ("Coffee corner", "Espresso, cappuccino and tea with cake and toasted bread."),
    }
    pages = {slug: PageFactory(site=site, slug=slug, title=title, body=body) for slug, (title, body) in seeded.items()}
    tasks.start_embed(site)
    admin_login(make_user(role, site))
    page.goto(f"{live_server.url}/admin/pages/page/")
    page.fill("#meaning-q", "bread recipes")
    page.click("#meaning-form input[type=submit]")
    page.wait_for_selector("#result_list")
    screenshot("1-bread-recipes")
    assert page.locator("#result_list tbody tr").count() >= 2  # the cafe mentions bread too: ranked below
    first = page.locator("#result_list tbody tr").first
    assert first.locator("th a, td a").first.inner_text() == "The bakery"
    page.goto(f"{live_server.url}/admin/pages/page/{pages['bakery'].pk}/change/")
    assert "Coffee corner" in page.inner_text(".field-related_pages")
    screenshot("2-related")
