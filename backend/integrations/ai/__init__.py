"""Panel's AI layer.

Layers, top down: `service` (what CMS code calls) -> `factory` (which provider, for
which site, with whose key) -> `providers.<vendor>_provider` (one wire format each, under
`providers.base`) -> the vendor SDK. `providers.errors` is the one exception hierarchy,
`providers.model_mapper` translates model names, `conf` and `site_config` read settings, and
`testing.upstream` emulates the vendors on loopback for tests and the demo.

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
