"""OpenAI chat completions through the official `openai` SDK.

Also the base of the OpenRouter provider, which speaks the same wire format; the hooks
`_extra_body`, `_default_headers` and `_read_extras` are where OpenRouter differs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from decimal import Decimal
from typing import Any, ClassVar

from . import capabilities, openrouter_options, sse, thinking
from .base import (
    FINISH_CONTENT_FILTER,
    FINISH_LENGTH,
    FINISH_OTHER,
    FINISH_STOP,
    FINISH_TOOL_CALLS,
    AIRequest,
    BaseProvider,
    GenerationResult,
    ModelInfo,
    cached_async_client,
    cached_client,
    lazy_import,
)
from .conversation import openai_messages
from .errors import EmptyResponse, InvalidRequest, ProviderUnavailable
from .tools import OpenAIToolStream, openai_calls, openai_extras

_FINISH = {
    "stop": FINISH_STOP,
    "length": FINISH_LENGTH,
    "content_filter": FINISH_CONTENT_FILTER,
    "tool_calls": FINISH_TOOL_CALLS,
    "function_call": FINISH_TOOL_CALLS,
    None: FINISH_STOP,
}


def reasoning_model(model: str) -> bool:
    """Whether an OpenAI model reasons, as the capability table says (o-series, GPT-5 and later but its chat
    variant): it takes `max_completion_tokens` (a 400 for `max_tokens`), only its default temperature, and
    `reasoning_effort`."""
    return capabilities.table_reasons("openai", model)


_sdk = lazy_import("openai")  # the SDK, imported on first use


class OpenAIProvider(BaseProvider):
    kind = "openai"
    sdk = staticmethod(_sdk)
    # cache_control (a cache breakpoint on the system prompt, as Anthropic's clients mark it) is taken and not sent:
    # OpenAI caches every prompt of 1,024 tokens or more by itself, what the mark asks for (OpenRouter sends it)
    # parallel_tool_calls: False holds the model to one tool call a turn (sent with the tools, `openai_extras`);
    # verbosity: GPT-5's answer length (low, medium, high), sent as it is (OpenRouter takes it too); reasoning:
    # OpenRouter's unified option, of which a reasoning model here takes the effort (`reasoning_effort`);
    # prompt_cache_key: what OpenAI routes a conversation's requests by, to hit its prompt cache (sent as it is)
    supported_options: ClassVar[frozenset[str]] = frozenset(
        {
            "stop",
            "top_p",
            "user",
            "seed",
            "presence_penalty",
            "frequency_penalty",
            "response_format",
            "cache_control",
            "parallel_tool_calls",
            "verbosity",
            "reasoning",
            "prompt_cache_key",
        }
    )
    # options sent some other way (`_extra_body`, with the tools) or, cache_control here, not at all; every other
    # goes into the body as given
    extra_body_options: ClassVar[frozenset[str]] = frozenset({"cache_control", "parallel_tool_calls", "reasoning"})
    # whether an assistant turn's thinking goes back as its `reasoning_details` (OpenRouter), or is left out
    takes_reasoning_details: ClassVar[bool] = False
    # whether a message's cache breakpoint goes on its text (OpenRouter), or is left out (OpenAI caches by itself)
    takes_cache_marks: ClassVar[bool] = False

    def validate_request(self, request: AIRequest) -> AIRequest:
        """The base checks, then `reasoning` (`_reasoning`)."""
        return self._reasoning(super().validate_request(request))

    def _reasoning(self, request: AIRequest) -> AIRequest:
        """`reasoning` as OpenAI's format takes it: its effort only (as `reasoning_effort`)."""
        reasoning = request.options.get("reasoning")
        if reasoning is None:
            return request
        clean = openrouter_options.check_reasoning(reasoning, request.max_tokens, self.name)
        if set(clean) - {"effort"}:
            raise InvalidRequest(
                f"{self.name} takes reasoning.effort only (as reasoning_effort); remove "
                f"{', '.join(sorted(set(clean) - {'effort'}))}.",
                provider=self.name,
            )
        return request.with_changes(options={**request.options, "reasoning": clean})

    def reasons(self, model: str) -> bool:
        """Whether `model` is a reasoning model (OpenAI's o-series and GPT-5; a local server's: not known)."""
        return self.kind == "openai" and reasoning_model(model)

    @property
    def body_options(self) -> frozenset[str]:
        return self.supported_options - self.extra_body_options

    @property
    def client(self) -> Any:
        def build() -> Any:
            return _sdk().OpenAI(
                api_key=self.config.api_key or "no-key",  # an endpoint without keys (Ollama) still gets a header
                base_url=self.config.base_url,
                timeout=self.config.timeout,
                max_retries=0,  # BaseProvider retries; the SDK must not retry a second time over
                default_headers=self._default_headers() or None,
                http_client=self.http_client(),
            )

        return cached_client(self.kind, self.config, build)

    @property
    def aclient(self) -> Any:
        """The SDK's `AsyncOpenAI`, one per event loop and config (`cached_async_client`)."""

        def build() -> Any:
            return _sdk().AsyncOpenAI(
                api_key=self.config.api_key or "no-key",
                base_url=self.config.base_url,
                timeout=self.config.timeout,
                max_retries=0,
                default_headers=self._default_headers() or None,
                http_client=self.async_http_client(),
            )

        return cached_async_client(self.kind, self.config, build)

    # -- hooks for OpenAI-compatible variants -----------------------------------------------------
    def _default_headers(self) -> dict[str, str]:
        return {}

    def _extra_body(self, options: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    def _read_extras(self, result: GenerationResult, payload: Any) -> None:
        """Copy vendor extensions (cost, serving upstream) from the parsed response."""

    # -- request building -------------------------------------------------------------------------
    def _request(self, ai: AIRequest, model: str) -> dict[str, Any]:
        messages, max_tokens, options = (
            openai_messages(ai.messages, self.takes_reasoning_details, self.takes_cache_marks),
            ai.max_tokens,
            ai.options,
        )
        system_prompt = ai.system_prompt
        chat = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + messages
        request: dict[str, Any] = {"model": model, "messages": chat}
        if self.kind == "openai" and reasoning_model(model):
            # Reasoning models take max_completion_tokens and only their default temperature.
            request["max_completion_tokens"] = max_tokens
        else:
            request["max_tokens"] = max_tokens
            request["temperature"] = ai.temperature
        if self.kind != "openrouter" and (options.get("reasoning") or {}).get("effort") is not None:
            request["reasoning_effort"] = options["reasoning"]["effort"]  # OpenAI's (and local servers') spelling
        # the subclass's options, except those its `_extra_body` sends (OpenRouter's `models`, `provider`, ...)
        passthrough = {k: v for k, v in options.items() if k in self.body_options}
        request.update(passthrough)
        openai_extras(request, ai)  # tools, tool_choice, response_schema
        extra = self._extra_body(options)
        if extra:
            request["extra_body"] = extra
        return request

    def _send(self, ai: AIRequest, model: str) -> GenerationResult:
        if ai.embed_input:
            from .embeddings import send_embeddings

            return send_embeddings(self, ai, model)
        completion = self.client.post(self._path, body=self._body(ai, model), **self._post_options())
        return self._read_completion(completion, model)

    async def _asend(self, ai: AIRequest, model: str) -> GenerationResult:
        if ai.embed_input:
            return await super()._asend(ai, model)  # embeddings: the sync driver's (NotSupported here)
        completion = await self.aclient.post(self._path, body=self._body(ai, model), **self._post_options())
        return self._read_completion(completion, model)

    _path = "/chat/completions"

    def _body(self, ai: AIRequest, model: str) -> dict[str, Any]:
        request = self._request(ai, model)
        extra = request.pop("extra_body", None)
        # The SDK's documented call for custom requests, not `chat.completions.create`: the body is a plain
        # JSON dict the gateway built and validated, and create()'s per-call TypedDict transform of it (an
        # identity here) was ~13 % of a call's CPU. Same client, auth, errors and parsed `ChatCompletion`.
        return {**request, **extra} if extra else request

    @staticmethod
    def _post_options() -> dict[str, Any]:
        return {"cast_to": _sdk().types.chat.ChatCompletion, "options": {"security": {"bearer_auth": True}}}

    def _read_completion(self, completion: Any, model: str) -> GenerationResult:
        if not completion.choices:
            raise EmptyResponse(
                "The provider answered 200 with no choices (an empty answer).",
                provider=self.name,
                request_id=getattr(completion, "id", None),
            )
        choice = completion.choices[0]
        usage = completion.usage
        result = GenerationResult(
            content=choice.message.content or "",
            model=completion.model or model,
            provider=self.name,
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            total_tokens=getattr(usage, "total_tokens", 0) or 0,
            finish_reason=_FINISH.get(choice.finish_reason, FINISH_OTHER),
            request_id=getattr(completion, "_request_id", None) or completion.id,
            tool_calls=openai_calls(choice.message.tool_calls, self.name),
            thinking=thinking.from_details(
                (getattr(choice.message, "model_extra", None) or {}).get("reasoning_details")
            ),
        )
        read_token_details(result, usage)
        self._read_extras(result, completion)
        return result

    def _stream_body(self, ai: AIRequest, model: str) -> dict[str, Any]:
        return {**self._body(ai, model), "stream": True, "stream_options": {"include_usage": True}}

    @staticmethod
    def _stream_options(stream_cls: Any) -> dict[str, Any]:
        """`client.post` as `chat.completions.create(stream=True)` calls it (see `_body`: no per-call transform)."""
        sdk = _sdk()
        return {
            **OpenAIProvider._post_options(),
            "stream": True,
            "stream_cls": stream_cls[sdk.types.chat.ChatCompletionChunk],
        }

    def _stream(self, ai: AIRequest, model: str) -> Iterator[Any]:
        reader = _ChunkReader(self, model, wants_thinking=bool(ai.options.get("thinking")))
        stream = self.client.post(self._path, body=self._stream_body(ai, model), **self._stream_options(_sdk().Stream))
        try:
            reader.result.request_id = stream.response.headers.get("x-request-id")
            for chunk in sse.chunks(self.sdk(), stream.response):  # the JSON, not the SDK's model of each chunk
                if (piece := reader.feed_json(chunk)) is not None:
                    if type(piece) is list:  # thinking pieces (and the chunk's text)
                        yield from piece
                    else:
                        yield piece
        finally:
            stream.close()  # a caller that stopped reading closes the upstream request now
        yield reader.finish()

    async def _astream(self, ai: AIRequest, model: str) -> AsyncIterator[Any]:
        reader = _ChunkReader(self, model, wants_thinking=bool(ai.options.get("thinking")))
        stream = await self.aclient.post(
            self._path, body=self._stream_body(ai, model), **self._stream_options(_sdk().AsyncStream)
        )
        try:
            reader.result.request_id = stream.response.headers.get("x-request-id")
            async for chunk in sse.achunks(self.sdk(), stream.response):
                if (piece := reader.feed_json(chunk)) is not None:
                    if type(piece) is list:  # thinking pieces (and the chunk's text)
                        for each in piece:
                            yield each
                    else:
                        yield piece
        finally:
            await stream.close()
        yield reader.finish()


class _ChunkReader:
    """Reads an OpenAI-format stream chunk by chunk (both drivers): text deltas out, the totals at the end."""

    def __init__(self, provider: OpenAIProvider, model: str, wants_thinking: bool = False) -> None:
        self.provider = provider
        # thinking pieces (OpenRouter's `reasoning_details`) go only to a call that asked for `thinking`; a call
        # that asked for `reasoning` gets its blocks on the result only, for the next turn
        self.wants_thinking = wants_thinking
        self.result = GenerationResult(content="", model=model, provider=provider.name, requested_model=model)
        self.parts: list[str] = []
        self.calls = OpenAIToolStream(provider.name)
        self.finished = False
        self.thought = thinking.Assembler()

    def feed_json(self, data: dict[str, Any]) -> Any:
        """One chunk as its JSON (`sse.chunks`): a plain text delta, nearly every chunk of a stream, is read
        here; anything else (usage, tool calls, several choices) through the SDK's model of it (`feed`)."""
        choices = data.get("choices")
        if data.get("usage") is None and type(choices) is list and len(choices) == 1 and type(choices[0]) is dict:
            choice = choices[0]
            delta = choice.get("delta")
            content = delta.get("content") if type(delta) is dict else 0
            if (
                (content is None or type(content) is str)
                and not delta.get("tool_calls")  # type: ignore[union-attr]
                and not delta.get("reasoning_details")  # type: ignore[union-attr]
            ):
                result = self.result
                result.model = data.get("model") or result.model
                result.request_id = result.request_id or data.get("id")
                if content:
                    self.parts.append(content)
                if finish := choice.get("finish_reason"):
                    self.finished = True
                    result.finish_reason = _FINISH.get(finish, FINISH_OTHER)
                return content or None
        chunk_type = self.provider.sdk().types.chat.ChatCompletionChunk
        return self.feed(chunk_type.construct(**data))

    def feed(self, chunk: Any) -> Any:
        """One chunk as the SDK's model of it: its text, its thinking pieces (a list, with the text last), or None."""
        result, text = self.result, None
        result.model = chunk.model or result.model
        result.request_id = result.request_id or chunk.id
        thought: list[Any] = []
        if chunk.choices:
            choice = chunk.choices[0]
            details = (getattr(choice.delta, "model_extra", None) or {}).get("reasoning_details")
            if details:  # OpenRouter's thinking (`providers/thinking.py`)
                for piece in thinking.delta_pieces(details):
                    self.thought.add(piece)
                    if self.wants_thinking:
                        thought.append(piece)
            if choice.delta and choice.delta.content:
                text = choice.delta.content
                self.parts.append(text)
            if choice.delta and choice.delta.tool_calls:
                self.calls.add(choice.delta.tool_calls)
            if choice.finish_reason:
                self.finished = True
                result.finish_reason = _FINISH.get(choice.finish_reason, FINISH_OTHER)
        if chunk.usage:
            result.prompt_tokens = chunk.usage.prompt_tokens or 0
            result.completion_tokens = chunk.usage.completion_tokens or 0
            result.total_tokens = chunk.usage.total_tokens or 0
            read_token_details(result, chunk.usage)
            self.provider._read_extras(result, chunk)
        if thought:
            return [*thought, text] if text else thought
        return text

    def finish(self) -> GenerationResult:
        if not self.finished:  # the connection closed mid-answer: the SDK ends quietly, we don't
            raise ProviderUnavailable(
                "The stream ended before the provider finished its answer.", provider=self.provider.name
            )
        self.result.content = "".join(self.parts)
        self.result.tool_calls = self.calls.calls()
        if self.thought.blocks:
            self.result.thinking = self.thought.blocks
        return self.result


class ModelListCache:
    """Per-provider-config cache of a fetched model listing, shared by threads.

    One lock per config, so a slow or unreachable endpoint holds up only the callers asking for its own
    listing; a failure is remembered for `failure_ttl` seconds and raised again, so a server that is down is
    not asked again by every request meanwhile (`GET /v1/models` lists every endpoint of a site)."""

    def __init__(self, ttl: float = 600.0, failure_ttl: float = 5.0) -> None:
        self.ttl, self.failure_ttl = ttl, failure_ttl
        self._entries: dict[str, tuple[float, list[ModelInfo] | BaseException]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def _fresh(self, key: str) -> list[ModelInfo] | BaseException | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        age, value = time.monotonic() - entry[0], entry[1]
        return value if age < (self.failure_ttl if isinstance(value, BaseException) else self.ttl) else None

    def get(self, key: str, fetch: Any) -> list[ModelInfo]:
        found = self._fresh(key)
        if found is None:
            with self._lock:
                lock = self._locks.setdefault(key, threading.Lock())
            with lock:
                found = self._fresh(key)
                if found is None:
                    try:
                        found = fetch()
                    except Exception as exc:
                        found = exc
                    self._entries[key] = (time.monotonic(), found)
        if isinstance(found, BaseException):
            raise found
        return found

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _count(container: Any, name: str) -> int:
    """An integer field of a usage detail block, whether the SDK typed it or kept it as an extra."""
    if container is None:
        return 0
    value = container.get(name) if isinstance(container, dict) else getattr(container, name, None)
    if value is None:
        value = (getattr(container, "model_extra", None) or {}).get(name)
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0


def read_token_details(result: GenerationResult, usage: Any) -> None:
    """Copy the billed-differently parts of an OpenAI-format usage block into the result.

    `prompt_tokens_details.cached_tokens` (read from the prompt cache), OpenRouter's
    `prompt_tokens_details.cache_write_tokens`, and `completion_tokens_details.reasoning_tokens`;
    each is a part of prompt_tokens / completion_tokens, never added to them.
    """
    prompt_details = getattr(usage, "prompt_tokens_details", None)
    completion_details = getattr(usage, "completion_tokens_details", None)
    result.cached_tokens = _count(prompt_details, "cached_tokens")
    result.cache_write_tokens = _count(prompt_details, "cache_write_tokens")
    result.reasoning_tokens = _count(completion_details, "reasoning_tokens")


def to_decimal(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None
