"""Conversations beyond plain text, in one neutral shape, converted per vendor at send time.

Plain `{role, content: str}` messages go to every vendor as they are. Besides them:

- `{"role": "user", "content": [parts]}` — text and image parts (`providers/images.py`);
- `{"role": "assistant", "content": "...", "tool_calls": [{"id", "name", "arguments": {...}}]}` — the
  model's calls (`result.as_message()` builds it from a result);
- `{"role": "tool", "tool_call_id": "...", "content": "...", "is_error"?: bool}` — a tool's result
  (`call.result(value)` builds it); its content may be text and image parts (a screenshot, a file the tool
  read): Anthropic takes them in the `tool_result`, OpenAI's format takes text only there, so its images follow
  the tool results in a user message;
- `"thinking": [blocks]` on an assistant message — the model's extended thinking of that turn, kept as the
  vendor signed it (`providers/thinking.py`); Anthropic gets it back ahead of the turn's text, OpenAI's format
  has no place for it and gets the turn without it;
- `"cache_control": {"type": "ephemeral", "ttl"?}` on any message — a prompt-cache breakpoint after it (what
  Anthropic's clients put on a turn's last block to cache the conversation so far): Anthropic gets it on the
  turn's last block, OpenRouter on the message's text, OpenAI (which caches long prompts by itself) nothing.

The history is kept neutral, so a conversation started on OpenAI continues on Anthropic and the
reverse: OpenAI gets `tool_calls` and `role: tool` messages, Anthropic `tool_use` blocks in the
assistant turn and `tool_result` blocks in the next user turn.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from . import images, thinking
from .errors import InvalidRequest
from .openrouter_options import check_mark
from .tools import ToolCall

ROLES = ("system", "user", "assistant", "tool")


def is_plain(message: Any) -> bool:
    """A `{role, content: str}` message of the original shape (validated by BaseProvider itself)."""
    return (
        isinstance(message, Mapping)
        and isinstance(message.get("content"), str)
        and message.get("role") in ("system", "user", "assistant")
        and not message.get("tool_calls")
        and not message.get("thinking")
        and not message.get("cache_control")
    )


def _call(call: Any, where: str, provider: str | None) -> dict[str, Any]:
    if isinstance(call, ToolCall):
        return {"id": call.id, "name": call.name, "arguments": dict(call.arguments)}
    if isinstance(call, Mapping) and isinstance(call.get("function"), Mapping):  # OpenAI's shape
        function = call["function"]
        arguments: Any = function.get("arguments")
        try:
            arguments = json.loads(arguments) if isinstance(arguments, str) else arguments
        except ValueError:
            raise InvalidRequest(f"{where}.function.arguments is not JSON.", provider=provider) from None
        call = {"id": call.get("id"), "name": function.get("name"), "arguments": arguments}
    if not isinstance(call, Mapping):
        raise InvalidRequest(f"{where} must be {{id, name, arguments}}.", provider=provider)
    if not isinstance(call.get("id"), str) or not call["id"]:
        raise InvalidRequest(f"{where}.id is missing.", provider=provider)
    if not isinstance(call.get("name"), str) or not call["name"]:
        raise InvalidRequest(f"{where}.name is missing.", provider=provider)
    arguments = call.get("arguments") or {}
    if not isinstance(arguments, Mapping):
        raise InvalidRequest(f"{where}.arguments must be an object.", provider=provider)
    return {"id": call["id"], "name": call["name"], "arguments": dict(arguments)}


def check_message(message: Any, index: int, provider: str | None = None) -> dict[str, Any]:
    """A non-plain message checked and made plain data (bytes become base64); InvalidRequest naming the field."""
    where = f"messages[{index}]"
    role = message.get("role") if isinstance(message, Mapping) else None
    if role not in ROLES:
        raise InvalidRequest(f"{where}.role must be one of {', '.join(ROLES)}.", provider=provider)
    content = message.get("content")
    if role == "tool":
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise InvalidRequest(f"{where}.tool_call_id names the call this result answers.", provider=provider)
        if isinstance(content, list) and any(images.is_image(p) for p in content):
            result: Any = [images.normalize_part(p, f"{where}.content[{i}]", provider) for i, p in enumerate(content)]
        else:
            result = content if isinstance(content, str) else json.dumps(content)
        clean: dict[str, Any] = {"role": "tool", "tool_call_id": call_id, "content": result}
        if message.get("is_error"):
            clean["is_error"] = True
        return _marked(clean, message, where, provider)
    clean = {"role": role}
    if isinstance(content, list):
        if not content:
            raise InvalidRequest(f"{where}.content is empty.", provider=provider)
        if role != "user" and any(images.is_image(p) for p in content):
            raise InvalidRequest(f"{where}: images go in user messages.", provider=provider)
        clean["content"] = [images.normalize_part(p, f"{where}.content[{i}]", provider) for i, p in enumerate(content)]
    elif content is None or isinstance(content, str):
        clean["content"] = content or ""
    else:
        raise InvalidRequest(f"{where}.content must be text or a list of parts.", provider=provider)
    if message.get("thinking"):
        if role != "assistant":
            raise InvalidRequest(f"{where}: only assistant messages carry thinking.", provider=provider)
        clean["thinking"] = thinking.check_blocks(message["thinking"], f"{where}.thinking", provider)
    calls = message.get("tool_calls")
    if calls:
        if role != "assistant":
            raise InvalidRequest(f"{where}: only assistant messages carry tool_calls.", provider=provider)
        clean["tool_calls"] = [_call(c, f"{where}.tool_calls[{i}]", provider) for i, c in enumerate(calls)]
    elif not clean["content"] and not clean.get("thinking"):
        raise InvalidRequest(f"{where}.content is empty: give a prompt.", provider=provider)
    return _marked(clean, message, where, provider)


def _marked(clean: dict[str, Any], message: Any, where: str, provider: str | None) -> dict[str, Any]:
    """`clean` with the message's cache breakpoint, checked (`{"type": "ephemeral", "ttl"?}`), when it has one."""
    mark = message.get("cache_control")
    if mark is None:
        return clean
    return {**clean, "cache_control": check_mark(mark, f"{where}.cache_control", provider)}


