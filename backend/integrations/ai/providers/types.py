"""The plain types that cross the provider boundary: config in, request in, result and attempts out.

This module imports nothing of the project's, so anything (the gateway, tests, a deployment's own
provider module) can use them without pulling in a vendor SDK, Django or the gateway.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .outbound import OutboundPolicy

Message = Mapping[str, str]
ROLES = frozenset({"system", "user", "assistant"})
MAX_TOKENS_LIMIT = 128_000

# Finish reasons every vendor's are normalised to.
FINISH_STOP = "stop"
FINISH_LENGTH = "length"
FINISH_CONTENT_FILTER = "content_filter"
FINISH_TOOL_CALLS = "tool_calls"
FINISH_OTHER = "other"


@dataclass(frozen=True, repr=False)
class ProviderConfig:
    """Everything one provider instance needs. Built by the factory from a site record or settings."""

    api_key: str
    base_url: str
    default_model: str
    # Which registered provider kind serves it, and the instance's own name (they differ only for
    # named OpenAI-compatible endpoints such as "ollama"; empty name means the kind's name).
    kind: str = ""
    name: str = ""
    timeout: float = 60.0
    max_retries: int = 2
    retry_backoff: float = 0.5
    retry_after_cap: float = 30.0
    http_referer: str = ""
    app_name: str = ""
    source: str = "settings"
    site_id: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    # Set when a site (not the deployment) chose base_url: every connection is checked against it.
    outbound: OutboundPolicy | None = None

    def __repr__(self) -> str:
        return (
            f"ProviderConfig(name={self.name or self.kind!r}, api_key={'<set>' if self.api_key else '<missing>'}, "
            f"base_url={self.base_url!r}, "
            f"default_model={self.default_model!r}, source={self.source!r}, site_id={self.site_id!r})"
        )

    @cached_property
    def fingerprint(self) -> str:
        """A stable digest of the config (the key only as a hash) for client and provider caches."""
        parts = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.name != "api_key"]
        parts.append(hashlib.sha256(self.api_key.encode()).hexdigest())
        return hashlib.sha256("|".join(parts).encode()).hexdigest()


@dataclass
class GenerationResult:
    """What `generate_content` returns.

    Typed, but it also answers `result["content"]`, `result["tokens_used"]` and `.get()` like the
    dict the original plan returned, so older callers keep working.
    """

    content: str
    model: str
    provider: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    finish_reason: str = FINISH_STOP
    request_id: str | None = None
    latency_ms: float = 0.0
    cost: Decimal | None = None
    # Where `cost` came from, in the ledger's words (reported, price_table, catalogue, free, cache, unpriced,
    # estimated): set when the gateway hands the call to the ledger, so `cost` is then what the ledger records.
    # A provider that sets `cost` itself (OpenRouter's usage.cost) leaves this None: "reported".
    cost_source: str | None = None
    requested_model: str | None = None
    upstream_provider: str | None = None
    attempts: int = 1
    cached: bool = False
    # Parts of the counts above that vendors bill differently: prompt tokens read from / written to
    # the vendor's prompt cache (both included in prompt_tokens), and reasoning tokens (included in
    # completion_tokens, billed as completion).
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    # Beyond text: the tool calls the model made (`providers.tools.ToolCall`: id, name, parsed arguments),
    # the validated JSON of a structured-output call, the vectors of an embedding call.
    tool_calls: list[Any] = field(default_factory=list)
    parsed: Any = None
    embeddings: list[list[float]] | None = None
    # The model's extended thinking when the call asked for it (`thinking` option, Anthropic): its blocks as the
    # vendor gave them, `{"type": "thinking", "thinking", "signature"}` or `{"type": "redacted_thinking", "data"}`.
    # They go back unchanged in the next turn (`as_message`): the vendor checks each signature.
    thinking: list[dict[str, Any]] = field(default_factory=list)
    # Every call that produced this answer, in order, when there was more than one (a structured answer's
    # corrective retry); each has its own ledger rows. Empty for a single call: `steps_or_self()`.
    steps: list[GenerationResult] = field(default_factory=list, repr=False)

    def steps_or_self(self) -> list[GenerationResult]:
        """The calls that produced this answer (itself alone for a single call)."""
        return list(self.steps) or [self]

    @property
    def tokens_used(self) -> int:
        return self.total_tokens

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tokens_used"] = self.total_tokens
        return data

    def __getitem__(self, key: str) -> Any:
        if key == "tokens_used" or key in self.__dataclass_fields__:
            return getattr(self, key)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return key == "tokens_used" or key in self.__dataclass_fields__

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def keys(self) -> list[str]:
        return [*self.__dataclass_fields__, "tokens_used"]

    def __str__(self) -> str:
        return self.content

    def as_message(self) -> dict[str, Any]:
        """This answer as the neutral assistant message that continues the conversation (tool calls included)."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.thinking:
            message["thinking"] = [dict(block) for block in self.thinking]
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "name": c.name, "arguments": dict(c.arguments)} for c in self.tool_calls
            ]
        return message


