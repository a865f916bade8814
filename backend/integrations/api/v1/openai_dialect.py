"""OpenAI's Chat Completions wire format, onto the gateway and back.

`parse` turns a `POST /v1/chat/completions` body into a `GatewayCall`; `completion` renders a
`GenerationResult` as a `chat.completion` object; `Chunks` renders a stream as
`chat.completion.chunk` server-sent events ending `data: [DONE]` (a last chunk with empty
`choices` carries the usage when `stream_options.include_usage` asks); `error_body` is OpenAI's
`{"error": {message, type, param, code}}`. Whichever provider served, the client sees this format.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from integrations.ai.providers.types import FINISH_CONTENT_FILTER, FINISH_LENGTH, FINISH_TOOL_CALLS, GenerationResult

from .calls import (
    DEFAULT_MAX_TOKENS,
    BadField,
    GatewayCall,
    Unsupported,
    need_bool,
    need_int,
    need_number,
    need_str,
    neutral_content,
    parallel_tool_calls,
    prompt_cache,
    request_body,
    stop_sequences,
)
from .failures import Failure

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
# Fields asking for what the gateway cannot give yet: refused with a 400 naming them, never ignored.
UNSUPPORTED = {
    "functions": "functions (function calling)",
    "logit_bias": "logit_bias",
    "audio": "audio output",
    "prediction": "predicted outputs",
    "top_logprobs": "top_logprobs",
    "web_search_options": "web search",
}
OPTIONS = ("top_p", "seed", "presence_penalty", "frequency_penalty")
FINISH = {FINISH_LENGTH: "length", FINISH_CONTENT_FILTER: "content_filter", FINISH_TOOL_CALLS: "tool_calls"}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def _part(part: Any, where: str) -> dict[str, Any]:
    """One Chat Completions content part as the gateway's neutral text or image part."""
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text" and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    if kind == "image_url":
        image = part.get("image_url")
        image = {"url": image} if isinstance(image, str) else image
        if not isinstance(image, dict) or not isinstance(image.get("url"), str):
            raise BadField(f"{where}.image_url.url must be an https or data: URL.", where)
        neutral = {"type": "image", "url": image["url"]}
        if image.get("detail"):
            neutral["detail"] = image["detail"]
        return neutral
    if kind in ("input_audio", "file"):
        raise Unsupported(f"{where} is {kind} content: this gateway takes text and image content only.", where)
    raise BadField(f'{where} must be a text part ({{"type": "text", "text": ...}}).', where)


def _content(content: Any, where: str) -> str | list[dict[str, Any]]:
    return neutral_content(content, where, _part)


def _messages(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise BadField("messages must be a non-empty list.", "messages")
    messages: list[dict[str, Any]] = []
    for index, message in enumerate(value):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise BadField(f"{where} must be an object with role and content.", where)
        role = message.get("role")
        if role == "function" or message.get("function_call"):
            raise Unsupported(f"{where} uses the legacy function_call shape: use tools and tool_calls.", where)
        if role == "tool":  # a tool's result, the gateway's neutral shape (providers/conversation.py)
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise BadField(f"{where}.tool_call_id names the call this result answers.", f"{where}.tool_call_id")
            content = message.get("content")
            text = content if isinstance(content, str) else _content(content, f"{where}.content")
            if not isinstance(text, str):
                raise BadField(f"{where}.content of a tool result must be text.", f"{where}.content")
            messages.append({"role": "tool", "tool_call_id": call_id, "content": text})
            continue
        if role not in ROLES:
            raise BadField(f"{where}.role must be one of system, developer, user, assistant, tool.", f"{where}.role")
        if role == "assistant" and message.get("tool_calls"):
            # OpenAI's {id, type, function: {name, arguments}} calls; conversation.py reads that shape.
            content = message.get("content")
            messages.append(
                {
                    "role": "assistant",
                    "content": _content(content, f"{where}.content") if content else "",
                    "tool_calls": message["tool_calls"],
                }
            )
            continue
        messages.append({"role": ROLES[role], "content": _content(message.get("content"), f"{where}.content")})
    return messages


def parse(data: Any) -> GatewayCall:
    """The gateway call a Chat Completions request asks for; BadField/Unsupported name what to fix."""
    data = request_body(data, UNSUPPORTED)
    if data.get("logprobs"):
        raise Unsupported("logprobs are not supported by this gateway yet.", "logprobs")
    if data.get("n") not in (None, 1):
        raise Unsupported("Only one choice per request is supported (n must be 1).", "n")
    if "audio" in (data.get("modalities") or ()):
        raise Unsupported("audio output is not supported by this gateway yet.", "modalities")
    model = need_str(data, "model", required=True)
    assert model is not None
    max_tokens = need_int(data, "max_completion_tokens") or need_int(data, "max_tokens") or DEFAULT_MAX_TOKENS
    temperature = need_number(data, "temperature")
    options: dict[str, Any] = {}
    for name in OPTIONS:
        value = need_int(data, name) if name == "seed" else need_number(data, name)
        if value is not None:
            options[name] = value
    if (stop := stop_sequences(data.get("stop"), "stop")) is not None:
        options["stop"] = stop
    if (user := need_str(data, "user")) is not None:
        options["user"] = user
    if (effort := need_str(data, "reasoning_effort")) is not None:
        # the gateway's `reasoning` option: OpenRouter's unified parameter; a provider without it is a 400 naming it
        options["reasoning"] = {"effort": effort}
    response_format = data.get("response_format")
    if response_format is not None:
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind not in ("text", "json_object", "json_schema"):
            raise BadField("response_format.type must be text, json_object or json_schema.", "response_format")
        if kind == "json_schema" and not isinstance(response_format.get("json_schema"), dict):
            raise BadField(
                "response_format.json_schema must be an object with name and schema.", "response_format.json_schema"
            )
    stream = need_bool(data, "stream")
    if kind_of(response_format) in ("json_object", "json_schema"):
        # The gateway's structured output (structured.py): native on OpenAI/OpenRouter, through a forced
        # tool on Anthropic, validated with one corrective retry; streamed, it is sent once validated (views).
        assert isinstance(response_format, dict)
        spec = response_format["json_schema"] if kind_of(response_format) == "json_schema" else {}
        options["response_schema"] = spec.get("schema") or {"type": "object"}
    if data.get("tools"):
        options["tools"] = data["tools"]  # OpenAI's function tools; providers/tools.py normalizes them
    if data.get("tool_choice") is not None:
        if not data.get("tools"):
            if data["tool_choice"] not in ("none", "auto"):
                raise BadField("tool_choice needs tools: give the tools it chooses among.", "tool_choice")
        else:
            options["tool_choice"] = data["tool_choice"]
    parallel_tool_calls(data, options)
    if (verbosity := need_str(data, "verbosity")) is not None:
        options["verbosity"] = verbosity  # GPT-5's answer length: OpenAI and OpenRouter take it, others refuse it
    stream_options = data.get("stream_options")
    if stream_options is not None and not isinstance(stream_options, dict):
        raise BadField("stream_options must be an object.", "stream_options")
    include_usage = bool((stream_options or {}).get("include_usage")) and stream
    messages = _messages(data.get("messages"))
    prompt_cache(data, messages, options)
    return GatewayCall(
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        temperature=1.0 if temperature is None else temperature,
        options=options,
        stream=stream,
        include_usage=include_usage,
    )


def kind_of(response_format: Any) -> str | None:
    return response_format.get("type") if isinstance(response_format, dict) else None


def tool_calls(result: GenerationResult) -> list[dict[str, Any]]:
    """The result's calls in OpenAI's shape, arguments as JSON text."""
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(dict(c.arguments))}}
        for c in result.tool_calls
    ]


