"""The editors' screens stream the model's answer as it arrives, with cancel (issue 27).

One helper for every screen that streams (pages and prompts use it, so it sits on the Django side):
`stream_answer` runs a gateway stream inside the request (the sync driver under WSGI, the async one
under ASGI), sends each text delta as a server-sent event, and when the stream ends hands the whole
text to the screen's `finish`, whose dict becomes the final `done` event (a review URL, or the
validation errors). A client that goes away closes the response iterator, which closes the gateway
stream: the upstream request is closed and the ledger row is `cancelled`. Structured output cannot
stream validated JSON, so a screen that needs JSON validates the finished text itself, server-side,
before anything is offered for review; nothing is saved here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, StreamingHttpResponse

from integrations import labels
from integrations.ai.gateway.service import AIService
from integrations.ai.ledger import usage
from integrations.ai.providers.errors import AIProviderError
from integrations.ai.sites import callers

Finish = Callable[[str, Any], dict[str, Any]]


def event(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload)}\n\n"


def error_event(exc: AIProviderError) -> str:
    return event({"error": {"code": exc.code, "label": labels.error_label(exc.code), "message": str(exc)}})


def answered(payload: dict[str, Any]) -> StreamingHttpResponse:
    """The same event stream when there is nothing to ask the model (e.g. a translation already up to date):
    only the final `{"done", **payload}` event."""
    return _response(iter([event({"done": True, **payload})]))


def _response(body: Iterator[str] | AsyncIterator[str]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(body, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


def stream_answer(
    request: HttpRequest,
    service: AIService,
    prompt: str,
    params: dict[str, Any],
    finish: Finish,
    attribute_to: Any = None,
    label: str | None = None,
) -> StreamingHttpResponse:
    """A `text/event-stream` of `{"delta"}` events, then `{"done", **finish(text, result)}` or `{"error"}`.

    `finish` runs on a thread (it may use the ORM and the session); it must not save the content.
    The body runs after the view returned (and after the middleware that names the editor): the page's
    attribution and the calling editor are read here and carried into it."""
    attribution = usage.store().attribution(attribute_to, label) if attribute_to is not None else None
    editor = callers.current_editor()

    def events() -> Iterator[str]:
        text: list[str] = []
        try:
            with usage.carrying(attribution), callers.acting_for(editor):
                stream = service.generate_stream(prompt, **params)
                for delta in stream:
                    text.append(delta)
                    yield event({"delta": delta})
            yield event({"done": True, **finish("".join(text), stream.result)})
        except AIProviderError as exc:
            yield error_event(exc)

    async def aevents() -> AsyncIterator[str]:
        text: list[str] = []
        try:
            with usage.carrying(attribution), callers.acting_for(editor):
                stream = await service.astream(prompt, **params)
                async for delta in stream:
                    text.append(delta)
                    yield event({"delta": delta})
            yield event({"done": True, **await sync_to_async(finish)("".join(text), stream.result)})
        except AIProviderError as exc:
            yield error_event(exc)

    return _response(aevents() if isinstance(request, ASGIRequest) else events())
