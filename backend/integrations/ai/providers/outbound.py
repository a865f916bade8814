"""Where the server may connect when a site, not the deployment, chose the base URL.

A site admin can point their provider at their own endpoint (a proxy, an OpenAI-compatible
server). Without a policy that is a server-side request forgery: the test screen would POST to
any host, port and path they like, including the server's own loopback, the cloud metadata
address and the private network. So a site's base URL must be `https` on port 443 to a public
address, unless a superuser allowlisted it (`AI_OUTBOUND_ALLOWLIST`: hosts, `host:port`, IPs or
CIDR ranges, e.g. a local model server or the demo emulator).

The address is checked twice: statically when the URL is saved (scheme, port, literal IPs,
`localhost`), and at connect time on every address the name resolves to, inside the HTTP
client's network backend, so a DNS name that later resolves to a private address (DNS
rebinding) is refused before any packet is sent. The deployment's own URLs (from the
environment) are trusted and take none of this path.

This module knows nothing of Django: the allowlist is passed in.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_LOCAL_NAMES = ("localhost", "localhost.localdomain")
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa")


class OutboundRefused(Exception):
    """A connection the policy does not allow; raised before any connection is made."""


@dataclass(frozen=True)
class AllowEntry:
    """One allowlist entry: a host name, an IP or a network, optionally with a port."""

    host: str = ""
    network: IPNetwork | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> AllowEntry:
        text = text.strip().lower()
        if not text:
            raise ValueError("empty allowlist entry")
        port: int | None = None
        host = text
        if text.startswith("["):  # [::1]:8080
            host, _, rest = text[1:].partition("]")
            if rest.startswith(":"):
                port = int(rest[1:])
        elif text.count(":") == 1:  # host:port or 1.2.3.4:80 (a bare IPv6 has several colons)
            host, port_text = text.split(":")
            port = int(port_text)
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"port out of range in {text!r}")
        try:
            return cls(network=ipaddress.ip_network(host, strict=False), port=port)
        except ValueError:
            return cls(host=host.rstrip("."), port=port)

    def matches(self, host: str, port: int, address: IPAddress | None = None) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            candidate = address if address is not None else _literal_ip(host)
            return candidate is not None and _unmapped(candidate) in self.network
        return self.host == host.lower().rstrip(".")

    def __str__(self) -> str:
        base = str(self.network) if self.network is not None else self.host
        return f"{base}:{self.port}" if self.port is not None else base


def _literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052's well-known prefix: the last 32 bits are the IPv4
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215: translated somewhere local, never public


def _unmapped(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address carries, if it carries one, else the address itself.

    `::ffff:127.0.0.1` (mapped), `::127.0.0.1` (the deprecated "compatible" form), `64:ff9b::127.0.0.1`
    (NAT64), 6to4 (`2002:7f00:1::`) and Teredo's client address all reach the IPv4 address inside on a
    host or network that translates them, so they are judged as that address.
    """
    if not isinstance(address, ipaddress.IPv6Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    packed = address.packed
    if (packed[:12] == bytes(12) and int(address) > 1) or address in _NAT64:  # not :: or ::1 (judged as IPv6)
        return ipaddress.IPv4Address(packed[12:])
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return address


def is_public(address: IPAddress) -> bool:
    """Globally routable unicast: not loopback, private, shared (CGNAT), link-local, reserved or multicast,
    nor an IPv6 address that embeds such an IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address) and address in _NAT64_LOCAL:
        return False
    address = _unmapped(address)
    return address.is_global and not address.is_multicast


class OutboundPolicy:
    """The rules for one site-chosen base URL; `check_url` at save and request time, `check_address` at connect."""

    def __init__(self, allowlist: Iterable[str] = ()) -> None:
        self.allowlist = tuple(AllowEntry.parse(entry) for entry in allowlist if entry.strip())

    def __repr__(self) -> str:
        return f"OutboundPolicy(allowlist={[str(e) for e in self.allowlist]!r})"

    def allowed(self, host: str, port: int, address: IPAddress | None = None) -> bool:
        return any(entry.matches(host, port, address) for entry in self.allowlist)

    def check_url(self, url: str, field: str = "base URL") -> None:
        """Refuse what can be known from the URL alone (scheme, port, query, local names, literal IPs).

        `field` names the setting in the messages ("alert webhook URL"), so the admin knows which one to fix.
        """
        hint = "Ask a superuser to add it to AI_OUTBOUND_ALLOWLIST if it is meant to be reached."
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise OutboundRefused(f"The {field} is not a valid URL.") from None
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host:
            raise OutboundRefused(f"The {field} must be an http(s) URL with a host name.")
        if parts.username or parts.password:
            raise OutboundRefused(f"The {field} may not contain a user name or password.")
        if parts.query or parts.fragment:
            raise OutboundRefused(f"The {field} may not have a query string or fragment.")
        port = port or (443 if parts.scheme == "https" else 80)
        if self.allowed(host, port):
            return
        if parts.scheme != "https":
            raise OutboundRefused(f"A site's {field} must use https. {hint}")
        if port != 443:
            raise OutboundRefused(f"A site's {field} must use the standard https port 443. {hint}")
        address = _literal_ip(host)
        if address is not None and not is_public(address):
            raise OutboundRefused(f"The {field} points at a private, loopback or reserved address. {hint}")
        if host in _LOCAL_NAMES or host.endswith(_LOCAL_SUFFIXES) or "." not in host:
            raise OutboundRefused(f"The {field} names a local host. {hint}")

    def check_address(self, host: str, port: int, address: IPAddress) -> None:
        """At connect time: one resolved address of `host`."""
        if self.allowed(host, port, address):
            return
        if not is_public(address) or port != 443:
            raise OutboundRefused(
                "The base URL resolves to an address this server may not connect to (private, loopback, "
                "reserved, or not port 443). Ask a superuser to add it to AI_OUTBOUND_ALLOWLIST if it is meant "
                "to be reached."
            )

    def resolve(self, host: str, port: int) -> list[str]:
        """The addresses to connect to, every one of them checked; raises OutboundRefused."""
        literal = _literal_ip(host)
        if literal is not None:
            self.check_address(host, port, literal)
            return [str(literal)]
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            raise OutboundRefused("The base URL's host could not be reached.") from None
        addresses: list[str] = []
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            self.check_address(host, port, address)  # one bad address refuses the name: no partial trust
            if str(address) not in addresses:
                addresses.append(str(address))
        return addresses


def guarded_transport(policy: OutboundPolicy, httpx: Any, httpcore: Any, **transport_kwargs: Any) -> Any:
    """An httpx transport whose every TCP connection goes through `policy` (redirects included).

    `httpx`/`httpcore` are the modules the vendor SDK uses (passed in, so this module imports no
    HTTP stack of its own). The pool connects to the checked IP; TLS still verifies the host name.
    """
    transport = httpx.HTTPTransport(trust_env=False, **transport_kwargs)
    pool = transport._pool  # httpx builds the pool; only its network backend is swapped
    pool._network_backend = _GuardedBackend(policy, pool._network_backend, httpcore)
    return transport


class _GuardedBackend:
    """An httpcore network backend that resolves and checks before it connects."""

    def __init__(self, policy: OutboundPolicy, inner: Any, httpcore: Any) -> None:
        self.policy = policy
        self.inner = inner
        self.httpcore = httpcore

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> Any:
        addresses = self.policy.resolve(host, port)
        last: Exception | None = None
        for address in addresses:
            try:
                return self.inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (self.httpcore.ConnectError, self.httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> Any:
        raise OutboundRefused("Unix sockets are not allowed for a site's base URL.")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


def guarded_async_transport(
    policy: OutboundPolicy, httpx: Any, httpcore: Any, backend: Any = None, **transport_kwargs: Any
) -> Any:
    """`guarded_transport` for the SDKs' async clients: the same check before every connection, the name
    resolved off the event loop. `backend`: the network backend that connects once the check passed (by
    default httpcore's own)."""
    transport = httpx.AsyncHTTPTransport(trust_env=False, **transport_kwargs)
    pool = transport._pool
    pool._network_backend = _GuardedAsyncBackend(policy, backend or pool._network_backend, httpcore)
    return transport


class _GuardedAsyncBackend:
    """An async httpcore network backend that resolves and checks before it connects."""

    def __init__(self, policy: OutboundPolicy, inner: Any, httpcore: Any) -> None:
        self.policy = policy
        self.inner = inner
        self.httpcore = httpcore

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> Any:
        import asyncio

        if _literal_ip(host) is not None:  # an address: checked here, no lookup to keep off the loop
            addresses = self.policy.resolve(host, port)
        else:
            addresses = await asyncio.to_thread(self.policy.resolve, host, port)  # DNS blocks: never on the loop
        last: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (self.httpcore.ConnectError, self.httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> Any:
        raise OutboundRefused("Unix sockets are not allowed for a site's base URL.")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)