def finish_reason(result: GenerationResult | None) -> str:
    return FINISH.get(result.finish_reason, "stop") if result is not None else "stop"


def usage(result: GenerationResult) -> dict[str, Any]:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.total_tokens or result.prompt_tokens + result.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": result.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": result.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def new_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def message(result: GenerationResult) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant", "content": result.content, "refusal": None, "annotations": []}
    if result.tool_calls:
        out["content"] = result.content or None
        out["tool_calls"] = tool_calls(result)
    return out


def completion(result: GenerationResult) -> dict[str, Any]:
    """A `chat.completion` object for a finished call."""
    return {
        "id": new_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": result.model,
        "choices": [
            {
                "index": 0,
                "message": message(result),
                "logprobs": None,
                "finish_reason": finish_reason(result),
            }
        ],
        "usage": usage(result),
        "system_fingerprint": None,
    }


class Chunks:
    """The SSE lines of one streamed completion: `first()`, `delta(text)` per piece, then `end(result)`."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.id = new_id()
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage
        self._delta_ends: tuple[bytes, bytes] | None = None  # `delta`'s bytes before and after the text

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        data = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": choices,
            **extra,
        }
        if self.include_usage and "usage" not in extra:
            data["usage"] = None
        return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"

    def _choice(self, delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

    def first(self, text: str) -> bytes:
        return self._chunk(self._choice({"role": "assistant", "content": text, "refusal": None}))

    def delta(self, text: str) -> bytes:
        """`_chunk(_choice({"content": text}))`, byte for byte, from the stream's fixed head and tail: nearly
        every chunk of a stream is one, and building and encoding the whole dict was a tenth of a stream's
        CPU at a thousand concurrent streams (issue 22)."""
        ends = self._delta_ends
        if ends is None:
            marker = "\x00"
            whole = self._chunk(self._choice({"content": marker}))
            head, _, tail = whole.rpartition(json.dumps(marker).encode())  # the text comes last
            ends = self._delta_ends = (head, tail)
        return ends[0] + json.dumps(text).encode() + ends[1]

    def end(self, result: GenerationResult | None) -> bytes:
        out = b""
        for index, call in enumerate(tool_calls(result) if result is not None else []):
            # OpenAI's shape: the call's id and name first, then its arguments' text as a fragment.
            head = {
                "index": index,
                "id": call["id"],
                "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""},
            }
            out += self._chunk(self._choice({"tool_calls": [head]}))
            fragment = {"index": index, "function": {"arguments": call["function"]["arguments"]}}
            out += self._chunk(self._choice({"tool_calls": [fragment]}))
        out += self._chunk(self._choice({}, finish_reason(result)))
        if self.include_usage and result is not None:
            out += self._chunk([], usage=usage(result))
        return out + b"data: [DONE]\n\n"

    @staticmethod
    def error(failure: Failure) -> bytes:
        """An error after the stream started: the SDK raises APIError on a chunk holding `error`."""
        return b"data: " + json.dumps(error_body(failure)).encode() + b"\n\n"


def error_body(failure: Failure) -> dict[str, Any]:
    kind = failure.openai_type or ERROR_TYPES.get(failure.status, "server_error")
    return {"error": {"message": failure.message, "type": kind, "param": failure.param, "code": failure.code}}
