"""The contract every vendor module fulfils, and the parts they share.

`AIProviderInterface` is what services see. `BaseProvider` holds what is the same for every
vendor — input validation, retries with backoff that honour `Retry-After`, latency measurement,
the reused SDK client, turning any vendor exception into a typed error — so a vendor module only
translates one request and one response (see ADDING_PROVIDERS.md beside this file).

The package is a leaf: it imports nothing of Django or the gateway. What a provider reports
(attempts for the ledger) and waits on (shared rate-limit pauses, the clock) reaches it as
`ProviderHooks`, wired by the gateway's factory.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import json
import logging
import random
import threading
import unicodedata
import weakref
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any, ClassVar

from . import conversation, images, openrouter_options, registry, thinking
from .capabilities import beyond_text, features_of, refuses_reasoning
from .errors import (
    AIProviderError,
    InvalidRequest,
    NotSupported,
    ProviderNotConfigured,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    StreamCancelled,
    URLNotAllowed,
    map_status_error,
    redact,
)
from .outbound import OutboundRefused, guarded_async_transport, guarded_transport
from .text import check_text
from .types import (  # noqa: F401  (re-exported: the provider API in one import)
    FINISH_CONTENT_FILTER,
    FINISH_LENGTH,
    FINISH_OTHER,
    FINISH_STOP,
    FINISH_TOOL_CALLS,
    MAX_TOKENS_LIMIT,
    ROLES,
    AIRequest,
    Attempt,
    GenerationResult,
    Message,
    ModelInfo,
    ProviderConfig,
    ProviderHooks,
    ThinkingDelta,
)

logger = logging.getLogger("integrations.ai")
VERBOSITY = ("low", "medium", "high")  # the `verbosity` option: GPT-5's answer length (OpenAI, OpenRouter)


def lazy_import(name: str) -> Callable[[], Any]:
    """A function returning module `name`, imported on its first call: vendor SDKs load only when a
    provider of theirs is used, so `import integrations.ai` stays cheap."""

    @functools.cache
    def load() -> Any:
        return importlib.import_module(name)

    return load


def header_safe(value: str) -> str:
    """A header value that can always be sent: accents folded to ASCII, control characters dropped.

    HTTP header values are Latin-1 at most; "Café ☕ Panel" would otherwise fail inside the HTTP
    client on every request. The admin refuses such values at save time; this covers the environment.
    """
    folded = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    return " ".join("".join(c for c in folded if c.isprintable()).split())


class AIProviderInterface(ABC):
    """What the CMS services program against."""

    name: str

    @abstractmethod
    def generate_content(
        self,
        messages: list[Message],
        model: str | None = None,
        max_tokens: int = 1000,
        temperature: float = 0.7,
        system_prompt: str | None = None,
        **kwargs: Any,
    ) -> GenerationResult: ...

    @abstractmethod
    def is_model_supported(self, model: str) -> bool: ...

    @abstractmethod
    def get_available_models(self) -> list[ModelInfo]: ...


_client_cache: dict[tuple[str, str], Any] = {}
_client_lock = threading.Lock()


def cached_client(provider: str, config: ProviderConfig, build: Callable[[], Any]) -> Any:
    """One SDK client per (provider, config): clients are thread-safe and own the connection pool."""
    key = (provider, config.fingerprint)
    client = _client_cache.get(key)
    if client is None:
        with _client_lock:
            client = _client_cache.get(key)
            if client is None:
                client = _client_cache[key] = build()
    return client


_tls_contexts: dict[bool, Any] = {}
_tls_lock = threading.Lock()  # not _client_lock: clients are built under that one


def shared_tls_context(trust_env: bool) -> Any:
    """One TLS context per process, shared by every SDK client (an `ssl.SSLContext` is thread-safe).

    Building one loads the CA bundle: 35-50 ms for each client otherwise, paid by the first call of
    every site (each site's keys make their own client) and again after each settings change.
    `trust_env` as httpx means it: whether SSL_CERT_FILE / SSL_CERT_DIR choose the CA bundle.
    """
    context = _tls_contexts.get(trust_env)
    if context is None:
        import httpx2

        with _tls_lock:
            context = _tls_contexts.get(trust_env)
            if context is None:
                context = _tls_contexts[trust_env] = httpx2.create_ssl_context(trust_env=trust_env)
    return context


# async clients: one pool per event loop (an httpx AsyncClient's connections belong to the loop that opened
# them), per (provider, config); dropped with their loop
_async_clients: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], Any]] = weakref.WeakKeyDictionary()


def cached_async_client(provider: str, config: ProviderConfig, build: Callable[[], Any]) -> Any:
    """One async SDK client per running event loop and (provider, config). Called on the loop only, so
    no lock: nothing else runs on a loop between the lookup and the store."""
    import asyncio

    loop = asyncio.get_running_loop()
    clients = _async_clients.get(loop)
    if clients is None:
        clients = _async_clients[loop] = {}
    key = (provider, config.fingerprint)
    client = clients.get(key)
    if client is None:
        client = clients[key] = build()
    return client


def clear_client_cache() -> None:
    with _client_lock:
        _client_cache.clear()
        _async_clients.clear()


class BaseProvider(AIProviderInterface):
    """Shared machinery. A vendor module sets `kind` (its registry name) and implements `sdk`,
    `client`, `_send`, `_stream` and `_check_key`; everything else is here."""

    kind: ClassVar[str]
    temperature_range: ClassVar[tuple[float, float]] = (0.0, 2.0)
    supported_options: ClassVar[frozenset[str]] = frozenset()
    resolution: Any = None  # set by the factory: how this provider was chosen

    def __init__(self, config: ProviderConfig, mapper: Any = None, hooks: ProviderHooks | None = None) -> None:
        self.spec = registry.get(config.kind or self.kind)
        self.name = config.name or self.spec.name
        if self.spec.key_required and not config.api_key:
            raise ProviderNotConfigured(
                f"The {self.name} provider has no API key: set {self.api_key_setting} "
                "or add the key in the site's AI provider settings.",
                provider=self.name,
            )
        from .model_mapper import ModelMapper

        self.config = config
        self.mapper = mapper or ModelMapper()
        self.hooks = hooks or ProviderHooks()

    @property
    def api_key_setting(self) -> str:
        return f"{self.spec.env_prefix}_API_KEY"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name} source={self.config.source} base_url={self.config.base_url!r}>"

    # -- public ------------------------------------------------------------------------------
    def resolve_model(self, model: str | None) -> str:
        """The provider-native id for `model` (logical name, native id or vendor/model id)."""
        return self.mapper.normalize_model_name(
            model or self.config.default_model, self.name, passthrough=self.spec.model_ids == "passthrough"
        )

    def generate_content(
        self,
        messages: list[Message],
        model: str | None = None,
        max_tokens: int = 1000,
        temperature: float = 0.7,
        system_prompt: str | None = None,
        **kwargs: Any,
    ) -> GenerationResult:
        request = AIRequest.of(messages, model, max_tokens, temperature, system_prompt, **kwargs)
        return self.execute(self.validate_request(request))

    def execute(self, request: AIRequest) -> GenerationResult:
        """Send a validated request, retrying what is retryable; every attempt goes to `hooks.on_attempt`."""
        resolved = self.resolve_model(request.model)
        hooks = self.hooks
        attempt = 0
        while True:
            attempt += 1
            hooks.wait_if_paused(self.config.site_id, self.name)
            started = hooks.monotonic()
            try:
                result = self._guard(self._send, request, resolved)
            except AIProviderError as exc:
                hooks.sleep(self._attempt_failed(exc, resolved, attempt, started))
                continue
            return self._attempt_served(result, request, resolved, attempt, started)

    async def aexecute(self, request: AIRequest) -> GenerationResult:
        """`execute` on the SDK's async client: the same retries, pauses and attempts; only the I/O and the
        waits are awaited (blocking hooks run off the event loop)."""
        resolved = self.resolve_model(request.model)
        hooks = self.hooks
        attempt = 0
        while True:
            attempt += 1
            remaining = await hooks.offload(hooks.paused_for, self.config.site_id, self.name)
            if remaining > 0:
                await hooks.asleep(remaining)
            started = hooks.monotonic()
            try:
                result = await self._aguard(self._asend(request, resolved))
            except AIProviderError as exc:
                delay = await hooks.offload(self._attempt_failed, exc, resolved, attempt, started)
                await hooks.asleep(delay)
                continue
            return self._attempt_served(result, request, resolved, attempt, started)

    def _attempt_failed(self, exc: AIProviderError, resolved: str, attempt: int, started: float) -> float:
        """A failed attempt (both drivers): recorded, a Retry-After shared; the delay before the next
        attempt, or `exc` raised when it is not retried."""
        hooks, site_id = self.hooks, self.config.site_id
        latency = (hooks.monotonic() - started) * 1000
        hooks.on_attempt(Attempt(self.name, resolved, attempt, latency, error=exc))
        if isinstance(exc, RateLimited) and exc.retry_after:
            # Everyone sending with this site's key waits too (batches, other threads, processes).
            hooks.pause(site_id, self.name, min(exc.retry_after, self.config.retry_after_cap))
        delay = self._retry_delay(exc, attempt)
        if delay is None:
            raise exc
        logger.warning(
            "%s attempt %d for %s failed (%s); retrying in %.2fs",
            self.name,
            attempt,
            resolved,
            type(exc).__name__,
            delay,
        )
        return delay

    def _attempt_served(
        self, result: GenerationResult, request: AIRequest, resolved: str, attempt: int, started: float
    ) -> GenerationResult:
        hooks = self.hooks
        result.latency_ms = (hooks.monotonic() - started) * 1000
        result.requested_model = request.model or self.config.default_model
        result.attempts = attempt
        hooks.on_attempt(Attempt(self.name, resolved, attempt, result.latency_ms, result=result))
        logger.debug(
            "%s served %s: %d+%d tokens in %.0f ms",
            self.name,
            result.model,
            result.prompt_tokens,
            result.completion_tokens,
            result.latency_ms,
        )
        return result

    def generate_stream(
        self,
        messages: list[Message],
        model: str | None = None,
        max_tokens: int = 1000,
        temperature: float = 0.7,
        system_prompt: str | None = None,
        **kwargs: Any,
    ) -> StreamingResult:
        """Yield text deltas as they arrive; `.result` holds the totals once the stream is consumed."""
        request = AIRequest.of(messages, model, max_tokens, temperature, system_prompt, **kwargs)
        return self.stream(self.validate_request(request))

    def stream(self, request: AIRequest, attempt: int = 1) -> StreamingResult:
        """Stream a validated request. Not retried here: the gateway retries and fails over a stream only
        until its first delta reached the caller (half an answer cannot be replayed)."""
        resolved = self.resolve_model(request.model)
        stream = StreamingResult(self, resolved, attempt)
        stream._start(self._guard_stream(self._stream(request, resolved)))
        return stream

    def astream(self, request: AIRequest, attempt: int = 1) -> AsyncStreamingResult:
        """`stream` on the SDK's async client (iterate it with `async for`)."""
        resolved = self.resolve_model(request.model)
        stream = AsyncStreamingResult(self, resolved, attempt)
        stream._start(self._aguard_stream(self._astream(request, resolved)))
        return stream

    def check_key(self) -> dict[str, Any]:
        """Prove the key works with a cheap authenticated call; typed errors only."""
        return self._guard(self._check_key)

    def get_available_models(self) -> list[ModelInfo]:
        """The models this deployment declares for the provider (built-in table plus database mappings)."""
        return [ModelInfo(id=native, name=logical) for logical, native in self.mapper.models_for(self.name)]

    def is_model_supported(self, model: str) -> bool:
        try:  # no fallback to the default model here: "" is not a supported model
            resolved = self.mapper.normalize_model_name(
                model, self.name, passthrough=self.spec.model_ids == "passthrough"
            )
        except AIProviderError:
            return False
        return any(info.id == resolved for info in self.get_available_models())

    # -- validation --------------------------------------------------------------------------
    def validate_request(self, request: AIRequest) -> AIRequest:
        """Check the request before any network I/O, once per call; returns it with plain-dict messages."""
        messages, max_tokens, temperature = request.messages, request.max_tokens, request.temperature
        system_prompt, options = request.system_prompt, request.options
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
            raise InvalidRequest(f"max_tokens must be an integer, got {max_tokens!r}.", provider=self.name)
        if not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
            raise InvalidRequest(
                f"max_tokens must be between 1 and {MAX_TOKENS_LIMIT}, got {max_tokens}.", provider=self.name
            )
        low, high = self.temperature_range
        if isinstance(temperature, bool) or not isinstance(temperature, int | float):
            raise InvalidRequest(f"temperature must be a number, got {temperature!r}.", provider=self.name)
        if not low <= temperature <= high:
            raise InvalidRequest(
                f"temperature must be between {low:g} and {high:g} for {self.name}, got {temperature:g}.",
                provider=self.name,
            )
        unknown = set(options) - self.supported_options
        if unknown:
            allowed = ", ".join(sorted(self.supported_options)) or "none"
            raise InvalidRequest(
                f"Unsupported option(s) for {self.name}: {', '.join(sorted(unknown))}. Supported: {allowed}.",
                provider=self.name,
            )
        if request.model is not None:  # it reaches the ledger too (requested_model): text every database stores
            if not isinstance(request.model, str):
                raise InvalidRequest("model must be a string.", provider=self.name)
            check_text(request.model, "model", self.name)
        if system_prompt is not None and not isinstance(system_prompt, str):
            raise InvalidRequest("system_prompt must be a string.", provider=self.name)
        if system_prompt:
            check_text(system_prompt, "system_prompt", self.name)
        if not isinstance(messages, list | tuple) or not messages:
            raise InvalidRequest("messages must be a non-empty list of {role, content}.", provider=self.name)
        clean: list[dict[str, Any]] = []
        for index, message in enumerate(messages):
            if not conversation.is_plain(message) and isinstance(message, Mapping) and message.get("role") != "system":
                clean.append(conversation.check_message(message, index, self.name))  # tools, images
                continue
            role = message.get("role") if isinstance(message, Mapping) else None
            content = message.get("content") if isinstance(message, Mapping) else None
            if role not in ROLES:
                raise InvalidRequest(
                    f"messages[{index}].role must be one of system, user, assistant.", provider=self.name
                )
            if content is not None and not isinstance(content, str):
                raise InvalidRequest(self._not_text(index, role, content), provider=self.name)
            if not isinstance(content, str) or not content.strip():
                raise InvalidRequest(f"messages[{index}].content is empty: give a prompt.", provider=self.name)
            check_text(content, f"messages[{index}].content", self.name)
            clean.append({"role": role, "content": content})
        if not any(m["role"] == "user" for m in clean):
            raise InvalidRequest("messages must contain at least one user message.", provider=self.name)
        return self._shared_options(
            beyond_text(request.with_changes(messages=tuple(clean), options=dict(options)), self.name)
        )

    def _shared_options(self, request: AIRequest) -> AIRequest:
        """The options several vendors take in one shape, checked and normalised here once for whichever provider
        supports them (an unsupported one was refused above): `thinking` and `effort` (`providers/thinking.py`),
        `cache_control` (the system prompt's cache mark, `openrouter_options.check_cache_control`),
        `parallel_tool_calls` (a bool; each vendor's wire shape in `providers/tools.py`), `verbosity`,
        `prompt_cache_key`."""
        options = request.options
        if not options.keys() & {
            "thinking",
            "effort",
            "cache_control",
            "parallel_tool_calls",
            "verbosity",
            "prompt_cache_key",
        }:
            return request
        options = dict(options)
        key = options.get("prompt_cache_key")
        if key is not None and (not isinstance(key, str) or not key.strip() or len(key) > 1024):
            raise InvalidRequest("prompt_cache_key must be a string of 1 to 1,024 characters.", provider=self.name)
        if "verbosity" in options and options["verbosity"] not in VERBOSITY:
            raise InvalidRequest(
                f"verbosity must be one of {', '.join(VERBOSITY)}, got {options['verbosity']!r}.", provider=self.name
            )
        if "parallel_tool_calls" in options and not isinstance(options["parallel_tool_calls"], bool):
            raise InvalidRequest(
                "parallel_tool_calls must be true or false (false: at most one tool call a turn).", provider=self.name
            )
        if options.get("cache_control") is not None:
            options["cache_control"] = openrouter_options.check_cache_control(
                options["cache_control"], request.system_prompt, self.name
            )
        if options.get("effort") is not None:
            thinking.check_effort(options["effort"], self.name)
        if options.get("thinking") is not None:
            options["thinking"] = thinking.check_option(options["thinking"], request, self.name)
        return request.with_changes(options=options)

    def _not_text(self, index: int, role: Any, content: Any) -> str:
        """What is wrong with a system message whose content is not a string (parts, an image...)."""
        where = f"messages[{index}]"
        parts = content if isinstance(content, list | tuple) else [content]
        if any(images.is_image(p) for p in parts):
            return (
                f"{where}: image parts are not supported in a {role} message ({self.name}); "
                "send images in a user message's content parts."
            )
        return f"{where}.content of a {role} message must be text (a string), got {type(content).__name__}."

    def validate(
        self,
        messages: list[Message],
        max_tokens: int,
        temperature: float,
        system_prompt: str | None,
        options: Mapping[str, Any],
    ) -> list[dict[str, str]]:
        """The messages, checked (kept for callers of the earlier signature)."""
        request = AIRequest.of(messages, None, max_tokens, temperature, system_prompt, **options)
        return list(self.validate_request(request).messages)

    def adapt(self, request: AIRequest) -> AIRequest:
        """A request validated for another provider, fitted to this one without validating again:
        temperature clamped to this vendor's range, options it does not take dropped (failover)."""
        low, high = self.temperature_range
        options = {k: v for k, v in request.options.items() if k in self.supported_options}
        adapted = request.with_changes(temperature=min(max(request.temperature, low), high), options=options)
        if options.get("reasoning") is not None and not self._keeps_reasoning(adapted):
            adapted = adapted.with_changes(options={k: v for k, v in options.items() if k != "reasoning"})
        return adapted

    def _keeps_reasoning(self, request: AIRequest) -> bool:
        """Whether a failover candidate can serve another provider's `reasoning` option: it passes this provider's
        checks of it (`_reasoning`) and, where the vendor refuses it to a model that does not reason, the model
        reasons (the capability table). Else it is dropped, as a candidate drops any option it does not take."""
        try:
            self._reasoning(request)
            return not refuses_reasoning(self) or "thinking" in features_of(self, self.resolve_model(request.model))
        except AIProviderError:
            return False

    def _reasoning(self, request: AIRequest) -> AIRequest:
        """The `reasoning` option checked as this provider serves it, or InvalidRequest naming what to fix (none
        here: a provider that takes it says how)."""
        return request

    # -- retries -----------------------------------------------------------------------------
    def _retry_delay(self, exc: AIProviderError, attempt: int) -> float | None:
        """Seconds to wait before the next attempt, or None to give up."""
        if not exc.retryable or attempt > self.config.max_retries:
            return None
        backoff = self.config.retry_backoff * (2 ** (attempt - 1))
        delay = random.uniform(backoff / 2, backoff)  # jitter
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            if exc.retry_after > self.config.retry_after_cap:
                return None  # waiting that long inside a request helps nobody; surface it
            delay = max(delay, exc.retry_after)
        return delay

    def _notify(self, attempt: Attempt) -> None:
        self.hooks.on_attempt(attempt)

    # -- vendor hooks ------------------------------------------------------------------------
    @abstractmethod
    def _send(self, request: AIRequest, model: str) -> GenerationResult:
        """One HTTP call for `request` with the provider-native `model` id."""

    @abstractmethod
    def _stream(self, request: AIRequest, model: str) -> Iterator[str | GenerationResult]:
        """Yield text deltas, then exactly one GenerationResult with the totals."""

    async def _asend(self, request: AIRequest, model: str) -> GenerationResult:
        """`_send` on the async client; a vendor module without one is refused (typed), never run blocking."""
        raise NotSupported(f"The {self.name} provider has no async client.", provider=self.name)

    def _astream(self, request: AIRequest, model: str) -> AsyncIterator[str | GenerationResult]:
        """`_stream` on the async client."""
        raise NotSupported(f"The {self.name} provider has no async client.", provider=self.name)

    def count_tokens(self, request: AIRequest) -> int:
        """The input tokens `request` would be billed for, as the vendor counts them (a validated request).

        Only a vendor with a counting endpoint can say; the others raise NotSupported (an estimate would be
        a guess presented as a count)."""
        raise NotSupported(
            f"The {self.name} provider has no token counting endpoint, so this gateway cannot count tokens for "
            "the models it serves; count them on the client.",
            provider=self.name,
        )

    def _check_key(self) -> dict[str, Any]:
        """A cheap authenticated call that proves the key works: the models listing (both SDKs have it)."""
        return {"ok": True, "models_visible": len(list(self.client.models.list()))}

    @property
    @abstractmethod
    def client(self) -> Any:
        """The vendor SDK client, one per config (`cached_client`)."""

    # -- the one place vendor exceptions become ours ---------------------------------------------
    @staticmethod
    @abstractmethod
    def sdk() -> Any:
        """The vendor SDK module (imported on first use); its exception classes are read from it."""

    def _guard(self, call: Callable[..., Any], *args: Any) -> Any:
        """Run one vendor call; whatever it raises leaves as a typed `AIProviderError`.

        The original exception is dropped (`from None`): SDK frames hold request headers, and with
        them the key, which a debug page or an error tracker would otherwise show.
        """
        try:
            return call(*args)
        except Exception as exc:
            raise self.translate_error(exc) from None

    def _guard_stream(self, source: Iterator[Any]) -> Iterator[Any]:
        try:
            yield from source
        except Exception as exc:
            raise self.translate_error(exc) from None

    async def _aguard(self, call: Awaitable[Any]) -> Any:
        try:
            return await call
        except Exception as exc:
            raise self.translate_error(exc) from None

    async def _aguard_stream(self, source: AsyncIterator[Any]) -> AsyncIterator[Any]:
        try:
            async for item in source:
                yield item
        except Exception as exc:
            raise self.translate_error(exc) from None
        finally:
            await source.aclose()  # type: ignore[attr-defined]  # a cancelled stream closes its upstream now

    def async_http_client(self) -> Any:
        """`http_client` for the SDK's async client (same TLS context and outbound policy), its connections on
        asyncio's own transports (`aio_net`)."""
        from . import aio_net

        policy = self.config.outbound
        if policy is None:
            default = getattr(self.sdk(), "DefaultAsyncHttpxClient", None)
            if default is None:
                return None
            return aio_net.use_asyncio(default(verify=shared_tls_context(trust_env=True)))
        try:
            policy.check_url(self.config.base_url)
        except OutboundRefused as exc:
            raise URLNotAllowed(str(exc), provider=self.name) from None
        import httpcore2
        import httpx2

        transport = guarded_async_transport(
            policy,
            httpx2,
            httpcore2,
            aio_net.AsyncioBackend(),
            verify=shared_tls_context(trust_env=False),
            limits=httpx2.Limits(max_connections=1000, max_keepalive_connections=100),
        )
        return httpx2.AsyncClient(transport=transport, timeout=self.config.timeout, follow_redirects=True)

    def http_client(self) -> Any:
        """The SDK's httpx client: the SDK's default one (with the process's shared TLS context) unless a
        site chose the base URL, then one whose every connection passes the outbound policy. Raises
        URLNotAllowed for a URL refused outright."""
        policy = self.config.outbound
        if policy is None:
            default = getattr(self.sdk(), "DefaultHttpxClient", None)  # both official SDKs have it; else theirs
            return default(verify=shared_tls_context(trust_env=True)) if default is not None else None
        try:
            policy.check_url(self.config.base_url)
        except OutboundRefused as exc:
            raise URLNotAllowed(str(exc), provider=self.name) from None
        import httpcore2
        import httpx2

        transport = guarded_transport(
            policy,
            httpx2,
            httpcore2,
            verify=shared_tls_context(trust_env=False),
            limits=httpx2.Limits(max_connections=1000, max_keepalive_connections=100),
        )
        return httpx2.Client(transport=transport, timeout=self.config.timeout, follow_redirects=True)

    def translate_error(self, exc: BaseException) -> AIProviderError:
        """Map anything a vendor call raised to the matching typed error; messages never carry a key."""
        if isinstance(exc, AIProviderError):
            return exc
        secrets = (self.config.api_key,)
        refused = _cause_of(exc, OutboundRefused)
        if refused is not None:
            return URLNotAllowed(str(refused), provider=self.name)
        sdk = self.sdk()
        unreachable = f"Could not reach {self.config.base_url} (connection failed or was dropped)."
        if isinstance(exc, sdk.APITimeoutError):
            if self.config.outbound is not None and _cause_named(exc, "ConnectTimeout"):
                # A site's own URL: a filtered port reads like a closed one (no port-scanning oracle).
                return ProviderUnavailable(unreachable, provider=self.name)
            return ProviderTimeout(
                f"No answer within {self.config.timeout:g}s; raise AI_REQUEST_TIMEOUT or retry.",
                provider=self.name,
            )
        if isinstance(exc, sdk.APIConnectionError):
            return ProviderUnavailable(unreachable, provider=self.name)
        if isinstance(exc, sdk.APIResponseValidationError):
            return ProviderUnavailable("The provider sent a response that could not be read.", provider=self.name)
        if isinstance(exc, sdk.APIStatusError):
            response = exc.response
            return map_status_error(
                self.name,
                exc.status_code,
                exc.body,
                headers=dict(response.headers) if response is not None else None,
                request_id=getattr(exc, "request_id", None),
                secrets=secrets,
            )
        if isinstance(exc, sdk.APIError):  # no status: an error event inside a stream that had started well
            return ProviderUnavailable(
                "The provider ended the stream with an error: " + redact(str(exc.message), secrets),
                provider=self.name,
            )
        if isinstance(exc, json.JSONDecodeError):
            return ProviderUnavailable("The provider sent malformed JSON.", provider=self.name)
        if isinstance(exc, UnicodeError):
            return InvalidRequest(
                "The request holds text that cannot be sent (a header value or body that is not valid text).",
                provider=self.name,
            )
        logger.warning("unexpected %s failure: %s", self.name, redact(f"{type(exc).__name__}: {exc}", secrets))
        return AIProviderError(f"Unexpected provider failure ({type(exc).__name__}).", provider=self.name)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and its causes/contexts, each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        yield current
        seen.add(id(current))
        current = current.__cause__ or current.__context__


def _cause_of(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    return next((e for e in _chain(exc) if isinstance(e, kind)), None)


def _cause_named(exc: BaseException, name: str) -> bool:
    return any(type(e).__name__ == name for e in _chain(exc))


class StreamingResult:
    """Iterate for text deltas; afterwards `.result` is the GenerationResult with the totals. A call that asked
    for `thinking` also gets its thinking as `ThinkingDelta` pieces among them (no other call does).

    `delivered` counts the deltas handed to the caller: a failure before the first one may fail
    over to another provider; after it, the caller has half an answer and gets the typed error.
    A caller that stops iterating (`close()`, a client disconnect) closes the upstream request at
    once; the attempt is recorded as cancelled with what was streamed until then.
    """

    def __init__(self, provider: BaseProvider, model: str, attempt: int = 1) -> None:
        self.provider = provider
        self.model = model
        self.attempt = attempt
        self.result: GenerationResult | None = None
        self.delivered = 0
        self.partial: list[str] = []
        self.thought = 0  # characters of thinking streamed (billed as output: a broken stream's estimate counts them)
        self.cancelled = False
        self._source: Any = None
        self._started = 0.0

    def _start(self, source: Any) -> None:
        self._source = source
        self._started = self.provider.hooks.monotonic()

    # -- what both drivers share: each item, a failure, a cancellation, the end ---------------------------
    def _take(self, item: str | ThinkingDelta | GenerationResult) -> Any:
        if isinstance(item, GenerationResult):
            self.result = item
            return None
        if isinstance(item, ThinkingDelta):  # reached the caller as much as text does: no failover after it
            self.delivered += 1
            self.thought += len(item.thinking) + len(item.redacted)
            return item
        if item:
            self.delivered += 1
            self.partial.append(item)
            return item
        return None

    def _partial(self) -> GenerationResult | None:
        """What was streamed before a failure or cancellation (the ledger keeps it; ~4 characters a token)."""
        if not self.delivered:
            return None
        text = "".join(self.partial)
        partial = GenerationResult(
            content=text,
            model=self.model,
            provider=self.provider.name,
            completion_tokens=max(1, (len(text) + self.thought) // 4),
            finish_reason=FINISH_OTHER,
        )
        partial.total_tokens = partial.completion_tokens
        return partial

    def _ended(self, error: AIProviderError | None = None) -> None:
        hooks = self.provider.hooks
        latency = (hooks.monotonic() - self._started) * 1000
        if error is not None:
            if isinstance(error, StreamCancelled):
                self.cancelled = True
            hooks.on_attempt(
                Attempt(self.provider.name, self.model, self.attempt, latency, result=self._partial(), error=error)
            )
        elif self.result is not None:
            self.result.latency_ms = latency
            hooks.on_attempt(Attempt(self.provider.name, self.model, self.attempt, latency, result=self.result))

    def _cancelled_error(self) -> StreamCancelled:
        return StreamCancelled(
            f"The caller went away after {self.delivered} deltas; the upstream request was closed.",
            provider=self.provider.name,
        )

    def __iter__(self) -> Iterator[str]:
        assert self._source is not None
        try:
            for item in self._source:
                if (text := self._take(item)) is not None:
                    yield text
        except AIProviderError as exc:
            self._ended(exc)
            raise
        except GeneratorExit:  # the caller closed us: close the upstream request now, and settle
            self._source.close()
            self._ended(self._cancelled_error())
            raise
        self._ended()

    def text(self) -> str:
        """The answer's text (its thinking, if asked for, is on `.result.thinking`)."""
        return "".join(piece for piece in self if isinstance(piece, str))


class AsyncStreamingResult(StreamingResult):
    """`StreamingResult` over the SDK's async client: `async for` it. A cancelled task (an ASGI client
    disconnect) or `aclose()` closes the upstream request at once and records the attempt as cancelled."""

    def __aiter__(self) -> AsyncIterator[str]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[str]:
        assert self._source is not None
        try:
            async for item in self._source:
                if (text := self._take(item)) is not None:
                    yield text
        except AIProviderError as exc:
            self._ended(exc)
            raise
        except (GeneratorExit, asyncio.CancelledError):
            await self._source.aclose()
            self._ended(self._cancelled_error())
            raise
        self._ended()

    async def atext(self) -> str:
        return "".join([piece async for piece in self if isinstance(piece, str)])
