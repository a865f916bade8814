"""One unstorable ledger row must not stop billing for every site: write the batch, else row by row,
and set aside (dead-letter) each row the database refuses.

The ledger writer retries a failed batch with backoff, which is right while the database is down
and wrong for a row the database will never take (text PostgreSQL refuses, a number out of range):
that batch, and everything queued behind it, would wait for ever. So `write_or_set_aside` tells the
two apart. A database that is unreachable (Django's OperationalError / InterfaceError) propagates, and
the caller retries the whole batch as before. Anything else: the rows are written one at a time,
and a row that fails on its own goes to `LedgerDeadLetter` with the reason, an error log line names
it, and the usage dashboard counts it. Every row carries its `ledger_key` (usage.row_fields), so rows
written before a retry are never written twice.

Kept out of ledger_writer.py on purpose: the writer's flush loops only swap `write_rows(...)` for
`write_or_set_aside(write_rows, ...)`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

logger = logging.getLogger("integrations.ai")

Rows = list[dict[str, Any]]


def _describe(exc: BaseException) -> str:
    from integrations.ai.providers.errors import redact

    return redact(f"{type(exc).__name__}: {exc}")[:500]


def _unreachable(exc: BaseException) -> bool:
    """The database itself is away (connection, lock, shutdown): retry the batch, set nothing aside."""
    from integrations.ai.ports import store

    return store().is_outage(exc)


def write_or_set_aside(write: Callable[[Rows], Any], fields: Rows) -> int:
    """Write `fields` with `write`; on a failure that is not an outage, row by row, setting aside each row
    that fails on its own. Returns how many rows were set aside. Raises what an outage raised."""
    try:
        write(fields)
        return 0
    except Exception as exc:
        if _unreachable(exc):
            raise
        logger.warning(
            "a batch of %d AI usage row(s) could not be written (%s); writing them one by one",
            len(fields),
            _describe(exc),
        )
    set_aside = 0
    for row in fields:
        try:
            write([row])
        except Exception as exc:
            if _unreachable(exc):
                raise
            set_aside += _set_aside(row, exc)
    return set_aside


def _payload(row: dict[str, Any]) -> str:
    """The row as ASCII JSON: NUL and lone surrogates escaped, so any text column stores it."""
    return json.dumps(row, default=str, ensure_ascii=True, sort_keys=True)


def _cost(value: Any) -> Decimal | None:
    try:
        cost = Decimal(str(value)) if value is not None else None
    except InvalidOperation:
        return None
    return cost if cost is not None and cost.is_finite() and abs(cost) < Decimal(10) ** 6 else None


def _set_aside(row: dict[str, Any], exc: BaseException) -> int:
    """Store one refused row in the dead-letter table; 0 if it turns out to be written already."""
    from integrations.ai.ports import store

    key = str(row.get("ledger_key") or "")
    site_id = row.get("site_id")
    if not store().set_aside(row, _describe(exc), _payload(row), _cost(row.get("cost"))):
        return 0  # a concurrent writer had it: not lost
    logger.error(
        "AI usage row %s (site %s) could not be stored and was set aside in LedgerDeadLetter: %s",
        key or "(no key)",
        site_id,
        _describe(exc),
    )
    return 1
