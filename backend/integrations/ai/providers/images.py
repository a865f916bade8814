"""Images in messages: one neutral part, each vendor's wire shape, and each vendor's token rule.

A message's content may be a list of parts instead of a string: `{"type": "text", "text": ...}` and
`{"type": "image", "url": "https://..."}` or `{"type": "image", "data": <bytes or base64>,
"media_type": "image/png"}` (optional `detail`: auto | low | high, used by OpenAI). Bytes are read
with Pillow to learn the real format and size: a media type that does not match the bytes is refused
(Anthropic rejects it upstream), and the size gives the token count the budget reserves before the
call — OpenAI's tile rule, Anthropic's width x height / 750. A URL's size is unknown before the
vendor fetches it, so it is reserved at the rule's worst case (or at `width`/`height` if given).
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
from collections.abc import Mapping
from typing import Any

from .errors import InvalidRequest

MEDIA_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WEBP"}
MAX_IMAGE_BYTES = 5 * 1024 * 1024  # Anthropic's limit per image (OpenAI's is larger): the strictest wins
DETAILS = ("auto", "low", "high")
_DATA_URL = re.compile(r"^data:(image/[a-z+.-]+);base64,(.*)$", re.DOTALL)

# OpenAI's published rule: fit in 2048 x 2048, then the shortest side down to 768; 512 px tiles.
OPENAI_TILE = 512
OPENAI_RULES = {"default": (85, 170), "mini": (2833, 5667)}  # (base tokens, tokens per tile)
OPENAI_WORST_TILES = 8  # 2048 x 768 after scaling
# Anthropic's published rule: tokens = width x height / 750, images resized to a long edge of 1568 px.
ANTHROPIC_LONG_EDGE = 1568
ANTHROPIC_WORST = 1600


def is_image(part: Any) -> bool:
    return isinstance(part, Mapping) and part.get("type") == "image"


def normalize_part(part: Any, where: str, provider: str | None = None) -> dict[str, Any]:
    """One content part checked and made plain: text, or an image by URL or by base64 data with its size."""
    if not isinstance(part, Mapping):
        raise InvalidRequest(f"{where} must be a {{type: text|image, ...}} object.", provider=provider)
    kind = part.get("type")
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str) or not text.strip():
            raise InvalidRequest(f"{where}.text is empty: give the text.", provider=provider)
        from .text import check_text

        check_text(text, f"{where}.text", provider)
        return {"type": "text", "text": text}
    if kind != "image":
        raise InvalidRequest(f"{where}.type must be text or image, got {kind!r}.", provider=provider)
    detail = part.get("detail") or "auto"
    if detail not in DETAILS:
        raise InvalidRequest(f"{where}.detail must be auto, low or high.", provider=provider)
    clean: dict[str, Any] = {"type": "image", "detail": detail}
    url, data = part.get("url"), part.get("data")
    if isinstance(url, str) and (match := _DATA_URL.match(url)):
        data, clean["media_type"] = match.group(2), match.group(1)
        url = None
    if url is not None:
        if data is not None or not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise InvalidRequest(f"{where}: give an http(s) `url` or `data` with a `media_type`.", provider=provider)
        clean["url"] = url
        for side in ("width", "height"):
            if isinstance(part.get(side), int) and part[side] > 0:
                clean[side] = part[side]
        return clean
    media_type = clean.get("media_type") or part.get("media_type")
    if media_type not in MEDIA_TYPES:
        raise InvalidRequest(f"{where}.media_type must be one of {', '.join(MEDIA_TYPES)}.", provider=provider)
    raw = _bytes_of(data, where, provider)
    width, height, actual = _measure(raw, where, provider)
    if actual != MEDIA_TYPES[media_type]:
        raise InvalidRequest(
            f"{where}: the bytes are {actual}, not {media_type}; send the right media_type.", provider=provider
        )
    clean.update(media_type=media_type, data=base64.b64encode(raw).decode("ascii"), width=width, height=height)
    return clean


def _bytes_of(data: Any, where: str, provider: str | None) -> bytes:
    if isinstance(data, bytes | bytearray):
        raw = bytes(data)
    elif isinstance(data, str):
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest(f"{where}.data is not valid base64.", provider=provider) from None
    else:
        raise InvalidRequest(f"{where}: give the image as `url`, or `data` (bytes or base64).", provider=provider)
    if not raw:
        raise InvalidRequest(f"{where}.data is empty.", provider=provider)
    if len(raw) > MAX_IMAGE_BYTES:
        raise InvalidRequest(f"{where} is {len(raw):,} bytes; the limit is {MAX_IMAGE_BYTES:,}.", provider=provider)
    return raw


def _measure(raw: bytes, where: str, provider: str | None) -> tuple[int, int, str]:
    """(width, height, format) read from the image header by Pillow (the pixels are not decoded)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(raw)) as image:
            return image.width, image.height, str(image.format)
    except (UnidentifiedImageError, OSError, ValueError):
        raise InvalidRequest(f"{where}.data is not a PNG, JPEG, GIF or WebP image.", provider=provider) from None


