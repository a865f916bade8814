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
        data.update({f"accept-{token}": "on", f"meta_title-{token}": row["proposal"]["meta_title"],
                     f"meta_description-{token}": row["proposal"]["meta_description"]})
    return client.post(reverse("admin:pages_page_accept_meta"), data)


def test_only_pages_whose_text_or_prompt_changed_are_regenerated(client, emulated_site, upstream):
    site = emulated_site("openrouter")
    changed = PageFactory(site=site, title="Opening hours", body="Open daily.")
    same = PageFactory(site=site, title="Cakes", body="Wedding cakes.")
    edited = PageFactory(site=site, title="Bread", body="Sourdough.")
    client.force_login(staff(site))
    changelist = reverse("admin:pages_page_changelist")
    ids = [str(p.pk) for p in (changed, same, edited)]
    first = client.post(changelist, {"action": "generate_meta", "_selected_action": ids})
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

    proposals = client.post(changelist, {"action": "regenerate_stale_meta", "_selected_action": ids,
                                         "confirm": "yes"})
    assert [row["page"] for row in proposals.context["rows"]] == [changed]
    assert len(upstream.requests) == requests_before + 1
    assert "now also on Sundays" in json.dumps(upstream.requests[-1].json)
    accept_all(client, proposals)
    assert staleness.stale_reasons(changed) == {}

    # nothing stale left: the action says so and sends nothing
    client.post(changelist, {"action": "regenerate_stale_meta", "_selected_action": ids, "confirm": "yes"})
    assert len(upstream.requests) == requests_before + 1


def test_a_changed_builtin_prompt_makes_meta_stale(client, emulated_site):
    site = emulated_site("openrouter")
    page = PageFactory(site=site, title="Opening hours", body="Open daily.")
    client.force_login(staff(site))
    accept_all(client, client.post(reverse("admin:pages_page_changelist"),
                                   {"action": "generate_meta", "_selected_action": [page.pk]}))
    assert staleness.stale_reasons(page) == {}
    # as if generated before the meta prompt's text last changed
    ContentProvenance.objects.filter(page=page, field="meta_title").update(prompt_version="0123456789ab")
    assert staleness.stale_reasons(page)["meta_title"].startswith("prompt pages.meta changed (0123456789ab")
