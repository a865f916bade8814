"""Extended thinking: the `thinking` option, the thinking blocks of a conversation, a stream's thinking pieces.

A model that thinks before it answers (Anthropic's extended thinking) returns its thinking as blocks ahead of
the text: `{"type": "thinking", "thinking", "signature"}`, or `{"type": "redacted_thinking", "data"}` when the
vendor encrypted it. The signature is the vendor's proof that it wrote the block: a conversation that goes on
must give the blocks back unchanged (with tools, the assistant turn being continued must start with them), so
the gateway keeps them as given, on the result (`GenerationResult.thinking`) and on the neutral assistant
message (`"thinking": [blocks]`), and never edits, masks or re-creates one. A vendor that cannot take them back
(OpenAI's format) is sent the turn without them, as Anthropic itself ignores earlier turns' thinking.

The option is Anthropic's own shape (`{"type": "enabled", "budget_tokens"}`, `{"type": "adaptive"}`, optionally
`display`); `check_option` holds a call to the vendor's rules before anything is sent, so a mistake is a 400
naming it, not a vendor failure. Imports nothing of Django or the gateway (`providers/` is a leaf).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import InvalidRequest
from .types import ThinkingDelta

MIN_BUDGET = 1024  # Anthropic's smallest thinking budget
TYPES = ("enabled", "adaptive")
DISPLAYS = ("summarized", "omitted")


def check_option(value: Any, request: Any, provider: str) -> dict[str, Any]:
    """The `thinking` option of `request` (an `AIRequest`) normalised, or InvalidRequest naming what to fix."""
    if not isinstance(value, Mapping) or value.get("type") not in TYPES:
        raise InvalidRequest(
            'thinking must be {"type": "enabled", "budget_tokens": N} or {"type": "adaptive"}.', provider=provider
        )
    unknown = sorted(set(value) - {"type", "budget_tokens", "display"})
    if unknown:
        raise InvalidRequest(
            f"thinking takes type, budget_tokens and display; remove {', '.join(unknown)}.", provider=provider
        )
    clean: dict[str, Any] = {"type": value["type"]}
    if value["type"] == "enabled":
        budget = value.get("budget_tokens")
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < MIN_BUDGET:
            raise InvalidRequest(
                f"thinking.budget_tokens must be an integer of at least {MIN_BUDGET}.", provider=provider
            )
        if budget >= request.max_tokens:
            raise InvalidRequest(
                f"max_tokens ({request.max_tokens}) must be greater than thinking.budget_tokens ({budget}): "
                "the thinking counts toward max_tokens.",
                provider=provider,
            )
        clean["budget_tokens"] = budget
    elif "budget_tokens" in value:
        raise InvalidRequest("thinking.budget_tokens goes with type enabled only.", provider=provider)
    if value.get("display") is not None:
        if value["display"] not in DISPLAYS:
            raise InvalidRequest(f"thinking.display must be one of {', '.join(DISPLAYS)}.", provider=provider)
        clean["display"] = value["display"]
    if request.temperature != 1:
        raise InvalidRequest(
            f"temperature must be 1 when thinking is on (the vendor's rule), got {request.temperature:g}.",
            provider=provider,
        )
    options = request.options
    if options.get("top_k") is not None:
        raise InvalidRequest("top_k cannot be combined with thinking; remove it.", provider=provider)
    top_p = options.get("top_p")
    if top_p is not None and not 0.95 <= top_p <= 1:
        raise InvalidRequest(f"top_p must be between 0.95 and 1 when thinking is on, got {top_p:g}.", provider=provider)
    if request.response_schema is not None:
        raise InvalidRequest(
            "A structured answer (response_schema) cannot be combined with thinking: the vendor cannot force its "
            "answer tool while thinking. Drop one of them.",
            provider=provider,
        )
    if request.tool_choice is not None and request.tool_choice not in ("auto", "none"):
        raise InvalidRequest(
            'tool_choice must be "auto" or "none" when thinking is on: the vendor cannot force a tool while thinking.',
            provider=provider,
        )
    return clean


EFFORTS = ("low", "medium", "high", "xhigh", "max")  # Anthropic's `output_config.effort` levels


def check_effort(value: Any, provider: str) -> str:
    """The `effort` option (how much the model may spend on an answer, thinking included), or InvalidRequest."""
    if value not in EFFORTS:
        raise InvalidRequest(f"effort must be one of {', '.join(EFFORTS)}, got {value!r}.", provider=provider)
    return str(value)


def check_blocks(blocks: Any, where: str, provider: str | None) -> list[dict[str, Any]]:
    """An assistant message's `thinking` blocks, checked and copied as given (their signatures untouched)."""
    if not isinstance(blocks, list | tuple):
        raise InvalidRequest(f"{where} must be a list of thinking blocks.", provider=provider)
    clean = []
    for index, block in enumerate(blocks):
        here = f"{where}[{index}]"
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "thinking" and isinstance(block.get("thinking"), str) and isinstance(block.get("signature"), str):
            clean.append({"type": "thinking", "thinking": block["thinking"], "signature": block["signature"]})
        elif kind == "redacted_thinking" and isinstance(block.get("data"), str):
            clean.append({"type": "redacted_thinking", "data": block["data"]})
        else:
            raise InvalidRequest(
                f'{here} must be {{"type": "thinking", "thinking", "signature"}} or '
                '{"type": "redacted_thinking", "data"}.',
                provider=provider,
            )
    return clean


