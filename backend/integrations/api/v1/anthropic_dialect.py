"""Anthropic's Messages wire format, onto the gateway and back.

`parse` turns a `POST /v1/messages` body (top-level `system`, alternating user/assistant
`messages` of text, image, `tool_use` and `tool_result` blocks, `tools` and `tool_choice`, required
`max_tokens`) into a `GatewayCall` in the gateway's neutral shapes (`providers/conversation.py`: image
parts, assistant `tool_calls`, `role: tool` results), so any provider can serve it; `message` renders a
result as a `message` object (text and `tool_use` blocks); `Events` renders a stream as Anthropic's SSE
events (`message_start`, text `content_block_delta`s, each tool call as a `tool_use` block with its
`input_json_delta`, `message_delta` with the stop reason and usage, `message_stop`); `error_body` is
`{"type": "error", "error": {type, message}}`. Whichever provider served, the client sees this.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from integrations.ai.providers.types import FINISH_CONTENT_FILTER, FINISH_LENGTH, FINISH_TOOL_CALLS, GenerationResult

from .calls import (
    BadField,
    GatewayCall,
    Unsupported,
    need_bool,
    need_int,
    need_number,
    need_str,
    request_body,
    stop_sequences,
)
from .failures import Failure

UNSUPPORTED = {
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
    """A system prompt or a tool result's content: a string, or text blocks joined."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list) or not content:
        raise BadField(f"{where} must be a string or a non-empty list of content blocks.", where)
    texts = []
    for index, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind in KNOWN_BLOCKS:
            raise Unsupported(
                f"{where}[{index}] is a {kind} block: only text blocks are taken here.", f"{where}[{index}]"
            )
        else:
            raise BadField(
                f'{where}[{index}] must be a text block ({{"type": "text", "text": ...}}).', f"{where}[{index}]"
            )
    return "\n".join(texts)


KNOWN_BLOCKS = (
    "image",
    "tool_use",
    "tool_result",
    "server_tool_use",
    "document",
    "thinking",
    "redacted_thinking",
    "search_result",
)


def _image(block: dict[str, Any], where: str) -> dict[str, Any]:
    """An image block as the gateway's neutral image part (`providers/images.py` checks and measures it)."""
    source: dict[str, Any] = block["source"] if isinstance(block.get("source"), dict) else {}
    kind = source.get("type")
    if kind == "base64" and isinstance(source.get("data"), str) and isinstance(source.get("media_type"), str):
        return {"type": "image", "data": source["data"], "media_type": source["media_type"]}
    if kind == "url" and isinstance(source.get("url"), str):
        return {"type": "image", "url": source["url"]}
    raise BadField(
        f'{where}.source must be {{"type": "base64", "media_type", "data"}} or {{"type": "url", "url"}}.',
        f"{where}.source",
    )


def _turn(role: str, content: Any, where: str) -> list[dict[str, Any]]:
    """One Messages turn as neutral messages: a user turn's `tool_result` blocks become `role: tool`
    messages (first, as the vendors require), its text and images one user message; an assistant
    turn's `tool_use` blocks become its `tool_calls`."""
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list) or not content:
        raise BadField(f"{where} must be a string or a non-empty list of content blocks.", where)
    parts: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for index, block in enumerate(content):
        here = f"{where}[{index}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image" and role == "user":
            parts.append(_image(block, here))
        elif kind == "tool_result" and role == "user":
            call_id = block.get("tool_use_id")
            if not isinstance(call_id, str) or not call_id:
                raise BadField(f"{here}.tool_use_id names the tool_use this result answers.", f"{here}.tool_use_id")
            inner = block.get("content", "")
            text = "" if inner in ("", None) else _text(inner, f"{here}.content")
            result: dict[str, Any] = {"role": "tool", "tool_call_id": call_id, "content": text}
            if block.get("is_error"):
                result["is_error"] = True
            results.append(result)
        elif kind == "tool_use" and role == "assistant":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise BadField(f"{here} needs an id and a name.", here)
            arguments = block.get("input", {})
            if not isinstance(arguments, dict):
                raise BadField(f"{here}.input must be an object.", f"{here}.input")
            calls.append({"id": block["id"], "name": block["name"], "arguments": arguments})
        elif kind in KNOWN_BLOCKS:
            raise Unsupported(f"{here} is a {kind} block, which a {role} turn cannot carry here.", here)
        else:
            raise BadField(f"{here} must be a text, image, tool_use or tool_result block.", here)
    if role == "assistant":
        text = "\n".join(p["text"] for p in parts)
        return [{"role": "assistant", "content": text, **({"tool_calls": calls} if calls else {})}]
    out = list(results)
    if parts:
        plain = all(p["type"] == "text" for p in parts)
        out.append({"role": "user", "content": "\n".join(p["text"] for p in parts) if plain else parts})
    return out


