"""Issue 15, part 4: a draft trial is a batch job with progress and cancel (checked between items).

The trial runs on a background thread here (no broker), so these tests use committed transactions
and wait for the job by reading its row, as the trial page does.
"""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from integrations.models import BatchJob
from prompts import trials
from prompts.models import PromptTrialItem

from .factories import SiteMembershipFactory, UserFactory
from .factories_cms import PromptRunFactory, PromptTemplateFactory

pytestmark = pytest.mark.django_db(transaction=True)
PERMS = ("view_prompttemplate", "change_prompttemplate", "add_promptrun", "view_promptrun")


def staff(site, *perms: str):
    user = UserFactory()
    SiteMembershipFactory(user=user, site=site)
    user.user_permissions.set(Permission.objects.filter(codename__in=perms))
    return user


def wait_until(job: BatchJob, done, timeout: float = 30) -> BatchJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if done(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job.pk} still {job.status} ({job.processed}/{job.total}) after {timeout}s")


def test_a_cancelled_trial_stops_between_items_and_shows_as_cancelled(client, emulated_site, upstream):
    site = emulated_site("openrouter")
    template = PromptTemplateFactory(site=site, template="Blurb: {product} for {audience}.", default_model="")
    for n in range(8):
        PromptRunFactory(template=template, site=site, variables={"product": f"grain {n}", "audience": "cooks"})
    upstream.script(delay=0.4, times=8)
    viewer = staff(site, *PERMS)  # may look at the trial, may not cancel batch jobs
    user = staff(site, *PERMS, "view_batchjob", "change_batchjob")
    job = trials.start_trial(template.production_version, site, 8, user, background=True, concurrency=1)
    url = reverse("admin:prompts_prompttemplate_trial_result", args=[template.pk, job.pk])
    cancel = reverse("admin:integrations_batchjob_cancel", args=[job.pk])
    wait_until(job, lambda j: j.processed >= 1)  # running: the cancel below is seen between items

    client.force_login(viewer)
    assert 'id="trial-cancel"' not in client.get(url).content.decode()
    assert client.post(cancel, {"next": url}).status_code == 403
    client.force_login(user)
    running = client.get(url).content.decode()
    assert 'id="trial-cancel"' in running and f'action="{cancel}"' in running
    response = client.post(cancel, {"next": url})
    assert response.status_code == 302 and response["Location"] == url  # back to the trial
    assert client.post(cancel, {"next": "https://evil.example/"})["Location"] != "https://evil.example/"

    job = wait_until(job, lambda j: j.finished)
    assert job.status == "cancelled" and 1 <= job.processed < 8
    assert len(upstream.requests) < 8  # nothing new started after the cancel
    assert PromptTrialItem.objects.filter(job=job).count() == job.processed
    html = client.get(url).content.decode()
    assert "<strong>Cancelled</strong>" in html and 'id="trial-cancel"' not in html


def test_a_trial_over_recent_pages_runs_production_beside_the_draft(client, emulated_site, upstream):
    from pages.models import Page

    from .factories_cms import PageFactory

    site = emulated_site("openrouter")
    template = PromptTemplateFactory(site=site, template="Old summary of {title}: {body}", default_model="")
    template.template, template.save_as_draft = "New summary of {title}!", True
    template.save()
    draft = template.draft_version
    for n in range(3):
        PageFactory(site=site, title=f"Page {n}", body=f"Body of page {n}.")
    newest = [p.title for p in Page.objects.filter(site=site).order_by("-updated_at", "-id")[:2]]
    client.force_login(staff(site, *PERMS))
    versions = client.get(reverse("admin:prompts_prompttemplate_versions", args=[template.pk]))
    assert ("pages", "recent pages of the site (production beside it)") in list(
        versions.context["trial_form"].fields["source"].choices
    )

    started = client.post(
        reverse("admin:prompts_prompttemplate_trial", args=[template.pk]),
        {"version": draft.pk, "site": site.pk, "items": 2, "source": "pages"},
    )
    job = BatchJob.objects.get()
    assert started["Location"] == reverse("admin:prompts_prompttemplate_trial_result", args=[template.pk, job.pk])
    assert (job.status, job.total, job.succeeded) == ("done", 2, 2)
    sent = sorted(r.json["messages"][-1]["content"] for r in upstream.requests)
    assert sent == sorted(
        [f"New summary of {t}!" for t in newest] + [f"Old summary of {t}: Body of {t.lower()}." for t in newest]
    )
    items = list(PromptTrialItem.objects.filter(job=job))
    assert {i.variables["page"] for i in items} == set(newest)
    assert all(i.old_output and i.new_output and i.old_tokens and i.new_tokens and i.run is None for i in items)
    html = client.get(started["Location"]).content.decode()
    assert "production, run now" in html and items[0].new_output in html
    assert template.production_version.number == 1  # a trial changes nothing

    # a template with a variable no page has: runs only, and a posted "pages" is refused before any call
    other = PromptTemplateFactory(site=site, template="Blurb for {product}", default_model="")
    form = client.get(reverse("admin:prompts_prompttemplate_versions", args=[other.pk])).context["trial_form"]
    assert [value for value, _ in form.fields["source"].choices] == ["runs"]
    before = len(upstream.requests)
    refused = client.post(
        reverse("admin:prompts_prompttemplate_trial", args=[other.pk]),
        {"version": other.production_version.pk, "site": site.pk, "items": 2, "source": "pages"},
        follow=True,
    )
    assert "No trial" in refused.content.decode() and BatchJob.objects.count() == 1
    assert len(upstream.requests) == before