def check_conversation(messages: list[dict[str, Any]], provider: str | None = None) -> None:
    """Every tool result answers a call of the assistant turn before it, and every call is answered
    before the conversation goes on (both vendors refuse anything else)."""
    open_calls: set[str] = set()
    for index, message in enumerate(messages):
        role = message["role"]
        if role == "tool":
            if message["tool_call_id"] not in open_calls:
                raise InvalidRequest(
                    f"messages[{index}] answers tool call {message['tool_call_id']!r}, which the assistant message "
                    "before it did not make.",
                    provider=provider,
                )
            open_calls.discard(message["tool_call_id"])
            continue
        if open_calls:
            raise InvalidRequest(
                f"messages[{index}]: tool call(s) {', '.join(sorted(open_calls))} have no result; "
                "answer each with a tool message first.",
                provider=provider,
            )
        open_calls = {c["id"] for c in message.get("tool_calls") or ()}


def text_of(message: Mapping[str, Any]) -> str:
    """All the text a message carries (its parts', its tool calls' arguments), for estimates."""
    content = message.get("content")
    text = (
        content
        if isinstance(content, str)
        else " ".join(p.get("text", "") for p in content or () if isinstance(p, Mapping))
    )
    for call in message.get("tool_calls") or ():
        text += f" {call['name']} {json.dumps(call['arguments'])}"
    if message.get("thinking"):
        text += " " + thinking.text_of(message["thinking"])
    return text


