"""Issue 13 (1): settings with keys can be saved, and every key can be checked, in a real browser.

The change form once nested the "Check … key" forms inside the admin's main form; a browser closes
the main form at the first inner `</form>`, so Save did nothing once a site had a key. These tests
drive the page in Chromium as a superuser and as a site admin with keys for all three providers.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission

from integrations.models import AIProviderSettings
from tests.conftest import EMULATED_KEYS
from tests.factories import SiteFactory, SiteMembershipFactory, SuperUserFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def make_user(role: str, site) -> str:
    if role == "superuser":
        SuperUserFactory(username="browser-root")
        return "browser-root"
    user = UserFactory(username="browser-site-admin")
    SiteMembershipFactory(user=user, site=site)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="integrations",
            codename__in=["view_aiprovidersettings", "change_aiprovidersettings"],
        )
    )
    return "browser-site-admin"


@pytest.mark.parametrize("role", ["superuser", "site_admin"])
def test_settings_with_keys_save_and_every_key_checks(
    page, live_server, admin_login, emulated_site, upstream, screenshot, role
):
    site = emulated_site(
        "openrouter",
        also=("openai", "anthropic"),
        site=SiteFactory(domain="localhost", name="Browser bakery"),
        is_demo_upstream=True,
    )
    record = AIProviderSettings.objects.get(site=site)
    change_url = f"{live_server.url}/admin/integrations/aiprovidersettings/{record.pk}/change/"
    admin_login(make_user(role, site))

    page.goto(change_url)
    page.wait_for_selector("#aiprovidersettings_form")
    screenshot("1-change-form")
    notice = page.locator(".demo-upstream-notice li")
    assert notice.inner_text() == "Demo upstream: answers come from the local emulator, not a real model."
    assert notice.get_attribute("class") == "info"
    assert page.locator(".errornote").count() == 0
    buttons = page.locator(".check-key-button")
    assert buttons.all_inner_texts() == ["Check OpenRouter key", "Check OpenAI key", "Check Anthropic key"]
    # No form inside a form: every check button belongs to the separate check-key form.
    assert page.locator("#aiprovidersettings_form form").count() == 0
    assert (
        page.evaluate("Array.from(document.querySelectorAll('.check-key-button')).map(b => b.form.id)")
        == ["check-key-form"] * 3
    )

    # Save: the settings change and Django says so.
    # The OpenRouter row of the credentials inline (one row per provider, the same fields for each).
    page.fill(
        ".inline-related:has(input[name$='-name'][value='openrouter']) input[name$='-default_model']", "openai/gpt-4.1"
    )
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")
    screenshot("2-saved")
    assert "was changed successfully" in page.inner_text(".messagelist .success")
    assert page.url.endswith("/admin/integrations/aiprovidersettings/")
    record.refresh_from_db()
    assert record.credential("openrouter").default_model == "openai/gpt-4.1"
    assert {p: record.api_key(p) for p in EMULATED_KEYS} == EMULATED_KEYS  # keys kept

    # Save and continue editing: back on the same form, with the new value.
    page.goto(change_url)
    page.click("summary:has-text('Failover and budget')")  # a collapsed section (issue 28)
    page.fill("#id_monthly_budget", "12.50")
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist .success")
    screenshot("3-saved-and-continued")
    assert "You may edit it again below." in page.inner_text(".messagelist .success")
    assert page.url.rstrip("/").endswith(f"/aiprovidersettings/{record.pk}/change")
    assert Decimal(page.input_value("#id_monthly_budget")) == Decimal("12.50")
    record.refresh_from_db()
    assert record.monthly_budget == Decimal("12.50")

    # Every check-key button reaches its provider and reports back.
    expected = {
        "OpenRouter": "OpenRouter key works: used $",
        "OpenAI": "OpenAI key works: ",
        "Anthropic": "Anthropic key works: ",
    }
    for label, start in expected.items():
        before = len(upstream.requests)
        page.click(f".check-key-button:has-text('Check {label} key')")
        page.wait_for_selector(".messagelist .success")
        screenshot(f"4-check-{label.lower()}")
        text = page.inner_text(".messagelist .success")
        assert text.startswith(start), text
        assert len(upstream.requests) > before
        assert page.url.rstrip("/").endswith(f"/aiprovidersettings/{record.pk}/change")
    assert page.locator(".messagelist .error").count() == 0
    html = page.content()
    for key in EMULATED_KEYS.values():
        assert key not in html and key[10:] not in html
    record.refresh_from_db()
    assert record.credential("openrouter").default_model == "openai/gpt-4.1"
    assert record.monthly_budget == Decimal("12.50")
