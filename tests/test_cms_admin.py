"""The CMS admin's AI actions: generate meta, generate a block, run a prompt template (issue 4)."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from pages.models import Block
from prompts.models import PromptRun

from .factories import SuperUserFactory
from .factories_cms import PageFactory, PromptTemplateFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def site(emulated_site):
    return emulated_site("openrouter")


@pytest.fixture
def admin_client(client):
    client.force_login(SuperUserFactory())
    return client


def test_generate_meta_action_proposes_then_saves_what_is_accepted(admin_client, site, upstream):
    pages = PageFactory.create_batch(2, site=site, meta_title="", meta_description="")
    upstream.script(content=json.dumps({"meta_title": "Fresh bread", "meta_description": "Baked daily."}), times=2)
    response = admin_client.post(
        reverse("admin:pages_page_changelist"),
        {"action": "generate_meta", "_selected_action": [p.pk for p in pages]},
        follow=True,
    )
    text = response.content.decode()
    assert "Review generated meta" in text and text.count('value="Fresh bread"') == 2
    for page in pages:  # a proposal writes nothing
        page.refresh_from_db()
        assert (page.meta_title, page.meta_description) == ("", "")
    tokens = [row["token"] for row in response.context["rows"]]
    data = {
        "token": tokens,
        f"accept-{tokens[0]}": "on",
        f"meta_title-{tokens[0]}": "Edited bread",
        f"meta_description-{tokens[0]}": "Edited daily.",
        f"meta_title-{tokens[1]}": "Fresh bread",
        f"meta_description-{tokens[1]}": "Baked daily.",
    }  # the second page is left unticked
    saved = admin_client.post(reverse("admin:pages_page_accept_meta"), data, follow=True)
    assert "Saved meta for 1 page(s)" in saved.content.decode()
    pages[0].refresh_from_db(), pages[1].refresh_from_db()
    assert (pages[0].meta_title, pages[0].meta_description) == ("Edited bread", "Edited daily.")
    assert (pages[1].meta_title, pages[1].meta_description) == ("", "")
    again = admin_client.post(reverse("admin:pages_page_accept_meta"), data, follow=True)  # tokens are one-time
    assert "unknown, expired or already saved" in again.content.decode()


def test_generate_meta_action_error_changes_nothing_and_says_why(admin_client, site, upstream, settings):
    settings.AI_MAX_RETRIES = 0
    page = PageFactory(site=site, meta_title="Old", meta_description="Old too")
    upstream.script(flavor="openrouter", status=402)
    response = admin_client.post(
        reverse("admin:pages_page_changelist"), {"action": "generate_meta", "_selected_action": [page.pk]}, follow=True
    )
    assert "no proposal — insufficient_credits" in response.content.decode()
    page.refresh_from_db()
    assert (page.meta_title, page.meta_description) == ("Old", "Old too")


def test_generate_block_view_proposes_then_adds_the_edited_block(admin_client, site, upstream):
    page = PageFactory(site=site)
    url = reverse("admin:pages_page_generate_block", args=[page.pk])
    assert admin_client.get(url).status_code == 200
    upstream.script(content=json.dumps({"heading": "Bread, daily", "subheading": "Since 1921"}))
    response = admin_client.post(url, {"type": "hero", "instructions": "warm", "model": ""})
    html = response.content.decode()
    assert "<h3>Bread, daily</h3>" in html and 'value="Since 1921"' in html  # rendered and editable
    assert not Block.objects.filter(page=page).exists()
    token = response.context["token"]
    saved = admin_client.post(
        url,
        {
            "_accept": "1",
            "token": token,
            "heading": "Bread, every day",
            "subheading": "Since 1921",
            "cta_text": "",
            "cta_url": "",
        },
        follow=True,
    )
    assert "Added a Hero block." in saved.content.decode()
    assert Block.objects.get(page=page).content == {"heading": "Bread, every day", "subheading": "Since 1921"}


def test_generate_block_accept_with_invalid_edit_saves_nothing(admin_client, site, upstream):
    page = PageFactory(site=site)
    url = reverse("admin:pages_page_generate_block", args=[page.pk])
    token = admin_client.post(url, {"type": "hero", "instructions": "", "model": ""}).context["token"]
    response = admin_client.post(url, {"_accept": "1", "token": token, "heading": "", "subheading": "x" * 300})
    html = response.content.decode()
    assert "Nothing was saved" in html and "This field is required" in html
    assert not Block.objects.filter(page=page).exists()


def test_generate_block_view_invalid_twice_saves_nothing(admin_client, site, upstream):
    page = PageFactory(site=site)
    upstream.script(content="no json here", times=2)
    response = admin_client.post(
        reverse("admin:pages_page_generate_block", args=[page.pk]), {"type": "cta", "instructions": "", "model": ""}
    )
    assert "No block was proposed — invalid_block_json" in response.content.decode()
    assert not Block.objects.filter(page=page).exists()


def test_run_template_preview_then_save(admin_client, site, upstream):
    template = PromptTemplateFactory(site=None)
    url = reverse("admin:prompts_prompttemplate_run", args=[template.pk])
    page = admin_client.get(url).content.decode()
    assert 'name="product"' in page and 'name="audience"' in page
    response = admin_client.post(url, {"product": "rye", "audience": "students", "site": site.pk, "model": ""})
    html = response.content.decode()
    assert 'id="save-form"' in html and "Write a blurb for rye aimed at students." in html
    assert PromptRun.objects.count() == 0  # a preview saves nothing
    token = response.context["save_form"].initial["preview_token"]
    saved = admin_client.post(url, {"_save": "1", "output": "Edited output", "preview_token": token})
    assert saved.status_code == 302
    run = PromptRun.objects.get()
    assert (run.output, run.site, run.variables["product"]) == ("Edited output", site, "rye")
