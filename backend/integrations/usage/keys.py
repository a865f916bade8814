"""Daily spend per virtual key (`UsageKeyDaily`): what the dashboard's and the CSV's "by key" numbers read.

`usage_rollups.add` hands every batch of saved ledger rows here, inside the ledger writer's
transaction, so the per-key sums always match the rows written with them (and roll back with them).
Rows without a key (every call not made through /v1) are skipped at the cost of one attribute read.
Each (key, day) row is incremented in the database (`F()` expressions), and inserted when missing;
an insert that loses a race with another writer rolls back to its savepoint and increments instead.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

Sums = dict[str, Any]


def _groups(rows: Iterable[Any]) -> dict[tuple[int, datetime.date], Sums]:
    zone = timezone.get_default_timezone()
    groups: dict[tuple[int, datetime.date], Sums] = {}
    for row in rows:
        key_id = getattr(row, "api_key_id", None)
        if key_id is None:
            continue
        sums = groups.setdefault(
            (key_id, timezone.localdate(row.created_at, zone)),
            {
                "site_id": row.site_id,
                "requests": 0,
                "refused": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "cost": Decimal(0),
            },
        )
        sums["refused" if row.status == "refused" else "requests"] += 1
        sums["prompt_tokens"] += int(row.prompt_tokens or 0)
        sums["completion_tokens"] += int(row.completion_tokens or 0)
        sums["cost"] += Decimal(row.cost or 0)
    return groups


def add(rows: Iterable[Any]) -> None:
    """Add saved ledger rows made by virtual keys to their keys' days (inside the caller's transaction)."""
    from integrations.models import UsageKeyDaily

    for (key_id, day), sums in sorted(_groups(rows).items()):  # key order: parallel writers lock alike
        increments = {name: F(name) + value for name, value in sums.items() if name != "site_id"}
        if UsageKeyDaily.objects.filter(api_key_id=key_id, day=day).update(**increments):
            continue
        try:
            with transaction.atomic():
                UsageKeyDaily.objects.create(api_key_id=key_id, day=day, **sums)
        except IntegrityError:  # another writer inserted it first
            UsageKeyDaily.objects.filter(api_key_id=key_id, day=day).update(**increments)
