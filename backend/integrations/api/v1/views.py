"""`POST /v1/chat/completions`, `/v1/responses`, `/v1/messages`, `/v1/messages/count_tokens`, `/v1/embeddings`,
`GET /v1/models`: a site's AI in OpenAI's and Anthropic's formats.

The virtual key (`Authorization: Bearer <key>` or `x-api-key: <key>`) names the site: a key only
ever reaches its own site, whatever host the request names. Each request is parsed by its
dialect into one `AIService` call made as the key (`callers.acting_as`), so the site's mappings,
routing, policy, budget, rate limits, failover and ledger apply exactly as for any call, and the
key's own limits with them. A stream is started before the response is: everything that can
fail before the first token (limits, budget, policy, every provider down) gets its proper status
code; a failure after it is sent as the dialect's in-stream error event.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import RequestDataTooBig
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from integrations.ai.gateway.factory import ProviderFactory
from integrations.ai.gateway.service import AIService, GatewayStream, OpenedCall, Prepared
from integrations.ai.providers.errors import AIProviderError, ProviderNotConfigured, URLNotAllowed
from integrations.ai.providers.types import GenerationResult
from integrations.ai.runtime.offload import offload
from integrations.ai.sites import callers
from integrations.ai.sites.callers import KeyScope
from integrations.ai.sites.site_config import get_snapshot

from . import anthropic_dialect, keys, openai_dialect, openai_embeddings, responses_dialect
from .calls import BadField, GatewayCall
from .failures import Failure, failure_for, unauthenticated


@dataclass(frozen=True)
class Dialect:
    """One wire format: how a body becomes a `GatewayCall`, how a result and a stream are written back, and
    the shape of its errors."""

    name: str
    service: str  # the ledger's service name for calls in this dialect
    parse: Callable[[Any], GatewayCall]
    render: Callable[[GenerationResult, GatewayCall], dict[str, Any]]
    writer: Callable[[str, GatewayCall], Any]  # (the resolved model, the call) -> the stream's event writer
    error_body: Callable[[Failure], dict[str, Any]]


OPENAI = Dialect(
    "openai",
    "v1.chat",
    openai_dialect.parse,
    lambda result, call: openai_dialect.completion(result),
    lambda model, call: openai_dialect.Chunks(model, call.include_usage),
    openai_dialect.error_body,
)
ANTHROPIC = Dialect(
    "anthropic",
    "v1.messages",
    anthropic_dialect.parse,
    lambda result, call: anthropic_dialect.message(result),
    lambda model, call: anthropic_dialect.Events(model),
    anthropic_dialect.error_body,
)
RESPONSES = Dialect(
    "responses",
    "v1.responses",
    responses_dialect.parse,
    responses_dialect.response,
    responses_dialect.Events,
    responses_dialect.error_body,
)


def _request_headers() -> dict[str, str]:
    rid = f"req_{uuid.uuid4().hex}"
    return {"x-request-id": rid, "request-id": rid}


def failed(dialect: Dialect, failure: Failure) -> JsonResponse:
    response = JsonResponse(dialect.error_body(failure), status=failure.status)
    for name, value in {**failure.headers(), **_request_headers()}.items():
        response[name] = value
    return response


def refused_request(request: HttpRequest) -> JsonResponse:
    """`handler400` for /v1 (a Host outside ALLOWED_HOSTS, a malformed request Django refused before any
    view ran): the dialect's JSON error, which both SDKs raise as `BadRequestError`, not Django's HTML page."""
    dialect = ANTHROPIC if request.path_info.startswith("/v1/messages") else OPENAI
    return failed(
        dialect,
        Failure(
            400,
            "The request was refused as malformed (for example, a Host header this server does not serve: "
            "see DJANGO_ALLOWED_HOSTS).",
            "bad_request",
            should_retry=False,
        ),
    )


ROUTES = (
    "POST /v1/chat/completions, /v1/responses, /v1/messages, /v1/messages/count_tokens and /v1/embeddings, "
    "GET /v1/models"
)


@csrf_exempt
def unknown_route(request: HttpRequest) -> JsonResponse:
    """A /v1 path Panel does not serve (`client.responses.retrieve`, message batches, files, ...): a 404 in
    the client's dialect naming what is served, so the SDK raises NotFoundError with a message, not a page."""
    dialect = (
        ANTHROPIC if request.path_info.startswith("/v1/messages") or "anthropic-version" in request.headers else OPENAI
    )
    stored = (
        " Panel stores no responses: each answer is returned once." if "/v1/responses/" in request.path_info else ""
    )
    return failed(
        dialect,
        Failure(
            404,
            f"{request.method} {request.path_info} is not served here; this gateway serves {ROUTES}.{stored}",
            "unknown_route",
            should_retry=False,
            anthropic_type="not_found_error",
        ),
    )


