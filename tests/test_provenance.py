"""Issue 15, part 1: provenance of AI-written page fields and blocks, and the AI-generated marker."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from integrations.ai.governance.money import usd
from pages.models import ContentProvenance
from pages.services.advanced_ai_service import BLOCK_PROMPT
from pages.services.ai_service import META_PROMPT, META_SYSTEM_PROMPT, meta_prompt
from prompts.versions import content_hash

from .factories import SiteMembershipFactory, UserFactory
from .factories_cms import PageFactory

pytestmark = pytest.mark.django_db


def staff(site, *perms: str):
    user = UserFactory()
    SiteMembershipFactory(user=user, site=site)
    user.user_permissions.set(Permission.objects.filter(codename__in=perms))
    return user


def change_form_data(page, **changes) -> dict:
    data = {
        "site": page.site_id,
        "title": page.title,
        "slug": page.slug,
        "body": page.body,
        "meta_title": page.meta_title,
        "meta_description": page.meta_description,
        "status": page.status,
        "blocks-TOTAL_FORMS": "0",
        "blocks-INITIAL_FORMS": "0",
        "blocks-MIN_NUM_FORMS": "0",
        "blocks-MAX_NUM_FORMS": "1000",
    }
    data.update(changes)
    return data


def accept_meta(client, page, upstream, title: str, description: str):
    response = client.post(reverse("admin:pages_page_generate_meta", args=[page.pk]), {"step": "generate"}, follow=True)
    token = response.context["rows"][0]["token"]
    proposal = response.context["rows"][0]["proposal"]
    client.post(
        reverse("admin:pages_page_accept_meta"),
        {
            "token": token,
            f"accept-{token}": "on",
            f"meta_title-{token}": title,
            f"meta_description-{token}": description,
        },
    )
    return proposal


def test_accepted_meta_records_provenance_and_a_hand_edit_clears_the_marker(client, emulated_site, upstream):
    site = emulated_site("openrouter")
    page = PageFactory(
        site=site, title="Opening hours", body="Open Tuesday to Sunday, 7am to 6pm.", meta_title="", meta_description=""
    )
    user = staff(site, "view_page", "change_page")
    client.force_login(user)
    upstream.script(
        content=json.dumps({"meta_title": "Opening hours | Bakery", "meta_description": "Open Tuesday to Sunday."})
    )
    accept_meta(client, page, upstream, "Opening hours | Bakery", "Open Tuesday to Sunday, 7 to 6.")
    rows = {row.field: row for row in ContentProvenance.objects.filter(page=page)}
    assert set(rows) == {"meta_title", "meta_description"}
    title = rows["meta_title"]
    sent = upstream.requests[-1]
    assert title.provider == "openrouter" and title.model == sent.json["model"]
    assert (title.prompt_name, title.prompt_version) == ("pages.meta", META_PROMPT.version)
    assert title.parameters["max_tokens"] == 300 and title.parameters["temperature"] == 0.4
    assert title.request_id and title.cost is not None and title.cost > 0 and title.accepted_by == user
    assert title.prompt_tokens > 0 and title.ai_generated and not title.edited_at_review
    assert rows["meta_description"].edited_at_review  # the person changed the proposal before saving
    change_url = reverse("admin:pages_page_change", args=[page.pk])
    html = client.get(change_url).content.decode()
    assert html.count('class="ai-marker"') == 2 and "pages.meta " + META_PROMPT.version in html

    # a person edits the meta title by hand in the page form: its marker goes, the description's stays
    page.refresh_from_db()
    saved = client.post(change_url, change_form_data(page, meta_title="Our opening hours"))
    assert saved.status_code == 302, saved.content.decode()[:2000]
    title.refresh_from_db()
    rows["meta_description"].refresh_from_db()
    assert not title.ai_generated and title.edited_at is not None
    assert rows["meta_description"].ai_generated
    html = client.get(change_url).content.decode()
    assert html.count('class="ai-marker"') == 1 and "Edited by a person" in html

    # saving without touching the description keeps it marked
    page.refresh_from_db()
    client.post(change_url, change_form_data(page, body="New body text."))
    rows["meta_description"].refresh_from_db()
    assert rows["meta_description"].ai_generated


def test_accepted_block_records_provenance_and_editing_it_clears_the_marker(client, emulated_site, upstream):
    site = emulated_site("openai")
    page = PageFactory(site=site, title="Opening hours")
    client.force_login(staff(site, "view_page", "change_page"))
    url = reverse("admin:pages_page_generate_block", args=[page.pk])
    upstream.script(content=json.dumps({"body": "We open at seven."}))
    proposed = client.post(url, {"type": "text", "instructions": "short", "model": ""})
    token = proposed.context["token"]
    client.post(url, {"_accept": "1", "token": token, "body": "We open at seven."})
    row = ContentProvenance.objects.get(page=page, field="block")
    assert row.block is not None and row.block.content == {"body": "We open at seven."}
    assert (row.prompt_name, row.prompt_version, row.provider) == ("pages.blocks", BLOCK_PROMPT.version, "openai")
    assert row.parameters["type"] == "text" and row.parameters["instructions"] == "short" and row.ai_generated
    assert row.request_id and upstream.requests[-1].json["temperature"] == 0.5
    edit = reverse("admin:pages_page_edit_block", args=[page.pk, row.block_id])
    client.post(edit, {"block_type": "text", "body": "We open at eight."})
    row.refresh_from_db()
    assert not row.ai_generated


def test_builtin_prompt_version_is_a_hash_of_what_the_service_sends():
    assert META_PROMPT.version == content_hash(META_SYSTEM_PROMPT, meta_prompt("{title}", "{body}"))
    assert META_PROMPT.version != BLOCK_PROMPT.version and len(META_PROMPT.version) == 12


def test_ledger_rows_carry_the_page_and_the_page_admin_shows_its_spend(client, emulated_site, upstream):
    from django.contrib.contenttypes.models import ContentType

    from integrations.ai.ledger import usage
    from integrations.models import AIUsage
    from pages.models import Page
    from pages.services.ai_service import AIService
    from prompts.services.ai_service import AIContentService

    from .factories_cms import PromptTemplateFactory

    site, other = emulated_site("openrouter"), emulated_site("openrouter")
    page = PageFactory(site=site, title="Opening hours", body="Open daily.")
    second = PageFactory(site=site, title="Cakes", body="Wedding cakes.")
    theirs = PageFactory(site=other, title="Secret page of site B", body="B.")
    AIService().propose_meta(page)
    AIService().propose_meta(page)
    AIService().propose_meta(second)
    AIService().propose_meta(theirs)
    template = PromptTemplateFactory(site=site)
    AIContentService().generate(template, {"product": "rye", "audience": "students"})
    AIService(site=site).generate_meta_title("Not attributed")
    usage.flush()
    page_type = ContentType.objects.get_for_model(Page)
    mine = AIUsage.objects.filter(content_type=page_type, object_id=page.pk)
    assert mine.count() == 2 and {row.content_label for row in mine} == {"Page: Opening hours"}
    assert all(row.cost and row.cost > 0 for row in mine)
    run_row = AIUsage.objects.get(service="prompts.template")
    assert run_row.content_object == template and run_row.content_label.endswith("v1")
    assert AIUsage.objects.filter(content_type__isnull=True).count() == 1  # a call made for no content

    user = staff(site, "view_page", "change_page", "view_aiusage")
    client.force_login(user)
    change = client.get(reverse("admin:pages_page_change", args=[page.pk])).content.decode()
    total = sum(row.cost for row in mine)
    assert f"{usd(total)} over 2 call(s)" in change
    listing = client.get(reverse("admin:integrations_aiusage_changelist")).content.decode()
    assert 'id="usage-by-content"' in listing and "Page: Opening hours" in listing and "Page: Cakes" in listing
    assert "Secret page of site B" not in listing  # grouping and the filter list only this site's rows
    filtered = client.get(reverse("admin:integrations_aiusage_changelist"), {"content": f"{page_type.pk}:{page.pk}"})
    assert filtered.context["cl"].result_count == 2
    assert (
        client.get(reverse("admin:integrations_aiusage_changelist"), {"content": f"{page_type.pk}:{theirs.pk}"})
        .context["cl"]
        .result_count
        == 0
    )


def test_meta_written_without_review_records_provenance_too(emulated_site, upstream):
    from pages.services.ai_service import AIService

    site = emulated_site("openai")
    one = PageFactory(site=site, title="Opening hours", body="Open daily.", meta_title="", meta_description="")
    many = [PageFactory(site=site, meta_title="", meta_description="") for _ in range(2)]
    AIService().generate_meta_for_page(one)
    AIService().generate_meta_batch(many, concurrency=2)
    for page in (one, *many):
        page.refresh_from_db()
        rows = {row.field: row for row in ContentProvenance.objects.filter(page=page)}
        assert set(rows) == {"meta_title", "meta_description"}
        assert rows["meta_title"].accepted_text == page.meta_title and rows["meta_title"].accepted_by is None
        assert rows["meta_title"].provider == "openai" and rows["meta_title"].request_id
        assert rows["meta_title"].prompt_version == META_PROMPT.version and rows["meta_title"].ai_generated


def test_a_block_saved_without_review_records_provenance(emulated_site):
    from pages.services.advanced_ai_service import AdvancedAIService

    page = PageFactory(site=emulated_site("anthropic"), title="Opening hours")
    block = AdvancedAIService().generate_block(page, "faq", "two questions")
    row = ContentProvenance.objects.get(block=block)
    assert (row.provider, row.prompt_name, row.accepted_by) == ("anthropic", "pages.blocks", None)
    assert row.parameters["instructions"] == "two questions" and row.ai_generated


def test_batch_meta_ledger_rows_carry_each_items_own_page(client, emulated_site, upstream, settings):
    """Batch workers run on threads: each item's rows carry its own page, so cost per page counts batch meta."""
    from django.contrib.contenttypes.models import ContentType

    from integrations.ai.ledger import usage
    from integrations.models import AIUsage
    from pages.models import Page
    from pages.services.ai_service import AIService

    settings.AI_MAX_RETRIES = 0
    site = emulated_site("openrouter")
    pages = [
        PageFactory(site=site, title=f"Page {n}", body=f"Body {n}.", meta_title="", meta_description="")
        for n in range(4)
    ]
    upstream.script(status=400)  # one item fails: its (error) row is still the right page's
    with usage.attributed_to(pages[0]):  # a caller's attribution does not leak onto the other items
        outcome = AIService().generate_meta_batch(pages, concurrency=3)
    assert sum(problem is not None for problem in outcome.values()) == 1
    usage.flush()
    page_type = ContentType.objects.get_for_model(Page)
    rows = AIUsage.objects.filter(service="pages.meta")
    assert rows.count() >= 4 and not rows.filter(content_type__isnull=True).exists()
    assert all(rows.filter(content_type=page_type, object_id=page.pk).exists() for page in pages)
    by_prompt = {}
    for request in upstream.requests:
        if request.method == "POST":  # (a GET is the router's catalogue: can the model take a schema?)
            by_prompt[request.json["messages"][-1]["content"]] = request
    assert len(by_prompt) == 4  # one request per page, each page's own text
    for page in pages:
        mine = AIUsage.objects.filter(content_type=page_type, object_id=page.pk)
        assert {row.content_label for row in mine} == {f"Page: {page.title}"}
        assert mine.count() == 1 or not all(row.status == AIUsage.STATUS_OK for row in mine)
    client.force_login(staff(site, "view_page", "change_page"))
    html = client.get(reverse("admin:pages_page_change", args=[pages[3].pk])).content.decode()
    assert "over 1 call(s)" in html
