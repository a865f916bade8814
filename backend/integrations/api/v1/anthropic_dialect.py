"""Anthropic's Messages wire format, onto the gateway and back.

`parse` turns a `POST /v1/messages` body (top-level `system`, alternating user/assistant
`messages` of text or text blocks, required `max_tokens`) into a `GatewayCall`; `message`
renders a result as a `message` object; `Events` renders a stream as Anthropic's SSE events
(`message_start`, `content_block_start`, `content_block_delta` text deltas, `content_block_stop`,
`message_delta` with the stop reason and usage, `message_stop`); `error_body` is
`{"type": "error", "error": {type, message}}`. Whichever provider served, the client sees this.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from integrations.ai.providers.types import FINISH_CONTENT_FILTER, FINISH_LENGTH, FINISH_TOOL_CALLS, GenerationResult

from .calls import BadField, GatewayCall, Unsupported, need_bool, need_int, need_number, need_str, stop_sequences
from .failures import Failure

UNSUPPORTED = {
    "tools": "tools (tool use)",
    "thinking": "extended thinking",
    "mcp_servers": "MCP servers",
    "container": "code execution containers",
}
STOP = {FINISH_LENGTH: "max_tokens", FINISH_CONTENT_FILTER: "refusal", FINISH_TOOL_CALLS: "tool_use"}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list) or not content:
        raise BadField(f"{where} must be a string or a non-empty list of content blocks.", where)
    texts = []
    for index, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind in ("tool_use", "tool_result", "server_tool_use"):
            raise Unsupported(
                f"{where}[{index}] is a {kind} block: tool use is not supported by this gateway yet.",
                f"{where}[{index}]",
            )
        elif kind in ("image", "document", "thinking", "redacted_thinking", "search_result"):
            raise Unsupported(
                f"{where}[{index}] is a {kind} block: this gateway takes text blocks only.", f"{where}[{index}]"
            )
        else:
            raise BadField(
                f'{where}[{index}] must be a text block ({{"type": "text", "text": ...}}).', f"{where}[{index}]"
            )
    return "\n".join(texts)


def parse(data: Any) -> GatewayCall:
    """The gateway call a Messages request asks for; BadField/Unsupported name what to fix."""
    if not isinstance(data, dict):
        raise BadField("The body must be a JSON object.")
    for name, feature in UNSUPPORTED.items():
        if data.get(name):
            raise Unsupported(f"{feature} is not supported by this gateway yet; remove {name}.", name)
    tool_choice = data.get("tool_choice")
    if tool_choice not in (None, {"type": "none"}, {"type": "auto"}):
        raise Unsupported("tool_choice needs tools, which this gateway does not support yet.", "tool_choice")
    model = need_str(data, "model", required=True)
    max_tokens = need_int(data, "max_tokens")
    if max_tokens is None:
        raise BadField("max_tokens is required.", "max_tokens")
    raw = data.get("messages")
    if not isinstance(raw, list) or not raw:
        raise BadField("messages must be a non-empty list.", "messages")
    messages = []
    for index, message in enumerate(raw):
        where = f"messages.{index}"
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            raise BadField(f"{where}.role must be user or assistant (system is a top-level field).", f"{where}.role")
        messages.append({"role": role, "content": _text(message.get("content"), f"{where}.content")})
    system = data.get("system")
    system_prompt = None if system is None else _text(system, "system")
    options: dict[str, Any] = {}
    if (top_p := need_number(data, "top_p")) is not None:
        options["top_p"] = top_p
    if (top_k := need_int(data, "top_k")) is not None:
        options["top_k"] = top_k
    if (stop := stop_sequences(data.get("stop_sequences"), "stop_sequences")) is not None:
        options["stop"] = stop
    metadata = data.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise BadField("metadata must be an object.", "metadata")
        if (user := need_str(metadata, "user_id")) is not None:
            options["user"] = user
    temperature = need_number(data, "temperature")
    assert model is not None
    return GatewayCall(
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        temperature=1.0 if temperature is None else temperature,
        system_prompt=system_prompt or None,
        options=options,
        stream=need_bool(data, "stream"),
    )


def stop_reason(result: GenerationResult | None) -> str:
    return STOP.get(result.finish_reason, "end_turn") if result is not None else "end_turn"


def usage(result: GenerationResult) -> dict[str, int]:
    """Anthropic counts cache reads and writes apart from input_tokens; the gateway's prompt_tokens holds all."""
    uncached = max(0, result.prompt_tokens - result.cached_tokens - result.cache_write_tokens)
    return {
        "input_tokens": uncached,
        "output_tokens": result.completion_tokens,
        "cache_creation_input_tokens": result.cache_write_tokens,
        "cache_read_input_tokens": result.cached_tokens,
    }


def new_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def message(result: GenerationResult) -> dict[str, Any]:
    return {
        "id": new_id(),
        "type": "message",
        "role": "assistant",
        "model": result.model,
        "content": [{"type": "text", "text": result.content}],
        "stop_reason": stop_reason(result),
        "stop_sequence": None,
        "usage": usage(result),
    }


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class Events:
    """The SSE events of one streamed message: `first()`, `delta(text)` per piece, then `end(result)`."""

    def __init__(self, model: str) -> None:
        self.id = new_id()
        self.model = model

    def first(self) -> bytes:
        start: dict[str, Any] = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }  # the real counts come in message_delta
        return _event("message_start", {"type": "message_start", "message": start}) + _event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        )

    def delta(self, text: str) -> bytes:
        return _event(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
        )

    def end(self, result: GenerationResult | None) -> bytes:
        counts = usage(result) if result is not None else {"output_tokens": 0}
        return (
            _event("content_block_stop", {"type": "content_block_stop", "index": 0})
            + _event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason(result), "stop_sequence": None},
                    "usage": counts,
                },
            )
            + _event("message_stop", {"type": "message_stop"})
        )

    @staticmethod
    def error(failure: Failure) -> bytes:
        return _event("error", error_body(failure))


def error_body(failure: Failure) -> dict[str, Any]:
    kind = failure.anthropic_type or ERROR_TYPES.get(failure.status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": failure.message}}
