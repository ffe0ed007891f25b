"""The default DNS resolvers: a stub that trusts the AD bit of chosen validators.

:class:`DnsResolver` sends each lookup from a fresh UDP socket (a new random
source port per query, plus a random 16-bit ID, against off-path spoofing —
RFC 5452 §9.2), falls back to TCP when a reply is truncated (RFC 7766 §5), and
tries each nameserver in turn with a per-try timeout, a number of retries and
a total lifetime. :class:`BulkResolver` keeps one UDP socket per nameserver
open and matches replies to queries by ID, so thousands of lookups can be in
flight over a handful of sockets.

What a reply means (secure, insecure, bogus, NXDOMAIN, CNAME chains) is decided
by the pure :class:`mtasecure._resolution.Resolution`; this module only moves
bytes. Neither resolver raises for a lookup that fails: the answer says
``failed=True`` with a ``why`` (see :class:`~mtasecure.dnssec.DnsAnswer`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import socket
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import dns.exception
import dns.flags
import dns.message
import dns.rcode
from pydantic import BaseModel, ConfigDict

from mtasecure._resolution import MAX_CNAME_CHAIN, Resolution
from mtasecure.dnssec import DnsAnswer
from mtasecure.errors import DnsError, TransportTimeout, UsageError

__all__ = [
    "DEFAULT_LIFETIME",
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_PORT",
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "RESOLV_CONF",
    "BulkResolver",
    "DnsResolver",
    "Nameserver",
    "system_nameservers",
]

DEFAULT_PORT = 53
"""The DNS port (RFC 1035 §4.2)."""
DEFAULT_TIMEOUT = 2.0
"""Seconds to wait for one reply from one nameserver (one try)."""
DEFAULT_RETRIES = 2
"""Extra rounds over all nameservers after the first one fails."""
DEFAULT_LIFETIME = 8.0
"""Seconds one lookup may take in all, CNAME re-queries and retries included."""
DEFAULT_MAX_IN_FLIGHT = 512
"""Bulk mode: most queries outstanding at once over the shared sockets."""
RESOLV_CONF = Path("/etc/resolv.conf")
"""Where :func:`system_nameservers` reads the system's nameservers."""

_RETRY_RCODES = frozenset({dns.rcode.REFUSED, dns.rcode.FORMERR, dns.rcode.NOTIMP})


class Nameserver(BaseModel):
    """A nameserver to ask, and whether its AD bit is believed.

    Attributes:
        address: an IPv4 or IPv6 address.
        port: the UDP and TCP port.
        trusted: believe its AD bit (RFC 4035 §4.9.3: only a validator
            reached over a secure channel). Defaults to ``True`` for loopback
            addresses and ``False`` for any other.
    """

    model_config = ConfigDict(frozen=True)

    address: str
    port: int = DEFAULT_PORT
    trusted: bool = False

    @classmethod
    def parse(cls, text: str, *, trusted: bool | None = None) -> Nameserver:
        """Read ``"127.0.0.1"``, ``"127.0.0.1:5353"``, ``"::1"`` or ``"[::1]:5353"``.

        Raises:
            UsageError: not an address with an optional port.
        """
        host, port = text.strip(), DEFAULT_PORT
        if host.startswith("["):
            host, _, rest = host[1:].partition("]")
            if rest:
                port = _port(rest.removeprefix(":"), text)
        elif host.count(":") == 1:
            host, _, rest = host.partition(":")
            port = _port(rest, text)
        try:
            ip = ipaddress.ip_address(host)
        except ValueError as exc:
            raise UsageError(f"nameserver {text!r} is not an IP address[:port]") from exc
        return cls(
            address=str(ip), port=port, trusted=ip.is_loopback if trusted is None else trusted
        )

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise UsageError(f"nameserver {whole!r} has a bad port")
    return int(text)


def system_nameservers(path: Path = RESOLV_CONF) -> tuple[Nameserver, ...]:
    """The ``nameserver`` lines of resolv.conf; ``127.0.0.1`` if there are none.

    Only loopback ones are trusted (see :class:`Nameserver`).
    """
    found = []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                found.append(Nameserver.parse(fields[1].split("%")[0]))
            except UsageError:
                continue
    return tuple(found) or (Nameserver.parse("127.0.0.1"),)


def _has_port(text: str) -> bool:
    text = text.strip()
    return "]:" in text if text.startswith("[") else text.count(":") == 1


def _nameservers(
    given: Iterable[str | Nameserver] | None, trusted: Iterable[str] | None
) -> tuple[Nameserver, ...]:
    servers = (
        system_nameservers()
        if given is None
        else tuple(s if isinstance(s, Nameserver) else Nameserver.parse(s) for s in given)
    )
    if not servers:
        raise UsageError("no nameserver given")
    if trusted is not None:
        wanted = [(Nameserver.parse(t), _has_port(t)) for t in trusted]
        servers = tuple(
            s.model_copy(
                update={
                    "trusted": any(
                        w.address == s.address and (not port or w.port == s.port)
                        for w, port in wanted
                    )
                }
            )
            for s in servers
        )
    return servers


