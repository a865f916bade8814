"""Any server that speaks OpenAI chat completions, as a named endpoint: Ollama, vLLM, LM Studio,
Together, Groq, Fireworks and the like.

Configured as instances (`ollama`, `together`, …) per site or deployment-wide, each with its own
base URL and optional key; model ids go as given (`llama3.1`, `mistral`), since every such server
names its own models; the live `GET /models` listing says what it serves.
"""

from __future__ import annotations

from .base import ModelInfo
from .openai_provider import ModelListCache, OpenAIProvider

_models_cache = ModelListCache(ttl=60.0)
LISTING_TIMEOUT = 10.0  # seconds


class OpenAICompatibleProvider(OpenAIProvider):
    kind = "openai_compatible"

    def get_available_models(self) -> list[ModelInfo]:
        """The endpoint's own listing (cached for a minute), plus any models mapped to it by name."""
        listed = _models_cache.get(self.config.fingerprint, lambda: self._guard(self._fetch_models))
        known = {m.id for m in listed}
        return listed + [m for m in super().get_available_models() if m.id not in known]

    def _fetch_models(self) -> list[ModelInfo]:
        # a listing is small: an endpoint that takes longer is treated as down, not waited on for a whole
        # generation's timeout (it is asked for on `GET /v1/models` and the admin's screens)
        client = self.client.with_options(timeout=min(LISTING_TIMEOUT, self.config.timeout or LISTING_TIMEOUT))
        return [ModelInfo(id=model.id, name=model.id) for model in client.models.list()]
