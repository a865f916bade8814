"""Daily roll-ups of the usage ledger (`UsageDaily`): what the dashboard reads instead of raw rows.

The ledger writer calls `add(rows)` in the transaction that inserts the raw `AIUsage` rows, so a
roll-up always matches the rows written with it (and rolls back with them). Rows are summed in
Python per group (day, site, provider, model, service, status, error class), then each group's
roll-up row is read with `SELECT ... FOR UPDATE` and updated (the sums merged in Python, written
back by primary key), or inserted when missing. Two writer
processes stay correct: the rows they share are locked in primary-key order, missing groups are
inserted in key order, and an insert that loses the race to another writer (unique constraint)
rolls back to a savepoint and merges into the row the winner committed.

Latency is kept as a fixed histogram: a latency's bucket is its value in ms rounded down to two
significant digits (1 ms wide below 100 ms, 10 ms to 1 s, 100 ms to 10 s, 1 s to 100 s, one bucket
from 100 s up). p50/p95 read from it are the lower edge of the bucket holding the nearest-rank
sample: exact below 100 ms and on round values, otherwise at most one bucket (under 10 %) low.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.utils import timezone

OVERFLOW_MS = 100_000
SUMS = ("prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "cache_write_tokens", "reasoning_tokens")
UPDATED = ("requests", *SUMS, "cost", "saved_cost", "cache_hits", "latency_sum", "latency_histogram", "unpriced")
RETRIES = 5

Key = tuple[int | None, datetime.date, str, str, str, str, str]  # site, day, provider, model, service, status, error


def bucket(latency_ms: int) -> int:
    """The lower edge of the histogram bucket holding `latency_ms` (two significant digits, rounded down)."""
    value = max(int(latency_ms), 0)
    if value < 100:
        return value
    if value >= OVERFLOW_MS:
        return OVERFLOW_MS
    step = 10 ** (len(str(value)) - 2)
    return value // step * step


def merge_histograms(histograms: Iterable[Mapping[str, int]]) -> dict[int, int]:
    """Bucket counts summed over several roll-ups (keys as ints)."""
    merged: dict[int, int] = {}
    for histogram in histograms:
        for edge, count in (histogram or {}).items():
            merged[int(edge)] = merged.get(int(edge), 0) + int(count)
    return merged


def histogram_percentile(histogram: Mapping[int, int], fraction: float) -> float | None:
    """Nearest-rank percentile from bucket counts: the lower edge of the bucket holding that rank."""
    total = sum(histogram.values())
    if not total:
        return None
    rank = max(int(-(-fraction * total // 1)), 1)
    seen = 0
    for edge in sorted(histogram):
        seen += histogram[edge]
        if seen >= rank:
            return float(edge)
    return float(max(histogram))  # unreachable: the counts add up to total


@dataclass
class Group:
    """The sums of one roll-up group within a batch of rows."""

    requests: int = 0
    sums: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SUMS, 0))
    cost: Decimal = Decimal(0)
    saved_cost: Decimal = Decimal(0)
    cache_hits: int = 0
    latency_sum: int = 0
    histogram: dict[str, int] = field(default_factory=dict)
    unpriced: int = 0  # rows no price source knew (charged their worst-case estimate)

    def add_row(self, row: Any) -> None:
        self.requests += 1
        for name in SUMS:
            self.sums[name] += int(getattr(row, name) or 0)
        self.cost += Decimal(getattr(row, "cost", None) or 0)
        self.saved_cost += Decimal(getattr(row, "saved_cost", None) or 0)
        self.cache_hits += 1 if getattr(row, "cache_hit", False) else 0
        self.unpriced += 1 if getattr(row, "cost_source", "") == "unpriced" else 0
        latency = int(getattr(row, "latency_ms", 0) or 0)
        self.latency_sum += latency
        edge = str(bucket(latency))
        self.histogram[edge] = self.histogram.get(edge, 0) + 1

    def merge_into(self, target: Any) -> None:
        """Add these sums to a roll-up object (saved by the caller)."""
        target.requests += self.requests
        for name in SUMS:
            setattr(target, name, getattr(target, name) + self.sums[name])
        target.cost = Decimal(target.cost or 0) + self.cost
        target.saved_cost = Decimal(target.saved_cost or 0) + self.saved_cost
        target.cache_hits += self.cache_hits
        target.latency_sum += self.latency_sum
        histogram = {str(k): int(v) for k, v in (target.latency_histogram or {}).items()}
        for edge, count in self.histogram.items():
            histogram[edge] = histogram.get(edge, 0) + count
        target.latency_histogram = histogram
        target.unpriced = int(getattr(target, "unpriced", 0) or 0) + self.unpriced

    def fields(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            **self.sums,
            "cost": self.cost,
            "saved_cost": self.saved_cost,
            "cache_hits": self.cache_hits,
            "latency_sum": self.latency_sum,
            "latency_histogram": dict(self.histogram),
            "unpriced": self.unpriced,
        }


def key_of(row: Any) -> Key:
    """The group of one ledger row (an `AIUsage` object, saved so `created_at` is set); days are TIME_ZONE's,
    whatever zone the writing thread has activated."""
    return (
        row.site_id,
        timezone.localdate(row.created_at, timezone.get_default_timezone()),
        row.provider,
        row.served_model or row.requested_model or "",
        row.service,
        row.status,
        row.error_class or "",
    )


def aggregate(rows: Iterable[Any], groups: dict[Key, Group] | None = None) -> dict[Key, Group]:
    """Sum ledger rows per roll-up group, in Python (adding to `groups` when given)."""
    groups = {} if groups is None else groups
    for row in rows:
        key = key_of(row)
        group = groups.get(key)
        if group is None:
            group = groups[key] = Group()
        group.add_row(row)
    return groups


def _sort_key(key: Key) -> tuple:
    return (key[0] is not None, key[0] or 0, *key[1:])


def upsert(groups: dict[Key, Group], model: Any = None) -> None:
    """Add `groups` to their roll-up rows (locked), inserting missing ones; safe with parallel writers.

    Call inside the transaction that writes the raw rows. `model` is `UsageDaily` or, in a data
    migration, its historical version.
    """
    from django.db import IntegrityError, transaction

    if not groups:
        return
    if model is None:
        from integrations.models import UsageDaily as model
    for attempt in range(RETRIES):
        try:
            with transaction.atomic():  # a savepoint: a lost insert race retries from the read
                _merge(groups, model)
            return
        except IntegrityError:
            if attempt == RETRIES - 1:
                raise


def _merge(groups: dict[Key, Group], model: Any) -> None:
    existing: dict[Key, Any] = {}
    for obj in _candidates(groups, model):
        key = (obj.site_id, obj.day, obj.provider, obj.model, obj.service, obj.status, obj.error_class)
        existing.setdefault(key, obj)  # rows of a deleted site (site NULL) may repeat; one takes the sums
    changed, missing = [], []
    for key in sorted(groups, key=_sort_key):
        if key in existing:
            groups[key].merge_into(existing[key])
            changed.append(existing[key])
        else:
            site_id, day, provider, name, service, status, error_class = key
            missing.append(
                model(
                    site_id=site_id,
                    day=day,
                    provider=provider,
                    model=name,
                    service=service,
                    status=status,
                    error_class=error_class,
                    **_known(model, groups[key].fields()),
                )
            )
    if changed:
        _update(changed, model)
    if missing:
        model.objects.bulk_create(missing)


def _candidates(groups: dict[Key, Group], model: Any) -> Any:
    """The roll-up rows that may match `groups`, locked (PostgreSQL; SQLite's writer holds the file), in key order.

    Written as SQL, not a queryset: the writer runs it once per batch, and compiling the six-way filter
    through the ORM cost as much as the rest of the batch's statements together.
    """
    from django.db import connection

    quote = connection.ops.quote_name
    column = {
        name: quote(model._meta.get_field(name).column)
        for name in ("site", "day", "provider", "model", "service", "status")
    }
    site_ids = sorted({k[0] for k in groups if k[0] is not None})
    sites = []
    if site_ids:
        sites.append(f"{column['site']} IN ({', '.join(['%s'] * len(site_ids))})")
    if any(k[0] is None for k in groups):
        sites.append(f"{column['site']} IS NULL")
    where, params = [f"({' OR '.join(sites)})"], list(site_ids)
    for position, name in enumerate(("day", "provider", "model", "service", "status"), start=1):
        values: list[Any] = sorted({k[position] for k in groups})
        if name == "day":
            values = [connection.ops.adapt_datefield_value(v) for v in values]
        where.append(f"{column[name]} IN ({', '.join(['%s'] * len(values))})")
        params += values
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    sql = (
        f"SELECT * FROM {quote(model._meta.db_table)} WHERE {' AND '.join(where)} "  # noqa: S608
        f"ORDER BY {quote(model._meta.pk.column)}{lock}"
    )
    return model._default_manager.raw(sql, params)


def _update(objs: list[Any], model: Any) -> None:
    """Write the merged sums back: one UPDATE by primary key, executed for every row at once
    (`bulk_update`'s CASE expressions cost seconds for a few hundred groups)."""
    from django.db import connection

    quote = connection.ops.quote_name
    fields = [model._meta.get_field(name) for name in UPDATED if _has(model, name)]
    sets = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    sql = f"UPDATE {quote(model._meta.db_table)} SET {sets} WHERE {quote(model._meta.pk.column)} = %s"  # noqa: S608
    params = [[f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields] + [obj.pk] for obj in objs]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _has(model: Any, name: str) -> bool:
    """Whether `model` (a historical version in a data migration) has the column (`unpriced` came later)."""
    return any(f.name == name for f in model._meta.get_fields())


def _known(model: Any, fields: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if _has(model, name)}


def add(rows: Iterable[Any]) -> None:
    """Add saved ledger rows to their daily roll-ups (inside the caller's transaction)."""
    from integrations.usage import keys as usage_keys

    rows = list(rows)
    upsert(aggregate(rows))
    usage_keys.add(rows)  # the virtual keys' days
    usage_keys.add_users(rows)  # the editors' days


def rebuild(usage_model: Any = None, rollup_model: Any = None, chunk: int = 10_000) -> int:
    """Replace every roll-up with sums of the raw ledger rows; returns the number of roll-up rows.

    For the data migration that introduces roll-ups (ledgers written before them). Never run it
    after pruning: roll-ups of pruned days would be lost.
    """
    from django.db import transaction

    if usage_model is None:
        from integrations.models import AIUsage as usage_model
    if rollup_model is None:
        from integrations.models import UsageDaily as rollup_model
    columns = (
        "site",
        "created_at",
        "provider",
        "served_model",
        "requested_model",
        "service",
        "status",
        "error_class",
        *SUMS,
        "cost",
        "cost_source",
        "saved_cost",
        "cache_hit",
        "latency_ms",
    )
    groups: dict[Key, Group] = {}
    with transaction.atomic():
        rollup_model.objects.all().delete()
        rows = usage_model.objects.only(*columns).order_by().iterator(chunk_size=chunk)
        aggregate(rows, groups)
        rollup_model.objects.bulk_create(
            [
                rollup_model(
                    site_id=k[0],
                    day=k[1],
                    provider=k[2],
                    model=k[3],
                    service=k[4],
                    status=k[5],
                    error_class=k[6],
                    **_known(rollup_model, groups[k].fields()),
                )
                for k in sorted(groups, key=_sort_key)
            ],
            batch_size=chunk,
        )
    return len(groups)
