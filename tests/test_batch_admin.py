"""Batch work from the admin (issue 13, deliverable 5): estimate, confirm, progress, cancel, retry, CSV checks.

Jobs started from the admin run on a background thread (no broker in tests), so these tests use
committed transactions and wait for the job the way the job page does: by reading its row.
"""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from integrations.ai.governance import budget
from integrations.ai.ledger import usage
from integrations.models import AIUsage, BatchJob
from pages.models import Page
from pages.services.ai_service import META_SYSTEM_PROMPT, meta_prompt
from prompts.models import PromptRun

from .factories import AIUsageFactory, ModelPriceFactory, SiteMembershipFactory, UserFactory
from .factories_cms import PageFactory, PromptTemplateFactory

pytestmark = pytest.mark.django_db(transaction=True)

PAGE_PERMS = ("view_page", "change_page", "view_batchjob", "change_batchjob")
RUN_PERMS = ("view_prompttemplate", "add_promptrun", "view_batchjob", "change_batchjob")
PRICE = (Decimal("2.5"), Decimal("10"))


def staff(site, *perms: str):
    user = UserFactory()
    SiteMembershipFactory(user=user, site=site)
    user.user_permissions.set(Permission.objects.filter(codename__in=perms))
    return user


def wait_for(job: BatchJob, timeout: float = 30) -> BatchJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.finished:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job.pk} still {job.status} after {timeout}s")


@pytest.fixture
def site(emulated_site):
    site = emulated_site("openai")
    ModelPriceFactory(
        provider="openai", model_id="gpt-4o-mini", prompt_per_million=PRICE[0], completion_per_million=PRICE[1]
    )
    return site


def action(client, name: str, pages, **extra):
    return client.post(
        reverse("admin:pages_page_changelist"), {"action": name, "_selected_action": [p.pk for p in pages], **extra}
    )


def test_estimate_shows_items_tokens_cost_and_budget_and_starts_nothing(client, site, upstream):
    from integrations.models import AIProviderSettings

    AIProviderSettings.objects.filter(site=site).update(monthly_budget=Decimal("5"))
    AIUsageFactory(site=site, cost=Decimal("1.25"))
    pages = PageFactory.create_batch(3, site=site, meta_title="", meta_description="")
    client.force_login(staff(site, *PAGE_PERMS))
    response = action(client, "generate_meta_batch", pages)
    assert response.status_code == 200
    (estimate,) = response.context["estimates"]
    expected = sum(
        budget.estimate_cost(
            PRICE, [{"role": "user", "content": meta_prompt(p.title, p.body)}], META_SYSTEM_PROMPT, 300
        )
        for p in pages
    )
    assert (estimate.items, estimate.completion_tokens, estimate.cost) == (3, 900, expected)
    assert estimate.provider == "openai" and estimate.model == "gpt-4o-mini"
    assert estimate.remaining == Decimal("3.75") and not estimate.blocked
    body = response.content.decode()
    assert budget.usd(expected) in body and "$3.75 left of $5.00" in body and 'name="_start"' in body
    assert BatchJob.objects.count() == 0 and upstream.requests == []


def test_a_used_up_budget_blocks_the_start(client, site, upstream):
    from integrations.models import AIProviderSettings

    AIProviderSettings.objects.filter(site=site).update(monthly_budget=Decimal("1"))
    AIUsageFactory(site=site, cost=Decimal("1.5"))
    pages = PageFactory.create_batch(2, site=site)
    client.force_login(staff(site, *PAGE_PERMS))
    response = action(client, "generate_meta_batch", pages, _start="Start batch")
    assert response.status_code == 200 and "monthly AI budget of $1.00 is used up" in response.content.decode()
    assert BatchJob.objects.count() == 0 and upstream.requests == []


def test_confirm_starts_a_background_job_whose_progress_reaches_done(client, site, upstream):
    pages = PageFactory.create_batch(5, site=site, meta_title="", meta_description="")
    other = PageFactory(site=site, meta_title="", meta_description="")  # not selected: left alone
    user = staff(site, *PAGE_PERMS)
    client.force_login(user)
    response = action(client, "generate_meta_batch", pages, _start="Start batch")
    job = BatchJob.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "admin:integrations_batchjob_change", args=[job.pk]
    )
    assert job.params["page_ids"] == [p.pk for p in pages] and job.created_by == user
    wait_for(job)
    progress = client.get(reverse("admin:integrations_batchjob_progress", args=[job.pk])).json()
    assert (progress["status"], progress["total"], progress["succeeded"], progress["percent"]) == ("done", 5, 5, 100)
    assert [i["ok"] for i in progress["items"]] == [True] * 5 and not progress["can_cancel"]
    assert Page.objects.filter(pk__in=[p.pk for p in pages], meta_title="").count() == 0
    other.refresh_from_db()
    assert other.meta_title == ""
    usage.flush()
    assert AIUsage.objects.filter(site=site, status="ok", service="pages.meta").count() == 5
    page = client.get(reverse("admin:integrations_batchjob_change", args=[job.pk])).content.decode()
    assert '<table id="batch-items"' in page and f"page {pages[0].pk} {pages[0].slug}" in page
    assert "&quot;item&quot;" not in page and '"ok": true' not in page  # a table, not the stored JSON


