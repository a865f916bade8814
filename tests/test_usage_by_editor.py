"""Issue 27 (1): who a call was made for, on every path, and the dashboard's spend by editor.

A batch job's calls (run by the job runner, as a Celery worker runs them; its items on worker threads)
carry the user who started it; the dashboard and its CSV list each editor's spend on the sites the
viewer manages only. Calls go through the gateway to the emulator.
"""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth.models import Permission

from integrations.ai.gateway.service import AIService
from integrations.ai.ledger import usage
from integrations.ai.sites.callers import acting_for
from integrations.models import AIUsage
from integrations.usage.editors import editor_of
from pages.models import Page
from pages.tasks import start_generate_meta

from .factories import SiteMembershipFactory, UserFactory
from .factories_cms import PageFactory

pytestmark = pytest.mark.django_db
URL = "/admin/integrations/aiusage/dashboard/"
CSV_URL = "/admin/integrations/aiusage/dashboard/export.csv"


def staff_of(site, name: str, *codenames: str):
    user = UserFactory(username=name)
    SiteMembershipFactory(user=user, site=site)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


def test_a_batch_jobs_calls_carry_its_starter_on_every_worker_thread(emulated_site, upstream):
    site = emulated_site("openrouter")
    starter = staff_of(site, "starter")
    PageFactory.create_batch(6, site=site, meta_title="", meta_description="")
    job = start_generate_meta(site, starter, chunk=3, concurrency=3)
    assert (job.status, job.succeeded) == ("done", 6)
    assert Page.objects.filter(site=site, meta_title="").count() == 0
    usage.flush()
    assert [r.user_id for r in AIUsage.objects.filter(site=site)] == [starter.pk] * 6


def test_the_dashboard_breaks_spend_down_by_editor_of_the_viewers_sites_only(client, emulated_site, upstream):
    site_a, site_b = emulated_site("openai"), emulated_site("openai")
    alice, bob = staff_of(site_a, "alice"), staff_of(site_a, "bob")
    carol = staff_of(site_b, "carol-of-b")
    for user, site, calls in ((alice, site_a, 2), (bob, site_a, 1), (carol, site_b, 3)):
        with acting_for(editor_of(user)):
            for _ in range(calls):
                AIService(site=site).generate_content("Count me", model="gpt-4o")
    AIService(site=site_a).generate_content("No user", model="gpt-4o")  # unknown: not listed
    assert usage.flush()
    spent = {u: sum(r.cost for r in AIUsage.objects.filter(user=u)) for u in (alice, bob)}
    client.force_login(staff_of(site_a, "viewer", "view_aiusage"))
    response = client.get(URL)
    assert response.status_code == 200
    editors = response.context["data"]["editors"]
    assert [(e["editor"], e["site"], e["requests"], e["cost"]) for e in editors] == [
        ("alice", site_a.domain, 2, spent[alice]),
        ("bob", site_a.domain, 1, spent[bob]),
    ]
    body = response.content.decode()
    assert 'id="editor-table"' in body and "alice" in body and "carol-of-b" not in body
    text = client.get(CSV_URL).content.decode()
    rows = [r for r in csv.reader(io.StringIO(text)) if r and r[0] == "editors"]
    assert [(r[1], r[2], r[3]) for r in rows] == [("alice", site_a.domain, "2"), ("bob", site_a.domain, "1")]
    assert "carol-of-b" not in text
