"""Bulk generation as jobs: one `BatchJob` row records progress and each item's outcome.

An app registers a handler per job kind and a Celery task that runs it; `start_job` records the
job and hands it to Celery, which runs it in a worker or, with no broker configured
(CELERY_TASK_ALWAYS_EAGER), right here in-process. A handler calls `report` once per item from
the calling thread, so progress shows in the admin while the job runs.

Between items a handler calls `checkpoint(job)`: a job cancelled from the admin stops there (the
items in flight finish, nothing new starts). Each item is reported with a `key` (a page id, a
CSV row index) and `set_total` records every planned key, so `retry` can start a new job over the
items that failed or were never reached; each kind registers how to build that job (`register_retry`).
The admin starts jobs with `background=True`: without a broker the job then runs on a thread of
this process, so the request returns at once and the job page shows its progress.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import F
from django.utils import timezone

from integrations.ai.ledger import usage
from integrations.ai.sites.callers import acting_for
from integrations.usage.editors import editor_of

logger = logging.getLogger("integrations.ai")

Report = Callable[..., None]  # report(item label, ok, code="", message="", key=None)
Handler = Callable[[Any, Report], None]
Retry = Callable[..., Any]  # retry(job, failed keys, user, background) -> the new BatchJob

_handlers: dict[str, Handler] = {}
_retries: dict[str, Retry] = {}


class JobCancelled(Exception):
    """Raised by `checkpoint` when the job was cancelled; `run_job` records it as status "cancelled"."""


def register(kind: str) -> Callable[[Handler], Handler]:
    def decorator(fn: Handler) -> Handler:
        _handlers[kind] = fn
        return fn

    return decorator


def register_retry(kind: str) -> Callable[[Retry], Retry]:
    """Register how a kind starts a job over some of its keys (the failed items of an earlier job)."""

    def decorator(fn: Retry) -> Retry:
        _retries[kind] = fn
        return fn

    return decorator


def handler_for(kind: str) -> Handler:
    if kind not in _handlers:
        raise LookupError(f"No batch job handler for {kind!r}; known: {', '.join(sorted(_handlers)) or 'none'}.")
    return _handlers[kind]


def start_job(
    kind: str,
    site: Any,
    task: Any,
    params: dict | None = None,
    user: Any = None,
    background: bool = False,
    retry_of: Any = None,
):
    """Record a job and dispatch `task(job_id)`; returns the BatchJob.

    With a broker the task goes to a worker. Without one it runs in-process: synchronously (the job
    comes back finished), or with `background=True` on a daemon thread, so a web request is not held
    for the whole batch (the thread commits its own progress; a restart of the process stops it).
    """
    from integrations.models import BatchJob

    handler_for(kind)  # fail now, not in a worker, on an unknown kind
    job = BatchJob.objects.create(kind=kind, site=site, params=params or {}, created_by=user, retry_of=retry_of)
    if background and getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False):
        thread = threading.Thread(target=_run_in_thread, args=(job.pk,), name=f"batch-job-{job.pk}", daemon=True)
        thread.start()
        return job
    async_result = task.delay(job.pk)
    BatchJob.objects.filter(pk=job.pk).update(task_id=async_result.id or "")
    job.refresh_from_db()
    return job


def _run_in_thread(job_id: int) -> None:
    close_old_connections()
    try:
        run_job(job_id)
    except Exception:  # recorded on the job (status failed, error) by run_job
        logger.info("batch job %s ended with an error (see the job)", job_id)
    finally:
        connection.close()


def set_total(job: Any, total: int, keys: list | None = None) -> None:
    """The number of items, and (for retries) the key of each planned item."""
    from integrations.models import BatchJob

    job.total = total
    update: dict[str, Any] = {"total": total}
    if keys is not None:
        job.params = {**job.params, "keys": list(keys)}
        update["params"] = job.params
    BatchJob.objects.filter(pk=job.pk).update(**update)


def checkpoint(job: Any) -> None:
    """Between items: stop here (JobCancelled) when someone cancelled the job."""
    from integrations.models import BatchJob

    if BatchJob.objects.filter(pk=job.pk, cancel_requested=True).exists():
        raise JobCancelled


def cancel(job: Any) -> bool:
    """Ask a job to stop; a job not yet started is cancelled at once. False when it had already finished."""
    from integrations.models import BatchJob

    if job.finished:
        return False
    BatchJob.objects.filter(pk=job.pk).update(cancel_requested=True)
    BatchJob.objects.filter(pk=job.pk, status="pending").update(status="cancelled", finished_at=timezone.now())
    job.refresh_from_db()
    return True


def retry_keys(job: Any) -> list:
    """The keys of the items to run again: failed ones, and planned ones never reached (a cancelled job)."""
    done = {item.get("key") for item in job.items if item.get("ok")}
    planned = job.params.get("keys")
    if planned is None:
        return [item["key"] for item in job.items if not item.get("ok") and item.get("key") is not None]
    return [key for key in planned if key not in done]


def can_retry(job: Any) -> bool:
    return job.finished and job.kind in _retries and bool(retry_keys(job))


def retry(job: Any, user: Any = None, background: bool = False):
    """A new job over `job`'s failed (or unreached) items; LookupError when there is nothing to retry."""
    keys = retry_keys(job)
    if job.kind not in _retries or not keys:
        raise LookupError("This job has no failed items to retry.")
    return _retries[job.kind](job, keys, user, background)


def run_job(job_id: int) -> None:
    """Execute one job in this process (the body of every job task)."""
    from integrations.models import BatchJob

    job = BatchJob.objects.get(pk=job_id)
    if job.cancel_requested:
        BatchJob.objects.filter(pk=job_id).update(status="cancelled", finished_at=timezone.now())
        return  # cancelled before it started
    BatchJob.objects.filter(pk=job_id).update(status="running", started_at=timezone.now())

    def report(item: str, ok: bool, code: str = "", message: str = "", key: Any = None) -> None:
        job.items.append({"item": item, "ok": ok, "code": code, "message": message[:300], "key": key})
        counter = "succeeded" if ok else "failed"
        BatchJob.objects.filter(pk=job_id).update(**{counter: F(counter) + 1}, items=job.items)

    try:
        try:
            with acting_for(editor_of(job.created_by)):  # the starter's calls: their quota, their ledger rows
                handler_for(job.kind)(job, report)
        finally:
            usage.flush()  # the job's ledger rows are written before it reports done
    except JobCancelled:
        BatchJob.objects.filter(pk=job_id).update(status="cancelled", finished_at=timezone.now())
        return
    except Exception as exc:
        logger.exception("batch job %s failed", job_id)
        BatchJob.objects.filter(pk=job_id).update(
            status="failed", error=f"{type(exc).__name__}: {exc}"[:500], finished_at=timezone.now()
        )
        raise
    BatchJob.objects.filter(pk=job_id).update(status="done", finished_at=timezone.now())
