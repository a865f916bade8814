"""The emulator's OpenAI moderation endpoint (`POST /openai/v1/moderations`), in OpenAI's wire format.

Only the OpenAI flavour has it, as with the real vendors (Anthropic and OpenRouter have no moderation
endpoint; a POST there is a 404). Verdicts are deterministic: a text is flagged in a category when it
contains one of that category's trigger words (`TRIGGERS`), so a test scripts a flagged answer by
scripting its content; `upstream.script(flavor="moderation", status=500)` fails the next moderation
request (only moderation requests take such a script). Standard library only, like the emulator.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

MODELS = ("omni-moderation-latest", "omni-moderation-2024-09-26", "text-moderation-latest", "text-moderation-stable")
SNAPSHOTS = {"omni-moderation-latest": "omni-moderation-2024-09-26", "text-moderation-latest": "text-moderation-007"}
CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
TRIGGERS = {
    "violence": ("kill", "murder", "massacre"),
    "violence/graphic": ("gore", "dismember"),
    "hate": ("subhuman",),
    "harassment": ("worthless idiot",),
    "self-harm": ("hurt myself",),
    "illicit": ("counterfeit money",),
}


def _scores(text: str) -> dict[str, float]:
    lowered = text.lower()
    scores = {}
    for category in CATEGORIES:
        hit = any(re.search(rf"\b{re.escape(w)}", lowered) for w in TRIGGERS.get(category, ()))
        scores[category] = 0.91 if hit else 0.0004
    return scores


def _texts(value: Any) -> list[str] | None:
    """The inputs as texts: a string, an array of strings, or an array of multimodal parts (text parts)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        texts = [v.get("text") for v in value if v.get("type") == "text"]
        if all(isinstance(t, str) for t in texts) and all(v.get("type") in ("text", "image_url") for v in value):
            return [" ".join(t for t in texts if t)]
    return None


def moderations(body: dict) -> tuple[int, dict]:
    """(status, payload) of `POST /v1/moderations`: one result per input, OpenAI's categories and scores."""
    model = str(body.get("model") or "omni-moderation-latest")
    if model not in MODELS:
        return 404, {"message": f"The model `{model}` does not exist or you do not have access to it."}
    if "input" not in body:
        return 400, {"message": "Missing required parameter: 'input'."}
    texts = _texts(body["input"])
    if texts is None:
        return 400, {"message": "'$.input' is invalid. Please check the API reference."}
    results = []
    for text in texts:
        scores = _scores(text)
        categories = {name: score > 0.5 for name, score in scores.items()}
        results.append(
            {
                "flagged": any(categories.values()),
                "categories": categories,
                "category_scores": scores,
                "category_applied_input_types": {name: ["text"] for name in CATEGORIES},
            }
        )
    return 200, {"id": f"modr-{uuid.uuid4().hex[:24]}", "model": SNAPSHOTS.get(model, model), "results": results}
