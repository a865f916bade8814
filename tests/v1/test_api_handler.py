"""`/v1` requests go to their own handler (`panel.api_handler`) under both servers: no browser middleware
(sessions, CSRF, messages, the host's site), only the Host check and SecurityMiddleware's work, inline.

Driven through `panel.asgi.application` and `panel.wsgi.application` themselves (the objects bin/serve runs),
with the requests an SDK sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from asgiref.testing import ApplicationCommunicator

from integrations.ai.ledger import usage
from integrations.models import AIUsage

from ..drivers import async_to_sync  # a thread of its own when Playwright left a loop running

pytestmark = pytest.mark.django_db(transaction=True)
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Name a bakery"}], "max_tokens": 20}


def asgi(method: str, path: str, body: dict | None = None, headers: dict[str, str] | None = None):
    """One request through panel.asgi.application: (status, headers, JSON body)."""
    from panel.asgi import application

    raw = json.dumps(body).encode() if body is not None else b""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (k.lower().encode(), v.encode()) for k, v in {"content-type": "application/json", **(headers or {})}.items()
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }

    async def run():
        talk = ApplicationCommunicator(application, scope)
        await talk.send_input({"type": "http.request", "body": raw, "more_body": False})
        start = await talk.receive_output(30)
        chunks = []
        while True:
            message = await talk.receive_output(30)
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        await talk.wait(5)
        return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, b"".join(chunks)

    status, response_headers, content = async_to_sync(run)()
    return status, response_headers, json.loads(content) if content else None


def wsgi(method: str, path: str, body: dict | None, headers: dict[str, str]):
    from panel.wsgi import application

    raw = json.dumps(body).encode() if body is not None else b""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(raw)),
        "wsgi.input": io.BytesIO(raw),
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
        **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()},
    }
    started = {}

    def start_response(status, response_headers, exc_info=None):
        started["status"] = int(status.split()[0])
        started["headers"] = {k.lower(): v for k, v in response_headers}

    # on a thread of its own, as a WSGI server's: Playwright's tests leave an event loop running on this one,
    # and Django serves an async view under WSGI through async_to_sync, which refuses to run inside a loop
    with ThreadPoolExecutor(1) as thread:
        content = thread.submit(lambda: b"".join(application(environ, start_response))).result()
    return started["status"], started["headers"], json.loads(content)


def test_a_v1_call_through_the_asgi_app_is_served_governed_and_bare_of_browser_middleware(
    emulated_site, make_key, upstream
):
    site = emulated_site("openai")
    status, headers, body = asgi("POST", "/v1/chat/completions", CHAT, {"Authorization": f"Bearer {make_key(site)}"})
    assert status == 200, body
    assert body["choices"][0]["message"]["content"].startswith("Emulated openai reply")
    assert headers["x-content-type-options"] == "nosniff"  # SecurityMiddleware's headers, applied inline
    assert "set-cookie" not in headers and "x-frame-options" not in headers and "vary" not in headers
    usage.flush()
    assert list(AIUsage.objects.filter(site=site).values_list("service", "status")) == [("v1.chat", "ok")]


@pytest.mark.parametrize("serve", [asgi, wsgi], ids=["asgi", "wsgi"])
@pytest.mark.parametrize(
    ("path", "shape"),
    [("/v1/chat/completions", "openai"), ("/v1/messages", "anthropic")],
)
def test_a_host_outside_allowed_hosts_is_the_dialects_json_400(serve, path, shape, emulated_site, make_key):
    key = make_key(emulated_site("openai"))
    status, _, body = serve("POST", path, CHAT, {"Authorization": f"Bearer {key}", "Host": "evil.example"})
    assert status == 400
    if shape == "openai":
        assert body["error"]["code"] == "bad_request" and "DJANGO_ALLOWED_HOSTS" in body["error"]["message"]
    else:
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"


def test_other_paths_keep_the_sites_middleware(db):
    status, headers, _ = asgi("GET", "/api/ai/generate/", None, {})
    assert status == 405  # the site's handler: its middleware ran (frame options on every response)
    assert headers["x-frame-options"] == "DENY"


def test_a_v1_call_through_the_wsgi_app_is_served_the_same(emulated_site, make_key, upstream):
    site = emulated_site("openai")
    status, headers, body = wsgi("POST", "/v1/chat/completions", CHAT, {"Authorization": f"Bearer {make_key(site)}"})
    assert status == 200 and body["choices"][0]["message"]["content"].startswith("Emulated openai reply")
    assert headers["x-content-type-options"] == "nosniff" and "x-frame-options" not in headers


def test_v1_requests_borrow_a_kept_thread_instead_of_starting_two_each(emulated_site, make_key, upstream):
    """Django's default gives each ASGI request a new thread for its sync steps (and one more to join it):
    /v1 requests take one kept by the handler, and give it back."""
    from panel.asgi import api

    key = make_key(emulated_site("openai"))
    kept = []
    for _ in range(3):
        status, _, _ = asgi("POST", "/v1/chat/completions", CHAT, {"Authorization": f"Bearer {key}"})
        assert status == 200
        kept.append(list(api.executors.idle))
    assert len(kept[0]) == 1 and kept[0] == kept[1] == kept[2]  # the same executor, lent three times


def test_a_thread_still_running_a_cancelled_requests_step_is_not_lent_to_the_next_request(
    emulated_site, make_key, upstream
):
    """A request whose task is cancelled while its step still runs (a server cancels its application's tasks
    when it stops; here the step is an embedding waiting on the vendor, and a sync step cannot be interrupted)
    gives its thread back busy: that thread finishes the step (its call is ledgered) and is not kept for the
    next request, which would queue behind it. (A client that merely leaves does not get here: Django's
    `request_finished` runs on the request's thread, after the step.)"""
    from panel.asgi import api, application

    site = emulated_site("openai")
    key = make_key(site)
    for executor in api.executors.idle:
        executor.shutdown(wait=True)
    api.executors.idle.clear()
    answer = threading.Event()
    upstream.script(flavor="embeddings", gate=answer)  # the vendor answers once the test says so
    raw = json.dumps({"model": "text-embedding-3-small", "input": "hello"}).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/embeddings",
        "raw_path": b"/v1/embeddings",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"authorization", f"Bearer {key}".encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }

    async def cancelled_mid_step():
        talk = ApplicationCommunicator(application, scope)
        await talk.send_input({"type": "http.request", "body": raw, "more_body": False})
        for _ in range(1000):  # the step has reached the vendor, which holds its answer
            if upstream.requests_for("openai"):
                break
            await asyncio.sleep(0.01)
        talk.future.cancel()  # as a stopping server cancels its application's tasks
        with contextlib.suppress(asyncio.CancelledError):
            await talk.future
        return list(api.executors.idle)

    try:
        assert async_to_sync(cancelled_mid_step)() == []  # the busy thread was not kept
    finally:
        answer.set()
    for thread in threading.enumerate():
        if thread.name.startswith("v1-request"):
            thread.join(30)
    usage.flush()
    assert list(AIUsage.objects.filter(site=site).values_list("service", "status")) == [("v1.embeddings", "ok")]


