"""An httpcore network backend on asyncio's own transports, for the vendor SDKs' async clients.

Why: under asyncio, httpcore2 reaches the socket through anyio, and every read pays for an anyio
cancel scope with a loop timer, a `@contextmanager` exception map and a task lookup; a stream of
200 tokens is 200 reads, and at a thousand concurrent streams that overhead was a sixth of a
worker's CPU (issue 22). Connecting went through anyio's happy-eyeballs task group too: 1.9-3.0 ms
before a stream's first request was sent, where asyncio's own connect takes well under one.

This backend is the loop's transport and a small protocol:
- a read returns what is already buffered at once, else waits on a plain future (a `call_later`
  timer only when the read has a timeout);
- a write hands the bytes to the transport and waits only when the transport pushes back;
- the protocol keeps reading while the connection idles in the pool (up to `HIGH_WATER` bytes), so
  "is this idle connection still usable?" (`is_readable`) is answered from its state, no syscall;
- TLS is `loop.start_tls` with the handshake bounded by the connect timeout.
Failures raise httpcore2's own exception types, so httpx and the SDKs map them as before.

The outbound policy (`outbound.py`) wraps this backend; the upstream pull request that would make a
native asyncio backend httpcore2's default (pydantic/httpx2#1170) is not released. Knows nothing of Django.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore2

HIGH_WATER = 256 * 1024  # buffered and unread: stop reading the socket here ...
LOW_WATER = 64 * 1024  # ... and start again once the reader is below this


class _Protocol(asyncio.Protocol):
    """One connection's received bytes, end of stream, failure, and flow control both ways."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: Any = None
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.eof = False
        self.error: BaseException | None = None  # the connection was lost with this error
        self.reader: asyncio.Future[None] | None = None  # a read waiting for bytes
        self.writer: asyncio.Future[None] | None = None  # a write waiting for the transport to drain
        self.write_paused = False
        self.read_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > HIGH_WATER and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False  # close the transport (HTTP/1.1 does not half-close)

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        if exc is not None:
            self.error = exc
        self._wake_reader()
        if self.writer is not None and not self.writer.done():
            self.writer.set_result(None)  # the write then finds the connection gone

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.writer is not None and not self.writer.done():
            self.writer.set_result(None)

    def _wake_reader(self) -> None:
        if self.reader is not None and not self.reader.done():
            self.reader.set_result(None)

    def take(self, max_bytes: int) -> bytes:
        """Up to `max_bytes` of what was received, in arrival order (a received block is handed over whole
        when it fits, so the usual read copies nothing)."""
        first = self.chunks.popleft()
        if len(first) > max_bytes:
            self.chunks.appendleft(first[max_bytes:])
            first = first[:max_bytes]
        self.buffered -= len(first)
        if self.read_paused and self.buffered < LOW_WATER:
            self.read_paused = False
            self.transport.resume_reading()
        return first


def _expire(waiter: asyncio.Future[None], error: Exception) -> None:
    if not waiter.done():
        waiter.set_exception(error)


class AsyncioStream(httpcore2.AsyncNetworkStream):
    """One TCP (or TLS) connection on an asyncio transport."""

    def __init__(self, transport: Any, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        if not protocol.chunks and not protocol.eof:
            await self._wait("reader", timeout, httpcore2.ReadTimeout)
        if protocol.chunks:
            return protocol.take(max_bytes)
        if protocol.error is not None:
            raise httpcore2.ReadError(str(protocol.error) or type(protocol.error).__name__)
        return b""  # the peer closed the connection

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        protocol = self._protocol
        if protocol.eof or self._transport.is_closing():
            raise httpcore2.WriteError(str(protocol.error or "the connection is closed"))
        try:
            self._transport.write(buffer)
        except (OSError, RuntimeError) as exc:
            raise httpcore2.WriteError(str(exc)) from exc
        while protocol.write_paused and not protocol.eof:
            await self._wait("writer", timeout, httpcore2.WriteTimeout)
        if protocol.eof and protocol.error is not None:
            raise httpcore2.WriteError(str(protocol.error))

    async def _wait(self, slot: str, timeout: float | None, timeout_error: type[Exception]) -> None:
        """Wait for the protocol to wake `slot` ("reader" or "writer"), at most `timeout` seconds."""
        protocol = self._protocol
        waiter = protocol.loop.create_future()
        setattr(protocol, slot, waiter)
        timer = None
        if timeout is not None:
            timer = protocol.loop.call_later(timeout, _expire, waiter, timeout_error("timed out"))
        try:
            await waiter
        finally:
            setattr(protocol, slot, None)
            if timer is not None:
                timer.cancel()

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        loop = self._protocol.loop
        try:
            transport = await loop.start_tls(
                self._transport,
                self._protocol,
                ssl_context,
                server_hostname=server_hostname,
                ssl_handshake_timeout=timeout,
            )
        except TimeoutError as exc:
            self._transport.close()
            raise httpcore2.ConnectTimeout(str(exc) or "TLS handshake timed out") from exc
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            self._transport.close()
            raise httpcore2.ConnectError(str(exc)) from exc
        if transport is None:  # the connection was closed during the handshake
            raise httpcore2.ConnectError("the connection closed during the TLS handshake")
        self._protocol.transport = transport
        return AsyncioStream(transport, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        if info == "is_readable":  # asked of idle connections: anything received, or the end, makes it unusable
            protocol = self._protocol
            return bool(protocol.chunks) or protocol.eof
        return None


class AsyncioBackend(httpcore2.AsyncNetworkBackend):
    """httpcore2's network backend on the running asyncio loop (see the module docstring)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local = (local_address, 0) if local_address else None
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_connection(
                    lambda: _Protocol(loop), host, port, local_addr=local, family=socket.AF_UNSPEC
                )
        except TimeoutError as exc:
            raise httpcore2.ConnectTimeout(str(exc) or "connect timed out") from exc
        except OSError as exc:
            raise httpcore2.ConnectError(str(exc)) from exc
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)  # asyncio already sets TCP_NODELAY
        return AsyncioStream(transport, protocol)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore2.AsyncNetworkStream:
        raise httpcore2.ConnectError("Unix sockets are not used for a vendor's API.")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def use_asyncio(client: Any) -> Any:
    """Give an httpx2 `AsyncClient`'s own transport (not a proxy's) this backend; returns the client."""
    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    if pool is not None and not isinstance(pool._network_backend, AsyncioBackend):
        pool._network_backend = AsyncioBackend()
    return client
