"""Issue 13 (3): a site admin edits the failover chain and OpenRouter routing as forms, in Chromium.

Add a fallback row, move it to the top, set routing options, save; the record holds the JSON the
provider layer reads, and the page has no textarea of JSON left.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from integrations.models import AIProviderSettings
from tests.factories import SiteFactory, SiteMembershipFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NO_JSON_TEXTAREAS = """Array.from(document.querySelectorAll('textarea'))
    .map(t => t.value.trim()).filter(v => v.startsWith('[') || v.startsWith('{'))"""


def test_a_site_admin_edits_the_failover_chain_and_routing(
    page, live_server, admin_login, emulated_site, upstream, screenshot
):
    site = emulated_site(
        "openrouter",
        also=("openai", "anthropic"),
        site=SiteFactory(domain="localhost", name="Browser bakery"),
        is_demo_upstream=True,
        fallback_chain=[{"provider": "anthropic", "model": ""}],
        allowed_models=["gpt-4o-mini", "claude-*"],
    )
    record = AIProviderSettings.objects.get(site=site)
    user = UserFactory(username="chain-site-admin")
    SiteMembershipFactory(user=user, site=site)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="integrations",
            codename__in=["view_aiprovidersettings", "change_aiprovidersettings"],
        )
    )
    admin_login("chain-site-admin")

    page.goto(f"{live_server.url}/admin/integrations/aiprovidersettings/{record.pk}/change/")
    chain = page.locator("#id_fallback_chain")
    chain.wait_for(state="attached")
    # the sections are collapsed (issue 28): open them all
    page.evaluate("document.querySelectorAll('#aiprovidersettings_form details').forEach(d => { d.open = true; })")
    screenshot("1-form")
    assert page.evaluate(NO_JSON_TEXTAREAS) == []
    assert page.locator("#id_allowed_models").input_value() == "gpt-4o-mini\nclaude-*"
    assert "Browser bakery (localhost)" in page.inner_text("#id_site")
    rows = chain.locator("tbody tr")
    assert rows.count() == 3  # the stored entry and two spare rows
    assert rows.nth(0).locator("select").input_value() == "anthropic"

    # Add a fallback, fill it in, and move it to the top.
    chain.locator("button.row-add").click()
    assert rows.count() == 4
    name = rows.nth(3).locator("select").get_attribute("name")
    assert name == "fallback_chain-3-provider"  # a fresh index: the template row, numbered on add
    added = chain.locator(f"tbody tr:has(select[name='{name}'])")  # the same row wherever it moves
    added.locator("select").select_option(label="OpenAI")
    added.locator("input[name$='-model']").fill("gpt-4o-mini")
    for _ in range(3):
        added.locator("button.row-up").click()
    assert rows.nth(0).locator("select").input_value() == "openai"
    assert chain.locator(".row-order-input").evaluate_all("els => els.map(e => e.value)") == ["1", "2", "3", "4"]

    # Routing, as fields.
    page.fill("#id_openrouter_routing_order", "anthropic, openai")
    page.uncheck("#id_openrouter_routing_allow_fallbacks")
    page.select_option("#id_openrouter_routing_sort", "price")
    page.select_option("#id_openrouter_routing_data_collection", "deny")
    screenshot("2-edited")
    page.locator(".form-row.field-openrouter_routing").screenshot(
        path=str(screenshot("2-edited")).replace("2-edited", "2-routing")
    )
    chain.screenshot(path=str(screenshot("2-edited")).replace("2-edited", "2-chain"))
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist .success")
    screenshot("3-saved")
    page.evaluate("document.querySelectorAll('#aiprovidersettings_form details').forEach(d => { d.open = true; })")

    record.refresh_from_db()
    assert record.fallback_chain == [
        {"provider": "openai", "model": "gpt-4o-mini"},
        {"provider": "anthropic", "model": ""},
    ]
    assert record.openrouter_routing == {
        "order": ["anthropic", "openai"],
        "allow_fallbacks": False,
        "sort": "price",
        "data_collection": "deny",
    }
    assert record.allowed_models == ["gpt-4o-mini", "claude-*"]  # untouched fields keep their values

    # The page reads back what was saved, in the same fields.
    rows = page.locator("#id_fallback_chain tbody tr")
    assert [rows.nth(i).locator("select").input_value() for i in range(2)] == ["openai", "anthropic"]
    assert rows.nth(0).locator("input[name$='-model']").input_value() == "gpt-4o-mini"
    assert page.input_value("#id_openrouter_routing_order") == "anthropic, openai"
    assert not page.is_checked("#id_openrouter_routing_allow_fallbacks")
    assert page.input_value("#id_openrouter_routing_sort") == "price"
    assert page.evaluate(NO_JSON_TEXTAREAS) == []

    # Remove the first row again: the chain is what the rows say.
    rows.nth(0).locator("button.row-remove").click()
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist .success")
    screenshot("4-removed")
    record.refresh_from_db()
    assert record.fallback_chain == [{"provider": "anthropic", "model": ""}]