def _raw_key(request: HttpRequest) -> str:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.headers.get("x-api-key", "").strip()


def _key(request: HttpRequest, dialect: Dialect) -> KeyScope | JsonResponse:
    try:
        return keys.resolve(_raw_key(request))
    except keys.KeyRefused as exc:
        return failed(dialect, unauthenticated(str(exc)))


@csrf_exempt
async def chat_completions(request: HttpRequest) -> HttpResponse:
    return await _serve(request, OPENAI)


@csrf_exempt
async def messages(request: HttpRequest) -> HttpResponse:
    return await _serve(request, ANTHROPIC)


@csrf_exempt
async def responses(request: HttpRequest) -> HttpResponse:
    return await _serve(request, RESPONSES)


@csrf_exempt
async def count_tokens(request: HttpRequest) -> HttpResponse:
    """Anthropic's `POST /v1/messages/count_tokens`: `AIService.count_tokens` as the key."""

    def count(key: KeyScope, call: GatewayCall) -> dict[str, Any]:
        service = AIService(site=key.site_id, service="v1.count_tokens")
        tokens = service.count_tokens(call.messages, model=call.model, system_prompt=call.system_prompt, **call.options)
        return {"input_tokens": tokens}

    return await _answer(request, ANTHROPIC, anthropic_dialect.parse_count, count)


@csrf_exempt
async def embeddings(request: HttpRequest) -> HttpResponse:
    """OpenAI's Embeddings endpoint: `AIService.embed` as the key."""

    def embed(key: KeyScope, call: Any) -> dict[str, Any]:
        service = AIService(site=key.site_id, service="v1.embeddings")
        return openai_embeddings.embedding_list(
            service.embed(call.texts, model=call.model, dimensions=call.dimensions), call
        )

    return await _answer(request, OPENAI, openai_embeddings.parse, embed)


async def _answer(
    request: HttpRequest, dialect: Dialect, parse: Callable[[Any], Any], run: Callable[[KeyScope, Any], dict[str, Any]]
) -> HttpResponse:
    """A request answered with one JSON body (no stream): the key and the parsed call, then `run(key, call)` as the
    key, in one hop off the event loop (the request's thread waits for the vendor; under WSGI, on its own thread)."""
    if not isinstance(request, ASGIRequest):
        return await sync_to_async(_answered)(request, dialect, parse, run)
    return await offload(_answered, request, dialect, parse, run)


def _answered(
    request: HttpRequest, dialect: Dialect, parse: Callable[[Any], Any], run: Callable[[KeyScope, Any], dict[str, Any]]
) -> HttpResponse:
    parsed = _key_and_call(request, dialect, parse)
    if isinstance(parsed, HttpResponse):
        return parsed
    key, call = parsed
    try:
        with callers.acting_as(key):
            body = run(key, call)
    except AIProviderError as exc:
        return _refused(dialect, key, call.model, exc)
    response = JsonResponse(body)
    for name, value in _request_headers().items():
        response[name] = value
    return response


