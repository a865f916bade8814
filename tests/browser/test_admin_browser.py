"""A site admin sets a key and runs a live test prompt, in a real browser (issue 3)."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission

from integrations.models import AIProviderSettings
from tests.factories import AIProviderSettingsFactory, SiteFactory, SiteMembershipFactory, UserFactory

KEY = "sk-or-v1-" + "b7" * 24

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_site_admin_sets_a_key_and_tests_the_provider(page, live_server, admin_login, upstream):
    site = SiteFactory(domain="localhost", name="Browser site")
    other = AIProviderSettingsFactory(site=SiteFactory(domain="other.example.test"), provider_type="openai")
    record = AIProviderSettingsFactory(
        site=site, provider_type="openrouter", openrouter_base_url=upstream.openrouter_base_url
    )
    user = UserFactory(username="browser-admin")
    SiteMembershipFactory(user=user, site=site)
    user.user_permissions.set(
        Permission.objects.filter(
            codename__in=["view_aiprovidersettings", "change_aiprovidersettings", "view_modelmapping"]
        )
    )

    admin_login("browser-admin")
    page.click("text=AI provider settings")
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list").inner_text().count("other.example.test") == 0
    page.click(f"a[href$='/aiprovidersettings/{record.pk}/change/']")
    key_input = ".inline-related:has(input[name$='-name'][value='openrouter']) input[name$='-new_api_key']"
    page.wait_for_selector(key_input)
    assert "No key is set." in page.content()
    page.fill(key_input, KEY)
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist")
    assert f"A key is set, ending ••••{KEY[-4:]}" in page.content()
    assert AIProviderSettings.objects.get(pk=record.pk).api_key("openrouter") == KEY

    page.click("text=Test provider")
    page.wait_for_selector("#id_prompt")
    page.fill("#id_prompt", "Write a slogan for a bike shop")
    page.select_option("#id_model", "gpt-4o")
    page.click("input[name=_send]")
    page.wait_for_selector("#test-result")
    assert page.inner_text("#answer") == "Emulated openrouter reply (openai/gpt-4o): Write a slogan for a bike shop"
    assert page.inner_text("#result-tokens") == "7 prompt + 11 completion = 18"
    assert re.fullmatch(r"\d+ ms \(1 attempt\)", page.inner_text("#result-latency"))
    assert upstream.requests[-1].headers["authorization"] == f"Bearer {KEY}"

    page.fill("#id_prompt", "Stream a slogan for a bike shop")
    page.click("#stream-button")
    page.wait_for_function("document.getElementById('stream-stats').textContent.includes('tokens')")
    assert page.inner_text("#stream-answer") == (
        "Emulated openrouter reply (openai/gpt-4o): Stream a slogan for a bike shop"
    )
    assert "OpenRouter · openai/gpt-4o · 7 prompt + 11 completion = 18 tokens" in page.inner_text("#stream-stats")

    assert KEY not in page.content()
    assert KEY[10:] not in page.content()
    response = page.goto(f"{live_server.url}/admin/integrations/aiprovidersettings/{other.pk}/test/")
    assert response.status == 404
