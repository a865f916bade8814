"""Vendors' moderation endpoints, in one neutral shape (`Moderation`).

Only OpenAI has one (`POST /v1/moderations`, free, model `omni-moderation-latest`): called through the
official SDK (`client.moderations.create`) on the provider's own client, key and base URL. Anthropic
has no moderation endpoint, OpenRouter exposes none (it moderates some upstreams itself and answers
403 then), and OpenAI-compatible servers (Ollama, vLLM) do not implement it: for those
`moderation_model(provider)` is None and `moderate` raises `NotSupported`, never a made-up verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import NotSupported

# registry kind -> the moderation model its endpoint runs
MODERATION_MODELS = {"openai": "omni-moderation-latest"}


@dataclass(frozen=True)
class Moderation:
    """A moderation verdict: flagged or not, the categories that were, the model and request that said so."""

    flagged: bool
    categories: tuple[str, ...]
    model: str
    request_id: str = ""


def moderation_model(provider: Any) -> str | None:
    """The moderation model of `provider`'s endpoint, or None when its vendor has no moderation endpoint."""
    return MODERATION_MODELS.get(getattr(provider, "kind", ""))


def moderate(provider: Any, text: str) -> Moderation:
    """Moderate `text` with `provider`'s endpoint; typed errors only (`NotSupported` without one)."""
    model = moderation_model(provider)
    if model is None:
        raise NotSupported(f"{provider.name} has no moderation endpoint.", provider=provider.name)

    def call() -> Any:
        return provider.client.moderations.create(model=model, input=text)

    response = provider._guard(call)
    result = response.results[0]
    categories = result.categories.model_dump(by_alias=True) if result.categories is not None else {}
    return Moderation(
        flagged=bool(result.flagged),
        categories=tuple(sorted(name for name, hit in categories.items() if hit)),
        model=getattr(response, "model", model) or model,
        request_id=getattr(response, "_request_id", None) or getattr(response, "id", "") or "",
    )
