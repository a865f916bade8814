"""Issue 15, part 5: stale AI meta is flagged and regenerated alone; unchanged pages are skipped."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from pages import staleness
from pages.models import ContentProvenance

from .factories import SiteMembershipFactory, UserFactory
from .factories_cms import PageFactory

pytestmark = pytest.mark.django_db


def staff(site):
    user = UserFactory()
    SiteMembershipFactory(user=user, site=site)
    user.user_permissions.set(Permission.objects.filter(codename__in=("view_page", "change_page")))
    return user


def accept_all(client, response):
    data = {}
    for row in response.context["rows"]:
        token = row["token"]
        data.setdefault("token", []).append(token)
        data.update(
            {
                f"accept-{token}": "on",
                f"meta_title-{token}": row["proposal"]["meta_title"],
                f"meta_description-{token}": row["proposal"]["meta_description"],
            }
        )
    return client.post(reverse("admin:pages_page_accept_meta"), data)


def test_only_pages_whose_text_or_prompt_changed_are_regenerated(client, emulated_site, upstream):
    site = emulated_site("openrouter")
    changed = PageFactory(site=site, title="Opening hours", body="Open daily.")
    same = PageFactory(site=site, title="Cakes", body="Wedding cakes.")
    edited = PageFactory(site=site, title="Bread", body="Sourdough.")
    client.force_login(staff(site))
    changelist = reverse("admin:pages_page_changelist")
    ids = [str(p.pk) for p in (changed, same, edited)]
    first = client.post(changelist, {"action": "generate_meta", "_selected_action": ids}, follow=True)
    accept_all(client, first)
    assert ContentProvenance.objects.count() == 6
    assert not any(staleness.stale_reasons(p) for p in (changed, same, edited))

    for page in (changed, same, edited):
        page.refresh_from_db()
    changed.body = "Open daily, now also on Sundays from 8am."
    changed.save()
    edited.body = "Sourdough and rye."
    edited.meta_title = "Bread, by hand"
    edited.meta_description = "Written by a person."
    edited.save()  # a person rewrote both fields: they are theirs, never stale
    assert set(staleness.stale_reasons(changed)) == {"meta_title", "meta_description"}
    assert staleness.stale_reasons(same) == {} and staleness.stale_reasons(edited) == {}
    listing = client.get(changelist).content.decode()
    assert listing.count('class="ai-stale"') == 1

    requests_before = len(upstream.requests)
    confirm = client.post(changelist, {"action": "regenerate_stale_meta", "_selected_action": ids})
    html = confirm.content.decode()
    assert "2 selected page(s) are up to date" in html and "Opening hours" in html and "Cakes" not in html
    assert confirm.context["estimate"].calls == 1 and confirm.context["estimate"].tokens > 300
    assert len(upstream.requests) == requests_before  # the estimate sends nothing

    proposals = client.post(
        changelist, {"action": "regenerate_stale_meta", "_selected_action": ids, "confirm": "yes"}, follow=True
    )
    assert [row["page"] for row in proposals.context["rows"]] == [changed]
    assert len(upstream.requests) == requests_before + 1
    assert "now also on Sundays" in json.dumps(upstream.requests[-1].json)
    accept_all(client, proposals)
    assert staleness.stale_reasons(changed) == {}

    # nothing stale left: the action says so and sends nothing
    client.post(changelist, {"action": "regenerate_stale_meta", "_selected_action": ids, "confirm": "yes"}, follow=True)
    assert len(upstream.requests) == requests_before + 1


def test_a_changed_builtin_prompt_makes_meta_stale(client, emulated_site):
    site = emulated_site("openrouter")
    page = PageFactory(site=site, title="Opening hours", body="Open daily.")
    client.force_login(staff(site))
    accept_all(
        client,
        client.post(
            reverse("admin:pages_page_changelist"),
            {"action": "generate_meta", "_selected_action": [page.pk]},
            follow=True,
        ),
    )
    assert staleness.stale_reasons(page) == {}
    # as if generated before the meta prompt's text last changed
    ContentProvenance.objects.filter(page=page, field="meta_title").update(prompt_version="0123456789ab")
    assert staleness.stale_reasons(page)["meta_title"].startswith("prompt pages.meta changed (0123456789ab")


def test_only_stale_ai_blocks_are_regenerated_after_an_estimate_and_review(client, emulated_site, upstream):
    from pages.models import Block
    from pages.services.advanced_ai_service import AdvancedAIService

    site = emulated_site("openrouter")
    page = PageFactory(site=site, title="Opening hours", body="Open daily.")
    steady = PageFactory(site=site, title="Cakes", body="Wedding cakes.")
    service = AdvancedAIService()
    faq = service.generate_block(page, "faq", "two questions about opening times")
    text = service.generate_block(page, "text", "a short welcome")
    mine = service.generate_block(page, "text", "a note")
    mine.content = {"body": "Written by a person."}
    mine.save()  # a person's block now: never flagged, never regenerated
    untouched = service.generate_block(steady, "text", "about cakes")
    client.force_login(staff(site))
    changelist = reverse("admin:pages_page_changelist")
    ids = [page.pk, steady.pk]

    before = len(upstream.requests)
    client.post(changelist, {"action": "regenerate_stale_blocks", "_selected_action": ids, "confirm": "yes"})
    assert len(upstream.requests) == before  # nothing stale: nothing sent

    page.refresh_from_db()
    page.body = "Open daily, now also on Sundays from 8am."
    page.save()
    assert [item.block for item in staleness.stale_blocks(page)] == [faq, text]
    assert staleness.stale_blocks(steady) == []
    confirm = client.post(changelist, {"action": "regenerate_stale_blocks", "_selected_action": ids})
    html = confirm.content.decode()
    assert confirm.context["estimate"].calls == 2 and confirm.context["estimate"].tokens > 2400
    assert 'id="stale-blocks"' in html and "page text changed" in html
    assert len(upstream.requests) == before  # the estimate sends nothing

    proposals = client.post(
        changelist, {"action": "regenerate_stale_blocks", "_selected_action": ids, "confirm": "yes"}
    )
    rows = proposals.context["rows"]
    assert [row["block"] for row in rows] == [faq, text]
    sent = upstream.requests[before:]
    assert len(sent) == 2  # the edited block and the up-to-date page's block sent nothing
    assert "two questions about opening times" in json.dumps(sent[0].json)
    assert all("Cakes" not in json.dumps(r.json) for r in sent)

    data = {
        "token": [row["token"] for row in rows],
        f"accept-{rows[0]['token']}": "on",
        f"accept-{rows[1]['token']}": "on",
    }
    text.refresh_from_db()
    text.content = {"body": "Edited meanwhile."}
    text.save()  # changed while the proposal waited: left as the person wrote it
    client.post(reverse("admin:pages_page_accept_blocks"), data)
    faq.refresh_from_db()
    text.refresh_from_db()
    assert faq.content == rows[0]["proposal"] and text.content == {"body": "Edited meanwhile."}
    row = ContentProvenance.objects.filter(block=faq).order_by("-id").first()
    assert row.ai_generated and row.source_hash and row.accepted_by is not None
    assert staleness.stale_blocks(page) == [] and Block.objects.filter(page=page).count() == 3

    # a changed block prompt version flags the steady page's block too
    ContentProvenance.objects.filter(block=untouched).update(prompt_version="0123456789ab")
    (item,) = staleness.stale_blocks(steady)
    assert item.block == untouched and item.reason.startswith("prompt pages.blocks changed")


def test_block_regeneration_refuses_other_sites_pages(client, emulated_site, upstream):
    from pages.services.advanced_ai_service import AdvancedAIService

    site, other = emulated_site("openrouter"), emulated_site("openrouter")
    theirs = PageFactory(site=other, title="Theirs", body="B.")
    AdvancedAIService().generate_block(theirs, "text", "x")
    theirs.body = "B changed."
    theirs.save()
    before = len(upstream.requests)
    client.force_login(staff(site))
    client.post(
        reverse("admin:pages_page_changelist"),
        {"action": "regenerate_stale_blocks", "_selected_action": [theirs.pk], "confirm": "yes"},
    )
    assert len(upstream.requests) == before
