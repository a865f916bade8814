"""Shared provider health: rate-limit pauses and failure cooldowns, kept in the Django cache.

A 429 with `Retry-After` means every request made with that key should wait, not just the one
that was told: a batch of 100 prompts must not hammer the upstream with 99 more. Likewise a
provider that keeps failing is skipped for a while. Both live in the Django cache, so with a
shared cache (Redis) several app processes honour what one of them learnt.
"""

from __future__ import annotations

import threading
import time

from integrations.ai.runtime import clock, conf
from integrations.ai.runtime.shared_cache import cache

MAX_PAUSE = 60.0
FRESH = 0.5  # seconds a pause read by `health()` stands in for the next `paused_for()` on the same thread
_read = threading.local()


def _pause_key(site_id: int | None, provider: str) -> str:
    return f"integrations.ai:pause:{site_id or 0}:{provider}"


def _fail_key(site_id: int | None, provider: str) -> str:
    return f"integrations.ai:failures:{site_id or 0}:{provider}"


def _cool_key(site_id: int | None, provider: str) -> str:
    return f"integrations.ai:cooldown:{site_id or 0}:{provider}"


def pause(site_id: int | None, provider: str, seconds: float) -> None:
    """Ask every sender for this (site, provider) to hold off for `seconds`."""
    seconds = min(max(seconds, 0.0), MAX_PAUSE)
    until = clock.get().time() + seconds
    current = cache.get(_pause_key(site_id, provider))
    if current is None or current < until:
        cache.set(_pause_key(site_id, provider), until, timeout=int(seconds) + 1)


def paused_for(site_id: int | None, provider: str) -> float:
    seen = getattr(_read, "pause", None)
    if seen is not None and seen[:2] == (site_id, provider) and time.monotonic() - seen[2] < FRESH:
        _read.pause = None  # once: a retry reads the cache again
        until = seen[3]
    else:
        until = cache.get(_pause_key(site_id, provider))
    return max(until - clock.get().time(), 0.0) if until else 0.0


def wait_if_paused(site_id: int | None, provider: str) -> float:
    """Sleep out a shared pause; returns how long it slept."""
    remaining = paused_for(site_id, provider)
    if remaining > 0:
        clock.get().sleep(remaining)
    return remaining


def record_failure(site_id: int | None, provider: str) -> bool:
    """Count a failed call (after its retries); returns True when the provider now cools down."""
    threshold, seconds = conf.cooldown()
    key = _fail_key(site_id, provider)
    if cache.add(key, 1, timeout=int(seconds)):
        count = 1
    else:
        try:
            count = cache.incr(key)
        except ValueError:
            cache.set(key, 1, timeout=int(seconds))
            count = 1
    if count >= threshold:
        cache.set(_cool_key(site_id, provider), clock.get().time() + seconds, timeout=int(seconds) + 1)
        cache.delete(key)
        return True
    return False


def record_success(site_id: int | None, provider: str, failures: int = 1) -> None:
    """Reset the consecutive-failure count (skipped when `health()` showed none)."""
    if failures:
        cache.delete(_fail_key(site_id, provider))


def _health_keys(site_id: int | None, provider: str) -> list[str]:
    return [_cool_key(site_id, provider), _fail_key(site_id, provider), _pause_key(site_id, provider)]


def health_keys(site_id: int | None, provider: str) -> list[str]:
    """The cache keys `health()` reads for a provider: a caller that reads them in a round trip of its own
    hands the values over with `note_health`."""
    return _health_keys(site_id, provider)


def note_health(site_id: int | None, provider: str, values: dict[str, object]) -> None:
    """The provider's health keys just read (missing ones left out), for the `health()` that follows at once on
    this thread: the budget reads them in the round trip that reserves spend (`governance.admission`)."""
    keys = _health_keys(site_id, provider)
    _read.health = (site_id, provider, time.monotonic(), {k: values.get(k) for k in keys})


def read_with_health(site_id: int | None, provider: str, *keys: str) -> dict[str, object]:
    """The values of `keys` (missing ones left out), read in the same round trip as the provider's health,
    which the `health()` that follows at once on this thread then uses instead of asking the cache again.

    Why: a budgeted call reads its model's overshoot ratio (`governance.budget.scaled`) just before the
    chain reads the primary's health; with Redis that was one more round trip per call."""
    health_keys = _health_keys(site_id, provider)
    values = cache.get_many([*health_keys, *keys])
    _read.health = (site_id, provider, time.monotonic(), {k: values.get(k) for k in health_keys})
    return {k: values[k] for k in keys if k in values}


def health(site_id: int | None, provider: str) -> tuple[float, int]:
    """(seconds of cooldown left, consecutive failures) in one cache read.

    The same read takes the provider's rate-limit pause: the attempt that follows at once on this
    thread (`wait_if_paused`) uses it instead of asking the cache again (one round trip less per call
    with Redis).
    """
    keys = _health_keys(site_id, provider)
    held = getattr(_read, "health", None)
    _read.health = None  # once: the next call reads the cache again
    if held is not None and held[:2] == (site_id, provider) and time.monotonic() - held[2] < FRESH:
        values = held[3]
    else:
        values = cache.get_many(keys)
    _read.pause = (site_id, provider, time.monotonic(), values.get(keys[2]))
    until = values.get(keys[0])
    return (max(until - clock.get().time(), 0.0) if until else 0.0), int(values.get(keys[1]) or 0)


def cooling_down(site_id: int | None, provider: str) -> float:
    """Seconds left in this provider's cooldown for the site (0 when healthy)."""
    until = cache.get(_cool_key(site_id, provider))
    return max(until - clock.get().time(), 0.0) if until else 0.0
