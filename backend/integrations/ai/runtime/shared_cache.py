"""The Django cache the AI layer shares (pauses, cooldowns, budget and rate-limit counters, versions).

`django.core.cache.cache` resolves the backend on every attribute access through asgiref's
context-local handler — about a quarter of the gateway's own time per call, for a handful of cache
operations. This proxy keeps the backend per thread (Django's backends are per thread too) and drops
it when settings change, so behaviour is the same and the hot path skips the lookup.
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.signals import setting_changed

_local = threading.local()
_generation = 0


class _SharedCache:
    def __getattr__(self, name: str) -> Any:
        backend = getattr(_local, "backend", None)
        if backend is None or getattr(_local, "generation", -1) != _generation:
            from django.core.cache import caches

            backend = _local.backend = caches["default"]
            _local.generation = _generation
        return getattr(backend, name)


cache: Any = _SharedCache()


def incr_many(deltas: dict[str, int]) -> dict[str, int | None]:
    """Add each delta to its counter and return the new values, None for a counter that does not exist
    (never created). One round trip with Redis (`panel.cache.FastRedisCache.incr_many`); elsewhere one
    `incr` per counter."""
    many = getattr(cache, "incr_many", None)
    if many is not None:
        return many(deltas)
    values: dict[str, int | None] = {}
    for key, delta in deltas.items():
        try:
            values[key] = cache.incr(key, delta)
        except ValueError:
            values[key] = None
    return values


def incr_many_reading(deltas: dict[str, int], read: list[str]) -> tuple[dict[str, int | None], dict[str, Any]]:
    """`incr_many`, and the values of the `read` keys (missing ones left out): one round trip with Redis
    (`panel.cache.FastRedisCache.incr_many_reading`); elsewhere the counters, then one `get_many`."""
    both = getattr(cache, "incr_many_reading", None)
    if both is not None:
        return both(deltas, read)
    return incr_many(deltas), cache.get_many(read)


def _reset(**kwargs: object) -> None:
    global _generation
    _generation += 1


setting_changed.connect(_reset, dispatch_uid="integrations.ai.runtime.shared_cache")
