"""Celery tasks for pages: meta for a site's pages (those lacking it, or the ones a person selected), and the
embeddings of pages whose text changed (search by meaning)."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings

from integrations.ai.providers.errors import AIProviderError
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


# -- search by meaning: embeddings of changed pages ---------------------------------------------------------
EMBED_KIND = "pages.embed"


@register(EMBED_KIND)
def _embed_pages(job: Any, report: Any) -> None:
    """Embed the site's pages whose text changed (or the ones named), a batch per report line."""
    from . import search

    ids = job.params.get("page_ids") or search.stale_page_ids(job.site_id)
    pages = list(Page.objects.filter(site_id=job.site_id, pk__in=ids).prefetch_related("blocks").order_by("pk"))
    batch = int(job.params.get("batch") or search.BATCH)
    chunks = [pages[i : i + batch] for i in range(0, len(pages), batch)]
    set_total(job, len(chunks), keys=[chunk[0].pk for chunk in chunks])
    for chunk in chunks:
        checkpoint(job)
        label = f"pages {chunk[0].pk} to {chunk[-1].pk} ({len(chunk)})"
        try:
            done = search.index_pages(job.site_id, chunk, batch=batch)
        except AIProviderError as exc:
            report(label, False, exc.code, exc.message, key=chunk[0].pk)
            continue
        report(label, True, "", f"{done.embedded} embedded in {done.requests} request(s)", key=chunk[0].pk)


@shared_task(name="pages.embed_pages")
def embed_pages(job_id: int) -> int:
    run_job(job_id)
    return job_id


def start_embed(site: Any, user: Any = None, *, background: bool = False, **params: Any):
    """Queue (or, without a broker, run) embedding of a site's changed pages; returns the BatchJob."""
    return start_job(EMBED_KIND, site, embed_pages, params, user, background=background)


def schedule_embed(site_id: int) -> Any:
    """After a page of the site changed: one embed job, unless one is already waiting (it will see the change).

    `PAGES_EMBED_ON_SAVE`: "background" (off the request thread), "sync" (here), "off".
    """
    from django.contrib.sites.models import Site

    from integrations.models import BatchJob

    mode = settings.PAGES_EMBED_ON_SAVE
    if mode == "off":
        return None
    if BatchJob.objects.filter(kind=EMBED_KIND, site_id=site_id, status="pending").exists():
        return None
    site = Site.objects.filter(pk=site_id).first()
    return start_embed(site, background=mode == "background") if site is not None else None
