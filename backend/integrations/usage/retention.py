"""Retention of the usage ledger: raw `AIUsage` rows older than `AI_USAGE_RETENTION_DAYS` are deleted.

Only raw rows go: the daily roll-ups (`UsageDaily`) the dashboard reads hold everything it shows and
are kept for ever, so pruning changes no number on it. Rows are deleted in batches by primary key,
each batch its own short transaction, so a big first prune never holds a long lock on the ledger the
writer is inserting into.
"""

from __future__ import annotations

import datetime

from django.utils import timezone

BATCH_SIZE = 10_000


def cutoff(days: int, now: datetime.datetime | None = None) -> datetime.datetime:
    """Rows created before this moment are older than `days` days."""
    return (now or timezone.now()) - datetime.timedelta(days=days)


def prune(days: int | None = None, batch_size: int = BATCH_SIZE, now: datetime.datetime | None = None) -> int:
    """Delete raw ledger rows older than `days` (default the setting) in batches; returns how many."""
    from integrations.ai.runtime import conf
    from integrations.models import AIUsage

    if days is None:
        days = conf.usage_retention_days()
    if days < 1:
        raise ValueError(f"days must be at least 1; got {days}.")
    before = cutoff(days, now)
    deleted = 0
    while True:
        ids = list(
            AIUsage.objects.filter(created_at__lt=before).order_by("pk").values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return deleted
        deleted += AIUsage.objects.filter(pk__in=ids).delete()[0]
