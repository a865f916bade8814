"""OpenRouter's reasoning and prompt-caching controls, checked before any request (issue 27).

`reasoning` (OpenRouter's unified reasoning parameter): `{"effort": "high"}` or `{"max_tokens": 2000}`
(one of the two), `"exclude": true` to keep the reasoning text out of the answer, `"enabled": bool`.
Reasoning tokens count inside the request's `max_tokens`, so a reasoning budget must leave the
answer room: `reasoning.max_tokens` must be below `max_tokens`.

`cache_control` (`{"type": "ephemeral"}`, optionally `"ttl": "5m" | "1h"`) marks the system prompt
as a cache breakpoint: OpenRouter passes it to vendors that cache on request (Anthropic, Gemini), so
a long template system prompt is written once and read at the cache price afterwards. It is sent
as the system message's one text part carrying the block (OpenRouter's documented shape).

Every bad value is an `InvalidRequest` naming the field and what to give, never a provider failure.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any

from .errors import InvalidRequest

EFFORTS = ("xhigh", "high", "medium", "low", "minimal", "none")
# the share of max_tokens an effort gives Anthropic's thinking budget (OpenRouter's documented mapping)
EFFORT_SHARE = {"xhigh": 0.95, "high": 0.8, "medium": 0.5, "low": 0.2, "minimal": 0.1, "none": 0.0}
REASONING_KEYS = ("effort", "max_tokens", "exclude", "enabled")
CACHE_TTLS = ("5m", "1h")
# OpenRouter model ids that think before they answer (their catalogue lists the `reasoning` parameter):
# known by name, so asking costs no request
REASONING_MODELS = (
    "openai/o1*",
    "openai/o3*",
    "openai/o4*",
    "openai/gpt-5*",
    "anthropic/claude-3.7-sonnet*",
    "anthropic/claude-sonnet-4*",
    "anthropic/claude-opus-4*",
    "deepseek/deepseek-r1*",
    "google/gemini-2.5*",
    "qwen/qwq*",
    "*thinking*",
)


def is_reasoning_model(model: str | None) -> bool:
    if not model:
        return False
    return any(fnmatch.fnmatchcase(model.lower(), pattern) for pattern in REASONING_MODELS)


def check_reasoning(value: Any, max_tokens: int, provider: str | None = None) -> dict[str, Any]:
    """The `reasoning` option checked and copied; InvalidRequest naming the bad field."""
    if not isinstance(value, Mapping):
        raise InvalidRequest(
            'reasoning must be an object, e.g. {"effort": "low"} or {"max_tokens": 1024}.', provider=provider
        )
    unknown = sorted(str(k) for k in value if k not in REASONING_KEYS)
    if unknown:
        raise InvalidRequest(
            f"Unknown reasoning field(s) {', '.join(unknown)}; use {', '.join(REASONING_KEYS)}.", provider=provider
        )
    clean: dict[str, Any] = {}
    effort, budget = value.get("effort"), value.get("max_tokens")
    if effort is not None and budget is not None:
        raise InvalidRequest("Give reasoning.effort or reasoning.max_tokens, not both.", provider=provider)
    if effort is not None:
        if effort not in EFFORTS:
            raise InvalidRequest(
                f"reasoning.effort must be one of {', '.join(EFFORTS)}, got {effort!r}.", provider=provider
            )
        clean["effort"] = effort
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise InvalidRequest(f"reasoning.max_tokens must be a positive integer, got {budget!r}.", provider=provider)
        if budget >= max_tokens:
            raise InvalidRequest(
                f"reasoning.max_tokens ({budget}) must be below max_tokens ({max_tokens}): reasoning counts "
                "inside max_tokens, so raise max_tokens or lower the reasoning budget to leave the answer room.",
                provider=provider,
            )
        clean["max_tokens"] = budget
    for flag in ("exclude", "enabled"):
        if flag in value:
            if not isinstance(value[flag], bool):
                raise InvalidRequest(f"reasoning.{flag} must be true or false.", provider=provider)
            clean[flag] = value[flag]
    return clean


def check_mark(value: Any, where: str, provider: str | None = None) -> dict[str, Any]:
    """A prompt-cache breakpoint (`{"type": "ephemeral"}`, optionally with a `ttl`) checked and copied: the system
    prompt's (`cache_control` option) and a message's (`conversation`) alike."""
    if not isinstance(value, Mapping) or value.get("type") != "ephemeral":
        raise InvalidRequest(
            f'{where} must be {{"type": "ephemeral"}} (optionally with "ttl": "5m" or "1h").', provider=provider
        )
    unknown = sorted(str(k) for k in value if k not in ("type", "ttl"))
    if unknown:
        raise InvalidRequest(f"Unknown {where} field(s) {', '.join(unknown)}; use type, ttl.", provider=provider)
    clean: dict[str, Any] = {"type": "ephemeral"}
    if "ttl" in value:
        if value["ttl"] not in CACHE_TTLS:
            raise InvalidRequest(
                f"{where}.ttl must be one of {', '.join(CACHE_TTLS)}, got {value['ttl']!r}.", provider=provider
            )
        clean["ttl"] = value["ttl"]
    return clean


def check_cache_control(value: Any, system_prompt: str | None, provider: str | None = None) -> dict[str, Any]:
    """The `cache_control` option checked and copied; it needs a system prompt to mark."""
    clean = check_mark(value, "cache_control", provider)
    if not system_prompt:
        raise InvalidRequest(
            "cache_control marks the system prompt as a cache breakpoint: give a system_prompt to cache.",
            provider=provider,
        )
    return clean


def as_thinking(reasoning: Mapping[str, Any], max_tokens: int) -> dict[str, Any] | None:
    """A checked `reasoning` option as Anthropic's extended thinking, the way OpenRouter serves it to Claude
    (None: no thinking). A budget is `reasoning.max_tokens`, or the effort's share of `max_tokens` (medium when
    neither is given), never below Anthropic's smallest (1,024); `exclude` keeps the thinking out of the answer
    (`display: omitted`, its signature still given back)."""
    if reasoning.get("enabled") is False or reasoning.get("effort") == "none":
        return None
    budget = reasoning.get("max_tokens")
    if budget is None:
        budget = int(max_tokens * EFFORT_SHARE[reasoning.get("effort") or "medium"])
    thinking: dict[str, Any] = {"type": "enabled", "budget_tokens": max(int(budget), 1024)}
    if reasoning.get("exclude"):
        thinking["display"] = "omitted"
    return thinking
