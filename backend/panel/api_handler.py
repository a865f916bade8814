"""The `/v1` endpoints' own request handler: the site's Django handler without its browser middleware.

A `/v1` request is authenticated by its virtual key, which names the site and the caller: sessions,
CSRF, the session user, messages, frame options and the host's site have nothing to do there. They
are not free under ASGI either: one sync middleware anywhere in the chain makes Django run the
whole chain on a thread and the async view back on the event loop (two hops per request), and an
async chain of Django's own middleware costs a hop per `process_request`/`process_response`
(`MiddlewareMixin.__acall__`). So `panel.asgi` and `panel.wsgi` hand `/v1/` paths to this handler,
whose one middleware (`APIEdge`) keeps what a JSON API still needs, inline and without a hop: the
Host header checked against ALLOWED_HOSTS (a foreign one is the JSON 400 of `handler400`), and
SecurityMiddleware's HTTPS redirect and headers. Errors, signals (`request_started`/`finished`: the
database connection handed back) and URL resolution are the base handler's, as for any request.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext, iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpRequest, HttpResponseBase
from django.middleware.security import SecurityMiddleware
from django.urls import set_script_prefix

from panel.coalesce import write_coalesced

PREFIX = "/v1/"


def is_api_path(path: str, root_path: str = "") -> bool:
    """True for a `/v1/...` request (below the deployment's script prefix, if any)."""
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    return path.startswith(PREFIX)


class APIEdge:
    """The only middleware of `/v1` requests: the Host check and SecurityMiddleware's work, inline (pure
    computation on the request and the response: nothing here waits, so nothing leaves the event loop)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.security = SecurityMiddleware(get_response)
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self._acall(request)
        refused = self._before(request)
        if refused is not None:
            return refused
        return self.security.process_response(request, self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        refused = self._before(request)
        if refused is not None:
            return refused
        response = await self.get_response(request)
        return self.security.process_response(request, response)

    def _before(self, request: HttpRequest) -> HttpResponseBase | None:
        request.get_host()  # DisallowedHost (a Host outside ALLOWED_HOSTS): handler400's JSON 400
        request.site = None  # a key names the site, never the host
        return self.security.process_request(request)  # SECURE_SSL_REDIRECT


def _load(handler: Any, is_async: bool) -> None:
    handler._view_middleware = []
    handler._template_response_middleware = []
    handler._exception_middleware = []
    get_response = handler._get_response_async if is_async else handler._get_response
    handler._middleware_chain = convert_exception_to_response(APIEdge(convert_exception_to_response(get_response)))


class _RequestThread(ThreadPoolExecutor):
    """A one-thread executor that knows whether a step is still queued or running on it: `submitted` is
    counted on the event loop's thread (asgiref submits from there), `finished` on the worker's, so each
    counter has one writer and a stale read can only say busy. (A step that ends before `submit` adds its
    callback is counted on the loop's thread; a count lost that way also only says busy: the thread is
    then not kept, and one more starts later.)"""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="v1-request")
        self.submitted = 0
        self.finished = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        future = super().submit(fn, *args, **kwargs)
        self.submitted += 1
        future.add_done_callback(self._one_finished)
        return future

    def _one_finished(self, _future: Any) -> None:
        self.finished += 1

    @property
    def busy(self) -> bool:
        return self.finished != self.submitted


class _Executors:
    """The one-thread executors that run `/v1` requests' sync steps, kept between requests.

    Django gives each ASGI request a `ThreadSensitiveContext`: a new thread for its sync steps, and at its
    end one more thread to join the first, two thread starts per request. With asgiref's `executor=` a
    request borrows a thread kept here instead (its steps still run in order, on one thread, with that
    thread's database connection, which `request_finished` hands back as before). Only the event loop's
    thread takes and returns them, so no lock; one per request at a time, at most `keep` idle.
    A request cancelled while a step of it still runs (its client left during an embedding's upstream call,
    say) gives back a busy thread: that one is not kept (it ends once its step does), so the next request
    never queues behind another's leftover work."""

    def __init__(self, keep: int = 64) -> None:
        self.idle: list[_RequestThread] = []
        self.keep = keep

    def take(self) -> _RequestThread:
        return self.idle.pop() if self.idle else _RequestThread()

    def give(self, executor: _RequestThread) -> None:
        if len(self.idle) < self.keep and not executor.busy:
            self.idle.append(executor)
        else:
            executor.shutdown(wait=False)


class APIASGIHandler(ASGIHandler):
    """`/v1` under ASGI (`panel.asgi`): an async view runs on the event loop from the first byte, its sync
    steps on a kept thread (`_Executors`)."""

    def __init__(self) -> None:
        super().__init__()
        self.executors = _Executors()

    def load_middleware(self, is_async: bool = False) -> None:
        _load(self, is_async)

    async def send_response(self, response: HttpResponseBase, send: Any) -> None:
        """Django's, but a response carrying `asgi_body` (a /v1 event stream: an async iterator of bytes) is sent
        from that iterator, the events it has ready at once in one write (`panel.coalesce`). Django's own path
        sends each part on its own, read through two more async generators (its `__aiter__` and the wrapper
        that makes bytes of each part) and a third that slices it: a /v1 stream sends one small part per
        token, so that was paid 20,000 times a second at 1,000 streams."""
        body = getattr(response, "asgi_body", None)
        if body is None or response.cookies:
            return await super().send_response(response, send)
        headers = [(name.encode("ascii"), value.encode("latin1")) for name, value in response.items()]
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})

        async def write(data: bytes) -> None:
            await send({"type": "http.response.body", "body": data, "more_body": True})

        async with contextlib.aclosing(body) as parts:
            await write_coalesced(parts, write)  # the events a step had ready at once, in one write
        await send({"type": "http.response.body"})

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        executor = self.executors.take()
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self._handle(scope, receive, send, executor)
        finally:
            self.executors.give(executor)

    async def _handle(self, scope: dict[str, Any], receive: Any, send: Any, executor: _RequestThread) -> None:
        """Django's `ASGIHandler.handle` (5.2), but `request_started` does not cost the request a hop.

        Django awaits the signal's receivers (`close_old_connections`, `reset_queries`: sync) on the request's
        thread before it builds the request: a round trip to that thread and back, ~0.6 ms of a /v1 call's
        latency at concurrency 1. Here they are queued on that same one-thread executor and not awaited: the
        thread runs them before any sync step the request takes later (its queue is first in, first out), so
        every database access of the request still follows them, while the event loop goes on to the view.
        A receiver's failure is raised once the response is done (Django raises it before the view)."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        context = contextvars.copy_context()
        started = executor.submit(context.run, signals.request_started.send, sender=self.__class__, scope=scope)
        try:
            request, error_response = self.create_request(scope, body_file)
            if request is None:
                body_file.close()
                await self.send_response(error_response, send)
                await sync_to_async(error_response.close)()
                return

            async def process_request(request: HttpRequest, send: Any) -> HttpResponseBase:
                response = await self.run_get_response(request)
                with contextlib.suppress(asyncio.CancelledError):  # the client left during the response
                    await self.send_response(response, send)
                return response

            # Django's own disconnect handling: whichever ends first, the other is cancelled
            tasks = [
                asyncio.create_task(self.listen_for_disconnect(receive)),
                asyncio.create_task(process_request(request, send)),
            ]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                if task.done():
                    try:
                        task.result()
                    except RequestAborted:
                        pass
                    except AssertionError:
                        body_file.close()
                        raise
                else:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            try:
                response = tasks[1].result()
            except asyncio.CancelledError:
                await signals.request_finished.asend(sender=self.__class__)
            else:
                await sync_to_async(response.close)()
            body_file.close()
        finally:  # a receiver's failure is raised, never lost (long done by now: no wait)
            if started.done():
                started.result()
            else:
                await asyncio.wrap_future(started)


class APIWSGIHandler(WSGIHandler):
    """`/v1` under WSGI (`panel.wsgi`): the same middleware, so both servers answer alike."""

    def load_middleware(self, is_async: bool = False) -> None:
        _load(self, is_async)


ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def asgi_router(site: ASGIApp, api: ASGIApp) -> ASGIApp:
    """One ASGI application: `/v1/` paths to `api`, everything else (and lifespan, websockets) to `site`."""

    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and is_api_path(scope["path"], scope.get("root_path", "")):
            return await api(scope, receive, send)
        return await site(scope, receive, send)

    return application


def wsgi_router(site: Callable[..., Any], api: Callable[..., Any]) -> Callable[..., Any]:
    """`asgi_router` for WSGI."""

    def application(environ: dict[str, Any], start_response: Any) -> Any:
        if is_api_path(environ.get("PATH_INFO", "")):
            return api(environ, start_response)
        return site(environ, start_response)

    return application
