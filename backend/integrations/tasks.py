"""Celery tasks of the integrations app: the usage ledger's retention (scheduled in panel/celery.py)."""

from __future__ import annotations

from celery import shared_task

PRUNE_USAGE = "integrations.prune_usage"


@shared_task(name=PRUNE_USAGE)
def prune_usage() -> int:
    """Delete raw ledger rows older than AI_USAGE_RETENTION_DAYS; the daily roll-ups stay."""
    from integrations.usage.retention import prune

    return prune()
