"""Readiness: can this process serve AI calls now? The database, the cache and the ledger backlog.

`/readyz` (load balancers, Kubernetes readiness probes) answers 503 when any check fails, naming the
check and the error class only (never a message: a connection error may carry a DSN with a password).
"""

from __future__ import annotations

from typing import Any

from integrations.ai.runtime import conf


def checks() -> dict[str, dict[str, Any]]:
    return {"database": _database(), "cache": _cache(), "ledger": _ledger()}


def _database() -> dict[str, Any]:
    from integrations.ai.ports import store

    try:
        store().ping()
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True}


def _cache() -> dict[str, Any]:
    from integrations.ai.runtime.shared_cache import cache

    key = "integrations.ai:readyz"
    try:
        cache.set(key, 1, 30)
        ok = cache.get(key) == 1
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": ok} if ok else {"ok": False, "error": "the cache did not keep a value"}


def _ledger() -> dict[str, Any]:
    from integrations.ai.ledger import writer as ledger_writer

    limit = conf.ready_ledger_backlog()
    try:
        backlog = ledger_writer.queue_depth() + ledger_writer.shared_backlog()
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}
    result: dict[str, Any] = {"ok": backlog <= limit, "backlog": backlog, "limit": limit}
    if not result["ok"]:
        result["error"] = "ledger backlog above AI_READY_LEDGER_BACKLOG"
    return result
