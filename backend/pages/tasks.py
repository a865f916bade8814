"""Celery tasks for pages: meta for every page of a site that lacks it."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings

from integrations.jobs import register, run_job, set_total, start_job

from .models import Page
from .services.ai_service import AIService

KIND = "pages.generate_meta"


@register(KIND)
def _generate_meta(job: Any, report: Any) -> None:
    params = job.params
    pages = Page.objects.filter(site_id=job.site_id).order_by("pk")
    if params.get("only_missing", True):
        pages = pages.filter(meta_title="") | pages.filter(meta_description="")
    pages = list(pages.order_by("pk")[: params.get("limit") or None])
    set_total(job, len(pages))
    chunk = int(params.get("chunk") or 25)
    service = AIService(site=job.site_id)
    for start in range(0, len(pages), chunk):
        outcome = service.generate_meta_batch(
            pages[start:start + chunk], model=params.get("model") or None,
            concurrency=int(params.get("concurrency") or settings.AI_BATCH_CONCURRENCY),
        )
        for page in pages[start:start + chunk]:
            problem = outcome[page.pk]
            code, _, message = (problem or "").partition(": ")
            report(f"page {page.pk} {page.slug}", problem is None, code, message)


@shared_task(name="pages.generate_meta_for_site")
def generate_meta_for_site(job_id: int) -> int:
    run_job(job_id)
    return job_id


def start_generate_meta(site: Any, user: Any = None, **params: Any):
    """Queue (or, without a broker, run) meta generation for a site's pages; returns the BatchJob."""
    return start_job(KIND, site, generate_meta_for_site, params, user)
