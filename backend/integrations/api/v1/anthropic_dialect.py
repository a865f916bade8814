"""Anthropic's Messages wire format, onto the gateway and back.

`parse` turns a `POST /v1/messages` body (top-level `system`, alternating user/assistant
`messages` of text, image, `tool_use`, `tool_result` and thinking blocks, and system messages, `tools` and
`tool_choice`, `thinking`, `output_config`, `cache_control` marks, required `max_tokens`) into a `GatewayCall` in
the gateway's neutral shapes (`providers/conversation.py`: image parts, assistant `tool_calls` and `thinking`,
`role: tool` results, a message's cache mark), so any provider can serve it (extended thinking: one that thinks,
`providers/thinking.py`); `message` renders a result as a `message` object (thinking,
text and `tool_use` blocks); `Events` renders a stream as Anthropic's SSE events (`message_start`, each thinking
block with its `thinking_delta`s and `signature_delta`, text `content_block_delta`s, each tool call as a
`tool_use` block with its `input_json_delta`, `message_delta` with the stop reason and usage, `message_stop`);
`error_body` is `{"type": "error", "error": {type, message}}`. Whichever provider served, the client sees this.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from integrations.ai.providers.thinking import EFFORTS
from integrations.ai.providers.types import (
    FINISH_CONTENT_FILTER,
    FINISH_LENGTH,
    FINISH_TOOL_CALLS,
    GenerationResult,
    ThinkingDelta,
)

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
    thought: list[dict[str, Any]] = []
    mark = _mark(content)
    for index, block in enumerate(content):
        here = f"{where}[{index}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append({"type": "text", "text": block["text"]})
        elif kind in ("thinking", "redacted_thinking") and role == "assistant":
            fields = ("thinking", "signature") if kind == "thinking" else ("data",)
            if not all(isinstance(block.get(name), str) for name in fields):
                raise BadField(f"{here} needs {' and '.join(fields)} as the answer gave them.", here)
            thought.append({"type": kind, **{name: block[name] for name in fields}})  # kept as signed
        elif kind == "image" and role == "user":
            parts.append(_image(block, here))
        elif kind == "tool_result" and role == "user":
            call_id = block.get("tool_use_id")
            if not isinstance(call_id, str) or not call_id:
                raise BadField(f"{here}.tool_use_id names the tool_use this result answers.", f"{here}.tool_use_id")
            inner = block.get("content", "")
            result: dict[str, Any] = {"role": "tool", "tool_call_id": call_id, "content": _result(inner, here)}
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
        turn: dict[str, Any] = {"role": "assistant", "content": text}
        if thought:
            turn["thinking"] = thought
        if calls:
            turn["tool_calls"] = calls
        out = [turn]
    else:
        out = list(results)
        if parts:
            plain = all(p["type"] == "text" for p in parts)
            out.append({"role": "user", "content": "\n".join(p["text"] for p in parts) if plain else parts})
    if mark and out:  # a cache breakpoint in the turn (Claude Code's, on its last block): after the turn
        out[-1] = {**out[-1], "cache_control": mark}
    return out


def _mark(blocks: Any) -> Any:
    """The last `cache_control` among content blocks (where a client puts a prompt-cache breakpoint), or None."""
    if not isinstance(blocks, list):  # a string: no block to mark
        return None
    marks = [b["cache_control"] for b in blocks if isinstance(b, dict) and b.get("cache_control")]
    return marks[-1] if marks else None


BILLING_HEADER = "x-anthropic-billing-header:"


def _without_billing_header(system: Any) -> Any:
    """The system prompt without Claude Code's billing line.

    Claude Code (2.1 and later) opens its system prompt with a line such as
    `x-anthropic-billing-header: cc_version=2.1.117.48f; cc_entrypoint=cli; cch=71fea;`. It is attribution for
    Anthropic's own subscriptions, not an instruction, and its `cch` changes with every request. Left in, it starts
    every prompt differently, so no vendor's prompt cache (Anthropic's breakpoints, OpenAI's and OpenRouter's
    prefix caches) ever matches the prompt behind it. Panel calls the vendor with the site's API key, which needs
    no such line, so it is dropped wherever it opens a system block (the block too when nothing else is in it)."""
    if isinstance(system, str):
        return _drop_billing_line(system) if system.startswith(BILLING_HEADER) else system
    if not isinstance(system, list):
        return system  # `_text` names what is wrong with it
    kept = []
    for block in system:
        text = block.get("text") if isinstance(block, dict) else None
        if isinstance(text, str) and text.startswith(BILLING_HEADER):
            rest = _drop_billing_line(text)
            if not rest.strip():
                continue
            block = {**block, "text": rest}
        kept.append(block)
    return kept or ""  # only the billing line: no system prompt


def _drop_billing_line(text: str) -> str:
    return text.partition("\n")[2].lstrip("\n")


def _result(inner: Any, where: str) -> Any:
    """A `tool_result`'s content: its text, or text and image parts when it holds images (a screenshot, an image
    file the tool read: Claude Code's Read tool returns them so)."""
    if inner in ("", None):
        return ""
    blocks = inner if isinstance(inner, list) else []
    if not any(isinstance(b, dict) and b.get("type") == "image" for b in blocks):
        return _text(inner, f"{where}.content")
    parts = []
    for index, block in enumerate(blocks):
        here = f"{where}.content[{index}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "image":
            parts.append(_image(block, here))
        elif kind == "text" and isinstance(block.get("text"), str):
            parts.append({"type": "text", "text": block["text"]})
        else:
            raise BadField(f"{here} must be a text or image block.", here)
    return parts


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
    if not tools:
        if choice["type"] in ("auto", "none"):
            return None, None
        raise BadField("tool_choice needs tools: give the tools it chooses among.", "tool_choice")
    mapped = {"auto": "auto", "any": "required", "none": "none"}.get(choice["type"])
    return tools, mapped if mapped is not None else {"name": choice.get("name")}


