"""OpenAI's Embeddings wire format (`POST /v1/embeddings`), onto the gateway and back.

`parse` turns a request body into an `EmbeddingsCall`, the arguments of one `AIService.embed`;
`embedding_list` renders its `EmbeddingResult` as OpenAI's `list` of `embedding` objects. Vectors go
back as JSON floats, or as base64 of little-endian float32 when `encoding_format` is `base64` (what
the `openai` SDK asks for when its caller names no format, then decodes). Errors use the chat
dialect's body (`openai_dialect.error_body`). Token-id input is refused, not guessed at: the gateway
masks, caches and prices text.
"""

from __future__ import annotations

import array
import base64
import sys
from dataclasses import dataclass
from typing import Any

from .calls import BadField, Unsupported, need_int, need_str

MAX_INPUTS = 2048  # OpenAI's own cap per request; the gateway batches further to each vendor's limits
FORMATS = ("float", "base64")


@dataclass(frozen=True)
class EmbeddingsCall:
    """One `AIService.embed` call, and how to answer it."""

    model: str
    texts: list[str]
    dimensions: int | None = None
    encoding_format: str = "float"


def _texts(value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise BadField("input must be a string or a non-empty list of strings.", "input")
    if len(items) > MAX_INPUTS:
        raise BadField(f"input holds {len(items):,} items; at most {MAX_INPUTS:,} per request.", "input")
    for index, item in enumerate(items):
        if isinstance(item, int | list) and not isinstance(item, bool):
            raise Unsupported(
                "input as token ids is not supported by this gateway: send the text (it is masked, cached and "
                "priced as text).",
                "input",
            )
        if not isinstance(item, str) or not item.strip():
            where = "input" if isinstance(value, str) else f"input[{index}]"
            raise BadField(f"{where} must be a non-empty string.", where)
    return items


def parse(data: Any) -> EmbeddingsCall:
    """The gateway call an Embeddings request asks for; BadField/Unsupported name what to fix."""
    if not isinstance(data, dict):
        raise BadField("The body must be a JSON object.")
    model = need_str(data, "model", required=True)
    assert model is not None
    encoding = need_str(data, "encoding_format") or "float"
    if encoding not in FORMATS:
        raise BadField("encoding_format must be float or base64.", "encoding_format")
    need_str(data, "user")  # accepted, as OpenAI does; the ledger already names the key that called
    return EmbeddingsCall(model, _texts(data.get("input")), need_int(data, "dimensions"), encoding)


def _encoded(vector: list[float]) -> str:
    packed = array.array("f", vector)
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def embedding_list(result: Any, call: EmbeddingsCall) -> dict[str, Any]:
    """OpenAI's answer: one `embedding` object per input, in order; usage counts the tokens sent upstream
    (texts the site's cache answered cost none)."""
    encode = _encoded if call.encoding_format == "base64" else list
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": encode(vector)}
            for index, vector in enumerate(result.vectors)
        ],
        "model": result.model,
        "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
    }
