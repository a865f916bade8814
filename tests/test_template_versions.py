"""Issue 15, part 3: prompt template versions: production and draft, history with diff, rollback."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from prompts.models import PromptRun, PromptTemplate

from .factories import SiteMembershipFactory, UserFactory
from .factories_cms import PromptTemplateFactory

pytestmark = pytest.mark.django_db
PERMS = ("view_prompttemplate", "change_prompttemplate", "add_promptrun", "view_promptrun")


def staff(site, perms=PERMS):
    user = UserFactory()
    SiteMembershipFactory(user=user, site=site)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="prompts", codename__in=perms))
    return user


def edit(client, template, text: str, draft: bool = False):
    data = {
        "site": template.site_id or "",
        "name": template.name,
        "slug": template.slug,
        "system_prompt": template.system_prompt,
        "template": text,
        "default_model": template.default_model,
        "max_tokens": template.max_tokens,
        "temperature": template.temperature,
    }
    if draft:
        data["save_as_draft"] = "on"
    response = client.post(reverse("admin:prompts_prompttemplate_change", args=[template.pk]), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    template.refresh_from_db()


def run(client, template, site) -> str:
    """Run the template through the admin; returns the user prompt the emulator received."""
    response = client.post(
        reverse("admin:prompts_prompttemplate_run", args=[template.pk]),
        {"product": "rye", "audience": "students", "site": site.pk, "model": ""},
    )
    assert response.status_code == 200 and 'id="save-form"' in response.content.decode()
    client.post(
        reverse("admin:prompts_prompttemplate_run", args=[template.pk]),
        {"_save": "1", "output": "kept", "preview_token": response.context["save_form"].initial["preview_token"]},
    )
    return response


def sent_prompt(upstream) -> str:
    return upstream.requests[-1].json["messages"][-1]["content"]


def test_every_save_is_a_version_drafts_do_not_run_and_rollback_changes_what_is_sent(client, emulated_site, upstream):
    site = emulated_site("openai")
    template = PromptTemplateFactory(site=site, template="V1: a blurb for {product} aimed at {audience}.")
    assert template.versions.count() == 1 and template.production_version.number == 1
    client.force_login(staff(site))

    edit(client, template, "V2: sell {product} to {audience}.")
    assert template.production_version.number == 2
    run(client, template, site)
    assert sent_prompt(upstream) == "V2: sell rye to students."
    assert PromptRun.objects.get().version == template.production_version

    edit(client, template, "V3 draft: {product} for {audience}!", draft=True)
    assert (template.production_version.number, template.draft_version.number) == (2, 3)
    run(client, template, site)
    assert sent_prompt(upstream) == "V2: sell rye to students."  # the draft is not what runs

    history = client.get(reverse("admin:prompts_prompttemplate_versions", args=[template.pk])).content.decode()
    assert "label-draft" in history and "label-production" in history
    assert '<span class="add">+ V3 draft: {product} for {audience}!</span>' in history
    assert '<span class="del">- V2: sell {product} to {audience}.</span>' in history

    v1 = template.versions.get(number=1)
    rolled = client.post(reverse("admin:prompts_prompttemplate_rollback", args=[template.pk, v1.pk]))
    assert rolled.status_code == 302
    template.refresh_from_db()
    assert template.production_version.number == 4 and template.production_version.restored_from == v1
    assert template.production_version.text == v1.text
    run(client, template, site)
    assert sent_prompt(upstream) == "V1: a blurb for rye aimed at students."
    assert list(template.versions.values_list("number", flat=True).order_by("number")) == [1, 2, 3, 4]
    assert template.versions.get(number=2).text == "V2: sell {product} to {audience}."  # never rewritten

    # the draft promoted: it is what runs now
    client.post(reverse("admin:prompts_prompttemplate_draft", args=[template.pk]), {"action": "promote"})
    template.refresh_from_db()
    assert template.production_version.number == 3 and template.draft_version is None
    run(client, template, site)
    assert sent_prompt(upstream) == "V3 draft: rye for students!"


def test_saving_unchanged_text_makes_no_new_version_and_discard_restores_production(client, emulated_site):
    site = emulated_site("openai")
    template = PromptTemplateFactory(site=site)
    client.force_login(staff(site))
    edit(client, template, template.template)
    assert template.versions.count() == 1
    edit(client, template, "Draft {product} {audience}", draft=True)
    client.post(reverse("admin:prompts_prompttemplate_draft", args=[template.pk]), {"action": "discard"})
    template.refresh_from_db()
    assert template.draft_version is None and template.template == template.production_version.text
    assert template.versions.count() == 2  # the discarded draft stays in the history


def test_version_screens_refuse_other_sites_and_missing_permissions(client, emulated_site):
    site_a, site_b = emulated_site("openai"), emulated_site("openai")
    theirs = PromptTemplateFactory(site=site_b)
    ours = PromptTemplateFactory(site=site_a)
    client.force_login(staff(site_a))
    v_theirs = theirs.versions.get()
    assert client.get(reverse("admin:prompts_prompttemplate_versions", args=[theirs.pk])).status_code == 404
    assert (
        client.post(reverse("admin:prompts_prompttemplate_rollback", args=[theirs.pk, v_theirs.pk])).status_code == 404
    )
    assert (
        client.post(reverse("admin:prompts_prompttemplate_draft", args=[theirs.pk]), {"action": "discard"}).status_code
        == 404
    )
    # another template's version through our template's URL
    assert client.post(reverse("admin:prompts_prompttemplate_rollback", args=[ours.pk, v_theirs.pk])).status_code == 404
    client.force_login(staff(site_a, perms=("view_prompttemplate",)))  # may look, not change
    assert client.get(reverse("admin:prompts_prompttemplate_versions", args=[ours.pk])).status_code == 200
    assert (
        client.post(
            reverse("admin:prompts_prompttemplate_rollback", args=[ours.pk, ours.versions.get().pk])
        ).status_code
        == 403
    )
    client.force_login(staff(site_a, perms=()))
    assert client.get(reverse("admin:prompts_prompttemplate_versions", args=[ours.pk])).status_code == 403
    global_template = PromptTemplate.objects.create(name="Global", slug="global-one", template="x {a}")
    client.force_login(staff(site_a))
    assert (
        client.post(
            reverse(
                "admin:prompts_prompttemplate_rollback", args=[global_template.pk, global_template.versions.get().pk]
            )
        ).status_code
        == 403
    )


def test_trial_runs_the_draft_on_recent_runs_side_by_side_then_promotes(client, emulated_site, upstream):
    from integrations.ai.ledger import usage
    from integrations.models import AIUsage, BatchJob
    from prompts.models import PromptTrialItem

    site = emulated_site("openrouter")
    template = PromptTemplateFactory(site=site, template="Old: {product} for {audience}.", default_model="")
    client.force_login(staff(site))
    for product in ("rye", "spelt", "oats"):
        response = client.post(
            reverse("admin:prompts_prompttemplate_run", args=[template.pk]),
            {"product": product, "audience": "students", "site": site.pk, "model": ""},
        )
        client.post(
            reverse("admin:prompts_prompttemplate_run", args=[template.pk]),
            {
                "_save": "1",
                "output": f"Saved {product} blurb",
                "preview_token": response.context["save_form"].initial["preview_token"],
            },
        )
    edit(client, template, "New: {product}, for {audience}!", draft=True)
    draft = template.draft_version
    before = len(upstream.requests)

    started = client.post(
        reverse("admin:prompts_prompttemplate_trial", args=[template.pk]),
        {"version": draft.pk, "site": site.pk, "items": 2},
    )
    assert started.status_code == 302
    job = BatchJob.objects.get(kind="prompts.trial_version")
    assert started["Location"] == reverse("admin:prompts_prompttemplate_trial_result", args=[template.pk, job.pk])
    assert (job.status, job.total, job.succeeded) == ("done", 2, 2)
    sent = [r.json["messages"][-1]["content"] for r in upstream.requests[before:]]
    assert sorted(sent) == ["New: oats, for students!", "New: spelt, for students!"]  # the 2 newest runs
    items = list(PromptTrialItem.objects.filter(job=job))
    assert {i.old_output for i in items} == {"Saved oats blurb", "Saved spelt blurb"}
    assert all(i.new_output and i.new_tokens > 0 and i.new_cost and i.new_latency_ms is not None for i in items)
    assert all(i.old_latency_ms is not None and i.old_cost for i in items)

    page = client.get(started["Location"])
    html = page.content.decode()
    assert "Saved oats blurb" in html and items[0].new_output in html
    totals = page.context["totals"]
    assert totals.new_tokens == sum(i.new_tokens for i in items) and totals.items == 2
    assert totals.new_cost == sum(i.new_cost for i in items)
    usage.flush()
    assert AIUsage.objects.filter(service="prompts.trial", content_label__endswith="(trial)").count() == 2
    assert template.production_version.number == 1  # a trial changes nothing

    client.post(reverse("admin:prompts_prompttemplate_draft", args=[template.pk]), {"action": "promote"})
    assert template.production_version == draft


def test_trial_refuses_other_sites_missing_permissions_and_templates_without_runs(client, emulated_site, upstream):
    from integrations.models import BatchJob

    site_a, site_b = emulated_site("openrouter"), emulated_site("openrouter")
    ours = PromptTemplateFactory(site=site_a)
    theirs = PromptTemplateFactory(site=site_b)
    client.force_login(staff(site_a))
    no_runs = client.post(
        reverse("admin:prompts_prompttemplate_trial", args=[ours.pk]),
        {"version": ours.production_version.pk, "site": site_a.pk, "items": 3},
        follow=True,
    )
    assert "No saved runs" in no_runs.content.decode() and upstream.requests == []
    assert (
        client.post(
            reverse("admin:prompts_prompttemplate_trial", args=[theirs.pk]),
            {"version": theirs.production_version.pk, "site": site_b.pk, "items": 1},
        ).status_code
        == 404
    )
    # our template, but site B's site or another template's version: form errors, nothing runs
    bad = client.post(
        reverse("admin:prompts_prompttemplate_trial", args=[ours.pk]),
        {"version": theirs.production_version.pk, "site": site_a.pk, "items": 1},
        follow=True,
    )
    assert "No trial" in bad.content.decode() and not BatchJob.objects.exists()
    job_b = BatchJob.objects.create(kind="prompts.trial_version", site=site_b, params={"template_id": theirs.pk})
    assert (
        client.get(reverse("admin:prompts_prompttemplate_trial_result", args=[theirs.pk, job_b.pk])).status_code == 404
    )
    job_b.params = {"template_id": ours.pk}
    job_b.save()  # even pointed at our template, a job of site B stays hidden
    assert client.get(reverse("admin:prompts_prompttemplate_trial_result", args=[ours.pk, job_b.pk])).status_code == 404
    client.force_login(staff(site_a, perms=("view_prompttemplate", "add_promptrun")))
    assert (
        client.post(
            reverse("admin:prompts_prompttemplate_trial", args=[ours.pk]),
            {"version": ours.production_version.pk, "site": site_a.pk, "items": 1},
        ).status_code
        == 403
    )
    assert upstream.requests == []
