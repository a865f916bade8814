"""Bulk generation as jobs: one `BatchJob` row records progress and each item's outcome.

An app registers a handler per job kind and a Celery task that runs it; `start_job` records the
job and hands it to Celery, which runs it in a worker or, with no broker configured
(CELERY_TASK_ALWAYS_EAGER), right here in-process. A handler calls `report` once per item from
the calling thread, so progress shows in the admin while the job runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db.models import F
from django.utils import timezone

from .ai import usage

logger = logging.getLogger("integrations.ai")

Report = Callable[..., None]  # report(item label, ok, code="", message="")
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


def start_job(kind: str, site: Any, task: Any, params: dict | None = None, user: Any = None):
    """Record a job and dispatch `task(job_id)`; returns the BatchJob (finished already when run in-process)."""
    from .models import BatchJob

    handler_for(kind)  # fail now, not in a worker, on an unknown kind
    job = BatchJob.objects.create(kind=kind, site=site, params=params or {}, created_by=user)
    async_result = task.delay(job.pk)
    BatchJob.objects.filter(pk=job.pk).update(task_id=async_result.id or "")
    job.refresh_from_db()
    return job


def set_total(job: Any, total: int) -> None:
    from .models import BatchJob

    job.total = total
    BatchJob.objects.filter(pk=job.pk).update(total=total)


def run_job(job_id: int) -> None:
    """Execute one job in this process (the body of every job task)."""
    from .models import BatchJob

    job = BatchJob.objects.get(pk=job_id)
    BatchJob.objects.filter(pk=job_id).update(status="running", started_at=timezone.now())

    def report(item: str, ok: bool, code: str = "", message: str = "") -> None:
        job.items.append({"item": item, "ok": ok, "code": code, "message": message[:300]})
        counter = "succeeded" if ok else "failed"
        BatchJob.objects.filter(pk=job_id).update(**{counter: F(counter) + 1}, items=job.items)

    try:
        try:
            handler_for(job.kind)(job, report)
        finally:
            usage.flush()  # the job's ledger rows are written before it reports done
    except Exception as exc:
        logger.exception("batch job %s failed", job_id)
        BatchJob.objects.filter(pk=job_id).update(
            status="failed", error=f"{type(exc).__name__}: {exc}"[:500], finished_at=timezone.now()
        )
        raise
    BatchJob.objects.filter(pk=job_id).update(status="done", finished_at=timezone.now())
