"""The "Generate meta for selected pages (batch)" action: estimate, confirm, then a BatchJob per site.

The interactive action (`admin_views`) reviews up to 20 pages; this one is for many pages and
writes straight to them, so it first shows what it would take (items, tokens, worst-case cost
against each site's remaining budget) and starts only on an explicit "Start batch". The job runs
in the background (a Celery worker, or a thread of this process without a broker) and its page
shows the progress.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.admin import helpers
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from integrations.jobs.estimate import Call, Estimate, estimate
from tenancy.access import can_manage

from . import admin_views
from .models import Page
from .services.ai_service import META_SYSTEM_PROMPT, meta_prompt
from .tasks import start_generate_meta

MAX_BATCH_PAGES = 2000  # one action; more than this is a job for `manage.py` or several runs
META_MAX_TOKENS = 300  # what AIService.generate_meta_batch allows per page


class BatchMetaForm(forms.Form):
    model = forms.CharField(required=False, max_length=200, help_text="Empty: each site's default model.")


def estimate_pages(pages: list[Page], model: str | None) -> list[Estimate]:
    """One estimate per site among `pages` (a job runs on one site's settings and budget)."""
    by_site: dict[int, list[Page]] = {}
    for page in pages:
        by_site.setdefault(page.site_id, []).append(page)
    return [
        estimate(
            site_pages[0].site,
            [
                Call([{"role": "user", "content": meta_prompt(p.title, p.body)}], META_SYSTEM_PROMPT, META_MAX_TOKENS)
                for p in site_pages
            ],
            model,
        )
        for site_pages in by_site.values()
    ]


def generate_meta_batch_action(model_admin: Any, request: HttpRequest, queryset) -> HttpResponse | None:
    """The admin action: the estimate screen, and on "Start batch" the jobs."""
    pages = [
        p
        for p in queryset.select_related("site").order_by("pk")[: MAX_BATCH_PAGES + 1]
        if can_manage(request.user, p.site_id) and model_admin.has_change_permission(request, p)
    ]
    if not pages:
        model_admin.message_user(request, "None of the selected pages can be changed by you.", messages.WARNING)
        return None
    if len(pages) > MAX_BATCH_PAGES:
        model_admin.message_user(
            request, f"A batch holds at most {MAX_BATCH_PAGES} pages: select fewer.", messages.ERROR
        )
        return None
    submitted = "_estimate" in request.POST or "_start" in request.POST
    form = BatchMetaForm(request.POST if submitted else None)
    model = form.cleaned_data["model"].strip() or None if form.is_valid() else None
    estimates = estimate_pages(pages, model)
    blocked = any(e.blocked for e in estimates)
    if "_start" in request.POST and form.is_valid():
        if blocked:
            model_admin.message_user(
                request, "Nothing was started: fix the problems shown in the estimate.", messages.ERROR
            )
        else:
            return _start(model_admin, request, pages, model)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": "Generate meta for selected pages (batch)",
        "pages": pages,
        "form": form,
        "estimates": estimates,
        "blocked": blocked,
        "max_preview": admin_views.MAX_PREVIEW_PAGES,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/pages/page/batch_meta_confirm.html", context)


def _start(model_admin: Any, request: HttpRequest, pages: list[Page], model: str | None) -> HttpResponse:
    by_site: dict[int, list[Page]] = {}
    for page in pages:
        by_site.setdefault(page.site_id, []).append(page)
    jobs = [
        start_generate_meta(
            site_pages[0].site,
            request.user,
            background=True,
            page_ids=[p.pk for p in site_pages],
            model=model or "",
            chunk=8,
        )
        for site_pages in by_site.values()
    ]
    model_admin.message_user(
        request,
        f"Started {len(jobs)} batch job{'s' if len(jobs) != 1 else ''} for {len(pages)} page(s): "
        + ", ".join(f"#{job.pk}" for job in jobs)
        + ".",
        messages.SUCCESS,
    )
    # The starter always follows their jobs (integrations.jobs.admin: an editor sees the jobs they start).
    if len(jobs) == 1:
        return HttpResponseRedirect(reverse("admin:integrations_batchjob_change", args=[jobs[0].pk]))
    return HttpResponseRedirect(reverse("admin:integrations_batchjob_changelist"))
