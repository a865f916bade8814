"""Generate -> preview -> accept for page meta and blocks, on every provider, and blocks edited by form (issue 13)."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from integrations.ai.providers.tools import ANSWER_TOOL
from pages.blocks import SCHEMAS, validate_block
from pages.models import Block
from pages.services.advanced_ai_service import AdvancedAIService
from pages.services.ai_service import AIService

from .factories import SiteMembershipFactory, SuperUserFactory, UserFactory
from .factories_cms import BlockFactory, PageFactory

pytestmark = pytest.mark.django_db
PROVIDERS = ("openrouter", "openai", "anthropic")


def staff(site, *perms: str):
    user = UserFactory()
    SiteMembershipFactory(user=user, site=site)
    user.user_permissions.set(Permission.objects.filter(codename__in=perms))
    return user


@pytest.mark.parametrize("provider", PROVIDERS)
def test_unscripted_emulator_meta_is_plausible_on_every_provider(emulated_site, upstream, provider):
    page = PageFactory(
        site=emulated_site(provider),
        title="Wedding cakes",
        meta_title="",
        meta_description="",
        body="Tiered cakes made to order, with tastings on Saturdays.",
    )
    proposal = AIService().propose_meta(page)
    assert "Wedding cakes" in proposal.meta_title and len(proposal.meta_title) <= 60
    assert proposal.meta_description.startswith("Tiered cakes made to order")
    assert len(proposal.meta_description) <= 160 and "Write the meta" not in proposal.meta_description
    assert proposal.provider == provider and proposal.total_tokens > 0
    page.refresh_from_db()
    assert (page.meta_title, page.meta_description) == ("", "")  # a proposal saves nothing


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("block_type", list(SCHEMAS))
def test_unscripted_emulator_blocks_fit_their_schema_on_every_provider(emulated_site, provider, block_type):
    page = PageFactory(site=emulated_site(provider), title="Opening hours")
    block = AdvancedAIService().propose_block(page, block_type)
    validate_block(block_type, block.content)
    assert block.pk is None and "opening hours" in json.dumps(block.content).lower()


def test_meta_gets_the_gateways_one_corrective_retry(emulated_site, upstream):
    """Anthropic answers through the forced tool; an answer missing a field is corrected once (issue 20)."""
    page = PageFactory(site=emulated_site("anthropic"), meta_title="", meta_description="")
    upstream.script(tool_calls=[{"name": ANSWER_TOOL, "arguments": {"meta_title": "Fresh bread"}}])
    upstream.script(
        tool_calls=[
            {"name": ANSWER_TOOL, "arguments": {"meta_title": "Fresh bread", "meta_description": "Baked daily."}}
        ]
    )
    proposal = AIService().propose_meta(page)
    assert (proposal.meta_title, proposal.meta_description) == ("Fresh bread", "Baked daily.")
    retry = upstream.requests[1].json
    assert "response_format" not in retry and retry["tool_choice"] == {"type": "tool", "name": ANSWER_TOOL}
    assert "'meta_description' is a required property" in retry["messages"][-1]["content"]


def test_meta_twice_unusable_is_a_typed_error(emulated_site, upstream):
    from integrations.ai.providers.errors import InvalidOutput

    page = PageFactory(site=emulated_site("anthropic"), meta_title="", meta_description="")
    upstream.script(tool_calls=[{"name": ANSWER_TOOL, "arguments": {"title": "not the shape"}}], times=2)
    with pytest.raises(InvalidOutput, match=r"invalid twice: .*'title' was unexpected"):
        AIService().propose_meta(page)
    assert len(upstream.requests) == 2


def test_per_page_meta_preview_then_accept_as_site_admin(client, emulated_site, upstream):
    site = emulated_site("anthropic")
    page = PageFactory(
        site=site,
        title="Opening hours",
        meta_title="Old title",
        meta_description="Old text",
        body="Open Tuesday to Sunday, 7am to 6pm.",
    )
    client.force_login(staff(site, "view_page", "change_page"))
    url = reverse("admin:pages_page_generate_meta", args=[page.pk])
    intro = client.get(url).content.decode()
    assert "Old title" in intro and "9/60" in intro and upstream.requests == []  # a GET spends nothing
    response = client.post(url, {"step": "generate", "model": ""}, follow=True)
    html = response.content.decode()
    assert "Old title" in html and "Opening hours | Fresh ideas" in html and "/160" in html
    token = response.context["rows"][0]["token"]
    too_long = client.post(
        reverse("admin:pages_page_accept_meta"),
        {
            "token": token,
            f"accept-{token}": "on",
            f"meta_title-{token}": "x" * 61,
            f"meta_description-{token}": "Fine.",
        },
    )
    assert "Meta title is 61 characters; at most 60." in too_long.content.decode()
    page.refresh_from_db()
    assert page.meta_title == "Old title"
    saved = client.post(
        reverse("admin:pages_page_accept_meta"),
        {
            "token": token,
            f"accept-{token}": "on",
            f"meta_title-{token}": "Opening hours | Bakery",
            f"meta_description-{token}": "Open Tuesday to Sunday.",
        },
    )
    assert saved.status_code == 302 and saved["Location"] == reverse("admin:pages_page_change", args=[page.pk])
    page.refresh_from_db()
    assert (page.meta_title, page.meta_description) == ("Opening hours | Bakery", "Open Tuesday to Sunday.")


def test_meta_and_block_views_refuse_other_sites_and_missing_permissions(client, emulated_site, upstream):
    site_a, site_b = emulated_site("openai"), emulated_site("openai")
    page_b = PageFactory(site=site_b)
    page_a = PageFactory(site=site_a)
    client.force_login(staff(site_a, "view_page", "change_page"))
    for name in ("pages_page_generate_meta", "pages_page_generate_block", "pages_page_add_block"):
        assert client.get(reverse(f"admin:{name}", args=[page_b.pk])).status_code == 404
        assert client.post(reverse(f"admin:{name}", args=[page_b.pk]), {"step": "generate"}).status_code == 404
    client.force_login(staff(site_a, "view_page"))  # an editor who may look but not change
    for name in ("pages_page_generate_meta", "pages_page_generate_block", "pages_page_add_block"):
        assert client.post(reverse(f"admin:{name}", args=[page_a.pk]), {"step": "generate"}).status_code == 403
    assert client.post(reverse("admin:pages_page_accept_meta"), {}).status_code == 403
    assert upstream.requests == []


def test_blocks_are_edited_with_their_type_form_not_json(client, emulated_site):
    site = emulated_site("openai")
    page = PageFactory(site=site)
    block = BlockFactory(page=page, type="faq", content={"items": [{"question": "Q1?", "answer": "A1."}]})
    client.force_login(SuperUserFactory())
    change = client.get(reverse("admin:pages_page_change", args=[page.pk])).content.decode()
    assert "<dt>Q1?</dt>" in change and 'name="blocks-0-content"' not in change
    url = reverse("admin:pages_page_edit_block", args=[page.pk, block.pk])
    form = client.get(url).content.decode()
    assert 'name="items-0-question"' in form and 'value="Q1?"' in form and "<textarea" in form
    bad = client.post(url, {"block_type": "faq", "items-0-question": "Only a question"})
    assert "items[0].answer is required" in bad.content.decode()
    block.refresh_from_db()
    assert block.content == {"items": [{"question": "Q1?", "answer": "A1."}]}
    ok = client.post(
        url,
        {
            "block_type": "faq",
            "items-0-question": "Q1?",
            "items-0-answer": "A1.",
            "items-1-question": "Q2?",
            "items-1-answer": "A2.",
        },
    )
    assert ok.status_code == 302
    block.refresh_from_db()
    assert block.content["items"][1] == {"question": "Q2?", "answer": "A2."}
    add = reverse("admin:pages_page_add_block", args=[page.pk])
    assert 'name="type"' in client.get(add).content.decode()
    client.post(add + "?type=cta", {"block_type": "cta", "text": "Order today", "button_text": "Order"})
    assert Block.objects.filter(page=page, type="cta").get().order == block.order + 1
