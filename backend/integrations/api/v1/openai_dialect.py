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
    stop_sequences,
)
from .failures import Failure

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
# Fields asking for what the gateway cannot give yet: refused with a 400 naming them, never ignored.
UNSUPPORTED = {
    "tools": "tools (function calling)",
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


def _text(content: Any, where: str) -> str:
    """A message's content as text: a string, or a list of text parts (other parts are refused)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list) or not content:
        raise BadField(f"{where} must be a string or a non-empty list of content parts.", where)
    texts = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind in ("image_url", "input_audio", "file"):
            raise Unsupported(
                f"{where}[{index}] is {kind} content: this gateway takes text content only.", f"{where}[{index}]"
            )
        else:
            raise BadField(
                f'{where}[{index}] must be a text part ({{"type": "text", "text": ...}}).', f"{where}[{index}]"
            )
    return "\n".join(texts)


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise BadField("messages must be a non-empty list.", "messages")
    messages = []
    for index, message in enumerate(value):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise BadField(f"{where} must be an object with role and content.", where)
        role = message.get("role")
        if role in ("tool", "function") or message.get("tool_calls") or message.get("function_call"):
            raise Unsupported(
                f"{where} is part of a tool call: tools (function calling) are not supported by this gateway yet.",
                where,
            )
        if role not in ROLES:
            raise BadField(f"{where}.role must be one of system, developer, user, assistant.", f"{where}.role")
        messages.append({"role": ROLES[role], "content": _text(message.get("content"), f"{where}.content")})
    return messages


def parse(data: Any) -> GatewayCall:
    """The gateway call a Chat Completions request asks for; BadField/Unsupported name what to fix."""
    if not isinstance(data, dict):
        raise BadField("The body must be a JSON object.")
    for name, feature in UNSUPPORTED.items():
        if data.get(name):
            raise Unsupported(f"{feature} is not supported by this gateway yet; remove {name}.", name)
    if data.get("logprobs"):
        raise Unsupported("logprobs are not supported by this gateway yet.", "logprobs")
    if data.get("n") not in (None, 1):
        raise Unsupported("Only one choice per request is supported (n must be 1).", "n")
    if "audio" in (data.get("modalities") or ()):
        raise Unsupported("audio output is not supported by this gateway yet.", "modalities")
    tool_choice = data.get("tool_choice")
    if tool_choice not in (None, "none", "auto"):
        raise Unsupported("tool_choice needs tools, which this gateway does not support yet.", "tool_choice")
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
    response_format = data.get("response_format")
    if response_format is not None:
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind not in ("text", "json_object", "json_schema"):
            raise BadField("response_format.type must be text, json_object or json_schema.", "response_format")
        if kind == "json_schema" and not isinstance(response_format.get("json_schema"), dict):
            raise BadField(
                "response_format.json_schema must be an object with name and schema.", "response_format.json_schema"
            )
        if kind != "text":  # the provider takes it, or refuses it by name (validate_request)
            options["response_format"] = response_format
    stream = need_bool(data, "stream")
    stream_options = data.get("stream_options")
    if stream_options is not None and not isinstance(stream_options, dict):
        raise BadField("stream_options must be an object.", "stream_options")
    include_usage = bool((stream_options or {}).get("include_usage")) and stream
    return GatewayCall(
        model=model,
        messages=_messages(data.get("messages")),
        max_tokens=max_tokens,
        temperature=1.0 if temperature is None else temperature,
        options=options,
        stream=stream,
        include_usage=include_usage,
    )


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
                "message": {"role": "assistant", "content": result.content, "refusal": None, "annotations": []},
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
        return self._chunk(self._choice({"content": text}))

    def end(self, result: GenerationResult | None) -> bytes:
        out = self._chunk(self._choice({}, finish_reason(result)))
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
