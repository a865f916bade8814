"""Celery tasks for pages: meta for a site's pages (those lacking it, or the ones a person selected)."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings

from integrations.jobs.runner import checkpoint, register, register_retry, run_job, set_total, start_job

from .models import Page
from .services.ai_service import AIService

KIND = "pages.generate_meta"


@register(KIND)
def _generate_meta(job: Any, report: Any) -> None:
    params = job.params
    pages = Page.objects.filter(site_id=job.site_id).order_by("pk")
    if params.get("page_ids") is not None:  # selected in the admin: exactly these (of this site)
        pages = pages.filter(pk__in=params["page_ids"])
    elif params.get("only_missing", True):
        pages = pages.filter(meta_title="") | pages.filter(meta_description="")
    pages = list(pages.order_by("pk")[: params.get("limit") or None])
    set_total(job, len(pages), keys=[page.pk for page in pages])
    chunk = int(params.get("chunk") or 25)
    service = AIService(site=job.site_id)
    for start in range(0, len(pages), chunk):
        checkpoint(job)  # a cancelled job stops between chunks
        outcome = service.generate_meta_batch(
            pages[start : start + chunk],
            model=params.get("model") or None,
            concurrency=int(params.get("concurrency") or settings.AI_BATCH_CONCURRENCY),
        )
        for page in pages[start : start + chunk]:
            problem = outcome[page.pk]
            code, _, message = (problem or "").partition(": ")
            report(f"page {page.pk} {page.slug}", problem is None, code, message, key=page.pk)


@register_retry(KIND)
def _retry_generate_meta(job: Any, keys: list, user: Any, background: bool):
    params = {k: v for k, v in job.params.items() if k not in ("keys", "page_ids")}
    return start_generate_meta(job.site, user, background=background, retry_of=job, page_ids=list(keys), **params)


@shared_task(name="pages.generate_meta_for_site")
def generate_meta_for_site(job_id: int) -> int:
    run_job(job_id)
    return job_id


def start_generate_meta(site: Any, user: Any = None, *, background: bool = False, retry_of: Any = None, **params: Any):
    """Queue (or, without a broker, run) meta generation for a site's pages; returns the BatchJob.

    `page_ids=[...]` limits it to those pages; `background=True` (the admin) never holds the caller.
    """
    return start_job(KIND, site, generate_meta_for_site, params, user, background=background, retry_of=retry_of)
