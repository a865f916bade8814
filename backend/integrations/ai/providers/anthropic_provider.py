"""Anthropic messages through the official `anthropic` SDK.

Differences the rest of the layer never sees: the system prompt is a top-level field (system
messages are lifted out of the list), `max_tokens` is mandatory, replies are content blocks
(text blocks joined), and `stop_reason` is mapped to the common finish reasons.

API versions: SDK 2.x defaults to `anthropic-version: 2026-10-21`, which rejects the sampling
parameters (`temperature`, `top_p`, `top_k`) with a 400 and so dropped them from the SDK. Panel's
services promise a temperature, so we pin `ANTHROPIC_API_VERSION` (default `2023-06-01`) and send
the sampling parameters in the body ourselves. Set it to `2026-10-21` to move on: temperature is
then not sent (the model's own sampling applies) and `top_p`/`top_k` are refused before sending.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

from . import openrouter_options, sse, thinking
from .base import (
    FINISH_CONTENT_FILTER,
    FINISH_LENGTH,
    FINISH_OTHER,
    FINISH_STOP,
    FINISH_TOOL_CALLS,
    AIRequest,
    BaseProvider,
    GenerationResult,
    ThinkingDelta,
    cached_async_client,
    cached_client,
    lazy_import,
)
from .conversation import anthropic_messages
from .errors import InvalidRequest, ProviderUnavailable
from .tools import AnthropicToolStream, answer_of, anthropic_extras, anthropic_read

LEGACY_API_VERSION = "2023-06-01"
SAMPLING_REMOVED_IN = "2026-10-21"
# what `count_tokens` takes of a message request
COUNTED = ("model", "messages", "system", "tools", "tool_choice", "thinking")

_FINISH = {
    "end_turn": FINISH_STOP,
    "stop_sequence": FINISH_STOP,
    "max_tokens": FINISH_LENGTH,
    "tool_use": FINISH_TOOL_CALLS,
    "refusal": FINISH_CONTENT_FILTER,
    "pause_turn": FINISH_OTHER,
    None: FINISH_STOP,
}


_sdk = lazy_import("anthropic")  # the SDK, imported on first use


def _read_input(result: GenerationResult, usage: Any) -> None:
    """prompt_tokens is all input (uncached + cache reads + cache writes); the parts are kept too.

    Anthropic's `input_tokens` counts only the uncached part, unlike OpenAI's `prompt_tokens`.
    """
    uncached = getattr(usage, "input_tokens", None)
    if uncached is None:  # a block that repeats none of the input counts (a stream's message_delta)
        return
    read = getattr(usage, "cache_read_input_tokens", None)
    written = getattr(usage, "cache_creation_input_tokens", None)
    result.cached_tokens = result.cached_tokens if read is None else read
    result.cache_write_tokens = result.cache_write_tokens if written is None else written
    result.prompt_tokens = uncached + result.cached_tokens + result.cache_write_tokens


class AnthropicProvider(BaseProvider):
    kind = "anthropic"
    sdk = staticmethod(_sdk)
    temperature_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    # cache_system=True marks the system prompt for Anthropic's prompt cache (`cache_control`
    # ephemeral): later calls with the same system prompt read it at the cache-read price.
    # thinking: extended thinking, Anthropic's own option (`providers/thinking.py`); its blocks come back on the
    # result, and stream as `ThinkingDelta` pieces. effort: `output_config.effort`, as it is. cache_control: the
    # system prompt's cache breakpoint as OpenRouter's option spells it (`{"type": "ephemeral", "ttl"?}`).
    # parallel_tool_calls: False is sent as tool_choice's `disable_parallel_tool_use` (`tools.anthropic_extras`).
    # reasoning: OpenRouter's unified option (what OpenAI-speaking clients send: Codex's reasoning effort), served as
    # extended thinking as OpenRouter serves it to Claude (`openrouter_options.as_thinking`); its blocks come back on
    # the result, not as stream pieces (those go to a call that asked for `thinking`). prompt_cache_key: OpenAI's
    # routing key for its cache, taken and not sent (Anthropic caches at the breakpoints the call carries).
    supported_options: ClassVar[frozenset[str]] = frozenset(
        {
            "stop",
            "top_p",
            "top_k",
            "user",
            "cache_system",
            "thinking",
            "effort",
            "cache_control",
            "parallel_tool_calls",
            "reasoning",
            "prompt_cache_key",
        }
    )

    @property
    def api_version(self) -> str:
        return str(self.config.extra.get("api_version") or LEGACY_API_VERSION)

    @property
    def accepts_sampling(self) -> bool:
        return self.api_version < SAMPLING_REMOVED_IN

    @property
    def client(self) -> Any:
        def build() -> Any:
            return _sdk().Anthropic(
                api_key=self.config.api_key,
                base_url=self.config.base_url,
                timeout=self.config.timeout,
                max_retries=0,  # BaseProvider retries; the SDK must not retry a second time over
                # The SDK authenticates with a Bearer header; x-api-key is what the 2023-06-01 API
                # and most proxies read, so both go to the same host.
                default_headers={"anthropic-version": self.api_version, "x-api-key": self.config.api_key},
                http_client=self.http_client(),
            )

        return cached_client(self.kind, self.config, build)

    @property
    def aclient(self) -> Any:
        """The SDK's `AsyncAnthropic`, one per event loop and config (`cached_async_client`)."""

        def build() -> Any:
            return _sdk().AsyncAnthropic(
                api_key=self.config.api_key,
                base_url=self.config.base_url,
                timeout=self.config.timeout,
                max_retries=0,
                default_headers={"anthropic-version": self.api_version, "x-api-key": self.config.api_key},
                http_client=self.async_http_client(),
            )

        return cached_async_client(self.kind, self.config, build)

    def validate_request(self, request: AIRequest) -> AIRequest:
        clean = self._reasoning(super().validate_request(request))
        refused = {"top_p", "top_k"} & {k for k, v in request.options.items() if v is not None}
        if refused and not self.accepts_sampling:
            raise InvalidRequest(
                f"{', '.join(sorted(refused))} not accepted by anthropic-version {self.api_version}; "
                f"drop it or set ANTHROPIC_API_VERSION={LEGACY_API_VERSION}.",
                provider=self.name,
            )
        return clean

    def _reasoning(self, request: AIRequest) -> AIRequest:
        """The `reasoning` option checked as OpenRouter's, then as the thinking it is sent as (the vendor's rules:
        temperature 1, a budget below max_tokens, ...), each mistake an InvalidRequest naming it."""
        if request.options.get("reasoning") is None:
            return request
        if request.options.get("thinking") is not None:
            raise InvalidRequest("Give thinking or reasoning, not both.", provider=self.name)
        reasoning = openrouter_options.check_reasoning(request.options["reasoning"], request.max_tokens, self.name)
        as_thinking = openrouter_options.as_thinking(reasoning, request.max_tokens)
        if as_thinking is not None:
            try:
                thinking.check_option(as_thinking, request, self.name)
            except InvalidRequest as exc:
                raise InvalidRequest(
                    f"reasoning is sent to {self.name} as extended thinking, so: {exc.message}", provider=self.name
                ) from None
        return request.with_changes(options={**request.options, "reasoning": reasoning})

    def _request(self, ai: AIRequest, model: str) -> dict[str, Any]:
        messages, max_tokens, temperature, system_prompt, options = (
            ai.messages,
            ai.max_tokens,
            ai.temperature,
            ai.system_prompt,
            ai.options,
        )
        system_parts = [system_prompt] if system_prompt else []
        system_parts += [m["content"] for m in messages if m["role"] == "system"]
        request: dict[str, Any] = {
            "model": model,
            "max_tokens": max_tokens,
            "messages": anthropic_messages(messages),
        }
        anthropic_extras(request, ai)  # tools, tool_choice, response_schema (a forced tool)
        sampling: dict[str, Any] = {}
        if self.accepts_sampling:  # the SDK no longer has these arguments: they go in the body
            sampling["temperature"] = temperature
            sampling.update({k: options[k] for k in ("top_p", "top_k") if options.get(k) is not None})
        if system_parts:
            system = "\n\n".join(system_parts)
            control = options.get("cache_control") or ({"type": "ephemeral"} if options.get("cache_system") else None)
            request["system"] = (
                [{"type": "text", "text": system, "cache_control": dict(control)}] if control else system
            )
        if options.get("stop"):
            stop = options["stop"]
            request["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        if options.get("user"):
            request["metadata"] = {"user_id": str(options["user"])}
        if options.get("thinking"):
            request["thinking"] = dict(options["thinking"])
        elif options.get("reasoning") and (
            as_thinking := openrouter_options.as_thinking(options["reasoning"], max_tokens)
        ):
            request["thinking"] = as_thinking
        if options.get("effort"):
            request["output_config"] = {"effort": options["effort"]}
        if sampling:
            request["extra_body"] = sampling
        return request

    def count_tokens(self, request: AIRequest) -> int:
        """Anthropic's `POST /v1/messages/count_tokens` (free): the request's messages, system prompt and tools as
        a generation would send them (`_request`), less what a count does not take."""
        model = self.resolve_model(request.model)
        body = {k: v for k, v in self._request(request, model).items() if k in COUNTED}
        return int(self._guard(lambda: self.client.messages.count_tokens(**body)).input_tokens)

    def _send(self, ai: AIRequest, model: str) -> GenerationResult:
        return self._read_message(self.client.messages.create(**self._request(ai, model)), ai, model)

    async def _asend(self, ai: AIRequest, model: str) -> GenerationResult:
        return self._read_message(await self.aclient.messages.create(**self._request(ai, model)), ai, model)

    def _read_message(self, message: Any, ai: AIRequest, model: str) -> GenerationResult:
        text, calls = anthropic_read(message.content, ai)
        usage = message.usage
        finish = _FINISH.get(message.stop_reason, FINISH_OTHER)
        if finish == FINISH_TOOL_CALLS and ai.response_schema is not None and not calls:
            finish = FINISH_STOP  # the forced answer tool is how the answer came, not a call the caller must run
        result = GenerationResult(
            content=text,
            model=message.model or model,
            provider=self.name,
            completion_tokens=usage.output_tokens or 0,
            finish_reason=finish,
            request_id=getattr(message, "_request_id", None) or message.id,
            tool_calls=calls,
            thinking=[
                b.model_dump(include={"type", "thinking", "signature", "data"})
                for b in message.content
                if getattr(b, "type", None) in ("thinking", "redacted_thinking")
            ],
        )
        _read_input(result, usage)
        result.total_tokens = result.prompt_tokens + result.completion_tokens
        return result

    def _stream(self, ai: AIRequest, model: str) -> Iterator[Any]:
        reader = _EventReader(self.name, ai, model)
        stream = self.client.messages.create(**self._request(ai, model), stream=True)
        try:
            reader.result.request_id = stream.response.headers.get("request-id")
            for event in sse.chunks(self.sdk(), stream.response, sse.read_named):  # the JSON, not a model of it
                if (piece := reader.feed_json(event)) is not None:
                    yield piece
        finally:
            stream.close()  # a caller that stopped reading closes the upstream request now
        yield reader.finish()

    async def _astream(self, ai: AIRequest, model: str) -> AsyncIterator[Any]:
        reader = _EventReader(self.name, ai, model)
        stream = await self.aclient.messages.create(**self._request(ai, model), stream=True)
        try:
            reader.result.request_id = stream.response.headers.get("request-id")
            async for event in sse.achunks(self.sdk(), stream.response, sse.read_named):
                if (piece := reader.feed_json(event)) is not None:
                    yield piece
        finally:
            await stream.close()
        yield reader.finish()


# the events `_EventReader.feed` reads, and the SDK's model of each (built only for these: a text delta is read
# from its JSON, and the rest have nothing the reader needs)
_EVENT_TYPES = {
    "message_start": "RawMessageStartEvent",
    "content_block_start": "RawContentBlockStartEvent",
    "content_block_delta": "RawContentBlockDeltaEvent",
    "message_delta": "RawMessageDeltaEvent",
}


class _EventReader:
    """Reads an Anthropic message stream event by event (both drivers): text deltas out (and the thinking's, as
    `ThinkingDelta`s, when the call asked for it), the totals at the end."""

    def __init__(self, provider: str, ai: AIRequest, model: str) -> None:
        self.provider, self.ai, self.model = provider, ai, model
        self.result = GenerationResult(content="", model=model, provider=provider, requested_model=model)
        self.parts: list[str] = []
        self.calls = AnthropicToolStream(provider)
        self.finished = False
        self.thought = thinking.Assembler()
        self.thinking_blocks: dict[int, int] = {}  # the stream's block index -> which thinking block it is
        # thinking pieces go only to a call that asked for thinking (a model may think unasked: its blocks are kept
        # on the result all the same, for the next turn)
        self.wants_thinking = bool(ai.options.get("thinking"))

    def feed_json(self, data: dict[str, Any]) -> str | ThinkingDelta | None:
        """One event as its JSON (`sse.read_named`): a text delta, nearly every event of a stream, is read here, and
        the thinking's events; any other event through the SDK's model of it (`feed`)."""
        kind, delta = data.get("type"), data.get("delta")
        if kind == "content_block_delta" and type(delta) is dict:
            if delta.get("type") == "text_delta":
                text = delta.get("text")
                if type(text) is str:
                    self.parts.append(text)
                    return text
            elif delta.get("type") in ("thinking_delta", "signature_delta"):
                return self._thinking(data.get("index"), delta)
        elif kind == "content_block_start" and type(data.get("content_block")) is dict:
            block = data["content_block"]
            if block.get("type") in ("thinking", "redacted_thinking"):
                return self._thinking_opened(data.get("index"), block)
        event_type = _EVENT_TYPES.get(kind) if type(kind) is str else None
        if event_type is None:  # an event this reader has no use for (content_block_stop, a future kind)
            return None
        return self.feed(getattr(_sdk().types, event_type).construct(**data))

    def _thinking_opened(self, index: Any, block: dict[str, Any]) -> ThinkingDelta | None:
        ordinal = self.thinking_blocks.setdefault(index, len(self.thinking_blocks))
        if block["type"] == "redacted_thinking":  # a whole block in its start event
            piece = ThinkingDelta(ordinal, redacted=str(block.get("data") or ""))
        elif block.get("thinking") or block.get("signature"):
            piece = ThinkingDelta(
                ordinal, thinking=str(block.get("thinking") or ""), signature=str(block.get("signature") or "")
            )
        else:
            piece = ThinkingDelta(ordinal)  # opens the block: the client sees it start as the vendor's does
        self.thought.add(piece)
        return piece if self.wants_thinking else None

    def _thinking(self, index: Any, delta: dict[str, Any]) -> ThinkingDelta | None:
        ordinal = self.thinking_blocks.get(index)
        if ordinal is None:  # a delta of a block never opened: nothing to attach it to
            return None
        if delta["type"] == "thinking_delta":
            piece = ThinkingDelta(ordinal, thinking=str(delta.get("thinking") or ""))
        else:
            piece = ThinkingDelta(ordinal, signature=str(delta.get("signature") or ""))
        self.thought.add(piece)
        return piece if self.wants_thinking else None

    def feed(self, event: Any) -> str | None:
        result, kind = self.result, event.type
        if kind == "message_start":
            result.model = event.message.model or self.model
            result.request_id = result.request_id or event.message.id
            _read_input(result, event.message.usage)
        elif kind == "content_block_delta" and getattr(event.delta, "type", None) == "text_delta":
            self.parts.append(event.delta.text)
            return str(event.delta.text)
        elif kind == "content_block_start":
            self.calls.start(event.index, event.content_block)
        elif kind == "content_block_delta":
            self.calls.add(event.index, event.delta)
        elif kind == "message_delta":
            self.finished = True
            result.finish_reason = _FINISH.get(event.delta.stop_reason, FINISH_OTHER)
            result.completion_tokens = event.usage.output_tokens or 0
            _read_input(result, event.usage)  # newer APIs repeat the input counts here
        return None

    def finish(self) -> GenerationResult:
        if not self.finished:  # the connection closed mid-answer: the SDK ends quietly, we don't
            raise ProviderUnavailable(
                "The stream ended before the provider finished its answer.", provider=self.provider
            )
        result = self.result
        result.content, result.tool_calls = answer_of("".join(self.parts), self.calls.calls(), self.ai)
        result.thinking = self.thought.blocks
        result.total_tokens = result.prompt_tokens + result.completion_tokens
        return result
