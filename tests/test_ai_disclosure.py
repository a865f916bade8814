"""Issue 27: public AI disclosure of a page from its provenance (template tag, `ai_disclosure(page)`, JSON)."""

from __future__ import annotations

import json

import pytest
from django.contrib.sites.models import Site
from django.template import Context, Template
from django.urls import reverse

from pages.disclosure import ai_disclosure
from pages.services.advanced_ai_service import AdvancedAIService
from pages.services.ai_service import AIService

from .factories_cms import PageFactory

pytestmark = pytest.mark.django_db


def generated_page(emulated_site, upstream, **page_fields):
    """A page whose meta and one FAQ block were written by the AI (through the gateway, the emulator)."""
    site = emulated_site("openai", **({"site": page_fields.pop("site")} if "site" in page_fields else {}))
    page = PageFactory(site=site, title="Bread", meta_title="", meta_description="", **page_fields)
    upstream.script(content=json.dumps({"meta_title": "Bread | Bakery", "meta_description": "Baked daily."}))
    AIService().generate_meta_for_page(page)
    upstream.script(content=json.dumps({"items": [{"question": "Open?", "answer": "Daily."}]}))
    block = AdvancedAIService().generate_block(page, "faq")
    page.refresh_from_db()
    return page, block


def disclosed(page) -> list[str]:
    return [f["field"] for f in ai_disclosure(page)["fields"]]


def test_generated_fields_are_disclosed_with_model_and_date(emulated_site, upstream):
    page, block = generated_page(emulated_site, upstream)
    data = ai_disclosure(page)
    assert data["page"] == page.pk and data["ai_generated"] is True
    assert disclosed(page) == ["meta_title", "meta_description", "block"]
    title = data["fields"][0]
    served = upstream.requests_for("openai")[0].json["model"]
    assert (title["label"], title["provider"], title["model"], title["edited_at_review"]) == (
        "Meta title",
        "openai",
        served,
        False,
    )
    assert title["generated_at"][:4].isdigit() and "T" in title["generated_at"]
    assert data["fields"][2] | {"generated_at": ""} == {
        "field": "block",
        "label": "FAQ block",
        "provider": "openai",
        "model": served,
        "generated_at": "",
        "edited_at_review": False,
        "block": block.pk,
        "block_type": "faq",
    }


def test_a_field_edited_by_a_person_is_no_longer_disclosed(emulated_site, upstream):
    page, block = generated_page(emulated_site, upstream)
    page.meta_title = "Our bread"
    page.save()
    assert disclosed(page) == ["meta_description", "block"]
    block.content = {"items": [{"question": "Open?", "answer": "Tuesday to Sunday."}]}
    block.save()
    assert disclosed(page) == ["meta_description"]
    page.meta_description = "Fresh every morning."
    page.save()
    assert ai_disclosure(page) == {"page": page.pk, "ai_generated": False, "fields": []}


def test_the_template_tag(emulated_site, upstream):
    template = Template("{% load ai_disclosure %}[{% ai_disclosure page %}]")
    page, _ = generated_page(emulated_site, upstream)
    html = template.render(Context({"page": page}))
    assert 'class="ai-disclosure"' in html and "Meta title — " in html and "FAQ block — " in html
    data = json.loads(html.split('id="ai-disclosure-data" type="application/json">')[1].split("</script>")[0])
    assert data == ai_disclosure(page)
    page.meta_title, page.meta_description = "Mine", "Mine too"
    page.save()
    page.blocks.all().delete()
    assert template.render(Context({"page": page})) == "[]"  # nothing generated: nothing rendered


def test_the_public_json_endpoint_serves_published_pages_of_the_hosts_site_only(client, emulated_site, upstream):
    host = Site.objects.get(domain="testserver")
    page, _ = generated_page(emulated_site, upstream, site=host, slug="bread", status="published")
    url = reverse("page-ai-disclosure", args=["bread"])
    response = client.get(url)
    assert response.status_code == 200 and response.json() == ai_disclosure(page)
    assert response.json()["ai_generated"] is True
    draft = PageFactory(site=host, slug="draft", status="draft")
    assert client.get(reverse("page-ai-disclosure", args=[draft.slug])).status_code == 404
    other = PageFactory(slug="elsewhere", status="published")  # another site's published page
    assert other.site_id != host.pk
    assert client.get(reverse("page-ai-disclosure", args=["elsewhere"])).status_code == 404
    assert client.post(url).status_code == 405
