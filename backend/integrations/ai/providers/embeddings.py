"""One embeddings request on the OpenAI wire format (`POST {base}/embeddings`): OpenAI, OpenRouter and
OpenAI-compatible servers (Ollama, vLLM) all answer it. Batching, caching and the pipeline are the
gateway's (`integrations/ai/gateway/embeddings.py`); this sends one batch and reads vectors, tokens and cost."""

from __future__ import annotations

from typing import Any

from .errors import ProviderUnavailable
from .types import AIRequest, GenerationResult

# Per request: (most inputs, most tokens) each vendor takes; a local server's is our own, conservative cap.
LIMITS: dict[str, tuple[int, int]] = {
    "openai": (2048, 300_000),
    "openrouter": (2048, 300_000),
    "openai_compatible": (256, 300_000),
}
DEFAULT_MODELS = {"openai": "text-embedding-3-small", "openrouter": "openai/text-embedding-3-small"}


def send_embeddings(provider: Any, ai: AIRequest, model: str) -> GenerationResult:
    body: dict[str, Any] = {"model": model, "input": list(ai.embed_input), "encoding_format": "float"}
    if ai.options.get("dimensions") is not None:  # shortened vectors (OpenAI's text-embedding-3 family)
        body["dimensions"] = ai.options["dimensions"]
    body.update(provider._extra_body({}) if provider.kind == "openrouter" else {})
    response = provider.client.post(
        "/embeddings",
        body=body,
        cast_to=provider.sdk().types.CreateEmbeddingResponse,
        options={"security": {"bearer_auth": True}},
    )
    data = sorted(response.data, key=lambda d: d.index)
    if len(data) != len(ai.embed_input):
        raise ProviderUnavailable(
            f"The provider sent {len(data)} vectors for {len(ai.embed_input)} texts.", provider=provider.name
        )
    usage = response.usage
    tokens = getattr(usage, "prompt_tokens", 0) or 0
    result = GenerationResult(
        content="",
        model=response.model or model,
        provider=provider.name,
        prompt_tokens=tokens,
        total_tokens=getattr(usage, "total_tokens", 0) or tokens,
        request_id=getattr(response, "_request_id", None),
        embeddings=[list(d.embedding) for d in data],
    )
    provider._read_extras(result, response)  # OpenRouter's reported cost
    return result
