"""What each provider's models can do, asked before any request: tools, json_schema, images,
embeddings, streaming, extended thinking.

One table per provider kind, first matching `fnmatch` pattern of the provider's model id wins
(OpenRouter's `vendor/model` ids are read by the vendor's table, dots as dashes, unless its live
catalogue lists the model's `supported_parameters` and input modalities, which then decide). A
deployment adds rules with `register("openai_compatible", "llava*", CHAT | {"images"})`. The
gateway calls `require()` for the chosen provider and `refusal()` for each failover candidate, so
"not supported" is a typed `NotSupported` error before any upstream call, never a vendor's 400.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Iterable
from typing import Any

from . import conversation, images
from .errors import AIProviderError, InvalidRequest, NotSupported
from .tools import check_schema, normalize_choice, normalize_tools

FEATURES = ("tools", "json_schema", "images", "embeddings", "streaming", "thinking")
CHAT = frozenset({"tools", "json_schema", "streaming"})
VISION = CHAT | {"images"}
THINKING = VISION | {"thinking"}  # the `thinking` option (`providers/thinking.py`)
EMBEDDINGS = frozenset({"embeddings"})
LABELS = {
    "tools": "tool calling",
    "json_schema": "structured output (a JSON schema)",
    "images": "images",
    "embeddings": "embeddings",
    "streaming": "streaming",
    "thinking": "reasoning (extended thinking)",
}

Rules = list[tuple[str, frozenset[str]]]
# "thinking" here: the model reasons, so it takes the `reasoning` option's effort (`reasoning_effort`)
_OPENAI: Rules = [
    ("text-embedding-*", EMBEDDINGS),
    ("gpt-3.5-turbo*", frozenset({"tools", "streaming"})),
    ("o1-mini*", frozenset({"streaming", "thinking"})),
    ("o3-mini*", CHAT | {"thinking"}),
    ("gpt-4o*", VISION),
    ("gpt-4.1*", VISION),
    ("gpt-5-chat*", VISION),
    ("gpt-5*", THINKING),
    ("o1*", THINKING),
    ("o3*", THINKING),
    ("o4*", THINKING),
    ("*", CHAT),
]
# extended thinking came with Claude 3.7 Sonnet: every later model thinks, no earlier one does
_ANTHROPIC: Rules = [
    ("claude-3-5-haiku*", CHAT),
    ("claude-3-7-*", THINKING),
    ("claude-3-*", VISION),
    ("claude-*", THINKING),
    ("*", CHAT),
]
TABLE: dict[str, Rules] = {
    "openai": _OPENAI,
    "anthropic": _ANTHROPIC,
    "openrouter": [("*embedding*", EMBEDDINGS), ("*", CHAT)],
    "openai_compatible": [
        ("*embed*", EMBEDDINGS),
        ("bge-*", EMBEDDINGS),
        ("*llava*", VISION),
        ("*vision*", VISION),
        ("*-vl*", VISION),
        ("gemma3*", VISION),
        ("*", CHAT),
    ],
}


def register(kind: str, pattern: str, features: Iterable[str]) -> None:
    """Add a rule for `kind`'s model ids matching `pattern`, ahead of the built-in ones."""
    unknown = set(features) - set(FEATURES)
    if unknown:
        raise ValueError(f"Unknown capabilities {sorted(unknown)}; choose among {', '.join(FEATURES)}.")
    TABLE.setdefault(kind, []).insert(0, (pattern, frozenset(features)))
    _embedding_only.cache_clear()
    table_reasons.cache_clear()


def _first(rules: Rules, model: str) -> frozenset[str] | None:
    return next((features for pattern, features in rules if fnmatch.fnmatchcase(model, pattern)), None)


def _match(rules: Rules, model: str) -> frozenset[str]:
    return _first(rules, model) or CHAT


def features_of(provider: Any, model: str) -> frozenset[str]:
    """The capabilities of `provider`'s `model` (a provider-native id)."""
    kind = provider.kind
    if kind == "openrouter":
        own = _first(TABLE["openrouter"][:-1], model)
        if own is not None:
            return own
        listed = _listed(provider, model)
        if listed is not None:
            return listed
        vendor, _, bare = model.partition("/")
        table = TABLE.get(vendor)
        return _match(table, bare.replace(".", "-")) if table else CHAT
    return _match(TABLE.get(kind) or [("*", CHAT)], model)