def test_progress_is_scoped_to_the_users_sites_and_permissions(client, site, emulated_site):
    job = BatchJob.objects.create(
        kind="pages.generate_meta",
        site=site,
        status="running",
        total=4,
        succeeded=1,
        items=[{"item": "page 1 a", "ok": True, "code": "", "message": "", "key": 1}],
    )
    url = reverse("admin:integrations_batchjob_progress", args=[job.pk])
    other_site = emulated_site("anthropic")
    client.force_login(staff(other_site, *PAGE_PERMS))
    assert client.get(url).status_code == 404
    client.force_login(staff(site, "view_page"))
    assert client.get(url).status_code == 403
    client.force_login(staff(site, "view_batchjob"))
    data = client.get(url, {"since": 1}).json()
    assert (data["processed"], data["percent"], data["items"], data["next"]) == (1, 25, [], 1)
    assert client.post(reverse("admin:integrations_batchjob_cancel", args=[job.pk])).status_code == 403
    job.refresh_from_db()
    assert not job.cancel_requested


def test_cancel_stops_a_running_job_between_chunks(client, site, upstream):
    pages = PageFactory.create_batch(24, site=site)
    upstream.script(delay=0.4, times=24)
    client.force_login(staff(site, *PAGE_PERMS))
    action(client, "generate_meta_batch", pages, _start="Start batch")
    job = BatchJob.objects.get()
    deadline = time.monotonic() + 30
    while not (job.status == "running" and job.total) and time.monotonic() < deadline:
        time.sleep(0.02)  # cancel a job that is running (its items planned), as the test's name says
        job.refresh_from_db()
    response = client.post(reverse("admin:integrations_batchjob_cancel", args=[job.pk]))
    assert response.status_code == 302
    wait_for(job)
    assert job.status == "cancelled" and job.cancel_requested
    assert job.processed < 24 and len(upstream.requests) < 24
    data = client.get(reverse("admin:integrations_batchjob_progress", args=[job.pk])).json()
    assert data["status"] == "cancelled" and data["can_retry"]


def test_retry_runs_only_the_failed_items_in_a_new_job(client, site, upstream, settings):
    settings.AI_MAX_RETRIES = 0
    pages = PageFactory.create_batch(3, site=site, meta_title="", meta_description="")
    upstream.script(status=400)
    client.force_login(staff(site, *PAGE_PERMS))
    action(client, "generate_meta_batch", pages, _start="Start batch")
    first = wait_for(BatchJob.objects.get())
    assert (first.succeeded, first.failed) == (2, 1)
    (failed,) = [i for i in first.items if not i["ok"]]
    assert failed["code"] == "invalid_request"
    upstream.reset()
    response = client.post(reverse("admin:integrations_batchjob_retry", args=[first.pk]))
    second = BatchJob.objects.exclude(pk=first.pk).get()
    assert response["Location"] == reverse("admin:integrations_batchjob_change", args=[second.pk])
    wait_for(second)
    assert second.retry_of_id == first.pk and second.params["page_ids"] == [failed["key"]]
    assert (second.total, second.succeeded) == (1, 1) and len(upstream.requests) == 1
    assert Page.objects.filter(site=site, meta_title="").count() == 0


def test_retry_needs_the_permission_of_the_work(client, site):
    job = BatchJob.objects.create(
        kind="pages.generate_meta",
        site=site,
        status="done",
        total=1,
        failed=1,
        params={"page_ids": [1], "keys": [1]},
        items=[{"item": "page 1", "ok": False, "code": "x", "message": "", "key": 1}],
    )
    client.force_login(staff(site, "view_batchjob", "change_batchjob"))  # no change_page
    assert client.post(reverse("admin:integrations_batchjob_retry", args=[job.pk])).status_code == 403
    assert BatchJob.objects.count() == 1


# ---- run a template over a CSV ------------------------------------------------------------------


