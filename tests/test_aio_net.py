"""The async clients' network backend on asyncio's own transports (`providers/aio_net.py`, issue 22).

Each test runs a small asyncio server on 127.0.0.1 and drives the backend the way httpcore2 does
(connect, write, read with a timeout, the pool's idle check, TLS), or the real `openai` SDK through a
provider's async client. No Django: the backend is part of the providers' leaf.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpcore2
import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from integrations.ai.providers import aio_net
from integrations.ai.providers.openai_provider import OpenAIProvider
from integrations.ai.providers.outbound import OutboundPolicy
from integrations.ai.providers.types import AIRequest, ProviderConfig

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,  # the production server's (uvicorn picks it up)
}
_loop_factory = asyncio.new_event_loop


@pytest.fixture(autouse=True, params=sorted(LOOPS))
def event_loop_kind(request: pytest.FixtureRequest) -> Any:
    """Every test on both event loops: asyncio's own and uvloop."""
    global _loop_factory
    _loop_factory = LOOPS[request.param]
    yield request.param
    _loop_factory = asyncio.new_event_loop


def run(main: Callable[[], Awaitable[Any]]) -> Any:
    """`main()` on a fresh loop of the test's kind, on a thread of its own: after the browser tests, Playwright
    leaves an event loop running on the test's thread, where another refuses to start."""

    def go() -> Any:
        with asyncio.Runner(loop_factory=_loop_factory) as runner:
            return runner.run(main())  # type: ignore[arg-type]

    with ThreadPoolExecutor(1) as thread:
        return thread.submit(go).result()


def serve(handler: Handler, scenario: Callable[[int], Awaitable[None]], tls: ssl.SSLContext | None = None) -> None:
    """Run `scenario(port)` against a server on 127.0.0.1 that answers each connection with `handler`."""

    async def main() -> None:
        server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=tls)
        try:
            await scenario(server.sockets[0].getsockname()[1])
        finally:
            server.close()

    run(main)


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # never answers; ends when the client goes
    writer.close()


def test_a_read_waits_at_most_its_timeout():
    async def scenario(port: int) -> None:
        stream = await aio_net.AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=5)
        await stream.write(b"GET / HTTP/1.1\r\n\r\n", timeout=5)
        started = asyncio.get_running_loop().time()
        with pytest.raises(httpcore2.ReadTimeout):
            await stream.read(65536, timeout=0.2)
        assert 0.15 < asyncio.get_running_loop().time() - started < 2
        await stream.aclose()

    serve(silent, scenario)


def test_bytes_arrive_in_order_and_a_slow_reader_pauses_the_socket():
    blob = bytes(range(256)) * 4096 * 4  # 4 MiB, far past the high-water mark

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(blob)
        await writer.drain()
        writer.close()

    async def scenario(port: int) -> None:
        stream = await aio_net.AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=5)
        protocol = stream._protocol  # type: ignore[attr-defined]
        for _ in range(200):  # let the server write while nothing reads
            await asyncio.sleep(0.005)
            if protocol.read_paused:
                break
        assert protocol.read_paused, "the socket kept being read with nobody reading"
        assert protocol.buffered <= aio_net.HIGH_WATER + 256 * 1024
        received = bytearray()
        while data := await stream.read(65536, timeout=5):
            assert len(data) <= 65536
            received += data
        assert bytes(received) == blob
        assert not protocol.read_paused

    serve(flood, scenario)


def test_an_idle_connection_the_peer_closed_reads_as_unusable():
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async def scenario(port: int) -> None:
        stream = await aio_net.AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=5)
        for _ in range(200):
            if stream.get_extra_info("is_readable"):
                break
            await asyncio.sleep(0.005)
        assert stream.get_extra_info("is_readable") is True
        assert await stream.read(65536, timeout=1) == b""
        with pytest.raises(httpcore2.WriteError):
            await stream.write(b"GET / HTTP/1.1\r\n\r\n")

    serve(hang_up, scenario)


def test_a_fresh_connection_is_not_readable_and_names_its_ends():
    async def scenario(port: int) -> None:
        stream = await aio_net.AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=5)
        assert stream.get_extra_info("is_readable") is False
        assert stream.get_extra_info("server_addr") == ("127.0.0.1", port)
        assert stream.get_extra_info("client_addr")[0] == "127.0.0.1"
        assert stream.get_extra_info("ssl_object") is None
        await stream.aclose()

    serve(silent, scenario)


def test_a_refused_connection_raises_connect_error():
    async def main() -> None:
        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        with pytest.raises(httpcore2.ConnectError):
            await aio_net.AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=5)

    run(main)


def _certificate() -> tuple[bytes, bytes]:
    """A self-signed certificate for `localhost` and 127.0.0.1 (PEM certificate, PEM key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), pem_key


@pytest.fixture
def tls(tmp_path):
    cert, key = _certificate()
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    return server, client


def test_tls_verifies_the_host_name_and_carries_the_bytes(tls):
    server_context, client_context = tls

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readexactly(5))
        await writer.drain()
        writer.close()

    async def scenario(port: int) -> None:
        stream = await aio_net.AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=5)
        secure = await stream.start_tls(client_context, server_hostname="localhost", timeout=5)
        assert secure.get_extra_info("ssl_object") is not None
        await secure.write(b"hello", timeout=5)
        assert await secure.read(65536, timeout=5) == b"hello"
        await secure.aclose()

        other = await aio_net.AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=5)
        with pytest.raises(httpcore2.ConnectError):  # the certificate does not name this host
            await other.start_tls(client_context, server_hostname="vendor.example", timeout=5)

    serve(echo, scenario, tls=server_context)


@pytest.mark.parametrize("guarded", [True, False], ids=["site-chosen URL", "deployment URL"])
def test_the_sdk_async_client_connects_through_this_backend(upstream, guarded):
    """Both kinds of async client (outbound policy or not) run on asyncio's transports, and a real SDK call
    over them answers."""
    policy = OutboundPolicy(["127.0.0.1"]) if guarded else None
    provider = OpenAIProvider(
        ProviderConfig(
            api_key="sk-proj-" + "ab" * 24,
            base_url=upstream.openai_base_url,
            default_model="gpt-4o-mini",
            outbound=policy,
        )
    )
    client = provider.async_http_client()
    backend = client._transport._pool._network_backend
    assert isinstance(getattr(backend, "inner", backend), aio_net.AsyncioBackend)

    async def call() -> str:
        request = AIRequest(messages=({"role": "user", "content": "Say hello"},), max_tokens=20)
        result = await provider.aexecute(request)
        return result.content

    assert run(call)
