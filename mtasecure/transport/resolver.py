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
import os
import socket
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import dns.rcode
from pydantic import BaseModel, ConfigDict, model_validator

from mtasecure._resolution import MAX_CNAME_CHAIN, Question, Resolution
from mtasecure._wire import FLAG_TC, Reply, parse_reply
from mtasecure.dnssec import DnsAnswer
from mtasecure.errors import DnsError, TransportTimeout, UsageError
from mtasecure.transport._closing import AsyncClosing

__all__ = [
    "DEFAULT_LIFETIME",
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_PORT",
    "DEFAULT_RETRIES",
    "DEFAULT_SOCKETS_PER_SERVER",
    "DEFAULT_TIMEOUT",
    "MAX_DATAGRAMS_PER_QUERY",
    "MAX_READS_PER_WAKEUP",
    "MAX_SOCKETS_PER_SERVER",
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
MAX_DATAGRAMS_PER_QUERY = 8
"""Most datagrams kept for one waiting query ID (forged or stale ones included)."""
DEFAULT_SOCKETS_PER_SERVER = 4
"""Bulk mode: UDP sockets kept open per nameserver."""
MAX_SOCKETS_PER_SERVER = 64
"""Bulk mode: most UDP sockets per nameserver a caller may ask for."""
MAX_READS_PER_WAKEUP = 64
"""Most datagrams read from a socket each time the event loop finds it readable."""
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

    @model_validator(mode="before")
    @classmethod
    def _check(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        try:
            ip = ipaddress.ip_address(str(data.get("address", "")))
        except ValueError as exc:
            raise ValueError(
                f"nameserver address {data.get('address')!r} is not an IP address"
            ) from exc
        port = data.get("port", DEFAULT_PORT)
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"nameserver port {port!r} is not 1-65535")
        return {**data, "address": str(ip), "trusted": data.get("trusted", ip.is_loopback)}

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


class _Waiter:
    """Datagrams that arrived for one query ID, and the future a query waits on."""

    __slots__ = ("backlog", "future")

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future
        self.backlog: list[bytes] = []


class _UdpChannel:
    """One connected, non-blocking UDP socket to one nameserver; replies matched by ID.

    The socket is connected, so the kernel drops datagrams from any other
    address or port. Queries waiting on it are keyed by their 16-bit ID; a
    datagram for no waiting ID is dropped (RFC 5452 §4.3), and at most
    :data:`MAX_DATAGRAMS_PER_QUERY` are kept for one ID. When the socket is
    readable, up to :data:`MAX_READS_PER_WAKEUP` datagrams are read at once
    (asyncio's datagram transport reads one per loop turn, which bounds
    bulk mode).
    """

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        self.sock = sock
        self.loop = loop
        self.waiting: dict[int, _Waiter] = {}
        self.closed = False
        loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        for _ in range(MAX_READS_PER_WAKEUP):
            try:
                data = self.sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # ICMP port unreachable and friends: every query waiting here fails now.
                self._fail_all(DnsError(f"nameserver unreachable: {exc}"))
                return
            self.datagram_received(data)

    def datagram_received(self, data: bytes) -> None:
        if len(data) < 12:
            return
        waiter = self.waiting.get(int.from_bytes(data[:2], "big"))
        if waiter is not None and len(waiter.backlog) < MAX_DATAGRAMS_PER_QUERY:
            waiter.backlog.append(data)
            if not waiter.future.done():
                waiter.future.set_result(None)

    def _fail_all(self, error: DnsError) -> None:
        for waiter in self.waiting.values():
            if not waiter.future.done():
                waiter.future.set_exception(error)

    def free_id(self) -> int:
        """A random query ID not in use on this socket (RFC 5452 §9.2)."""
        while True:
            qid = _random_id()
            if qid not in self.waiting:
                return qid

    async def exchange(self, question: Question, timeout: float) -> Reply:
        """Send ``question`` with a fresh random ID and wait for the reply to it.

        Datagrams with the right ID but another question (or not a reply)
        are stale or forged: they are skipped and the wait goes on (RFC 5452
        §9.1). A datagram with the right ID that cannot be read fails the try.

        Raises:
            TransportTimeout: no matching reply within ``timeout``.
            DnsError: the reply is malformed, or the socket failed.
        """
        if self.closed:
            raise DnsError("the socket is closed")
        loop = self.loop
        qid = self.free_id()
        waiter = _Waiter(loop.create_future())
        self.waiting[qid] = waiter
        expiry = loop.call_later(timeout, _expire, waiter, timeout)
        try:
            try:
                self.sock.send(question.to_wire(qid))
            except OSError as exc:  # a full send buffer included: this try fails
                raise DnsError(f"cannot send: {exc}") from exc
            while True:
                while waiter.backlog:
                    reply = parse_reply(waiter.backlog.pop(0))
                    if reply.answers(qid, question.key, question.rdtype):
                        return reply
                await waiter.future
                if not waiter.backlog:
                    raise TransportTimeout(f"no reply within {timeout}s")
                waiter.future = loop.create_future()
        finally:
            expiry.cancel()
            self.waiting.pop(qid, None)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self._fail_all(DnsError("the socket was closed"))


_id_pool: list[int] = []


def _random_id() -> int:
    """A 16-bit ID from the OS's CSPRNG, drawn 256 at a time to save system calls."""
    if not _id_pool:
        data = os.urandom(512)
        _id_pool.extend(int.from_bytes(data[i : i + 2], "big") for i in range(0, 512, 2))
    return _id_pool.pop()


def _expire(waiter: _Waiter, timeout: float) -> None:
    if not waiter.future.done():
        waiter.future.set_result(None)  # woken with an empty backlog: timed out


def _open_udp(server: Nameserver) -> _UdpChannel:
    """A UDP socket connected to ``server`` from a random ephemeral port (RFC 5452 §9.2)."""
    family = socket.AF_INET6 if ":" in server.address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.connect((server.address, server.port))
    except OSError as exc:
        sock.close()
        raise DnsError(f"cannot open a UDP socket to {server}: {exc}") from exc
    return _UdpChannel(sock, asyncio.get_running_loop())


async def _tcp_exchange(server: Nameserver, question: Question, timeout: float) -> Reply:
    """One query over TCP with a 2-byte length prefix (RFC 1035 §4.2.2, RFC 7766)."""
    qid = _random_id()
    wire = question.to_wire(qid)
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
    reply = parse_reply(data)
    if not reply.answers(qid, question.key, question.rdtype):
        raise DnsError(f"TCP reply from {server} does not answer the query")
    return reply


class DnsResolver(AsyncClosing):
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
        deadline = asyncio.get_running_loop().time() + self.lifetime
        servers = self.nameservers
        try:
            while (query := resolution.next_query()) is not None:
                # The CD re-query after a SERVFAIL goes to the validator that
                # failed: only its answer tells its "bogus" from its breakdown.
                asked = servers if query.checking_disabled else self.nameservers
                reply, server = await self._ask(query, deadline, asked)
                servers = (server,)
                resolution.feed(reply, trusted=server.trusted)
        except DnsError as exc:
            resolution.give_up(str(exc))
        return resolution.answer()

    async def _ask(
        self, query: Question, deadline: float, servers: Sequence[Nameserver] | None = None
    ) -> tuple[Reply, Nameserver]:
        """Try each of ``servers`` (all by default), ``retries + 1`` rounds; TCP when truncated.

        Each try waits at most :attr:`timeout`, and never past ``deadline``
        (the lookup's lifetime).
        """
        loop = asyncio.get_running_loop()
        servers = self.nameservers if servers is None else servers
        problems: list[str] = []
        for _ in range(self.retries + 1):
            for server in servers:
                timeout = min(self.timeout, deadline - loop.time())
                if timeout <= 0:
                    raise DnsError(f"no answer within the lifetime of {self.lifetime}s")
                try:
                    reply = await self._udp(server, query, timeout)
                    if reply.flags & FLAG_TC:
                        timeout = max(deadline - loop.time(), 0.001)
                        reply = await _tcp_exchange(server, query, min(self.timeout, timeout))
                except (DnsError, TransportTimeout) as exc:
                    problems.append(f"{server}: {exc}")
                    continue
                if reply.rcode in _RETRY_RCODES:
                    problems.append(f"{server}: {dns.rcode.to_text(reply.rcode)}")  # type: ignore[arg-type]
                    continue
                return reply, server
        raise DnsError("no usable reply: " + "; ".join(problems[-len(servers) :]))

    async def _udp(self, server: Nameserver, query: Question, timeout: float) -> Reply:
        channel = _open_udp(server)
        try:
            return await channel.exchange(query, timeout)
        finally:
            channel.close()


class BulkResolver(DnsResolver):
    """A :class:`DnsResolver` for scanning many domains: few sockets, many queries.

    A small pool of UDP sockets per nameserver (``sockets_per_server``) stays
    open; up to ``max_in_flight`` queries share them, matched to their replies
    by a random 16-bit ID, and taken round-robin. More than one socket lets a
    multi-threaded server (Unbound, Knot with ``SO_REUSEPORT``) spread the
    load: it hashes each source address and port to one thread. TCP is still
    used when a reply is truncated.

    Source ports: every query on a shared socket leaves from one of a few
    ports, so an off-path attacker has little more than the 16-bit ID to
    guess (RFC 5452 §9.2 asks for port randomisation too). Use bulk mode
    towards a validator on loopback or on a network you trust; the default
    :class:`DnsResolver` uses a fresh random port per query.

    Args:
        max_in_flight: most queries outstanding at once (:data:`DEFAULT_MAX_IN_FLIGHT`).
        sockets_per_server: UDP sockets kept per nameserver
            (:data:`DEFAULT_SOCKETS_PER_SERVER`).
        **kwargs: as for :class:`DnsResolver`.
    """

    def __init__(
        self,
        nameservers: Sequence[str | Nameserver] | None = None,
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        sockets_per_server: int = DEFAULT_SOCKETS_PER_SERVER,
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
        if not 0 < sockets_per_server <= MAX_SOCKETS_PER_SERVER:
            raise UsageError(f"sockets_per_server must be between 1 and {MAX_SOCKETS_PER_SERVER}")
        self.max_in_flight = max_in_flight
        self.sockets_per_server = sockets_per_server
        self._slots = asyncio.Semaphore(max_in_flight)
        self._pools: dict[Nameserver, list[_UdpChannel]] = {}
        self._turn = 0

    async def aclose(self) -> None:
        """Close the shared sockets."""
        await super().aclose()
        for pool in self._pools.values():
            for channel in pool:
                channel.close()
        self._pools.clear()

    async def resolve_many(self, queries: Iterable[tuple[str, str]]) -> list[DnsAnswer]:
        """Resolve many ``(name, rdtype)`` pairs concurrently; answers in the same order."""
        return list(await asyncio.gather(*(self.resolve(n, t) for n, t in queries)))

    def _channel(self, server: Nameserver) -> _UdpChannel:
        if self._closed:
            raise DnsError("the resolver is closed")
        pool = self._pools.setdefault(server, [])
        self._turn = (self._turn + 1) % self.sockets_per_server
        if self._turn >= len(pool):
            pool.append(_open_udp(server))
            return pool[-1]
        channel = pool[self._turn]
        if channel.closed:  # failed (e.g. ICMP unreachable): replace it
            channel = pool[self._turn] = _open_udp(server)
        return channel

    async def _udp(self, server: Nameserver, query: Question, timeout: float) -> Reply:
        async with self._slots:
            return await self._channel(server).exchange(query, timeout)
