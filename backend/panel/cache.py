"""The cache backends settings.py chooses: Django's local-memory and Redis caches, made cheaper per call.

`BaseCache.validate_key` walks every character of every key in Python to warn about keys memcached
would refuse (spaces, control characters, more than 250 characters). A capped AI call makes several
cache operations (health, budget reservation and settlement), so that walk was a measurable part of
the gateway's own time; memcached is not a backend this project offers, and its keys are made by
code. Both backends skip it.

Redis (the production shape) also pays per round trip: each one gives up the interpreter lock and
waits to take it back behind the other request threads. Django's `RedisCache.incr` makes two (an
`EXISTS`, then `INCRBY`, with a gap between them in which the key can expire) and builds a new
`redis.Redis` object for every operation. Its backends are per thread (per request under ASGI, where each
request's sync code runs on a fresh thread) and each made its own connection pool: a new Redis connection (and
handshake) per request in the production server. `FastRedisCache` shares one connection pool and client per
server and options across the process (redis-py's pools are thread-safe and fork-aware), and
runs `incr` as one Lua script (increment only a key that exists, else Django's `ValueError`): one
round trip, and atomic. `incr_many` does the same for several counters at once (a budget settlement
moves two), returning None for a counter that is gone. That script and `get_many` (the health read of every
call) go over `_Lane`'s connections, without the pool's lock and per-borrow poll.

`ResilientRedisCache` (the backend with `REDIS_URL`) is `FastRedisCache` that keeps answering from this
process's memory while Redis is unreachable: see its docstring. `apply_versioned` moves two counters by the
events their seed does not hold yet (the budget's changes made in the database during an outage).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import deque
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache, RedisCacheClient

logger = logging.getLogger("integrations.cache")

# KEYS: counters, then keys to read; ARGV: the counters' deltas (one per counter: the KEYS past #ARGV are only
# read). Each existing counter moves by its delta; the reply holds its new value, or false (nil) for a counter
# that does not exist (never created: `incr` must not create one), then each read key's value (nil: missing).
INCR_EXISTING = """
local out = {}
for i = 1, #ARGV do
  local key = KEYS[i]
  if redis.call('EXISTS', key) == 1 then
    out[i] = redis.call('INCRBY', key, ARGV[i])
  else
    out[i] = false
  end
end
for i = #ARGV + 1, #KEYS do
  out[i] = redis.call('GET', KEYS[i])
end
return out
"""


INCR_EXISTING_SHA = hashlib.sha1(INCR_EXISTING.encode(), usedforsecurity=False).hexdigest()  # the name Redis gives it


# KEYS: two counters and the stamp of their seed (a version times ARGV[1], plus a random part: one per seed).
# ARGV[2:]: events, 4 values each: kind (0: a change made in the database at version V; 1: a change made on
# the counters whose stamp was V), V, delta of the first counter, delta of the second. Each event moves the
# counters unless their seed already holds it (kind 0: seeded at version V or later; kind 1: other counters).
# The reply: {0} when a counter does not exist, else {1, the stamp} (-1: none).
APPLY_VERSIONED = """
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[2]) == 0 then
  return {0}
end
local stamp = tonumber(redis.call('GET', KEYS[3]) or '-1') or -1
local seeded = -1
if stamp >= 0 then
  seeded = math.floor(stamp / tonumber(ARGV[1]))
end
for i = 2, #ARGV, 4 do
  local kind, v = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  if (kind == 0 and (stamp < 0 or seeded < v)) or (kind == 1 and stamp == v) then
    redis.call('INCRBY', KEYS[1], ARGV[i + 2])
    redis.call('INCRBY', KEYS[2], ARGV[i + 3])
  end
