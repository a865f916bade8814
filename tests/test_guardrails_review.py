"""Issue 27: the site's banned terms / style guide shown as warnings where generated text is reviewed."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from pages.models import Page

from .factories_cms import PageFactory
from .test_page_proposals import staff

pytestmark = pytest.mark.django_db

RULES = 'cheap => say "affordable"\nguarantee*'


def test_meta_review_warns_of_banned_terms_and_still_saves(client, emulated_site, upstream):
    site = emulated_site("openai", guard_banned_terms=RULES)
    page = PageFactory(site=site, title="Bread", meta_title="", meta_description="")
    upstream.script(content=json.dumps({"meta_title": "Cheap bread", "meta_description": "Guaranteed fresh."}))
    client.force_login(staff(site, "view_page", "change_page"))
    response = client.post(reverse("admin:pages_page_generate_meta", args=[page.pk]), {"step": "generate"}, follow=True)
    assert response.context["rows"][0]["warnings"] == [
        '“Cheap” is on the site\'s banned-terms list: say "affordable"',
        "“Guaranteed” is on the site's banned-terms list",
    ]
    html = response.content.decode()
    assert 'class="messagelist style-warnings"' in html and "say &quot;affordable&quot;" in html
    token = response.context["rows"][0]["token"]
    saved = client.post(  # a warning, not a block: the person saves it as it is
        reverse("admin:pages_page_accept_meta"),
        {
            "token": token,
            f"accept-{token}": "on",
            f"meta_title-{token}": "Cheap bread",
            f"meta_description-{token}": "x",
        },
    )
    assert saved.status_code == 302
    assert Page.objects.get(pk=page.pk).meta_title == "Cheap bread"


def test_no_warning_without_rules_or_without_a_match(client, emulated_site, upstream):
    for rules, content in (("", "Cheap bread"), (RULES, "Affordable bread")):
        site = emulated_site("openai", guard_banned_terms=rules)
        page = PageFactory(site=site, title="Bread")
        upstream.script(content=json.dumps({"meta_title": content, "meta_description": "Baked daily."}))
        client.force_login(staff(site, "view_page", "change_page"))
        response = client.post(
            reverse("admin:pages_page_generate_meta", args=[page.pk]), {"step": "generate"}, follow=True
        )
        assert response.context["rows"][0]["warnings"] == []
        assert "style-warnings" not in response.content.decode()


def test_generated_block_review_warns_of_banned_terms(client, emulated_site, upstream):
    site = emulated_site("openai", guard_banned_terms=RULES)
    page = PageFactory(site=site, title="Bread")
    faq = {"items": [{"question": "Is it cheap?", "answer": "We guarantee freshness."}]}
    upstream.script(content=json.dumps(faq))
    client.force_login(staff(site, "view_page", "change_page"))
    response = client.post(
        reverse("admin:pages_page_generate_block", args=[page.pk]), {"type": "faq", "instructions": "", "model": ""}
    )
    assert response.context["warnings"] == [
        '“cheap” is on the site\'s banned-terms list: say "affordable"',
        "“guarantee” is on the site's banned-terms list",
    ]
    assert "style-warnings" in response.content.decode()
