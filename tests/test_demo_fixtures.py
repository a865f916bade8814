"""The demo data: no keys in the fixture, demo records wired to the emulator and labelled as such."""

from __future__ import annotations

import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse

from integrations.ai.gateway.service import AIService
from integrations.models import AIProviderSettings, ModelMapping

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "demo.json"

pytestmark = pytest.mark.django_db


def test_fixture_holds_no_key():
    text = FIXTURE.read_text()
    assert not re.search(r'"[a-z]+_api_key": "[^"]+"', text)
    assert "sk-" not in text


def test_load_demo_wires_the_demo_sites_to_the_emulator(upstream, client):
    out = StringIO()
    call_command("load_demo", "--upstream-url", upstream.url, stdout=out)
    call_command("load_demo", "--upstream-url", upstream.url, stdout=StringIO())  # idempotent
    assert "demo-token" not in out.getvalue()
    site_a = AIProviderSettings.objects.get(site__domain="127.0.0.1")
    assert site_a.is_demo_upstream and site_a.credential("openrouter").base_url == upstream.openrouter_base_url
    assert ModelMapping.objects.filter(site__isnull=True, logical_name="claude-3-5-sonnet").count() == 2
    result = AIService(site=site_a.site).generate_content("Hello demo")
    assert result.provider == "openrouter" and result.content.endswith("Hello demo")
    site_b = AIProviderSettings.objects.get(site__domain="localhost")
    assert AIService(site=site_b.site).generate_content("Hello B").provider == "anthropic"

    assert client.login(username="site-a-admin", password="demo")
    change = "admin:integrations_aiprovidersettings_change"
    html = client.get(reverse(change, args=[site_a.pk]), HTTP_HOST="127.0.0.1").content.decode()
    assert "Demo upstream: answers come from the local emulator" in html
    assert client.get(reverse(change, args=[site_b.pk]), HTTP_HOST="127.0.0.1").status_code == 302


def test_demo_shows_every_flow_on_every_demo_site(upstream, client):
    """Named sites, an editor account, and the emulator answering meta, blocks and templates in shape."""
    from pages.blocks import SCHEMAS, validate_block
    from pages.models import Page
    from pages.services.advanced_ai_service import AdvancedAIService
    from pages.services.ai_service import AIService as PagesAIService
    from prompts.models import PromptTemplate

    call_command("load_demo", "--upstream-url", upstream.url, stdout=StringIO())
    names = dict(AIProviderSettings.objects.values_list("site__name", "provider_type"))
    assert names == {"Bakery (OpenRouter)": "openrouter", "Bookshop (Anthropic)": "anthropic"}
    for page in Page.objects.select_related("site"):
        proposal = PagesAIService().propose_meta(page)
        assert page.title in proposal.meta_title and len(proposal.meta_title) <= 60
        assert len(proposal.meta_description) <= 160 and "Write the meta" not in proposal.meta_description
        for block_type in SCHEMAS:
            validate_block(block_type, AdvancedAIService().propose_block(page, block_type).content)

    assert client.login(username="editor", password="demo")
    bakery = Page.objects.get(slug="spring-sale")
    bookshop = Page.objects.get(slug="autumn-reads")
    assert client.get(reverse("admin:pages_page_change", args=[bakery.pk]), HTTP_HOST="127.0.0.1").status_code == 200
    assert client.get(reverse("admin:pages_page_change", args=[bookshop.pk]), HTTP_HOST="127.0.0.1").status_code in (
        302,
        404,
    )  # another site: not even its existence
    assert (
        client.get(reverse("admin:integrations_aiprovidersettings_changelist"), HTTP_HOST="127.0.0.1").status_code
        == 403
    )  # no AI settings for editors
    preview = client.post(
        reverse("admin:pages_page_generate_meta", args=[bakery.pk]),
        {"step": "generate", "model": ""},
        HTTP_HOST="127.0.0.1",
        follow=True,  # the generating POST redirects to the review screen
    )
    assert "Spring sale | " in preview.content.decode()
    template = PromptTemplate.objects.get(slug="product-blurb")
    run = client.post(
        reverse("admin:prompts_prompttemplate_run", args=[template.pk]),
        {"product": "rye bread", "audience": "students", "site": bakery.site_id, "model": ""},
        HTTP_HOST="127.0.0.1",
    )
    html = run.content.decode()
    assert 'id="save-form"' in html and "crafted with care" in html  # prose, from the emulator


def test_the_demo_logins_may_use_the_json_api(upstream, client):
    """Issue 25: the API asks for `integrations.use_ai`; the demo's site admin and editor have it (through
    their groups), and both may write into pages through it (`pages.change_page`)."""
    from django.contrib.auth import get_user_model

    call_command("load_demo", "--upstream-url", upstream.url, stdout=StringIO())
    for username in ("site-a-admin", "editor"):
        user = get_user_model().objects.get(username=username)
        assert user.has_perm("integrations.use_ai") and user.has_perm("pages.change_page")
