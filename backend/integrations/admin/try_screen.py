"""The admin test screen's beyond-text inputs: a tool definition, a JSON schema, an image upload, a thinking budget.

Parsed and checked in the form (a clear error per field), then sent through the same
`AIService.complete` every caller uses, so the site's policy, budget, capability table and ledger
apply; the answer shows the tool calls the model made or the validated JSON. The gateway's
`failover=False` tests the chosen provider and key alone unless "use the site's chain" is ticked.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms

from integrations.ai.gateway.service import AIService
from integrations.ai.providers.images import MAX_IMAGE_BYTES, MEDIA_TYPES

TOOL_HELP = 'A tool as JSON, e.g. {"name": "get_weather", "description": "...", "parameters": {"type": "object", ...}}.'
SCHEMA_HELP = 'A JSON schema of an object: the answer must be JSON valid against it, e.g. {"type": "object", ...}.'


def json_field(value: str, what: str) -> Any:
    if not value.strip():
        return None
    try:
        data = json.loads(value)
    except ValueError as exc:
        raise forms.ValidationError(f"The {what} is not JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise forms.ValidationError(f"The {what} must be a JSON object.")
    return data


def image_part(upload: Any) -> dict[str, Any] | None:
    """The uploaded file as a neutral image part (its bytes are checked when the request is validated)."""
    if upload is None:
        return None
    if upload.size > MAX_IMAGE_BYTES:
        raise forms.ValidationError(f"The image is {upload.size:,} bytes; the limit is {MAX_IMAGE_BYTES:,}.")
    media_type = getattr(upload, "content_type", "") or ""
    if media_type not in MEDIA_TYPES:
        raise forms.ValidationError(f"Upload a PNG, JPEG, GIF or WebP image (got {media_type or 'an unknown type'}).")
    return {"type": "image", "data": upload.read(), "media_type": media_type}


def ledger_cost(site_id: int, result: Any) -> tuple[Any, str]:
    """The answer's cost as the ledger charges it (the provider's figure, else the site's price resolution)
    and where it came from; (None, "unpriced") when nothing prices it."""
    from integrations.ai.ledger import usage
    from integrations.ai.sites.site_config import get_snapshot

    return usage.cost_of(get_snapshot(site_id).prices, result)


COST_SOURCES = {
    "reported": "reported by the provider",
    "price_table": "from the price table",
    "catalogue": "from the price catalogue",
    "free": "free endpoint",
}


def run(site_id: int, data: dict[str, Any]) -> Any:
    """The test prompt through the gateway, with the form's tool, schema, image and thinking budget when given."""
    content: Any = data["prompt"]
    if data.get("image"):
        content = [{"type": "text", "text": data["prompt"]}, data["image"]]
    extra: dict[str, Any] = {}
    if data.get("tool"):
        extra["tools"] = [data["tool"]]
    if data.get("schema"):
        extra["response_schema"] = data["schema"]
    if data.get("thinking_budget"):
        extra["thinking"] = {"type": "enabled", "budget_tokens": data["thinking_budget"]}
    return AIService(site=site_id, service="admin.test").complete(
        [{"role": "user", "content": content}],
        provider=data["provider"] or None,
        model=data["model"] or None,
        max_tokens=data["max_tokens"],
        temperature=data["temperature"],
        cache=False,
        failover=bool(data.get("use_chain")),  # off: this provider and key only, refusals shown as refusals
        **extra,
    )
