"""Celery tasks of the AI layer."""

from __future__ import annotations

from celery import shared_task

from .jobs import run_job


@shared_task(name="integrations.run_batch_job")
def run_batch_job(job_id: int) -> int:
    run_job(job_id)
    return job_id
