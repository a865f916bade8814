"""Django's local-memory cache without its memcached key-portability check.

`BaseCache.validate_key` walks every character of every key in Python to warn about keys memcached
would refuse (spaces, control characters, more than 250 characters). A capped AI call makes about
six cache operations (health, budget reservation and settlement), so that walk was a measurable
part of the gateway's own time; memcached is not a backend this project offers, and its keys are
made by code. Everything else is Django's `LocMemCache`.
"""

from __future__ import annotations

from django.core.cache.backends.locmem import LocMemCache


class FastLocMemCache(LocMemCache):
    def validate_key(self, key: str) -> None:
        return None
