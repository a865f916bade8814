"""Serve identical deterministic requests from the Django cache.

Only `temperature == 0` (or an explicit `cache=True`) is cached: at any other temperature the
caller asked for variety. The key covers everything that shapes the answer (site, provider,
model, messages, system prompt and every parameter), so any change misses.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from decimal import Decimal
from typing import Any

from integrations.ai.providers.base import GenerationResult
from integrations.ai.runtime import conf
from integrations.ai.runtime.shared_cache import cache


def should_cache(temperature: float, cache_flag: bool | None) -> bool:
    if cache_flag is not None:
        return bool(cache_flag)
    return temperature == 0


def key_for(site_id: int | None, provider: str, model: str, messages: list, params: dict[str, Any]) -> str:
    payload = json.dumps(
        {"site": site_id, "provider": provider, "model": model, "messages": messages, "params": params},
        sort_keys=True,
        default=str,
    )
    return "integrations.ai:response:" + hashlib.sha256(payload.encode()).hexdigest()


def get(key: str) -> GenerationResult | None:
    data = cache.get(key)
    if data is None:
        return None
    if data.get("cost") is not None:
        data["cost"] = Decimal(data["cost"])
    result = GenerationResult(**data)
    result.cached = True
    return result


def put(key: str, result: GenerationResult) -> None:
    data = {f.name: getattr(result, f.name) for f in fields(result)}
    if data["cost"] is not None:
        data["cost"] = str(data["cost"])
    cache.set(key, data, timeout=conf.cache_ttl())
