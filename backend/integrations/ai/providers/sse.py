"""Vendor streams read straight off the SDK's HTTP response: lines -> events -> JSON chunks.

Why: the `openai` SDK makes a typed model of every chunk it streams (its lenient `construct`, ~70 µs a
chunk, plus its byte-level event decoder), and a stream of 200 tokens is 200 chunks. At a thousand
concurrent streams of 20 tokens a second that parse alone is more CPU than two cores have (issue 22).
The SDK still makes the request (authentication, retries, status errors before the first byte, the
outbound policy's transport); only the body of its response is read here, by the same rules as its
decoder: `data:` lines of one event joined with newlines, `event:` kept, `:` comment lines (OpenRouter's
keep-alives) skipped, a blank line ends an event, `data: [DONE]` ends the stream, and an event whose
JSON carries `error` raises the SDK's `APIError`. A transport failure while reading raises the SDK's
`APITimeoutError` / `APIConnectionError`, so `BaseProvider.translate_error` maps it as before.

The chunks come out as plain dicts; `openai_provider._ChunkReader` reads the common ones (a text delta)
directly and builds the SDK's model only for the rare ones (usage, tool calls).

Anthropic's streams are read the same way (`read=read_named`, by the `anthropic` SDK's rules for its named
events): its SDK also made a typed model of every event, and read the body to its end after `message_stop`
with no bound, so a server that held the body open held the call until the read timeout.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any


class _Decoder:
    """One server-sent-event stream's decoding state (the fields of the event being read)."""

    def __init__(self) -> None:
        self.event: str | None = None
        self.data: list[str] = []

    def line(self, line: str) -> tuple[str | None, str] | None:
        """Take one line; the finished event's (event, data) at a blank line, else None."""
        if not line:
            if not self.data:
                self.event = None
                return None
            finished = (self.event, "\n".join(self.data))
            self.event, self.data = None, []
            return finished
        if line[0] == ":":
            return None
        name, _, value = line.partition(":")
        if value[:1] == " ":
            value = value[1:]
        if name == "data":
            self.data.append(value)
        elif name == "event":
            self.event = value
        return None


def _chunk(sdk: Any, response: Any, data: str) -> dict[str, Any] | None:
    """The JSON chunk of one event's data; None at `[DONE]`. An in-stream error raises the SDK's APIError."""
    if data.startswith("[DONE]"):
        return None
    chunk = json.loads(data)
    if not isinstance(chunk, dict):
        raise sdk.APIResponseValidationError(response=response, body=chunk, message="A stream chunk is not an object.")
    if chunk.get("error"):
        error = chunk["error"]
        message = error.get("message") if isinstance(error, dict) else None
        if not message or not isinstance(message, str):
            message = "An error occurred during streaming"
        raise sdk.APIError(message=message, request=response.request, body=error)
    return chunk


_DONE: dict[str, Any] = {}  # what `_read` returns at `data: [DONE]`


def _read(decoder: _Decoder, sdk: Any, response: Any, line: str) -> dict[str, Any] | None:
    """One line of the body: the chunk its event ends with, `_DONE`, or None (the event goes on)."""
    event = decoder.line(line)
    if event is None:
        return None
    chunk = _chunk(sdk, response, event[1])
    return _DONE if chunk is None else chunk