def _thinking(data: dict[str, Any]) -> dict[str, Any] | None:
    """`thinking` as the gateway's option (the provider checks it against max_tokens and the sampling); None when
    off. Only a provider that thinks takes it (Anthropic, OpenRouter): elsewhere it is a 400 naming the option."""
    thinking = data.get("thinking")
    if thinking is None:
        return None
    if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "adaptive", "disabled"):
        raise BadField('thinking must be {"type": "enabled", "budget_tokens"}, "adaptive" or "disabled".', "thinking")
    return None if thinking["type"] == "disabled" else thinking


def _output_config(data: dict[str, Any], options: dict[str, Any]) -> None:
    """`output_config`: `effort` (how much the model may spend; Claude Code sends it by default) is the gateway's
    `effort` option, `format` (a JSON schema the answer must match) its structured output, on every provider."""
    config = data.get("output_config")
    if config is None:
        return
    if not isinstance(config, dict):
        raise BadField("output_config must be an object of effort and format.", "output_config")
    for name in sorted(set(config) - {"effort", "format"}):
        raise Unsupported(f"output_config.{name} is not supported by this gateway; remove it.", f"output_config.{name}")
    if (effort := config.get("effort")) is not None:
        if effort not in EFFORTS:  # the provider checks it again: one list, `providers/thinking.py`
            raise BadField(f"output_config.effort must be one of {', '.join(EFFORTS)}.", "output_config.effort")
        options["effort"] = effort
    if (shape := config.get("format")) is not None:
        if (
            not isinstance(shape, dict)
            or shape.get("type") != "json_schema"
            or not isinstance(shape.get("schema"), dict)
        ):
            raise BadField(
                'output_config.format must be {"type": "json_schema", "schema": {...}}.', "output_config.format"
            )
        options["response_schema"] = shape["schema"]  # validated, one corrective retry (gateway/structured.py)