def _key_and_call(request: HttpRequest, dialect: Dialect, parse: Any) -> tuple[KeyScope, Any] | HttpResponse:
    """The method, the virtual key (cache or database) and the JSON body `parse`d into its call, or the
    dialect's error answer."""
    if request.method != "POST":
        return failed(dialect, Failure(405, "Use POST.", "method_not_allowed"))
    key = _key(request, dialect)
    if isinstance(key, HttpResponse):
        return key
    try:
        data = json.loads(request.body or b"null")
    except RequestDataTooBig:
        return failed(
            dialect, Failure(413, "The request body is larger than this server accepts.", "request_too_large")
        )
    except (ValueError, RecursionError):
        return failed(dialect, failure_for(BadField("The body must be valid JSON.")))
    try:
        return key, parse(data)
    except AIProviderError as exc:
        return failed(dialect, failure_for(exc))


@dataclass
class Admitted:
    """A request past its first step: its key and parsed call, the service it runs on, and what that step
    opened: a `GatewayStream` (admitted: limits, budget and policy decided), a `Prepared` plain call, or None
    (a call `acomplete` prepares itself: structured output)."""

    key: KeyScope
    call: GatewayCall
    service: AIService
    opened: GatewayStream | OpenedCall | Prepared | None


def _admit_request(request: HttpRequest, dialect: Dialect, *, opening: bool = False) -> Admitted | HttpResponse:
    """The method, the virtual key (cache or database), the parsed body, and the call prepared (a stream:
    admitted; `opening`, the async driver's: a plain call opened, `AIService.open_call`), all in one step: the
    async driver leaves its event loop once for them."""
    parsed = _key_and_call(request, dialect, dialect.parse)
    if isinstance(parsed, HttpResponse):
        return parsed
    key, call = parsed
    service = AIService(site=key.site_id, service=dialect.service)
    opened: GatewayStream | OpenedCall | Prepared | None = None
    try:
        with callers.acting_as(key):
            if call.options.get("response_schema") is not None:
                pass  # structured output: `complete`'s own rounds (validated, one corrective retry), streamed or not
            elif call.stream:
                opened = service.primed_stream(call.messages, **call.kwargs())
            else:
                prepare = service.open_call if opening else service.prepare
                opened = prepare(call.messages, **call.kwargs())
    except AIProviderError as exc:
        return _refused(dialect, key, call.model, exc)
    return Admitted(key, call, service, opened)


def _refused(dialect: Dialect, key: KeyScope, model: str, exc: AIProviderError) -> JsonResponse:
    """A gateway error before any token, in the dialect (queries the site's snapshot: off the event loop)."""
    if isinstance(exc, ProviderNotConfigured):
        return failed(dialect, _not_served(key, model, exc))
    return failed(dialect, failure_for(exc))


async def _serve(request: HttpRequest, dialect: Dialect) -> HttpResponse:
    """Under ASGI the async driver (a stream holds no thread); under WSGI the sync one, on the request's thread,
    so a stream still streams (Django would buffer an async body to serve it over WSGI)."""
    if not isinstance(request, ASGIRequest):
        return await sync_to_async(_serve_sync)(request, dialect)
    admitted = await offload(_admit_request, request, dialect, opening=True)
    if isinstance(admitted, HttpResponse):
        return admitted
    key, call, service, opened = admitted.key, admitted.call, admitted.service, admitted.opened
    try:
        with callers.acting_as(key):
            if not isinstance(opened, GatewayStream):
                if opened is None:  # structured output: acomplete's own loop of attempts
                    result = await service.acomplete(call.messages, **call.kwargs())
                    if call.stream:
                        return _streaming(_avalidated(dialect.writer(result.model, call), result))
                    return _rendered(dialect, call, result)
                assert isinstance(opened, OpenedCall)
                return _rendered(dialect, call, await service.aexecute_opened(opened))
            pieces = aiter(opened)
            first = await anext(pieces, None)  # failover and the first token decide before this returns
    except AIProviderError as exc:
        return await offload(_refused, dialect, key, call.model, exc)
    return _streaming(_aevents(dialect.writer(opened.prep.resolved, call), opened, pieces, first))