def _tools(data: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, Any]:
    """`tools` (custom tools: name, description, input_schema) and `tool_choice` in the gateway's terms."""
    tools = data.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise BadField("tools must be a list of {name, description, input_schema}.", "tools")
        for index, tool in enumerate(tools):
            kind = tool.get("type") if isinstance(tool, dict) else None
            if kind not in (None, "custom"):
                raise Unsupported(
                    f"tools[{index}] is Anthropic's server tool {kind!r}; only custom tools (name, input_schema) "
                    "are taken here.",
                    f"tools.{index}",
                )
    choice = data.get("tool_choice")
    if choice is None:
        return tools or None, None
    if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
        raise BadField(
            'tool_choice must be {"type": "auto" | "any" | "none"} or {"type": "tool", "name"}.', "tool_choice"
        )
    if choice.get("disable_parallel_tool_use"):
        raise Unsupported("disable_parallel_tool_use is not supported by this gateway; remove it.", "tool_choice")
    if not tools:
        if choice["type"] in ("auto", "none"):
            return None, None
        raise BadField("tool_choice needs tools: give the tools it chooses among.", "tool_choice")
    mapped = {"auto": "auto", "any": "required", "none": "none"}.get(choice["type"])
    return tools, mapped if mapped is not None else {"name": choice.get("name")}


def parse(data: Any) -> GatewayCall:
    """The gateway call a Messages request asks for; BadField/Unsupported name what to fix."""
    thinking = data.get("thinking") if isinstance(data, dict) else None
    if isinstance(thinking, dict) and thinking.get("type") == "disabled":
        data = {k: v for k, v in data.items() if k != "thinking"}  # asks for what every answer here is: no thinking
    data = request_body(data, UNSUPPORTED)
    tools, tool_choice = _tools(data)
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
        messages += _turn(role, message.get("content"), f"{where}.content")
    system = data.get("system")
    system_prompt = None if system is None else _text(system, "system")
    options: dict[str, Any] = {}
    if tools:
        options["tools"] = tools  # providers/tools.py takes Anthropic's {name, description, input_schema}
    if tool_choice is not None:
        options["tool_choice"] = tool_choice
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


def tool_use_blocks(result: GenerationResult) -> list[dict[str, Any]]:
    return [{"type": "tool_use", "id": c.id, "name": c.name, "input": dict(c.arguments)} for c in result.tool_calls]


def message(result: GenerationResult) -> dict[str, Any]:
    text = [{"type": "text", "text": result.content}] if result.content or not result.tool_calls else []
    return {
        "id": new_id(),
        "type": "message",
        "role": "assistant",
        "model": result.model,
        "content": text + tool_use_blocks(result),
        "stop_reason": stop_reason(result),
        "stop_sequence": None,
        "usage": usage(result),
    }


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def delta_event(text: str) -> bytes:
    """A text delta of content block 0, built from its fields (what `Events.delta` must equal)."""
    return _event(
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
    )


_DELTA_HEAD, _, _DELTA_TAIL = delta_event("\x00").rpartition(json.dumps("\x00").encode())  # the text comes last


def parse_count(data: Any) -> GatewayCall:
    """A `POST /v1/messages/count_tokens` body: a message request without `max_tokens` (a count generates nothing)."""
    if not isinstance(data, dict):
        raise BadField("The body must be a JSON object.")
    if data.get("stream"):
        raise BadField("A token count does not stream; remove stream.", "stream")
    return parse({**data, "max_tokens": 1})


class Events:
    """The SSE events of one streamed message: `first()`, `delta(text)` per piece, then `end(result)`."""

    def __init__(self, model: str) -> None:
        self.id = new_id()
        self.model = model
        self.text_open = False  # the text block opens with the first text: an answer of tool calls only has none

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
        return _event("message_start", {"type": "message_start", "message": start})

    def _open_text(self) -> bytes:
        self.text_open = True
        return _event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        )

    def delta(self, text: str) -> bytes:
        """`delta_event(text)`, byte for byte, as the fixed head and tail around the text's JSON: nearly every
        event of a stream is one (as `openai_dialect.Chunks.delta`, issue 22). The first opens the text block."""
        opening = b"" if self.text_open else self._open_text()
        return opening + _DELTA_HEAD + json.dumps(text).encode() + _DELTA_TAIL

    def end(self, result: GenerationResult | None) -> bytes:
        counts = usage(result) if result is not None else {"output_tokens": 0}
        blocks = tool_use_blocks(result) if result is not None else []
        text = b""
        if self.text_open or not blocks:  # an empty answer is still one (empty) text block
            opening = b"" if self.text_open else self._open_text()
            text = opening + _event("content_block_stop", {"type": "content_block_stop", "index": 0})
        calls = b""  # each tool call as a tool_use block after the text: its input as one input_json_delta
        for index, block in enumerate(blocks, start=1 if self.text_open else 0):
            calls += (
                _event(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": {**block, "input": {}}},
                )
                + _event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": json.dumps(block["input"])},
                    },
                )
                + _event("content_block_stop", {"type": "content_block_stop", "index": index})
            )
        return (
            text
            + calls
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