# -- wire shapes -------------------------------------------------------------------------------------
def openai_part(part: Mapping[str, Any]) -> dict[str, Any]:
    if part["type"] == "text":
        return {"type": "text", "text": part["text"]}
    url = part.get("url") or f"data:{part['media_type']};base64,{part['data']}"
    return {"type": "image_url", "image_url": {"url": url, "detail": part.get("detail", "auto")}}


def anthropic_block(part: Mapping[str, Any]) -> dict[str, Any]:
    if part["type"] == "text":
        return {"type": "text", "text": part["text"]}
    if part.get("url"):
        return {"type": "image", "source": {"type": "url", "url": part["url"]}}
    return {"type": "image", "source": {"type": "base64", "media_type": part["media_type"], "data": part["data"]}}


# -- token rules -------------------------------------------------------------------------------------
def openai_tokens(part: Mapping[str, Any], model: str) -> int:
    base, per_tile = OPENAI_RULES["mini" if "4o-mini" in model else "default"]
    if part.get("detail") == "low":
        return base
    width, height = part.get("width"), part.get("height")
    if not width or not height:
        return base + per_tile * OPENAI_WORST_TILES
    scale = min(1.0, 2048 / max(width, height))
    width, height = width * scale, height * scale
    scale = min(1.0, 768 / min(width, height))
    width, height = width * scale, height * scale
    return base + per_tile * math.ceil(width / OPENAI_TILE) * math.ceil(height / OPENAI_TILE)


def anthropic_tokens(part: Mapping[str, Any]) -> int:
    width, height = part.get("width"), part.get("height")
    if not width or not height:
        return ANTHROPIC_WORST
    scale = min(1.0, ANTHROPIC_LONG_EDGE / max(width, height))
    return min(math.ceil(width * scale * height * scale / 750), ANTHROPIC_WORST)


def image_tokens(part: Mapping[str, Any], kind: str, model: str) -> int:
    """The prompt tokens an image costs on `kind`'s `model` by the vendor's published rule.

    OpenRouter bills the upstream vendor's tokens (`openai/...` by OpenAI's rule, `anthropic/...` by
    Anthropic's); for other models and local servers the larger of the two rules is reserved.
    """
    vendor = model.split("/", 1)[0] if "/" in model else kind
    if vendor == "openai":
        return openai_tokens(part, model.split("/", 1)[-1])
    if vendor == "anthropic":
        return anthropic_tokens(part)
    return max(openai_tokens(part, model), anthropic_tokens(part))


def parts_of(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    content = message.get("content")
    return [p for p in content if isinstance(p, Mapping)] if isinstance(content, list) else []


def has_images(messages: Any) -> bool:
    return any(is_image(p) for m in messages for p in parts_of(m))