def text_of(blocks: Any) -> str:
    """The thinking's words (for estimates); a redacted block counts as its data."""
    return " ".join(str(b.get("thinking") or b.get("data") or "") for b in blocks or ())


class Assembler:
    """A streamed answer's thinking blocks, rebuilt from its pieces (`ThinkingDelta`) as they pass."""

    def __init__(self) -> None:
        self.blocks: list[dict[str, Any]] = []

    def add(self, piece: ThinkingDelta) -> None:
        while len(self.blocks) <= piece.block:
            self.blocks.append({"type": "thinking", "thinking": "", "signature": ""})
        block = self.blocks[piece.block]
        if piece.redacted:
            self.blocks[piece.block] = piece.as_block()
            return
        block["thinking"] += piece.thinking
        block["signature"] += piece.signature


# -- OpenRouter: the same blocks as `reasoning_details` -----------------------------------------------------
# OpenRouter carries a model's thinking as `reasoning_details` (`reasoning.text` with its signature,
# `reasoning.encrypted`, `reasoning.summary`), on the answer, in stream deltas, and back on the assistant message.
DETAIL_FORMAT = "anthropic-claude-v1"  # what OpenRouter names Anthropic's signed blocks


def from_detail(detail: Any) -> dict[str, Any] | None:
    """One reasoning detail as a thinking block (None: a kind this gateway does not know)."""
    if not isinstance(detail, Mapping):
        return None
    kind = detail.get("type")
    if kind == "reasoning.text":
        return {
            "type": "thinking",
            "thinking": str(detail.get("text") or ""),
            "signature": str(detail.get("signature") or ""),
        }
    if kind == "reasoning.encrypted":
        return {"type": "redacted_thinking", "data": str(detail.get("data") or "")}
    if kind == "reasoning.summary":
        return {"type": "thinking", "thinking": str(detail.get("summary") or ""), "signature": ""}
    return None


def from_details(details: Any) -> list[dict[str, Any]]:
    """An answer's `reasoning_details` as thinking blocks, in order."""
    if not isinstance(details, list | tuple):
        return []
    return [block for block in map(from_detail, details) if block is not None]


def to_details(blocks: Any) -> list[dict[str, Any]]:
    """Thinking blocks as the `reasoning_details` of an assistant message going back to OpenRouter."""
    details: list[dict[str, Any]] = []
    for index, block in enumerate(blocks or ()):
        if block.get("type") == "redacted_thinking":
            details.append(
                {"type": "reasoning.encrypted", "data": block["data"], "format": DETAIL_FORMAT, "index": index}
            )
        else:
            detail = {"type": "reasoning.text", "text": block["thinking"], "index": index}
            if block.get("signature"):
                detail.update(signature=block["signature"], format=DETAIL_FORMAT)
            details.append(detail)
    return details


def delta_pieces(details: Any) -> list[ThinkingDelta]:
    """A stream chunk's `reasoning_details` as thinking pieces (a block is its detail's `index`)."""
    pieces = []
    for detail in details if isinstance(details, list | tuple) else ():
        block = from_detail(detail)  # the same reading as a whole answer's
        if block is None:
            continue
        index = detail.get("index")
        pieces.append(
            ThinkingDelta(
                index if isinstance(index, int) else 0,
                thinking=block.get("thinking", ""),
                signature=block.get("signature", ""),
                redacted=block.get("data", ""),
            )
        )
    return pieces