@dataclass(frozen=True, slots=True)
class ThinkingDelta:
    """A piece of a streamed answer's extended thinking, among its text pieces (only when the call asked for
    `thinking`: no other caller ever sees one). `block` counts the answer's thinking blocks from 0: a piece of
    a new block opens it. A `thinking` block arrives as text pieces, then its `signature` in a piece of its own;
    a `redacted_thinking` block as one piece holding its `redacted` data."""

    block: int
    thinking: str = ""
    signature: str = ""
    redacted: str = ""

    def as_block(self) -> dict[str, Any]:
        """A whole block given in one piece (a redacted one) in the vendor's shape."""
        if self.redacted:
            return {"type": "redacted_thinking", "data": self.redacted}
        return {"type": "thinking", "thinking": self.thinking, "signature": self.signature}


@dataclass(frozen=True)
class ModelInfo:
    id: str
    name: str = ""
    context_length: int | None = None
    prompt_price: Decimal | None = None  # USD per token
    completion_price: Decimal | None = None
    max_completion_tokens: int | None = None
    # From a live catalogue (OpenRouter's `architecture.input_modalities`, `supported_parameters`), when given.
    input_modalities: tuple[str, ...] = ()
    supported_parameters: tuple[str, ...] = ()


@dataclass(frozen=True)
class Attempt:
    """One upstream try, reported to the usage ledger whether it succeeded or not."""

    provider: str
    model: str
    number: int
    latency_ms: float
    result: GenerationResult | None = None
    error: Exception | None = None  # an AIProviderError


EXTRA_FIELDS = ("tools", "tool_choice", "response_schema")


@dataclass(frozen=True)
class AIRequest:
    """One generation request as it travels through the gateway and into a provider.

    Built and validated once per call (`BaseProvider.validate_request`); failover candidates get
    `for_candidate` copies (temperature clamped, options filtered) without validating again.
    """

    messages: tuple[dict[str, Any], ...]
    model: str | None = None
    max_tokens: int = 1000
    temperature: float = 0.7
    system_prompt: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    # Beyond text (see providers/tools.py, conversation.py, images.py): neutral tools and tool_choice, a
    # JSON schema the answer must match, and the texts of an embedding call.
    tools: tuple[Any, ...] = ()
    tool_choice: Any = None
    response_schema: Mapping[str, Any] | None = None
    embed_input: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        messages: Any,
        model: str | None = None,
        max_tokens: int = 1000,
        temperature: float = 0.7,
        system_prompt: str | None = None,
        **options: Any,
    ) -> AIRequest:
        extras = {name: options.pop(name) for name in EXTRA_FIELDS if name in options}
        return cls(
            tuple(messages) if isinstance(messages, list | tuple) else messages,
            model,
            max_tokens,
            temperature,
            system_prompt,
            dict(options),
            **extras,
        )

    def with_changes(self, **changes: Any) -> AIRequest:
        return replace(self, **changes)


def _ignore(*args: Any) -> None:
    return None


def _no_wait(site_id: int | None, provider: str) -> float:
    return 0.0


async def _offload(call: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(call, *args)


@dataclass(frozen=True)
class ProviderHooks:
    """What a provider reports to, and waits on, without knowing who listens.

    The gateway wires these to its usage ledger, shared rate-limit pauses and clock; a provider
    used on its own gets no-ops and the real clock.
    """

    on_attempt: Callable[[Attempt], None] = _ignore
    wait_if_paused: Callable[[int | None, str], float] = _no_wait
    pause: Callable[[int | None, str, float], None] = _ignore
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.perf_counter
    # the async driver's: how long a shared pause still runs (read off the event loop), an awaitable
    # sleep, and how a blocking hook (ledger, pauses: they may touch Redis) runs off the event loop
    paused_for: Callable[[int | None, str], float] = _no_wait
    asleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    offload: Callable[..., Awaitable[Any]] = _offload
