"""What a dialect request becomes: one gateway call, and the typed 400 for a field it cannot take.

Both dialects parse into a `GatewayCall`, the arguments `AIService.complete` / `stream_messages`
take. A feature the gateway lacks (tools, image input, several choices) is refused with
`Unsupported`, naming the field, never dropped or faked.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from integrations.ai.providers.errors import InvalidRequest

# Used when an OpenAI-dialect request leaves the output length open (the budget and the token rate
# limit reserve for max_tokens, so an open length cannot mean "the model's maximum").
DEFAULT_MAX_TOKENS = 4096


class BadField(InvalidRequest):
    """A request field is missing or malformed; `param` names it as the dialect's error body does."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class Unsupported(BadField):
    """The request asks for a feature this gateway does not provide (yet)."""

    code = "unsupported_parameter"


@dataclass(frozen=True)
class GatewayCall:
    """The arguments of one `AIService.complete` / `stream_messages` call, plus how to answer."""

    model: str
    messages: list[dict[str, Any]]
    max_tokens: int
    temperature: float
    system_prompt: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    include_usage: bool = False
    echo: dict[str, Any] = field(default_factory=dict)  # request fields the dialect's answer repeats (Responses)
    include_reasoning: bool = False  # Responses' include reasoning.encrypted_content: the thinking comes back signed

    def kwargs(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "system_prompt": self.system_prompt,
            **self.options,
        }


def need_str(data: dict, name: str, *, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise BadField(f"{name} is required.", name)
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise BadField(f"{name} must be a non-empty string.", name)
    return value


def need_int(data: dict, name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadField(f"{name} must be an integer.", name)
    return value


def need_number(data: dict, name: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadField(f"{name} must be a number.", name)
    return float(value)


def need_bool(data: dict, name: str) -> bool:
    value = data.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadField(f"{name} must be true or false.", name)
    return value


def stop_sequences(value: Any, name: str) -> list[str] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(s, str) and s for s in items) or len(items) > 16:
        raise BadField(f"{name} must be a string or a list of non-empty strings.", name)
    return items or None


def neutral_content(
    content: Any, where: str, part_of: Callable[[Any, str], dict[str, Any]]
) -> str | list[dict[str, Any]]:
    """A message's content as the gateway takes it: a string; text parts joined into one; or neutral text and image
    parts (`providers/images.py`) when images are in it. `part_of(part, where)` turns one of the dialect's parts
    into a neutral one, or raises BadField/Unsupported naming it."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list) or not content:
        raise BadField(f"{where} must be a string or a non-empty list of content parts.", where)
    parts = [part_of(part, f"{where}[{index}]") for index, part in enumerate(content)]
    texts = [part["text"] for part in parts if part["type"] == "text"]
    return parts if len(parts) > len(texts) else "\n".join(texts)


def request_body(data: Any, unsupported: dict[str, str]) -> dict[str, Any]:
    """The request's JSON object, refused with a 400 naming the first field it asks for that the gateway cannot
    give (`unsupported`: field -> what it asks for)."""
    if not isinstance(data, dict):
        raise BadField("The body must be a JSON object.")
    for name, feature in unsupported.items():
        if data.get(name):
            raise Unsupported(f"{feature} is not supported by this gateway yet; remove {name}.", name)
    return data


def parallel_tool_calls(data: dict[str, Any], options: dict[str, Any]) -> bool:
    """OpenAI's `parallel_tool_calls` (Chat Completions and Responses): false is the gateway's option of that name,
    which holds the model to one tool call a turn on every provider (Codex sends it for most models). Returns the
    value the response echoes."""
    value = data.get("parallel_tool_calls")
    if value is None:
        return True
    if not isinstance(value, bool):
        raise BadField("parallel_tool_calls must be true or false.", "parallel_tool_calls")
    if value is False:
        options["parallel_tool_calls"] = False
    return value


CACHE_MARK = {"type": "ephemeral"}


def prompt_cache(data: dict[str, Any], messages: list[dict[str, Any]], options: dict[str, Any]) -> None:
    """OpenAI's `prompt_cache_key` (Chat Completions and Responses; Codex sends its conversation's id): the client
    keeps a conversation going and wants its prefix cached. OpenAI caches by itself and routes by the key (the
    gateway's `prompt_cache_key` option, sent to OpenAI-format vendors). A vendor that caches only where asked
    (Anthropic, directly or through OpenRouter) gets breakpoints, as Claude Code sets them: after the last message,
    and, when that is a tool's result, after the last text turn before it (a router marks text only), unless the
    client marked messages itself. The next turn then reads the conversation so far from the cache."""
    key = data.get("prompt_cache_key")
    if key is None:
        return
    if not isinstance(key, str) or not key.strip():
        raise BadField("prompt_cache_key must be a non-empty string.", "prompt_cache_key")
    options["prompt_cache_key"] = key
    if not messages or any(m.get("cache_control") for m in messages):
        return
    messages[-1] = {**messages[-1], "cache_control": dict(CACHE_MARK)}
    if messages[-1]["role"] == "tool":
        for index in range(len(messages) - 2, -1, -1):
            message = messages[index]
            if message["role"] in ("user", "assistant") and message.get("content"):
                messages[index] = {**message, "cache_control": dict(CACHE_MARK)}
                break