def _serve_sync(request: HttpRequest, dialect: Dialect) -> HttpResponse:
    """`_serve` on the sync driver (WSGI)."""
    admitted = _admit_request(request, dialect)
    if isinstance(admitted, HttpResponse):
        return admitted
    key, call, service, opened = admitted.key, admitted.call, admitted.service, admitted.opened
    try:
        with callers.acting_as(key):
            if not isinstance(opened, GatewayStream):
                if opened is None:
                    result = service.complete(call.messages, **call.kwargs())
                    if call.stream:
                        return _streaming(iter([_validated(dialect.writer(result.model, call), result)]))
                    return _rendered(dialect, call, result)
                assert isinstance(opened, Prepared)
                return _rendered(dialect, call, service.execute(opened))
            pieces = iter(opened)
            first = next(pieces, None)
    except AIProviderError as exc:
        return _refused(dialect, key, call.model, exc)
    return _streaming(_events(dialect.writer(opened.prep.resolved, call), opened, pieces, first))


def _rendered(dialect: Dialect, call: GatewayCall, result: GenerationResult) -> HttpResponse:
    response = JsonResponse(dialect.render(result, call))
    for name, value in _request_headers().items():
        response[name] = value
    return response


def _streaming(body: Iterator[bytes] | AsyncIterator[bytes]) -> HttpResponse:
    response = StreamingHttpResponse(body, content_type="text/event-stream")
    if response.is_async:  # `panel.api_handler` sends it from this iterator, without Django's layers per part
        response.asgi_body = body
    for name, value in {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **_request_headers()}.items():
        response[name] = value
    return response


def _not_served(key: KeyScope, model: str, exc: ProviderNotConfigured) -> Failure:
    """The model needs a provider this site has no key for: to the client, a model the site does not have
    (404), unless the site has no usable provider at all (503, `failure_for`)."""
    if not get_snapshot(key.site_id).usable():
        return failure_for(exc)
    return Failure(
        404,
        f"This site does not serve the model {model!r} ({exc.message})",
        "model_not_found",
        param="model",
        should_retry=False,
        anthropic_type="not_found_error",
    )


async def _aevents(
    writer: Any, stream: GatewayStream, pieces: AsyncIterator[str], first: str | None
) -> AsyncIterator[bytes]:
    """The dialect's SSE body; a failure after the first token is the dialect's in-stream error. A client
    that goes away cancels this (ASGI) or closes it: the upstream request is closed at once and the call
    settled with what was streamed (its ledger row `cancelled`)."""
    try:
        yield _opening(writer, first)
        async for piece in pieces:
            yield writer.delta(piece)
    except AIProviderError as exc:
        yield writer.error(failure_for(exc))
        return
    finally:
        await pieces.aclose()  # type: ignore[attr-defined]  # ended early: the gateway settles and ledgers now
    yield writer.end(stream.result)


def _events(writer: Any, stream: GatewayStream, pieces: Iterator[str], first: str | None) -> Iterator[bytes]:
    """`_aevents` for the sync driver (WSGI)."""
    try:
        yield _opening(writer, first)
        for piece in pieces:
            yield writer.delta(piece)
    except AIProviderError as exc:
        yield writer.error(failure_for(exc))
        return
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:  # a client that went away: the gateway still writes the ledger now
            close()
    yield writer.end(stream.result)


def _validated(writer: Any, result: GenerationResult) -> bytes:
    """A structured answer asked for as a stream: the dialect's whole stream in one piece, sent once the answer
    passed its schema (a stream cannot be validated as it goes; clients that stream every call still work)."""
    return _opening(writer, result.content or None) + bytes(writer.end(result))


async def _avalidated(writer: Any, result: GenerationResult) -> AsyncIterator[bytes]:
    yield _validated(writer, result)