# -- OpenAI / OpenRouter ----------------------------------------------------------------------------
def openai_messages(messages: Any, reasoning_details: bool = False, cache_marks: bool = False) -> list[dict[str, Any]]:
    """The neutral history in OpenAI's format (plain messages unchanged, the same objects). An assistant turn's
    thinking goes as its `reasoning_details` when the vendor takes them back (`reasoning_details`: OpenRouter),
    else not at all; a cache breakpoint on the message's last text part where the vendor takes one (`cache_marks`:
    OpenRouter; not on a tool result, whose content is a string there), else not at all."""
    out: list[dict[str, Any]] = []
    pictures: list[dict[str, Any]] = []  # images of the tool results just written, for the user message after them
    for message in messages:
        if pictures and message["role"] != "tool":
            out.append(_tool_images(pictures))
            pictures = []
        if is_plain(message):
            out.append(message)
        elif message["role"] == "tool":
            text = message["content"]
            if isinstance(text, list):  # text and images: the text here, the images after the results
                pictures += [images.openai_part(p) for p in text if images.is_image(p)]
                text = "\n".join(p["text"] for p in text if p["type"] == "text") or "(the result is the images below)"
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": message["tool_call_id"],
                    "content": f"Error: {text}" if message.get("is_error") else text,
                }
            )
        else:
            content = message.get("content")
            wire: dict[str, Any] = {
                "role": message["role"],
                "content": ([images.openai_part(p) for p in content] if isinstance(content, list) else content or None),
            }
            if reasoning_details and message.get("thinking"):
                wire["reasoning_details"] = thinking.to_details(message["thinking"])
            if cache_marks and message.get("cache_control") and wire["content"]:
                parts = (
                    wire["content"]
                    if isinstance(wire["content"], list)
                    else [{"type": "text", "text": wire["content"]}]
                )
                texts = [i for i, part in enumerate(parts) if part.get("type") == "text"]
                if texts:
                    parts = [dict(part) for part in parts]
                    parts[texts[-1]]["cache_control"] = dict(message["cache_control"])
                    wire["content"] = parts
            if message.get("tool_calls"):
                wire["tool_calls"] = [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
                    }
                    for c in message["tool_calls"]
                ]
            out.append(wire)
    if pictures:
        out.append(_tool_images(pictures))
    return out


def _tool_images(pictures: list[dict[str, Any]]) -> dict[str, Any]:
    """The user message that carries tool results' images in OpenAI's format (a tool message takes text only)."""
    return {
        "role": "user",
        "content": [{"type": "text", "text": "The images the tool results above returned:"}, *pictures],
    }


# -- Anthropic ----------------------------------------------------------------------------------------
def anthropic_messages(messages: Any) -> list[dict[str, Any]]:
    """The neutral history (system messages excluded) in Anthropic's format: tool calls as `tool_use`
    blocks of the assistant turn, results as `tool_result` blocks opening the next user turn (a user
    message right after the results joins that turn: the roles must alternate)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message["role"]
        if role == "system":
            continue
        if is_plain(message):
            if role == "user" and out and out[-1].get("_results"):
                out[-1]["content"].append({"type": "text", "text": message["content"]})
                out[-1]["_results"] = False
            else:
                out.append(message)
            continue
        if role == "tool":
            result = message["content"]
            block: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": message["tool_call_id"],
                "content": [images.anthropic_block(p) for p in result] if isinstance(result, list) else result,
            }
            if message.get("is_error"):
                block["is_error"] = True
            if message.get("cache_control"):
                block["cache_control"] = dict(message["cache_control"])
            if out and out[-1].get("_results"):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block], "_results": True})
            continue
        content = message.get("content")
        blocks = [dict(b) for b in message.get("thinking") or ()]  # first, as the vendor gave them
        blocks += (
            [images.anthropic_block(p) for p in content]
            if isinstance(content, list)
            else [{"type": "text", "text": content}]
            if content
            else []
        )
        blocks += [
            {"type": "tool_use", "id": c["id"], "name": c["name"], "input": c["arguments"]}
            for c in message.get("tool_calls") or ()
        ]
        if message.get("cache_control") and blocks:  # the breakpoint after the turn: on its last block
            blocks[-1] = {**blocks[-1], "cache_control": dict(message["cache_control"])}
        if role == "user" and out and out[-1].get("_results"):
            out[-1]["content"] += blocks
            out[-1]["_results"] = False
        else:
            out.append({"role": role, "content": blocks})
    for turn in out:
        turn.pop("_results", None)
    return out


# -- estimates ---------------------------------------------------------------------------------------
def for_estimate(request: Any, kind: str, model: str) -> list[dict[str, str]]:
    """The request as `{role, content: str}` for the budget and rate-limit estimators (~3 characters a
    token): text parts, tool calls and results, the tools' definitions, and each image as the
    characters of its tokens by the vendor's rule (`images.image_tokens`)."""
    out = []
    for message in request.messages:
        if is_plain(message):
            out.append(message)
            continue
        tokens = sum(images.image_tokens(p, kind, model) for p in images.parts_of(message) if images.is_image(p))
        out.append({"role": message["role"], "content": text_of(message) + " " * (3 * tokens)})
    extra = [
        {"name": t.name, "description": t.description, "parameters": dict(t.parameters)}
        for t in getattr(request, "tools", ())
    ]
    if getattr(request, "response_schema", None) is not None:
        extra.append(dict(request.response_schema))
    if extra:
        out.append({"role": "system", "content": json.dumps(extra)})
    return out