def parse(data: Any) -> GatewayCall:
    """The gateway call a Messages request asks for; BadField/Unsupported name what to fix."""
    data = request_body(data, UNSUPPORTED)
    thinking = _thinking(data)
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
        # an instruction mid-conversation (Claude Code appends them): in place in the neutral history, where
        # OpenAI-format vendors get it; Anthropic's provider joins it to the system prompt
        if role == "system":
            messages.append({"role": "system", "content": _text(message.get("content"), f"{where}.content")})
            continue
        if role not in ("user", "assistant"):
            raise BadField(f"{where}.role must be user, assistant or system.", f"{where}.role")
        messages += _turn(role, message.get("content"), f"{where}.content")
    system = data.get("system")
    system_prompt = None if system is None else _text(_without_billing_header(system), "system")
    options: dict[str, Any] = {}
    if (mark := _mark(system)) and system_prompt:  # the system prompt's cache breakpoint (Claude Code marks it)
        options["cache_control"] = mark
    if tools:
        options["tools"] = tools  # providers/tools.py takes Anthropic's {name, description, input_schema}
    if tool_choice is not None:
        options["tool_choice"] = tool_choice
    if tools and isinstance(data.get("tool_choice"), dict):
        disable = data["tool_choice"].get("disable_parallel_tool_use")
        if disable is not None and not isinstance(disable, bool):
            raise BadField("tool_choice.disable_parallel_tool_use must be true or false.", "tool_choice")
        if disable:  # at most one tool call a turn: the gateway's parallel_tool_calls option, on any provider
            options["parallel_tool_calls"] = False
    if (top_p := need_number(data, "top_p")) is not None:
        options["top_p"] = top_p
    if (top_k := need_int(data, "top_k")) is not None:
        options["top_k"] = top_k
    if (stop := stop_sequences(data.get("stop_sequences"), "stop_sequences")) is not None:
        options["stop"] = stop
    if thinking is not None:
        options["thinking"] = thinking
    _output_config(data, options)
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
        "content": [dict(b) for b in result.thinking] + text + tool_use_blocks(result),
        "stop_reason": stop_reason(result),
        "stop_sequence": None,
        "usage": usage(result),
    }


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def delta_event(text: str, index: int = 0) -> bytes:
    """A text delta of content block `index`, built from its fields (what `Events.delta` must equal)."""
    return _event(
        "content_block_delta",
        {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}},
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
    """The SSE events of one streamed message: `first()`, `delta(piece)` per piece, then `end(result)`.

    Blocks are numbered as they open: the thinking's blocks (when the call asked for it) as their pieces come,
    then the text block with the first text, then the tool calls' blocks at the end."""

    def __init__(self, model: str) -> None:
        self.id = new_id()
        self.model = model
        self.blocks = 0  # blocks opened so far: the next one's index
        self.open: str | None = None  # the kind of the block open now (thinking, text), closed when the next opens
        self.thinking_at: dict[int, int] = {}  # which thinking block of the answer -> its index in this stream
        self.text_index: int | None = None  # the text block opens with the first text: tool calls only have none
        self._head = _DELTA_HEAD

    @property
    def text_open(self) -> bool:
        return self.text_index is not None

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

    def _close(self) -> bytes:
        if self.open is None:
            return b""
        self.open = None
        return _event("content_block_stop", {"type": "content_block_stop", "index": self.blocks - 1})

    def _start(self, kind: str, block: dict[str, Any]) -> bytes:
        closing = self._close()
        self.open = kind
        self.blocks += 1
        return closing + _event(
            "content_block_start", {"type": "content_block_start", "index": self.blocks - 1, "content_block": block}
        )

    def _open_text(self) -> bytes:
        opening = self._start("text", {"type": "text", "text": ""})
        self.text_index = self.blocks - 1
        if self.text_index:  # after thinking blocks: the fixed head names the block's own index
            self._head = delta_event("\x00", self.text_index).rpartition(json.dumps("\x00").encode())[0]
        return opening

    def delta(self, piece: str | ThinkingDelta) -> bytes:
        """A text piece is `delta_event(text)`, byte for byte, as the fixed head and tail around the text's JSON:
        nearly every event of a stream is one (as `openai_dialect.Chunks.delta`, issue 22). The first opens the
        text block. A thinking piece is its block's `thinking_delta` or `signature_delta`."""
        if type(piece) is not str:
            return self._thinking(piece)  # type: ignore[arg-type]
        opening = b"" if self.open == "text" else self._open_text()
        return opening + self._head + json.dumps(piece).encode() + _DELTA_TAIL

    def _thinking(self, piece: ThinkingDelta) -> bytes:
        opening = b""
        index = self.thinking_at.get(piece.block)
        if index is None:
            if piece.redacted:
                return self._start("redacted_thinking", piece.as_block()) + self._close()
            opening = self._start("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            index = self.thinking_at[piece.block] = self.blocks - 1
        out = opening
        for kind, field in (("thinking_delta", "thinking"), ("signature_delta", "signature")):
            if value := getattr(piece, field):
                delta = {"type": kind, field: value}
                out += _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        return out

    def end(self, result: GenerationResult | None) -> bytes:
        counts = usage(result) if result is not None else {"output_tokens": 0}
        blocks = tool_use_blocks(result) if result is not None else []
        text = b""
        if not self.text_open and not blocks:  # an answer without text or tool calls still has one (empty) text block
            text = self._open_text()
        text += self._close()
        calls = b""  # each tool call as a tool_use block after the text: its input as one input_json_delta
        for block in blocks:
            index = self.blocks
            calls += (
                self._start("tool_use", {**block, "input": {}})
                + _event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": json.dumps(block["input"])},
                    },
                )
                + self._close()
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
