"""Ledger rows inserted with one prepared `INSERT ... executemany`, not `bulk_create`.

The ledger writer inserts every AI call's rows. `bulk_create` builds a model instance per row and
compiles its SQL field by field (about 125 µs a row here, on the writer's thread but under the
caller's interpreter lock); this builds the statement once per database connection vendor and
passes plain tuples, converting only the values Django would have to (decimals, datetimes) with
the fields' own `get_db_prep_save`. The rows come back as light objects carrying every field's
value, for the daily roll-ups.

A missing field takes the model's default; `created_at` is the time the call ended (set by the
gateway when it hands the record over), so a row queued across midnight keeps its day.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

from django.db import models

# Field types whose Python value is already what the database driver takes (no per-row conversion).
_AS_IS = (models.CharField, models.IntegerField, models.BooleanField, models.ForeignKey)


class _Plan:
    """The INSERT statement and per-column conversions for one model on one kind of database."""

    def __init__(self, model: type[models.Model], connection: Any) -> None:
        quote = connection.ops.quote_name
        self.fields = [f for f in model._meta.concrete_fields if not f.primary_key]
        self.names = [f.attname for f in self.fields]
        self.defaults = {
            f.attname: (None if isinstance(f, models.DateTimeField) else f.get_default()) for f in self.fields
        }
        self.convert: list[Callable[[Any], Any] | None] = [
            None if isinstance(f, _AS_IS) else functools.partial(_prep_save, f, connection) for f in self.fields
        ]
        columns = ", ".join(quote(f.column) for f in self.fields)
        marks = ", ".join(["%s"] * len(self.fields))
        self.sql = f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({marks})"  # noqa: S608
        self.timestamped = [
            f.attname for f in self.fields if isinstance(f, models.DateTimeField) and (f.auto_now or f.auto_now_add)
        ]


_plans: dict[tuple[type, str, int], _Plan] = {}
_lock = threading.Lock()


def _plan(model: type[models.Model], connection: Any) -> _Plan:
    key = (model, connection.alias, id(connection.ops))
    plan = _plans.get(key)
    if plan is None:
        with _lock:
            plan = _plans.setdefault(key, _Plan(model, connection))
    return plan


def insert_rows(model: type[models.Model], rows: Sequence[Mapping[str, Any]], using: str = "default") -> list[Any]:
    """Insert `rows` (field name -> value) into `model`'s table in one `executemany`; returns them as
    objects with every field set (defaults filled in), in the caller's transaction."""
    from django.db import connections
    from django.utils import timezone

    if not rows:
        return []
    connection = connections[using]
    plan = _plan(model, connection)
    now = timezone.now()
    complete = []
    params = []
    unknown = set()
    for row in rows:
        values = {**plan.defaults, **row}
        for name in plan.timestamped:
            if values[name] is None:
                values[name] = now
        if len(values) != len(plan.defaults):
            unknown.update(set(values) - set(plan.defaults))
        params.append(
            tuple(
                value if convert is None else convert(value)
                for convert, value in zip(plan.convert, (values[n] for n in plan.names), strict=True)
            )
        )
        complete.append(SimpleNamespace(**values))
    if unknown:
        raise TypeError(f"{model.__name__} has no field(s) {', '.join(sorted(unknown))}")
    with connection.cursor() as cursor:
        cursor.executemany(plan.sql, params)
    return complete


def _prep_save(field: Any, connection: Any, value: Any) -> Any:
    """The value as the field saves it on `connection`."""
    return field.get_db_prep_save(value, connection)