end
return {1, stamp}
"""


class FastLocMemCache(LocMemCache):
    def validate_key(self, key: str) -> None:
        return None


# (server URL, pool class, options) -> (pool, client, lane): one of each per process, whichever thread asks
_shared_pools: dict[tuple[str, str, str], tuple[Any, Any, _Lane]] = {}
_shared_pools_lock = threading.Lock()


class _Lane:
    """Connections to one Redis server for the commands every AI call makes (the budget's counter script, the
    health read), used without redis-py's pool.

    Why: borrowing a pooled connection takes the pool's lock and polls the socket for stray data (~25 µs of
    CPU), and redis-py's command layers (retries, callbacks, the script object) as much again: a capped call's
    two scripts cost ~90 µs of CPU each where the round trip itself is ~20 µs, and under concurrency the pool's
    lock is one more place the request threads queue. Here a connection is taken from a deque (atomic under
    the GIL: no lock), the command is sent and its reply read, and the connection put back. What the pool's
    poll guarded against (a reply left unread by a command that failed) cannot happen: a connection on which
    anything but a clean error reply went wrong is closed, never put back. A kept connection the server closed
    meanwhile (its idle `timeout`) is retried once on a new one; a new one that fails is the outage it reports
    (`ResilientRedisCache`). Fork-aware: a child makes its own connections."""

    KEEP = 64  # idle connections kept (threads beyond it make one and close it)

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.idle: deque[Any] = deque()
        self.pid = os.getpid()

    def _connection(self) -> tuple[Any, bool]:
        """A kept connection (False), or a new one (True)."""
        if self.pid != os.getpid():  # forked: the parent's sockets are not this process's to use
            self.idle, self.pid = deque(), os.getpid()
        try:
            return self.idle.pop(), False
        except IndexError:
            return self._new(), True

    def _new(self) -> Any:
        return self.pool.connection_class(**self.pool.connection_kwargs)  # connects on its first command

    def run(self, *command: Any) -> Any:
        """`command`'s reply; an error reply raises redis-py's ResponseError (NoScriptError for EVALSHA's)."""
        import redis

        conn, fresh = self._connection()
        packed = conn.pack_command(*command)
        try:
            try:
                conn.send_packed_command(packed, check_health=False)
                reply = conn.read_response()
            except redis.exceptions.ConnectionError:
                conn.disconnect()
                if fresh:
                    raise
                conn = self._new()  # the kept one was closed while idle
                conn.send_packed_command(packed, check_health=False)
                reply = conn.read_response()
        except redis.exceptions.ResponseError:
            self._give(conn)  # an error reply: the connection is in step
            raise
        except BaseException:
            conn.disconnect()
            raise
        self._give(conn)
        return reply

    def _give(self, conn: Any) -> None:
        if len(self.idle) < self.KEEP:
            self.idle.append(conn)
        else:
            conn.disconnect()


class _Client(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._apply_versioned: Any = None

    def _shared(self, write: bool) -> tuple[Any, Any, _Lane]:
        url = self._servers[self._get_connection_pool_index(write)]
        key = (url, repr(self._pool_class), repr(sorted(self._pool_options.items())))
        shared = _shared_pools.get(key)
        if shared is None:
            with _shared_pools_lock:
                shared = _shared_pools.get(key)
                if shared is None:
                    pool = self._pool_class.from_url(url, **self._pool_options)
                    shared = _shared_pools[key] = (pool, self._client(connection_pool=pool), _Lane(pool))
        return shared

    def _get_connection_pool(self, write: bool) -> Any:
        """The process's pool for this server, not one per backend instance (that is, per thread)."""
        return self._shared(write)[0]

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        """The process's `redis.Redis` for this server (thread-safe: each command borrows a pooled connection)."""
        return self._shared(write)[1]

    def get_many(self, keys: Any) -> dict[Any, Any]:
        keys = list(keys)
        if not keys:
            return {}
        values = self._shared(False)[2].run("MGET", *keys)
        return {k: self._serializer.loads(v) for k, v in zip(keys, values, strict=True) if v is not None}

    def incr_existing(self, keys: list[str], deltas: list[int], read: list[str] | None = None) -> list[Any]:
        """The counters' new values (None: missing), then the values of `read` (None: missing), in one script
        (`EVALSHA` on the lane; the script's text once, when the server does not have it yet)."""
        import redis

        lane = self._shared(True)[2]
        every = [*keys, *(read or ())]
        try:
            reply = list(lane.run("EVALSHA", INCR_EXISTING_SHA, len(every), *every, *deltas))
        except redis.exceptions.NoScriptError:
            reply = list(lane.run("EVAL", INCR_EXISTING, len(every), *every, *deltas))
        counted = len(keys)
        return [*reply[:counted], *(None if v is None else self._serializer.loads(v) for v in reply[counted:])]

    def apply_versioned(self, keys: list[str], args: list[int]) -> list[int]:
        client = self.get_client(None, write=True)
        if self._apply_versioned is None:
            self._apply_versioned = client.register_script(APPLY_VERSIONED)
        return list(self._apply_versioned(keys=keys, args=args, client=client))

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
        # this class's, not a subclass's override (ResilientRedisCache wraps each public call once)
        return FastRedisCache.incr_many_reading(self, deltas, [], version)[0]

    def incr_many_reading(
        self, deltas: dict[str, int], read: list[str], version: int | None = None
    ) -> tuple[dict[str, int | None], dict[str, Any]]:
        """`incr_many`, and the values of the `read` keys (missing ones left out), in the same round trip."""
        keys = list(deltas)
        made = [self.make_and_validate_key(key, version=version) for key in keys]
        reads = [self.make_and_validate_key(key, version=version) for key in read]
        reply = self._cache.incr_existing(made, [deltas[key] for key in keys], reads)
        values = dict(zip(keys, reply[: len(keys)], strict=True))
        return values, {key: value for key, value in zip(read, reply[len(keys) :], strict=True) if value is not None}

    def apply_versioned(
        self,
        counters: tuple[str, str],
        stamp_key: str,
        per_version: int,
        events: list[tuple[int, int, int, int]],
        version: int | None = None,
    ) -> tuple[bool, int | None] | None:
        """Move two counters by the events their seed does not hold yet, atomically (one round trip; see
        APPLY_VERSIONED): (False, None) when a counter does not exist, else (True, their seed's stamp or
        None). None when Redis did not answer (`ResilientRedisCache`)."""
        made = [self.make_and_validate_key(key, version=version) for key in (*counters, stamp_key)]
        args = [per_version, *(value for event in events for value in event)]
        reply = self._cache.apply_versioned(made, args)
        if not reply[0]:
            return False, None
        return True, (None if reply[1] < 0 else int(reply[1]))


class _Outage:
    """One Redis server's outage state, shared by every thread's backend instance of this process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.down = False
        self.retry_at = 0.0
        self.deltas: dict[tuple[Any, int | None], int] = {}  # counters moved locally while down
        self.listeners: list[Any] = []  # called (no arguments) each time Redis answers again


_outages: dict[str, _Outage] = {}
_outages_lock = threading.Lock()


def _outage_for(location: str) -> _Outage:
    with _outages_lock:
        return _outages.setdefault(location, _Outage())


class ResilientRedisCache(FastRedisCache):
    """Django's Redis cache that keeps answering from this process's memory while Redis is unreachable.

    Why: every AI call reads and counts in the cache (rate limits, budget counters, settings versions,
    cooldowns, the API's rate limit); with plain `RedisCache` a Redis outage turned each call into a
    server error, calls already answered included. Here a connection error or timeout switches this
    process to a local-memory cache (one warning per outage, not per call) and Redis is tried again
    every `RETRY_AFTER` seconds. Meanwhile limits and the budget windows' counters are per process (a cold
    counter is seeded from the database, as after a Redis restart); the monthly cap reads `degraded` and is
    held in the database instead (`integrations.ai.governance.budget`). When Redis answers again, the
    amounts counters moved by locally are added to the shared ones that still exist (a missing one is
    reseeded later), the local copy is dropped, `degraded` is False again, and the `on_recovery` listeners run
    (the budget carries what it settled in the database meanwhile into Redis's counters: `apply_versioned`).
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

    def on_recovery(self, listener: Any) -> None:
        """Call `listener()` each time Redis answers again after an outage (once per listener: the AI layer
        carries what it held in the database meanwhile into the shared counters)."""
        with self._outage.lock:
            if listener not in self._outage.listeners:
                self._outage.listeners.append(listener)

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
        if outage.down and self._recovered():
            for listener in list(outage.listeners):
                try:
                    listener()
                except Exception:  # a listener's failure is its own: the cache answered
                    logger.exception("a Redis recovery listener failed")
        return result

    def _locally(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "apply_versioned":  # shared counters only: the caller keeps its events for later
            return None
        if name == "incr_many_reading":
            deltas, read, version = args
            return self._locally("incr_many", deltas, version), self._local.get_many(read, version)
        if name == "incr_many":  # one `incr` per counter here, each recorded like a plain `incr`
            deltas, version = args[0], (args[1] if len(args) > 1 else None)
            values: dict[str, int | None] = {}
            for key, delta in deltas.items():
                try:
                    values[key] = self._locally("incr", key, delta, version)
                except ValueError:
                    values[key] = None
            return values
        result = getattr(self._local, name)(*args, **kwargs)
        if name == "incr":  # only a counter that moved: its move is added to Redis's copy afterwards
            key = args[0] if args else kwargs["key"]
            delta = args[1] if len(args) > 1 else kwargs.get("delta", 1)
            version = args[2] if len(args) > 2 else kwargs.get("version")
            with self._outage.lock:
                self._outage.deltas[key, version] = self._outage.deltas.get((key, version), 0) + delta
        return result

    def _recovered(self) -> bool:
        """Carry the local counter moves into Redis; True when this call ended the outage."""
        outage = self._outage
        with outage.lock:
            if not outage.down:
                return False
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
                    return False
            self._local.clear()
            logger.warning(
                "Redis (the shared cache) answers again; %d counter(s) moved meanwhile were added to it", moved
            )
            return True

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

    def incr_many(self, deltas: dict[str, int], version: int | None = None) -> dict[str, int | None]:
        return self._call("incr_many", deltas, version)

    def incr_many_reading(
        self, deltas: dict[str, int], read: list[str], version: int | None = None
    ) -> tuple[dict[str, int | None], dict[str, Any]]:
        return self._call("incr_many_reading", deltas, read, version)

    def apply_versioned(
        self,
        counters: tuple[str, str],
        stamp_key: str,
        per_version: int,
        events: list[tuple[int, int, int, int]],
        version: int | None = None,
    ) -> tuple[bool, int | None] | None:
        return self._call("apply_versioned", counters, stamp_key, per_version, events, version)
