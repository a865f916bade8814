"""The cache backends settings.py chooses: Django's local-memory and Redis caches, made cheaper per call.

`BaseCache.validate_key` walks every character of every key in Python to warn about keys memcached
would refuse (spaces, control characters, more than 250 characters). A capped AI call makes several
cache operations (health, budget reservation and settlement), so that walk was a measurable part of
the gateway's own time; memcached is not a backend this project offers, and its keys are made by
code. Both backends skip it.

Redis (the production shape) also pays per round trip: each one gives up the interpreter lock and
waits to take it back behind the other request threads. Django's `RedisCache.incr` makes two (an
`EXISTS`, then `INCRBY`, with a gap between them in which the key can expire) and builds a new
`redis.Redis` object for every operation. `FastRedisCache` keeps one client per connection pool and
runs `incr` as one Lua script (increment only a key that exists, else Django's `ValueError`): one
round trip, and atomic. `incr_many` does the same for several counters at once (a budget settlement
moves two), returning None for a counter that is gone.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache, RedisCacheClient

# KEYS: counters; ARGV: their deltas. Each existing counter moves by its delta; the reply holds its new
# value, or false (nil) for a counter that does not exist (never created: `incr` must not create one).
INCR_EXISTING = """
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    out[i] = redis.call('INCRBY', key, ARGV[i])
  else
    out[i] = false
  end
end
return out
"""


class FastLocMemCache(LocMemCache):
    def validate_key(self, key: str) -> None:
        return None


class _Client(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}
        self._incr_existing: Any = None

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        """One `redis.Redis` per connection pool, kept (it is thread-safe: each command borrows a connection)."""
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client

    def incr_existing(self, keys: list[str], deltas: list[int]) -> list[int | None]:
        client = self.get_client(None, write=True)
        if self._incr_existing is None:
            self._incr_existing = client.register_script(INCR_EXISTING)
        return list(self._incr_existing(keys=keys, args=deltas, client=client))

    def incr(self, key: str, delta: int) -> int:
        value = self.incr_existing([key], [delta])[0]
        if value is None:
            raise ValueError(f"Key '{key}' not found.")
        return value


class FastRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _Client

    def validate_key(self, key: str) -> None:
        return None

    def incr_many(self, deltas: dict[str, int], version: int | None = None) -> dict[str, int | None]:
        """Add each delta to its counter, all in one round trip; None for a counter that does not exist."""
        keys = list(deltas)
        made = [self.make_and_validate_key(key, version=version) for key in keys]
        values = self._cache.incr_existing(made, [deltas[key] for key in keys])
        return dict(zip(keys, values, strict=True))