def _listed(provider: Any, model: str) -> frozenset[str] | None:
    """A router's live catalogue entry, when it says what the model takes."""
    try:
        info = next((m for m in provider.get_available_models() if m.id == model), None)
    except AIProviderError:
        return None
    if info is None or not info.supported_parameters:
        return None
    params = set(info.supported_parameters)
    features = {"streaming"}
    if "tools" in params:
        features.add("tools")
    if params & {"structured_outputs", "response_format"}:
        features.add("json_schema")
    if "image" in info.input_modalities:
        features.add("images")
    if "reasoning" in params:
        features.add("thinking")
    return frozenset(features)


@functools.lru_cache(maxsize=4096)
def table_reasons(kind: str, model: str) -> bool:
    """Whether the table says `kind`'s `model` reasons ("thinking"), memoised: OpenAI's request shape for a reasoning
    model (`openai_provider.reasoning_model`) asks on every call."""
    return "thinking" in _match(TABLE.get(kind) or [("*", CHAT)], model)


def refuses_reasoning(provider: Any) -> bool:
    """Whether `provider`'s vendor refuses the `reasoning` option to a model that does not reason (OpenAI's
    `reasoning_effort`, Anthropic's thinking), so the table must say the model reasons; a router ignores it."""
    return provider.kind in ("openai", "anthropic")


@functools.lru_cache(maxsize=4096)
def _embedding_only(kind: str, model: str) -> bool:
    """Whether the table says `model` only embeds (no catalogue lookup, memoised: every plain call asks)."""
    rules = TABLE.get(kind) or []
    if kind == "openrouter":
        vendor, _, bare = model.partition("/")
        found = _first(rules[:-1], model) or _first(TABLE.get(vendor) or [], bare.replace(".", "-"))
    else:
        found = _first(rules, model)
    return found == EMBEDDINGS


def needed(request: Any, streaming: bool = False) -> set[str]:
    """The capabilities a validated request needs."""
    need = set()
    if request.tools:
        need.add("tools")
    if request.response_schema is not None:
        need.add("json_schema")
    if request.embed_input:
        need.add("embeddings")
    if streaming:
        need.add("streaming")
    if images.has_images(request.messages):
        need.add("images")
    if request.options.get("thinking"):
        need.add("thinking")
    return need


def refusal(provider: Any, request: Any, model: str, streaming: bool = False) -> NotSupported | None:
    """Why `provider`'s `model` cannot serve `request`, or None. Plain text needs no lookup."""
    if not request.embed_input and _embedding_only(provider.kind, model):
        return NotSupported(
            f"{model} is an embedding model: use AIService.embed(), or choose a chat model.", provider=provider.name
        )
    need = needed(request, streaming)
    if request.options.get("reasoning") and refuses_reasoning(provider):
        need.add("thinking")
    if not need - {"streaming"}:
        return None
    have = features_of(provider, model)
    missing = [LABELS[f] for f in FEATURES if f in need and f not in have]
    if not missing:
        return None
    return NotSupported(
        f"{provider.name} model {model} does not support {', '.join(missing)}; choose a model that does "
        "(see the capability table in the README).",
        provider=provider.name,
    )


def require(provider: Any, request: Any, model: str, streaming: bool = False) -> None:
    if (error := refusal(provider, request, model, streaming)) is not None:
        raise error


def beyond_text(request: Any, provider: str | None = None) -> Any:
    """The request's tools, tool_choice and response_schema checked and made neutral, and a tool
    conversation checked for unanswered or unknown calls; plain text requests pass untouched."""
    messages = request.messages
    tool_turns = any(m.get("role") == "tool" or m.get("tool_calls") for m in messages)
    if not (request.tools or request.tool_choice is not None or request.response_schema is not None or tool_turns):
        return request
    tools = normalize_tools(request.tools, provider)
    choice = normalize_choice(request.tool_choice, tools, provider)
    schema = None
    if request.response_schema is not None:
        schema = check_schema(request.response_schema, "response_schema", provider)
        if tools:
            raise InvalidRequest("Give tools or a response_schema, not both, in one call.", provider=provider)
    if tool_turns:
        conversation.check_conversation(list(messages), provider)
    return request.with_changes(tools=tools, tool_choice=choice, response_schema=schema)


def table() -> dict[str, list[tuple[str, list[str]]]]:
    """The capability table as data (README, admin): kind -> [(model pattern, features)]."""
    return {
        kind: [(pattern, [f for f in FEATURES if f in features]) for pattern, features in rules]
        for kind, rules in TABLE.items()
    }