def read_named(decoder: _Decoder, sdk: Any, response: Any, line: str) -> dict[str, Any] | None:
    """`_read` for Anthropic's format, by its SDK's rules: events are named; `ping`, unnamed and empty ones are
    skipped; `message_stop` ends the stream (`_DONE`: the rest of the body is drained, never waited for); an
    `error` event raises the SDK's `APIError` with the vendor's message (its own stream raised a status error
    carrying the response's 200, which read as an unknown failure)."""
    event = decoder.line(line)
    if event is None:
        return None
    name, data = event
    if name is None or name == "ping" or not data:
        return None
    if name == "message_stop":
        return _DONE
    if name == "error":  # as an OpenAI-format stream's error chunk: no status, so a `ProviderUnavailable`
        try:
            body: Any = json.loads(data)
        except ValueError:
            body = data
        error = body.get("error") if isinstance(body, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        if not message or not isinstance(message, str):
            message = "An error occurred during streaming"
        raise sdk.APIError(message=message, request=response.request, body=error)
    payload = json.loads(data)
    if not isinstance(payload, dict):
        message = "A stream event is not an object."
        raise sdk.APIResponseValidationError(response=response, body=payload, message=message)
    return payload


Read = Callable[[_Decoder, Any, Any, str], "dict[str, Any] | None"]


@contextmanager
def _transport_errors(sdk: Any, request: Any) -> Iterator[None]:
    """A transport failure while the body is read, raised as the SDK raises it."""
    import httpx2

    try:
        yield
    except httpx2.TimeoutException as err:
        raise sdk.APITimeoutError(request=request) from err
    except httpx2.TransportError as err:
        raise sdk.APIConnectionError(request=request) from err


def chunks(sdk: Any, response: Any, read: Read = _read) -> Iterator[dict[str, Any]]:
    """The JSON chunks of an SDK stream's response (`stream.response`), until `[DONE]` or the body ends;
    after `[DONE]` the rest of the body is read (`drain_sync`). `read=read_named`: Anthropic's events."""
    decoder = _Decoder()
    with _transport_errors(sdk, response.request):
        for line in response.iter_lines():
            if (chunk := read(decoder, sdk, response, line)) is _DONE:
                drain_sync(response)
                return
            if chunk is not None:
                yield chunk


async def achunks(sdk: Any, response: Any, read: Read = _read) -> AsyncIterator[dict[str, Any]]:
    """`chunks` for the SDK's async stream; after `[DONE]` the rest of the body is read (`drain`).

    A body sent as is (no `Content-Encoding`, a stream's usual case) is split into lines here, off the raw
    byte stream (`response.stream`): httpx's `aiter_lines` puts four generators and two decoders between
    the socket and each line, the largest cost of a chunk after the socket itself (issue 22)."""
    decoder = _Decoder()
    with _transport_errors(sdk, response.request):
        if response.headers.get("content-encoding", "identity").lower() not in ("identity", ""):
            async for line in response.aiter_lines():
                if (chunk := read(decoder, sdk, response, line)) is _DONE:
                    await drain(response)
                    return
                if chunk is not None:
                    yield chunk
            return
        lines = _Lines()
        async for data in response.stream:
            for line in lines.feed(data):
                if (chunk := read(decoder, sdk, response, line)) is _DONE:
                    await drain(response)
                    return
                if chunk is not None:
                    yield chunk
        for line in lines.end():
            if (chunk := read(decoder, sdk, response, line)) is _DONE:
                return
            if chunk is not None:
                yield chunk


class _Lines:
    """Bytes in, text lines out, as `aiter_lines` splits them: at `\n`, `\r\n` or `\r`, a line's UTF-8
    decoded once it is whole (so a character split between two reads is never cut), undecodable bytes
    replaced."""

    def __init__(self) -> None:
        self.pending = b""

    def feed(self, data: bytes) -> list[str]:
        if self.pending:
            data = self.pending + data
        parts = data.splitlines(keepends=True)
        # the last part is whole only if it ends a line, and a final "\r" may be the first half of "\r\n"
        if parts and parts[-1][-1:] != b"\n":
            self.pending = parts.pop()
        else:
            self.pending = b""
        return [part.rstrip(b"\r\n").decode("utf-8", "replace") for part in parts]

    def end(self) -> list[str]:
        """The last line, if the body did not end with a line break."""
        rest, self.pending = self.pending, b""
        return [rest.rstrip(b"\r\n").decode("utf-8", "replace")] if rest else []


DRAIN_SECONDS = 0.1


async def drain(response: Any) -> None:
    """Read what follows `[DONE]` (an HTTP/1.1 chunked body's last, empty chunk) for at most DRAIN_SECONDS.

    Why: the connection goes back to the pool for the next call only once its response was read to the end;
    closed before that, it is dropped, and the next stream to the vendor pays a new TCP and TLS handshake
    before its first token. The SDK's own stream does the same, with the same bound (a server that never
    ends the body costs a tenth of a second, then the connection is dropped as before). Never raises."""
    if response.is_closed or response.http_version != "HTTP/1.1":
        return
    import anyio
    import httpx2
    from anyio.lowlevel import checkpoint

    try:
        with anyio.move_on_after(DRAIN_SECONDS):
            async for _ in response.stream:  # the raw body: nothing after [DONE] is decoded
                await checkpoint()
    except (httpx2.HTTPError, httpx2.StreamError):
        pass  # reading the end failed: the connection is dropped, the answer already read stands


def drain_sync(response: Any) -> None:
    """`drain` for the sync driver: the rest of the body, bounded by DRAIN_SECONDS in all. A blocking read has
    no cancel scope, so the bound is the read timeout the transport (httpcore) takes from the request each time
    the body is iterated: set to DRAIN_SECONDS for this read, and put back. Never raises."""
    if response.is_closed or response.http_version != "HTTP/1.1":
        return
    import httpx2

    extensions = response.request.extensions
    timeouts = extensions.get("timeout")
    extensions["timeout"] = {**(timeouts or {}), "read": DRAIN_SECONDS}
    deadline = time.monotonic() + DRAIN_SECONDS
    try:
        for _ in response.stream:  # the raw body: nothing after [DONE] is decoded
            if time.monotonic() > deadline:  # a server trickling bytes: bounded in all, not per read
                break
    except (httpx2.HTTPError, httpx2.StreamError):
        pass  # not ended in time, or reading failed: the connection is dropped, the answer already read stands
    finally:
        if timeouts is None:
            extensions.pop("timeout", None)
        else:
            extensions["timeout"] = timeouts
