"""Virtual keys resolved to their site and limits, with no query for a warm key.

A key is an `APIToken` row bound to a site with the scope "v1" (only its SHA-256 is stored). Each process remembers
what a hash resolved to (a `KeyScope`, or "no such key") with the key version it read it under;
the version is a counter in the shared cache that every save or delete of a token bumps (a revoke
is a save), so a revoked key stops working in this process at once and in every other within
`AI_SETTINGS_CHECK_INTERVAL` seconds — the same rule as the site snapshots (`site_config`).
Expiry is checked against the clock on every request. A warm request reads at most the version
counter (a cache hit), never the database. While the database (or the shared cache) is unreachable, a key this
process already resolved keeps its last known scope.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models.signals import post_delete, post_save

from integrations.ai.runtime.conf import settings_check_interval
from integrations.ai.runtime.shared_cache import cache
from integrations.ai.sites.callers import KeyScope

VERSION_KEY = "integrations.api.v1:keys:version"
MAX_REMEMBERED = 10_000  # hashes kept per process; a flood of random keys cannot grow it without bound
PREFIX = "sk-panel-"  # shaped like a vendor key, so errors.redact() removes one pasted into any message
SCOPE = "v1"  # APIToken.SCOPE_V1: the token scope of a virtual key


class KeyRefused(Exception):
    """The key is unknown, revoked or expired; the message says which, never the key."""


@dataclass(frozen=True)
class _Entry:
    scope: KeyScope | None
    expires_at: float | None
    version: int
    checked_at: float


_entries: dict[str, _Entry] = {}
_lock = threading.Lock()


def digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _version() -> int:
    return int(cache.get(VERSION_KEY) or 0)


def bump(**_kwargs: object) -> None:
    """A token was saved or deleted: every process re-reads its keys (this one at once)."""
    if not cache.add(VERSION_KEY, 1, timeout=None):
        try:
            cache.incr(VERSION_KEY)
        except ValueError:  # evicted between add and incr
            cache.set(VERSION_KEY, 1, timeout=None)
    with _lock:
        _entries.clear()


def _load(key_hash: str, version: int, now: float) -> _Entry:
    from integrations.models import APIToken

    row = (
        APIToken.objects.filter(key_hash=key_hash, site__isnull=False, revoked_at__isnull=True)
        .values(
            "id",
            "site_id",
            "name",
            "last4",
            "expires_at",
            "monthly_budget",
            "requests_per_minute",
            "tokens_per_minute",
            "allowed_models",
            "scopes",
            "user_id",
        )
        .first()
    )
    if row is None or SCOPE not in (row["scopes"] or ()):  # a generate-endpoint token is no virtual key
        return _Entry(None, None, version, now)
    scope = KeyScope(
        id=row["id"],
        site_id=row["site_id"],
        name=row["name"],
        last4=row["last4"],
        monthly_budget=Decimal(row["monthly_budget"]) if row["monthly_budget"] is not None else None,
        requests_per_minute=row["requests_per_minute"] or None,
        tokens_per_minute=row["tokens_per_minute"] or None,
        allowed_models=tuple(m.strip() for m in row["allowed_models"] or () if m.strip()),
        user_id=row["user_id"],
    )
    expires = row["expires_at"].timestamp() if row["expires_at"] is not None else None
    return _Entry(scope, expires, version, now)


def _reload(key_hash: str, version: int, now: float, stale: _Entry | None) -> _Entry:
    """The key as the database has it; while the database is unreachable, what this process knew of it (a
    warm key goes on serving through an outage; its expiry is still checked). A cold key raises the error."""
    from django.db import DatabaseError

    try:
        return _load(key_hash, version, now)
    except DatabaseError:
        if stale is None:
            raise
        return _Entry(stale.scope, stale.expires_at, stale.version, now)


def resolve(raw: str) -> KeyScope:
    """The key's scope (site and limits), or KeyRefused."""
    if not raw:
        raise KeyRefused("No API key: send 'Authorization: Bearer <key>' (or 'x-api-key: <key>').")
    key_hash = digest(raw)
    now = time.monotonic()
    entry = _entries.get(key_hash)
    if entry is None or now - entry.checked_at >= settings_check_interval():
        version = _version()
        if entry is not None and getattr(cache, "degraded", False):
            version = entry.version  # the shared cache is unreachable (panel.cache): keep what this process knows
        if entry is None or entry.version != version:
            entry = _reload(key_hash, version, now, entry)
        else:
            entry = _Entry(entry.scope, entry.expires_at, version, now)
        with _lock:
            if len(_entries) >= MAX_REMEMBERED:
                _entries.clear()
            _entries[key_hash] = entry
    if entry.scope is None:
        raise KeyRefused("The API key is not valid (unknown or revoked).")
    if entry.expires_at is not None and time.time() >= entry.expires_at:
        raise KeyRefused("The API key has expired; ask the site's admin for a new one.")
    return entry.scope


def connect() -> None:
    """Forget remembered keys whenever a token changes (called from the app's ready())."""
    from integrations.models import APIToken, VirtualKey

    for model in (APIToken, VirtualKey):  # a proxy's saves are sent with the proxy as sender
        for signal in (post_save, post_delete):
            signal.connect(
                bump, sender=model, dispatch_uid=f"integrations.api.v1.keys.{model.__name__}.{signal is post_save}"
            )


def new_key() -> tuple[str, dict[str, Any]]:
    """A fresh key and the fields stored for it (its hash, last four and first characters), never the key."""
    import secrets

    raw = PREFIX + secrets.token_urlsafe(32)
    return raw, {"key_hash": digest(raw), "last4": raw[-4:], "prefix": raw[: len(PREFIX) + 2], "scopes": [SCOPE]}


def issue(site: object, user: object, name: str = "", **limits: object) -> tuple[object, str]:
    """Create a virtual key for `site`; returns (row, the key), which is shown once and stored nowhere."""
    from integrations.models import VirtualKey

    raw, stored = new_key()
    return VirtualKey.objects.create(site=site, user=user, name=name, **stored, **limits), raw
