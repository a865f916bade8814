"""Bulk generation as jobs: one `BatchJob` row records progress and each item's outcome.

Apps register a handler per job kind; `start_job` records the job and hands it to Celery (or
runs it in-process when no broker is configured). A handler receives the job and a `report`
callback, and calls it once per item; progress is visible in the admin while it runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db.models import F
from django.utils import timezone

logger = logging.getLogger("integrations.ai")

Report = Callable[[str, bool, str, str], None]  # (item label, ok, error code, message)
Handler = Callable[[Any, Report], None]

_handlers: dict[str, Handler] = {}


def register(kind: str) -> Callable[[Handler], Handler]:
    def decorator(fn: Handler) -> Handler:
        _handlers[kind] = fn
        return fn

    return decorator


def handler_for(kind: str) -> Handler:
    if kind not in _handlers:
        raise LookupError(f"No batch job handler for {kind!r}; known: {', '.join(sorted(_handlers)) or 'none'}.")
    return _handlers[kind]


def start_job(kind: str, site: Any, params: dict | None = None, user: Any = None):
    """Record a job and dispatch it; returns the BatchJob (already finished when run in-process)."""
    from .models import BatchJob
    from .tasks import run_batch_job

    handler_for(kind)  # fail now, not in a worker, on an unknown kind
    job = BatchJob.objects.create(kind=kind, site=site, params=params or {}, created_by=user)
    async_result = run_batch_job.delay(job.pk)
    BatchJob.objects.filter(pk=job.pk).update(task_id=async_result.id or "")
    job.refresh_from_db()
    return job


def run_job(job_id: int) -> None:
    """Execute one job in this process (the Celery task's body)."""
    from .models import BatchJob

    job = BatchJob.objects.get(pk=job_id)
    BatchJob.objects.filter(pk=job_id).update(status="running", started_at=timezone.now())

    def report(item: str, ok: bool, code: str = "", message: str = "") -> None:
        entry = {"item": item, "ok": ok, "code": code, "message": message[:300]}
        counter = "succeeded" if ok else "failed"
        job.items.append(entry)
        BatchJob.objects.filter(pk=job_id).update(**{counter: F(counter) + 1}, items=job.items)

    try:
        handler_for(job.kind)(job, report)
    except Exception as exc:
        logger.exception("batch job %s failed", job_id)
        BatchJob.objects.filter(pk=job_id).update(
            status="failed", error=f"{type(exc).__name__}: {exc}"[:500], finished_at=timezone.now()
        )
        raise
    BatchJob.objects.filter(pk=job_id).update(status="done", finished_at=timezone.now())


def set_total(job: Any, total: int) -> None:
    from .models import BatchJob

    job.total = total
    BatchJob.objects.filter(pk=job.pk).update(total=total)