def _opening(writer: Any, first: str | None) -> bytes:
    """The dialect's opening event and the first delta in one piece: one write, so the client's first token
    arrives with the response's first bytes (a write each cost a send and a read on both sides)."""
    opening = bytes(writer.first("") if isinstance(writer, openai_dialect.Chunks) else writer.first())
    return opening if first is None else opening + bytes(writer.delta(first))


def model_ids(key: KeyScope) -> dict[str, str]:
    """The models this key may call on its site: logical name -> the provider that serves it.

    The site's usable providers' mapped models (built-in table, global and site mappings), kept
    when the site's policy (allowed providers and models) and the key's allowed models admit them.
    An endpoint that serves any model id it is given (OpenAI-compatible: Ollama, vLLM) adds what its
    own `GET /models` lists (cached a minute) and its default model; one that cannot be listed now
    (down, slow) adds its default model only, and one the outbound policy refuses adds nothing.
    """
    snapshot = get_snapshot(key.site_id)
    policy = snapshot.policy
    found: dict[str, str] = {}
    for name in sorted(snapshot.usable()):
        if policy.allowed_providers and name not in policy.allowed_providers:
            continue
        try:
            provider = ProviderFactory.create_provider(name, key.site_id)
        except AIProviderError:
            continue
        pairs = provider.mapper.models_for(provider.name)
        if provider.spec.model_ids == "passthrough":
            pairs = pairs + _served(provider, key.site_id)
        for logical, native in pairs:
            if policy.model_allowed(logical, native) and key.model_allowed(logical, native):
                found.setdefault(logical, provider.name)
    return found


def _served(provider: Any, site_id: int) -> list[tuple[str, str]]:
    """An endpoint's own model ids (its live listing, its default model) that a call naming them is routed to it
    for (`AIService.provider_for`: not when the site's provider is a router, which serves every model); its
    default model alone when it cannot be listed now, nothing when the outbound policy refuses its address."""
    listed: list[str] = []
    try:
        listed = [info.id for info in provider.get_available_models()]
    except URLNotAllowed:
        return []
    except AIProviderError:
        pass
    default = provider.config.default_model
    router = AIService(site=site_id)
    served = []
    for model in dict.fromkeys([*listed, *([default] if default else [])]):
        try:
            if router.provider_for(None, model).name == provider.name:
                served.append((model, model))
        except AIProviderError:
            continue
    return served


@csrf_exempt
def models(request: HttpRequest, model: str | None = None) -> HttpResponse:
    """OpenAI's model list (Anthropic's when the request carries `anthropic-version`), or one model."""
    dialect = ANTHROPIC if "anthropic-version" in request.headers else OPENAI
    if request.method != "GET":
        return failed(dialect, Failure(405, "Use GET.", "method_not_allowed"))
    key = _key(request, dialect)
    if isinstance(key, HttpResponse):
        return key
    found = model_ids(key)
    entries: list[dict[str, Any]]
    if dialect is ANTHROPIC:
        entries = [
            {"type": "model", "id": m, "display_name": m, "created_at": "1970-01-01T00:00:00Z"} for m in sorted(found)
        ]
    else:
        entries = [{"id": m, "object": "model", "created": 0, "owned_by": found[m]} for m in sorted(found)]
    if model is not None:
        entry = next((e for e in entries if e["id"] == model), None)
        if entry is None:
            return failed(
                dialect,
                Failure(
                    404,
                    f"The model {model!r} is not available with this key.",
                    "model_not_found",
                    param="model",
                    anthropic_type="not_found_error",
                ),
            )
        return JsonResponse(entry)
    if dialect is ANTHROPIC:
        return JsonResponse(
            {
                "data": entries,
                "has_more": False,
                "first_id": entries[0]["id"] if entries else None,
                "last_id": entries[-1]["id"] if entries else None,
            }
        )
    return JsonResponse({"object": "list", "data": entries})