def upload(client, template, site, text: str | bytes, **extra):
    data = text.encode() if isinstance(text, str) else text
    return client.post(
        reverse("admin:prompts_prompttemplate_batch", args=[template.pk]),
        {"csv_file": SimpleUploadedFile("rows.csv", data, content_type="text/csv"), "site": site.pk, **extra},
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (b"\xff\xfeproduct", "not UTF-8"),
        ("", "The submitted file is empty"),
        ("\n\n", "no header row"),
        ("product,colour\nrye,red\n", "Unknown column(s): colour"),
        ("product\nrye\n", "Missing column(s): audience"),
        ("product,audience\n", "no rows"),
        ("product,audience\nrye,students\n,\noat,kids\n", "Row 2 (line 3) is empty"),
        ("product,audience\nrye,students,extra\n", "Row 1 (line 2) has 3 value(s)"),
        ("product,audience\nrye,\n", "Row 1 (line 2): column(s) audience empty"),
        ("product,audience,product\nrye,kids,oat\n", "“product” appears twice"),
        ("product,audience\n" + "rye,kids\n" * 501, "501 rows; a batch runs at most 500"),
        ('product,audience\n"rye,kids\n', "Row 1 (line 2) has 1 value(s)"),
    ],
)
def test_a_bad_csv_is_refused_naming_the_row_or_column(client, site, upstream, text, problem):
    template = PromptTemplateFactory(site=site)
    client.force_login(staff(site, *RUN_PERMS))
    response = upload(client, template, site, text)
    assert response.status_code == 200
    errors = response.context["form"].errors["csv_file"]
    assert any(problem in e for e in errors), errors
    assert "Nothing was started" in response.content.decode() and response.context["token"] is None
    assert BatchJob.objects.count() == 0 and upstream.requests == []


def test_csv_estimate_then_confirm_runs_every_row(client, site, upstream):
    ModelPriceFactory(
        provider="openai", model_id="gpt-4o", prompt_per_million=PRICE[0], completion_per_million=PRICE[1]
    )
    template = PromptTemplateFactory(site=site)
    client.force_login(staff(site, *RUN_PERMS))
    response = upload(client, template, site, "audience,product\nstudents,rye\nkids,oat\nchefs,spelt\n")
    (estimate,) = response.context["estimates"]
    assert (estimate.items, estimate.completion_tokens, estimate.model) == (3, 450, "gpt-4o")
    assert estimate.cost > 0 and BatchJob.objects.count() == 0 and upstream.requests == []
    token = response.context["token"]
    response = client.post(
        reverse("admin:prompts_prompttemplate_batch", args=[template.pk]), {"token": token, "_start": "Start batch"}
    )
    job = wait_for(BatchJob.objects.get())
    assert response["Location"] == reverse("admin:integrations_batchjob_change", args=[job.pk])
    assert (job.status, job.total, job.succeeded) == ("done", 3, 3)
    assert sorted(PromptRun.objects.filter(template=template).values_list("variables__product", flat=True)) == [
        "oat",
        "rye",
        "spelt",
    ]
    # the token is spent: a second confirm starts nothing
    client.post(reverse("admin:prompts_prompttemplate_batch", args=[template.pk]), {"token": token, "_start": "1"})
    assert BatchJob.objects.count() == 1


def test_csv_retry_keeps_the_files_row_numbers(client, site, upstream, settings):
    settings.AI_MAX_RETRIES = 0
    template = PromptTemplateFactory(site=site, default_model="")
    client.force_login(staff(site, *RUN_PERMS))
    response = upload(client, template, site, "product,audience\nrye,students\noat,kids\n")
    upstream.script(status=400)
    client.post(
        reverse("admin:prompts_prompttemplate_batch", args=[template.pk]),
        {"token": response.context["token"], "_start": "Start batch"},
    )
    first = wait_for(BatchJob.objects.get())
    (failed,) = [i for i in first.items if not i["ok"]]
    client.post(reverse("admin:integrations_batchjob_retry", args=[first.pk]))
    second = wait_for(BatchJob.objects.exclude(pk=first.pk).get())
    assert [i["item"] for i in second.items] == [failed["item"]] and second.succeeded == 1


def test_the_csv_screen_needs_both_run_permissions_and_the_site(client, site, emulated_site):
    template = PromptTemplateFactory(site=site)
    url = reverse("admin:prompts_prompttemplate_batch", args=[template.pk])
    client.force_login(staff(site, "view_prompttemplate"))
    assert client.get(url).status_code == 403
    client.force_login(staff(emulated_site("anthropic"), *RUN_PERMS))
    assert client.get(url).status_code == 404