def test_an_idle_request_thread_is_kept_and_a_busy_one_is_not():
    from panel.api_handler import _Executors

    executors = _Executors()
    idle = executors.take()
    idle.submit(int).result()
    executors.give(idle)
    assert executors.idle == [idle]
    busy = executors.take()
    release = threading.Event()
    step = busy.submit(release.wait)
    executors.give(busy)
    assert executors.idle == [] and executors.take() is not busy
    release.set()
    assert step.result(10)


def test_request_started_runs_on_the_requests_thread_before_its_first_query(emulated_site, make_key, upstream):
    """`request_started` (Django's `close_old_connections`: a stale or broken connection is closed, a health
    check armed) is queued on the request's kept thread, not awaited in a hop of its own: it still runs on the
    thread whose connection the request uses, before the request's first query (here: a cold key's lookup,
    on a fresh thread, so it is also the thread's first connection)."""
    from django.core.signals import request_started
    from django.db.backends.signals import connection_created

    from panel.asgi import api

    key = make_key(emulated_site("openai"))
    for executor in api.executors.idle:
        executor.shutdown(wait=True)
    api.executors.idle.clear()
    events: list[tuple[str, str]] = []

    def on_started(**kwargs):
        events.append(("started", threading.current_thread().name))

    def on_connection(**kwargs):
        events.append(("connection", threading.current_thread().name))

    request_started.connect(on_started)
    connection_created.connect(on_connection)
    try:
        status, _, _ = asgi("POST", "/v1/chat/completions", CHAT, {"Authorization": f"Bearer {key}"})
    finally:
        request_started.disconnect(on_started)
        connection_created.disconnect(on_connection)
    assert status == 200
    assert [name for name, _ in events[:2]] == ["started", "connection"], events
    assert events[0][1] == events[1][1] and events[0][1].startswith("v1-request"), events


def test_a_failing_request_started_receiver_is_raised_not_lost(emulated_site, make_key, upstream):
    """The receivers run without being awaited, but their failure still reaches the server (which logs it)."""
    from django.core.signals import request_started

    key = make_key(emulated_site("openai"))

    def broken(**kwargs):
        raise RuntimeError("receiver broke")

    request_started.connect(broken)
    try:
        with pytest.raises(RuntimeError, match="receiver broke"):
            asgi("POST", "/v1/chat/completions", CHAT, {"Authorization": f"Bearer {key}"})
    finally:
        request_started.disconnect(broken)


def test_a_plain_v1_call_leaves_the_event_loop_twice(emulated_site, make_key, upstream, monkeypatch):
    """One hop before the upstream request (the key, the body, and the call prepared and opened: guardrails,
    cache, limits, budget, the walk to the first candidate), one after it (`_close`); the key warm."""
    from integrations.ai.gateway import service as gateway_service
    from integrations.api.v1 import views

    key = make_key(emulated_site("openai"))
    assert asgi("POST", "/v1/chat/completions", CHAT, {"Authorization": f"Bearer {key}"})[0] == 200  # warm
    hops: list[str] = []
    real = gateway_service.offload

    async def counted(func, *args, **kwargs):
        hops.append(getattr(func, "__name__", repr(func)))
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(gateway_service, "offload", counted)
    monkeypatch.setattr(views, "offload", counted)
    status, _, body = asgi("POST", "/v1/chat/completions", CHAT, {"Authorization": f"Bearer {key}"})
    assert status == 200 and body["choices"][0]["message"]["content"]
    assert hops == ["_admit_request", "_close"], hops