class _UdpChannel(asyncio.DatagramProtocol):
    """One connected UDP socket to one nameserver; replies matched by ID.

    The socket is connected, so the kernel drops datagrams from any other
    address or port. Queries waiting on it are keyed by their 16-bit ID; a
    datagram for no waiting ID is dropped (RFC 5452 §4.3).
    """

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.waiting: dict[int, asyncio.Future[bytes]] = {}
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if len(data) < 12:
            return
        future = self.waiting.get(int.from_bytes(data[:2], "big"))
        if future is not None and not future.done():
            future.set_result(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and friends: every query on this socket fails now.
        for future in self.waiting.values():
            if not future.done():
                future.set_exception(DnsError(f"nameserver unreachable: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for future in self.waiting.values():
            if not future.done():
                future.set_exception(DnsError("the socket was closed"))

    def free_id(self) -> int:
        """A random query ID not in use on this socket."""
        while True:
            qid = secrets.randbits(16)
            if qid not in self.waiting:
                return qid

    async def exchange(self, query: dns.message.Message, timeout: float) -> dns.message.Message:
        """Send ``query`` (its ID is replaced) and wait for the reply to it.

        Raises:
            TransportTimeout: no matching reply within ``timeout``.
            DnsError: the reply is malformed, or the socket failed.
        """
        if self.transport is None or self.closed:
            raise DnsError("the socket is closed")
        loop = asyncio.get_running_loop()
        query.id = self.free_id()
        wire = query.to_wire()
        deadline = loop.time() + timeout
        self.transport.sendto(wire)
        try:
            while True:
                future: asyncio.Future[bytes] = loop.create_future()
                self.waiting[query.id] = future
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TransportTimeout(f"no reply within {timeout}s")
                try:
                    data = await asyncio.wait_for(future, remaining)
                except TimeoutError as exc:
                    raise TransportTimeout(f"no reply within {timeout}s") from exc
                reply = _parse(data)
                if query.is_response(reply):
                    return reply
                # Right ID, wrong question: a stale or forged reply; keep waiting.
        finally:
            self.waiting.pop(query.id, None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _parse(data: bytes) -> dns.message.Message:
    try:
        return dns.message.from_wire(data)
    except (dns.exception.DNSException, ValueError, IndexError, UnicodeError) as exc:
        raise DnsError(f"malformed reply: {exc}") from exc


async def _open_udp(server: Nameserver) -> _UdpChannel:
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in server.address else socket.AF_INET
    try:
        _, channel = await loop.create_datagram_endpoint(
            _UdpChannel, remote_addr=(server.address, server.port), family=family
        )
    except OSError as exc:
        raise DnsError(f"cannot open a UDP socket to {server}: {exc}") from exc
    return channel


async def _tcp_exchange(
    server: Nameserver, query: dns.message.Message, timeout: float
) -> dns.message.Message:
    """One query over TCP with a 2-byte length prefix (RFC 1035 §4.2.2, RFC 7766)."""
    wire = query.to_wire()
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(server.address, server.port)
            writer.write(len(wire).to_bytes(2, "big") + wire)
            await writer.drain()
            size = int.from_bytes(await reader.readexactly(2), "big")
            data = await reader.readexactly(size)
    except TimeoutError as exc:
        raise TransportTimeout(f"no TCP reply from {server} within {timeout}s") from exc
    except (OSError, asyncio.IncompleteReadError) as exc:
        raise DnsError(f"TCP exchange with {server} failed: {exc!r}") from exc
    finally:
        if writer is not None:
            writer.close()
    reply = _parse(data)
    if not query.is_response(reply):
        raise DnsError(f"TCP reply from {server} does not answer the query")
    return reply


class DnsResolver:
    """The default :class:`~mtasecure.transport.Resolver`: a DNSSEC-aware stub.

    Point it at a validating resolver (Unbound, BIND, Knot Resolver) and it
    reports ``secure`` for what that validator authenticated — if, and only
    if, you trust that validator (see :class:`Nameserver`).

    Args:
        nameservers: ``"address[:port]"`` strings or :class:`Nameserver`
            objects, asked in order; ``None`` reads :data:`RESOLV_CONF`.
        trusted: if given, exactly these nameservers (``"address[:port]"``)
            are trusted, overriding the loopback default.
        timeout: seconds per try (:data:`DEFAULT_TIMEOUT`).
        retries: extra rounds over the nameservers (:data:`DEFAULT_RETRIES`).
        lifetime: seconds per lookup in all (:data:`DEFAULT_LIFETIME`).
        max_chain: most CNAME links followed (:data:`~mtasecure._resolution.MAX_CNAME_CHAIN`).

    Use it as an async context manager, or call :meth:`aclose`.
    """

    def __init__(
        self,
        nameservers: Sequence[str | Nameserver] | None = None,
        *,
        trusted: Iterable[str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        lifetime: float = DEFAULT_LIFETIME,
        max_chain: int = MAX_CNAME_CHAIN,
    ) -> None:
        if timeout <= 0 or lifetime <= 0 or retries < 0 or max_chain < 0:
            raise UsageError("timeout and lifetime must be positive; retries, max_chain >= 0")
        self.nameservers = _nameservers(nameservers, trusted)
        self.timeout = timeout
        self.retries = retries
        self.lifetime = lifetime
        self.max_chain = max_chain
        self._closed = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the resolver; later lookups raise :class:`~mtasecure.errors.DnsError`."""
        self._closed = True

    async def resolve(self, name: str, rdtype: str) -> DnsAnswer:
        """Look up ``rdtype`` records at ``name``, following CNAMEs.

        Returns:
            The answer with its security status. Timeouts, malformed replies,
            SERVFAIL and the like give ``failed=True`` with a ``why``.

        Raises:
            UsageError: ``name`` is not a DNS name, or the type is unsupported.
            DnsError: the resolver was closed.
        """
        if self._closed:
            raise DnsError("the resolver is closed")
        resolution = Resolution(name, rdtype, max_chain=self.max_chain)
        try:
            async with asyncio.timeout(self.lifetime):
                while (query := resolution.next_query()) is not None:
                    reply, server = await self._ask(query)
                    resolution.feed(reply, trusted=server.trusted)
        except TimeoutError:
            resolution.give_up(f"no answer within the lifetime of {self.lifetime}s")
        except DnsError as exc:
            resolution.give_up(str(exc))
        return resolution.answer()

    async def _ask(self, query: dns.message.Message) -> tuple[dns.message.Message, Nameserver]:
        """Try every nameserver, ``retries + 1`` rounds; TCP when a reply is truncated."""
        problems: list[str] = []
        for _ in range(self.retries + 1):
            for server in self.nameservers:
                try:
                    reply = await self._udp(server, query)
                    if reply.flags & dns.flags.TC:
                        reply = await _tcp_exchange(server, query, self.timeout)
                except DnsError as exc:  # TransportTimeout included
                    problems.append(f"{server}: {exc}")
                    continue
                if reply.rcode() in _RETRY_RCODES:
                    problems.append(f"{server}: {dns.rcode.to_text(reply.rcode())}")
                    continue
                return reply, server
        raise DnsError("no usable reply: " + "; ".join(problems[-len(self.nameservers) :]))

    async def _udp(self, server: Nameserver, query: dns.message.Message) -> dns.message.Message:
        channel = await _open_udp(server)
        try:
            return await channel.exchange(query, self.timeout)
        finally:
            channel.close()


class BulkResolver(DnsResolver):
    """A :class:`DnsResolver` for scanning many domains: few sockets, many queries.

    One UDP socket per nameserver stays open and up to ``max_in_flight``
    queries share it, matched to their replies by a random 16-bit ID. TCP is
    still used when a reply is truncated.

    Source ports: every query on a shared socket leaves from the same port,
    so an off-path attacker has only the 16-bit ID to guess (RFC 5452 §9.2
    asks for port randomisation too). Use bulk mode towards a validator on
    loopback or a network you trust; the default :class:`DnsResolver` uses
    a fresh port per query.

    Args:
        max_in_flight: most queries outstanding at once (:data:`DEFAULT_MAX_IN_FLIGHT`).
        **kwargs: as for :class:`DnsResolver`.
    """

    def __init__(
        self,
        nameservers: Sequence[str | Nameserver] | None = None,
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        trusted: Iterable[str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        lifetime: float = DEFAULT_LIFETIME,
        max_chain: int = MAX_CNAME_CHAIN,
    ) -> None:
        super().__init__(
            nameservers,
            trusted=trusted,
            timeout=timeout,
            retries=retries,
            lifetime=lifetime,
            max_chain=max_chain,
        )
        if not 0 < max_in_flight < 65536:
            raise UsageError("max_in_flight must be between 1 and 65535 (16-bit query IDs)")
        self.max_in_flight = max_in_flight
        self._slots = asyncio.Semaphore(max_in_flight)
        self._channels: dict[Nameserver, _UdpChannel] = {}
        self._opening: dict[Nameserver, asyncio.Lock] = {}

    async def aclose(self) -> None:
        """Close the shared sockets."""
        await super().aclose()
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()

    async def resolve_many(self, queries: Iterable[tuple[str, str]]) -> list[DnsAnswer]:
        """Resolve many ``(name, rdtype)`` pairs concurrently; answers in the same order."""
        return list(await asyncio.gather(*(self.resolve(n, t) for n, t in queries)))

    async def _udp(self, server: Nameserver, query: dns.message.Message) -> dns.message.Message:
        async with self._slots:
            channel = self._channels.get(server)
            if channel is None or channel.closed:
                lock = self._opening.setdefault(server, asyncio.Lock())
                async with lock:
                    channel = self._channels.get(server)
                    if channel is None or channel.closed:
                        if self._closed:
                            raise DnsError("the resolver is closed")
                        channel = await _open_udp(server)
                        self._channels[server] = channel
            return await channel.exchange(query, self.timeout)
