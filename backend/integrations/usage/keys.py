"""Daily spend per virtual key (`UsageKeyDaily`) and per editor and site (`UsageUserDaily`, issue 27): what
the dashboard's and the CSV's "by key" and "by editor" numbers read.

`usage_rollups.add` hands every batch of saved ledger rows here, inside the ledger writer's
transaction, so the per-key sums always match the rows written with them (and roll back with them).
Rows without a key (every call not made through /v1), or without a user, are skipped at the cost of one
attribute read.
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


def _groups(rows: Iterable[Any], owner: str) -> dict[tuple[int, int | None, datetime.date], Sums]:
    """Sums per (owner id, site id, day) of the rows that have an `owner` (`api_key_id`, `user_id`)."""
    zone = timezone.get_default_timezone()
    groups: dict[tuple[int, int | None, datetime.date], Sums] = {}
    for row in rows:
        owner_id = getattr(row, owner, None)
        if owner_id is None:
            continue
        sums = groups.setdefault(
            (owner_id, row.site_id, timezone.localdate(row.created_at, zone)),
            {"requests": 0, "refused": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost": Decimal(0)},
        )
        sums["refused" if row.status == "refused" else "requests"] += 1
        sums["prompt_tokens"] += int(row.prompt_tokens or 0)
        sums["completion_tokens"] += int(row.completion_tokens or 0)
        sums["cost"] += Decimal(row.cost or 0)
    return groups


def _add(model: Any, owner: str, rows: Iterable[Any], per_site: bool) -> None:
    # sorted: parallel writers lock alike (None sites first)
    groups = _groups(rows, owner)
    for owner_id, site_id, day in sorted(groups, key=lambda k: (k[0], k[1] or 0, k[2])):
        sums = groups[(owner_id, site_id, day)]
        increments = {name: F(name) + value for name, value in sums.items()}
        where = {owner: owner_id, "day": day, **({"site_id": site_id} if per_site else {})}
        if model.objects.filter(**where).update(**increments):
            continue
        try:
            with transaction.atomic():
                model.objects.create(**{"site_id": site_id, **where}, **sums)
        except IntegrityError:  # another writer inserted it first
            model.objects.filter(**where).update(**increments)


def add(rows: Iterable[Any]) -> None:
    """Add saved ledger rows made by virtual keys to their keys' days (inside the caller's transaction)."""
    from integrations.models import UsageKeyDaily

    _add(UsageKeyDaily, "api_key_id", rows, per_site=False)  # a key has one site


def add_users(rows: Iterable[Any]) -> None:
    """Add saved ledger rows made for a user to that user's days on the row's site (same transaction)."""
    from integrations.models import UsageUserDaily

    _add(UsageUserDaily, "user_id", rows, per_site=True)
