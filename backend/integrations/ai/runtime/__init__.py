"""Process-wide plumbing of the gateway: `conf` (deployment settings, read only here), `clock` (the
seam tests replace), `shared_cache` (the Django cache the counters live in), `pauses` (shared
rate-limit pauses and cooldowns).

May import providers (types, registry, outbound policy) and Django's settings/cache/signals; nothing
else of `integrations`.
"""
