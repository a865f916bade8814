"""An editor runs "generate meta" from the page admin and sees the saved result (issue 4)."""

from __future__ import annotations

import json

import pytest

from pages.models import Page
from tests.factories import AIProviderSettingsFactory, SiteFactory, SuperUserFactory
from tests.factories_cms import PageFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_generate_meta_from_the_page_admin(page, live_server, admin_login, upstream):
    site = SiteFactory(domain="localhost")
    AIProviderSettingsFactory(site=site, provider_type="openrouter", openrouter_api_key="sk-or-v1-" + "3f" * 24,
                              openrouter_base_url=upstream.openrouter_base_url)
    target = PageFactory(site=site, title="Autumn bakes", meta_title="", meta_description="")
    SuperUserFactory(username="editor-in-chief")
    upstream.script(content=json.dumps({
        "meta_title": "Autumn Bakes: Pumpkin Loaves, Apple Tarts and Spiced Buns Every Single Day",
        "meta_description": "Seasonal baking from our ovens to your table.",
    }))

    admin_login("editor-in-chief")
    page.goto(f"{live_server.url}/admin/pages/page/")
    page.wait_for_selector("#result_list")
    page.check(f"input[name=_selected_action][value='{target.pk}']")
    page.select_option("select[name=action]", "generate_meta")
    page.click("button[name=index]")
    page.wait_for_selector(".messagelist")
    assert "Generated meta for 1 page(s)." in page.inner_text(".messagelist")

    page.goto(f"{live_server.url}/admin/pages/page/{target.pk}/change/")
    title = page.input_value("#id_meta_title")
    assert title == "Autumn Bakes: Pumpkin Loaves, Apple Tarts and Spiced Buns"  # trimmed at a word
    assert page.input_value("#id_meta_description") == "Seasonal baking from our ovens to your table."
    assert Page.objects.get(pk=target.pk).meta_title == title
