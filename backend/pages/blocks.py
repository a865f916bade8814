"""What each block type's JSON must look like, checked in plain Python.

The schemas are small and stable, so a declarative table beats a JSON-Schema dependency: the
same table validates admin input, AI output, and describes the shape in the prompt that asks
the model for a block.
"""

from __future__ import annotations

import re
from typing import Any

# field -> (required, max length); lists: field -> ("list", min items, max items, item schema);
# ("image",): optional, the id (as text) of an image of the page's site's library (`images.Image`). Image
# fields are chosen by a person, never asked of a model (left out of `describe` and `json_schema`).
IMAGE_RULE = ("image",)
SCHEMAS: dict[str, dict[str, Any]] = {
    "hero": {
        "heading": (True, 120),
        "subheading": (False, 240),
        "cta_text": (False, 40),
        "cta_url": (False, 300),
        "image": IMAGE_RULE,
    },
    "text": {"heading": (False, 120), "body": (True, 5000)},
    "faq": {"items": ("list", 1, 20, {"question": (True, 200), "answer": (True, 1000)})},
    "cta": {"text": (True, 200), "button_text": (True, 40), "button_url": (False, 300)},
    "features": {
        "heading": (False, 120),
        "items": ("list", 1, 12, {"title": (True, 80), "description": (True, 400), "image": IMAGE_RULE}),
    },
}
# Fields rendered as a link's href: a web address, a path, mailto: or tel:, never javascript:/data:/vbscript:.
URL_FIELDS = frozenset({"cta_url", "button_url"})
URL_SCHEMES = ("http", "https", "mailto", "tel")
_SCHEME = re.compile(r"([a-z][a-z0-9+.-]*):")
BLOCK_TYPES = list(SCHEMAS)
BLOCK_LABELS = {"hero": "Hero", "text": "Text", "faq": "FAQ", "cta": "Call to action", "features": "Features"}


class BlockValidationError(ValueError):
    """The content does not fit its block type; `errors` lists every problem with its path."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("; ".join(errors))


def _check_object(value: Any, schema: dict[str, Any], path: str, errors: list[str]) -> None:
    if not isinstance(value, dict):
        errors.append(f"{path or 'content'} must be an object")
        return
    for key in value:
        if key not in schema:
            errors.append(f"{path}{key} is not a field of this block (allowed: {', '.join(schema)})")
    for key, rule in schema.items():
        item = value.get(key)
        if rule[0] == "list":
            _, low, high, item_schema = rule
            if not isinstance(item, list):
                errors.append(f"{path}{key} must be a list of {low} to {high} items")
                continue
            if not low <= len(item) <= high:
                errors.append(f"{path}{key} must have {low} to {high} items, has {len(item)}")
            for index, entry in enumerate(item):
                _check_object(entry, item_schema, f"{path}{key}[{index}].", errors)
            continue
        if rule == IMAGE_RULE:
            if item not in (None, "") and not (isinstance(item, str) and item.isdigit() and len(item) < 19):
                errors.append(f"{path}{key} must be the id of an image of the site's library")
            continue
        required, max_length = rule
        if item is None or item == "":
            if required:
                errors.append(f"{path}{key} is required")
            continue
        if not isinstance(item, str):
            errors.append(f"{path}{key} must be text")
        elif len(item) > max_length:
            errors.append(f"{path}{key} is {len(item)} characters; at most {max_length}")
        elif key in URL_FIELDS and (scheme := unsafe_scheme(item)) is not None:
            errors.append(
                f"{path}{key} may not be a {scheme}: URL; give https://…, a path such as /contact/, mailto: or tel:"
            )


def unsafe_scheme(url: str) -> str | None:
    """The scheme of a link a browser would not treat as a plain address (`javascript`, `data`, ...), else None.

    Read as browsers read it: spaces and control characters (which they drop, so `java\tscript:` runs)
    removed and case ignored first.
    """
    squeezed = "".join(c for c in url if c > " " and c != "\x7f").lower()
    match = _SCHEME.match(squeezed)
    return match[1] if match is not None and match[1] not in URL_SCHEMES else None


def image_ids(block_type: str, content: Any) -> set[str]:
    """The image ids a block's content refers to (hero: `image`; features: each item's `image`)."""
    found: set[str] = set()
    if not isinstance(content, dict):
        return found
    for key, rule in SCHEMAS.get(block_type, {}).items():
        if rule == IMAGE_RULE and content.get(key):
            found.add(str(content[key]))
        elif rule[0] == "list" and isinstance(content.get(key), list):
            found |= {str(i["image"]) for i in content[key] if isinstance(i, dict) and i.get("image")}
    return found


def validate_block(block_type: str, content: Any) -> None:
    if block_type not in SCHEMAS:
        raise BlockValidationError([f"unknown block type {block_type!r}; choose one of {', '.join(BLOCK_TYPES)}"])
    errors: list[str] = []
    _check_object(content, SCHEMAS[block_type], "", errors)
    if errors:
        raise BlockValidationError(errors)


def describe(block_type: str) -> str:
    """The JSON shape of a block type, for a prompt: field names, required, limits."""

    def render(schema: dict[str, Any]) -> str:
        parts = []
        for key, rule in schema.items():
            if rule == IMAGE_RULE:
                continue
            if rule[0] == "list":
                parts.append(f'"{key}": [{rule[1]}-{rule[2]} x {{{render(rule[3])}}}]')
            else:
                parts.append(f'"{key}": string{"" if rule[0] else " (optional)"} <= {rule[1]} chars')
        return ", ".join(parts)

    return "{" + render(SCHEMAS[block_type]) + "}"


def json_schema(block_type: str) -> dict[str, Any]:
    """The block type as a JSON Schema, for providers with structured outputs (response_format)."""

    def render(schema: dict[str, Any]) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        for key, rule in schema.items():
            if rule == IMAGE_RULE:
                continue
            if rule[0] == "list":
                properties[key] = {"type": "array", "minItems": rule[1], "maxItems": rule[2], "items": render(rule[3])}
            else:
                properties[key] = {"type": "string", "maxLength": rule[1]}
        required = [k for k, rule in schema.items() if rule != IMAGE_RULE and (rule[0] == "list" or rule[0] is True)]
        return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}

    return render(SCHEMAS[block_type])
