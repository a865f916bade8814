"""Panel's AI layer.

Rooms, top down (`.importlinter` holds the order): `gateway` (AIService, the one pipeline; the
factory) -> `governance` (admission: policy, rate limits, budgets) -> `ledger` (rows, writer,
journal) -> `sites` (a site's snapshot, policy, the calling key) -> `pricing` -> `runtime` (settings,
clock, shared cache) -> `ports` (what the gateway asks of the database; the Django side implements
it) -> `providers` (one wire format per vendor, a Django-free leaf). `observability` hooks into the
pipeline; `testing.upstream` emulates the vendors on loopback for tests and the demo.

Names are imported lazily so `import integrations.ai` loads no SDK and no Django model.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AIService": "integrations.ai.gateway.service",
    "ProviderFactory": "integrations.ai.gateway.factory",
    "ModelMapper": "integrations.ai.providers.model_mapper",
    "GenerationResult": "integrations.ai.providers.base",
    "AIProviderInterface": "integrations.ai.providers.base",
    "AIProviderError": "integrations.ai.providers.errors",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'integrations.ai' has no attribute {name!r}")
