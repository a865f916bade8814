"""The project's cache backends: local memory without memcached's key check, and Redis that survives an outage.

`FastLocMemCache`: Django's local-memory cache without its memcached key-portability check.

`BaseCache.validate_key` walks every character of every key in Python to warn about keys memcached
would refuse (spaces, control characters, more than 250 characters). A capped AI call makes about
six cache operations (health, budget reservation and settlement), so that walk was a measurable
part of the gateway's own time; memcached is not a backend this project offers, and its keys are
made by code. Everything else is Django's `LocMemCache`.

`ResilientRedisCache` (the backend with `REDIS_URL`): see its docstring.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache

logger = logging.getLogger("integrations.cache")


class FastLocMemCache(LocMemCache):
    def validate_key(self, key: str) -> None:
        return None


class _Outage:
    """One Redis server's outage state, shared by every thread's backend instance of this process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.down = False
        self.retry_at = 0.0
        self.deltas: dict[tuple[Any, int | None], int] = {}  # counters moved locally while down


_outages: dict[str, _Outage] = {}
_outages_lock = threading.Lock()


def _outage_for(location: str) -> _Outage:
    with _outages_lock:
        return _outages.setdefault(location, _Outage())


class ResilientRedisCache(RedisCache):
    """Django's Redis cache that keeps answering from this process's memory while Redis is unreachable.

    Why: every AI call reads and counts in the cache (rate limits, budget counters, settings versions,
    cooldowns, the API's rate limit); with plain `RedisCache` a Redis outage turned each call into a
    server error, calls already answered included. Here a connection error or timeout switches this
    process to a local-memory cache (one warning per outage, not per call) and Redis is tried again
    every `RETRY_AFTER` seconds. Meanwhile limits and budget counters are per process (a cold budget
    counter is seeded from the database, as after a Redis restart). When Redis answers again, the
    amounts counters moved by locally are added to the shared ones that still exist (a missing one is
    reseeded later), the local copy is dropped, and `degraded` is False again.
    """

    RETRY_AFTER = 1.0  # seconds between attempts to reach Redis again during an outage

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        import redis

        super().__init__(server, params)
        self._errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
        self._outage = _outage_for(str(server))
        local = {k: params[k] for k in ("TIMEOUT", "KEY_PREFIX", "VERSION", "KEY_FUNCTION") if k in params}
        self._local = FastLocMemCache(f"panel-redis-fallback:{server}", {**local, "OPTIONS": {"MAX_ENTRIES": 100_000}})

    @property
    def degraded(self) -> bool:
        """Redis is unreachable and this process answers from its own memory (read by the AI layer)."""
        return self._outage.down

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        outage = self._outage
        if outage.down and time.monotonic() < outage.retry_at:
            return self._locally(name, *args, **kwargs)
        try:
            result = getattr(super(), name)(*args, **kwargs)
        except self._errors as exc:
            with outage.lock:
                if not outage.down:
                    logger.warning(
                        "Redis (the shared cache) is unreachable (%s): limits and budget counters are per process "
                        "until it answers again",
                        type(exc).__name__,
                    )
                outage.down = True
                outage.retry_at = time.monotonic() + self.RETRY_AFTER
            return self._locally(name, *args, **kwargs)
        if outage.down:
            self._recovered()
        return result

    def _locally(self, name: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self._local, name)(*args, **kwargs)
        if name == "incr":  # only a counter that moved: its move is added to Redis's copy afterwards
            key = args[0] if args else kwargs["key"]
            delta = args[1] if len(args) > 1 else kwargs.get("delta", 1)
            version = args[2] if len(args) > 2 else kwargs.get("version")
            with self._outage.lock:
                self._outage.deltas[key, version] = self._outage.deltas.get((key, version), 0) + delta
        return result

    def _recovered(self) -> None:
        outage = self._outage
        with outage.lock:
            if not outage.down:
                return
            deltas, outage.deltas = outage.deltas, {}
            outage.down = False
            moved = 0
            for (key, version), delta in deltas.items():
                if not delta:
                    continue
                try:
                    super().incr(key, delta, version=version)
                    moved += 1
                except ValueError:  # gone from Redis (expired, or lost in a restart): reseeded when next used
                    pass
                except self._errors:  # down again: the local copy and the deltas stay
                    outage.down = True
                    outage.retry_at = time.monotonic() + self.RETRY_AFTER
                    outage.deltas = {**deltas, **outage.deltas}
                    return
            self._local.clear()
            logger.warning(
                "Redis (the shared cache) answers again; %d counter(s) moved meanwhile were added to it", moved
            )

    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> Any:
        return self._call("add", key, value, timeout, version)

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        return self._call("get", key, default, version)

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> Any:
        return self._call("set", key, value, timeout, version)

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> Any:
        return self._call("touch", key, timeout, version)

    def delete(self, key: Any, version: int | None = None) -> Any:
        return self._call("delete", key, version)

    def get_many(self, keys: Any, version: int | None = None) -> Any:
        return self._call("get_many", keys, version)

    def has_key(self, key: Any, version: int | None = None) -> Any:
        return self._call("has_key", key, version)

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        return self._call("incr", key, delta, version)

    def set_many(self, data: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> Any:
        return self._call("set_many", data, timeout, version)

    def delete_many(self, keys: Any, version: int | None = None) -> Any:
        return self._call("delete_many", keys, version)

    def clear(self) -> Any:
        return self._call("clear")
