"""Bad input and faults: a fake DNS server on loopback misbehaves, the resolver copes.

Each fault gives a defined answer (``failed`` with a ``why``, or a defined
status), never an exception from a dependency and never ``secure`` by mistake.
The server runs in-process on 127.0.0.1 (UDP and TCP on the same port).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtasecure.dnssec import Security
from mtasecure.errors import DnsError, UsageError
from mtasecure.transport import BulkResolver, DnsResolver

Handler = Callable[[dns.message.Message, str], "bytes | list[bytes] | None"]


def reply_to(
    query: dns.message.Message,
    *answers: str,
    rcode: int = dns.rcode.NOERROR,
    ad: bool = False,
    tc: bool = False,
) -> dns.message.Message:
    """A reply to ``query`` with answer RRs given as zone-file lines."""
    reply = dns.message.make_response(query)
    reply.set_rcode(rcode)
    if ad:
        reply.flags |= dns.flags.AD
    if tc:
        reply.flags |= dns.flags.TC
    for line in answers:
        reply.answer.append(dns.rrset.from_text(*_split(line)))
    return reply


def _split(line: str) -> list[str]:
    owner, ttl, rdclass, rdtype, data = line.split(None, 4)
    return [owner, ttl, rdclass, rdtype, data]


@dataclass
class FakeDnsServer:
    """UDP + TCP on one loopback port; ``handler(query, "udp"|"tcp")`` gives the bytes."""

    handler: Handler
    port: int = 0
    queries: list[tuple[str, dns.message.Message]] = field(default_factory=list)
    sources: list[object] = field(default_factory=list)
    _udp: asyncio.DatagramTransport | None = None
    _tcp: asyncio.Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _respond(self, data: bytes, kind: str) -> list[bytes]:
        query = dns.message.from_wire(data)
        self.queries.append((kind, query))
        out = self.handler(query, kind)
        if out is None:
            return []
        return out if isinstance(out, list) else [out]

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        server = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                server.sources.append(addr)
                for chunk in server._respond(data, "udp"):
                    self.transport.sendto(chunk, addr)  # type: ignore[attr-defined]

        for _ in range(20):
            transport, _ = await loop.create_datagram_endpoint(
                Udp, local_addr=("127.0.0.1", self.port)
            )
            self.port = transport.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._tcp_client, "127.0.0.1", self.port)
            except OSError:
                transport.close()
                self.port = 0
                continue
            self._udp = transport  # type: ignore[assignment]
            return
        raise RuntimeError("no port free for UDP and TCP")

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            size = int.from_bytes(await reader.readexactly(2), "big")
            data = await reader.readexactly(size)
            for chunk in self._respond(data, "tcp"):
                writer.write(chunk)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()


def tcp_frame(message: dns.message.Message | bytes) -> bytes:
    wire = message if isinstance(message, bytes) else message.to_wire()
    return len(wire).to_bytes(2, "big") + wire


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], asyncio.Future[FakeDnsServer]]]:
    servers: list[FakeDnsServer] = []

    async def start(handler: Handler) -> FakeDnsServer:
        server = FakeDnsServer(handler)
        await server.start()
        servers.append(server)
        return server

    yield start  # type: ignore[misc]
    for server in servers:
        await server.stop()


FAST = {"timeout": 0.2, "retries": 0, "lifetime": 2.0}


async def test_truncated_udp_reply_falls_back_to_tcp(serve) -> None:  # type: ignore[no-untyped-def]
    def handler(query: dns.message.Message, kind: str) -> bytes:
        if kind == "udp":
            return reply_to(query, tc=True).to_wire()
        return tcp_frame(reply_to(query, "a.test. 60 IN A 192.0.2.1", ad=True))

    server = await serve(handler)
    async with DnsResolver([server.address], **FAST) as r:
        answer = await r.resolve("a.test", "A")
    assert answer.records == ("192.0.2.1",)
    assert answer.security is Security.SECURE
    assert [k for k, _ in server.queries] == ["udp", "tcp"]


async def test_truncated_reply_and_tcp_refused_is_a_failure(serve) -> None:  # type: ignore[no-untyped-def]
    def handler(query: dns.message.Message, kind: str) -> bytes | None:
        return reply_to(query, tc=True).to_wire() if kind == "udp" else None

    server = await serve(handler)
    async with DnsResolver([server.address], **FAST) as r:
        answer = await r.resolve("a.test", "A")
    assert answer.failed
    assert answer.security is Security.INDETERMINATE
    assert "TCP" in answer.why


async def test_cut_off_datagram_is_malformed_not_a_crash(serve) -> None:  # type: ignore[no-untyped-def]
    def handler(query: dns.message.Message, kind: str) -> bytes:
        return reply_to(query, "a.test. 60 IN A 192.0.2.1", ad=True).to_wire()[:-3]

    server = await serve(handler)
    async with DnsResolver([server.address], **FAST) as r:
        answer = await r.resolve("a.test", "A")
    assert answer.failed
    assert "malformed" in answer.why
    assert answer.security is not Security.SECURE


async def test_garbage_with_the_right_id_is_malformed(serve) -> None:  # type: ignore[no-untyped-def]
    def handler(query: dns.message.Message, kind: str) -> bytes:
        return query.id.to_bytes(2, "big") + b"\x81\x80" + b"\xff" * 40

    server = await serve(handler)
    async with DnsResolver([server.address], **FAST) as r:
        answer = await r.resolve("a.test", "A")
    assert answer.failed
    assert "malformed" in answer.why


async def test_replies_with_wrong_ids_are_ignored_until_the_right_one(serve) -> None:  # type: ignore[no-untyped-def]
    def handler(query: dns.message.Message, kind: str) -> list[bytes]:
        forged = reply_to(query, "a.test. 60 IN A 203.0.113.66", ad=True)
        forged.id = (query.id + 1) % 65536
        real = reply_to(query, "a.test. 60 IN A 192.0.2.1")
        return [forged.to_wire(), real.to_wire()]

    server = await serve(handler)
    async with DnsResolver([server.address], **FAST) as r:
        answer = await r.resolve("a.test", "A")
    assert answer.records == ("192.0.2.1",)
    assert answer.security is Security.INSECURE


async def test_reply_for_another_question_is_ignored(serve) -> None:  # type: ignore[no-untyped-def]
    def handler(query: dns.message.Message, kind: str) -> list[bytes]:
        other = dns.message.make_query("evil.test", "A")
        other.id = query.id
        forged = reply_to(other, "evil.test. 60 IN A 203.0.113.66", ad=True)
        return [forged.to_wire(), reply_to(query, "a.test. 60 IN A 192.0.2.1").to_wire()]

    server = await serve(handler)
    async with DnsResolver([server.address], **FAST) as r:
        answer = await r.resolve("a.test", "A")
    assert answer.records == ("192.0.2.1",)


async def test_only_wrong_ids_is_a_timeout(serve) -> None:  # type: ignore[no-untyped-def]
    def handler(query: dns.message.Message, kind: str) -> bytes:
        forged = reply_to(query, "a.test. 60 IN A 203.0.113.66", ad=True)
        forged.id = (query.id + 7) % 65536
        return forged.to_wire()

    server = await serve(handler)
    async with DnsResolver([server.address], **FAST) as r:
        answer = await r.resolve("a.test", "A")
    assert answer.failed
    assert "no reply within" in answer.why
    assert answer.records == ()


async def test_silence_is_a_timeout_after_the_retries(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(lambda q, k: None)
    async with DnsResolver([server.address], timeout=0.1, retries=2, lifetime=5) as r:
        answer = await r.resolve("a.test", "A")
    assert answer.failed
    assert answer.security is Security.INDETERMINATE
    assert len(server.queries) == 3  # one try and two retries


async def test_lifetime_bounds_the_whole_lookup(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(lambda q, k: None)
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with DnsResolver([server.address], timeout=1.0, retries=5, lifetime=0.3) as r:
        answer = await r.resolve("a.test", "A")
    assert loop.time() - start < 1.0
    assert answer.failed
    assert "lifetime" in answer.why


async def test_ad_bit_from_an_untrusted_server_is_not_believed(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(lambda q, k: reply_to(q, "a.test. 60 IN A 192.0.2.1", ad=True).to_wire())
    async with DnsResolver([server.address], trusted=[], **FAST) as r:
        answer = await r.resolve("a.test", "A")
    assert answer.records == ("192.0.2.1",)
    assert answer.security is Security.INDETERMINATE


async def test_trust_can_name_a_port(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(lambda q, k: reply_to(q, "a.test. 60 IN A 192.0.2.1", ad=True).to_wire())
    async with DnsResolver([server.address], trusted=["127.0.0.1:1"], **FAST) as r:
        assert (await r.resolve("a.test", "A")).security is Security.INDETERMINATE
    async with DnsResolver([server.address], trusted=[server.address], **FAST) as r:
        assert (await r.resolve("a.test", "A")).security is Security.SECURE


async def test_validator_without_ad_is_insecure(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(lambda q, k: reply_to(q, "a.test. 60 IN A 192.0.2.1").to_wire())
    async with DnsResolver([server.address], **FAST) as r:
        answer = await r.resolve("a.test", "A")
    assert answer.security is Security.INSECURE
    assert not answer.failed


async def test_servfail_then_answer_with_cd_is_bogus(serve) -> None:  # type: ignore[no-untyped-def]
    def handler(query: dns.message.Message, kind: str) -> bytes:
        if query.flags & dns.flags.CD:
            return reply_to(query, "a.test. 60 IN A 192.0.2.1").to_wire()
        return reply_to(query, rcode=dns.rcode.SERVFAIL).to_wire()

    server = await serve(handler)
    async with DnsResolver([server.address], **FAST) as r:
        answer = await r.resolve("a.test", "A")
    assert answer.failed
    assert answer.security is Security.BOGUS
    assert answer.records == ()


async def test_servfail_also_with_cd_is_indeterminate(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(lambda q, k: reply_to(q, rcode=dns.rcode.SERVFAIL).to_wire())
    async with DnsResolver([server.address], **FAST) as r:
        answer = await r.resolve("a.test", "A")
    assert answer.failed
    assert answer.security is Security.INDETERMINATE
    assert [bool(q.flags & dns.flags.CD) for _, q in server.queries] == [False, True]


async def test_refused_moves_to_the_next_nameserver(serve) -> None:  # type: ignore[no-untyped-def]
    refusing = await serve(lambda q, k: reply_to(q, rcode=dns.rcode.REFUSED).to_wire())
    working = await serve(lambda q, k: reply_to(q, "a.test. 60 IN A 192.0.2.1", ad=True).to_wire())
    async with DnsResolver([refusing.address, working.address], **FAST) as r:
        answer = await r.resolve("a.test", "A")
    assert answer.records == ("192.0.2.1",)
    assert answer.security is Security.SECURE
    assert len(refusing.queries) == 1


async def test_only_refusals_is_a_failure(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(lambda q, k: reply_to(q, rcode=dns.rcode.REFUSED).to_wire())
    async with DnsResolver([server.address], **FAST) as r:
        answer = await r.resolve("a.test", "A")
    assert answer.failed
    assert "REFUSED" in answer.why


async def test_cname_loop_served_by_a_liar_fails(serve) -> None:  # type: ignore[no-untyped-def]
    def handler(query: dns.message.Message, kind: str) -> bytes:
        return reply_to(
            query,
            "a.test. 60 IN CNAME b.test.",
            "b.test. 60 IN CNAME a.test.",
            ad=True,
        ).to_wire()

    server = await serve(handler)
    async with DnsResolver([server.address], **FAST) as r:
        answer = await r.resolve("a.test", "A")
    assert answer.failed
    assert "loop" in answer.why
    assert answer.security is not Security.SECURE


async def test_endless_cname_requery_stops_at_the_chain_limit(serve) -> None:  # type: ignore[no-untyped-def]
    def handler(query: dns.message.Message, kind: str) -> bytes:
        name = query.question[0].name
        target = f"x{len(name.labels)}{name.to_text()}"
        return reply_to(query, f"{name} 60 IN CNAME {target}", ad=True).to_wire()

    server = await serve(handler)
    async with DnsResolver([server.address], max_chain=3, **FAST) as r:
        answer = await r.resolve("a.test", "A")
    assert answer.failed
    assert "longer than 3" in answer.why
    assert len(server.queries) == 4


async def test_oversized_udp_reply_is_read(serve) -> None:  # type: ignore[no-untyped-def]
    # More than the advertised EDNS payload: accepted if well formed (RFC 6891
    # forbids sending it, but reading it does no harm).
    records = [f'a.test. 60 IN TXT "{"x" * 200}{i}"' for i in range(40)]
    server = await serve(lambda q, k: reply_to(q, *records).to_wire(max_size=65535))
    async with DnsResolver([server.address], **FAST) as r:
        answer = await r.resolve("a.test", "TXT")
    assert len(answer.records) == 40


async def test_tcp_length_promising_more_than_sent_is_a_failure(serve) -> None:  # type: ignore[no-untyped-def]
    def handler(query: dns.message.Message, kind: str) -> bytes:
        if kind == "udp":
            return reply_to(query, tc=True).to_wire()
        wire = reply_to(query, "a.test. 60 IN A 192.0.2.1").to_wire()
        return (65535).to_bytes(2, "big") + wire

    server = await serve(handler)
    async with DnsResolver([server.address], **FAST) as r:
        answer = await r.resolve("a.test", "A")
    assert answer.failed


async def test_unreachable_port_is_a_failure() -> None:
    from tests.integration.servers import free_port

    port = free_port()
    async with DnsResolver([f"127.0.0.1:{port}"], **FAST) as r:
        answer = await r.resolve("a.test", "A")
    assert answer.failed
    assert answer.security is Security.INDETERMINATE


async def test_bulk_resolver_demultiplexes_out_of_order_replies(serve) -> None:  # type: ignore[no-untyped-def]
    pending: list[tuple[dns.message.Message, str]] = []

    class Reorder:
        def __call__(self, query: dns.message.Message, kind: str) -> list[bytes]:
            pending.append((query, kind))
            if len(pending) < 10:
                return []
            out = [
                reply_to(q, f"{q.question[0].name} 60 IN A 192.0.2.{i}").to_wire()
                for i, (q, _) in enumerate(reversed(pending))
            ]
            pending.clear()
            return out

    server = await serve(Reorder())
    names = [f"n{i}.test" for i in range(10)]
    async with BulkResolver([server.address], sockets_per_server=1, timeout=2.0, retries=0) as bulk:
        answers = await bulk.resolve_many((n, "A") for n in names)
    assert [a.name for a in answers] == names
    assert all(len(a.records) == 1 for a in answers)
    assert all(not a.failed for a in answers)


async def test_bulk_resolver_bounds_queries_in_flight(serve) -> None:  # type: ignore[no-untyped-def]
    seen: list[int] = []
    waiting: list[dns.message.Message] = []

    def handler(query: dns.message.Message, kind: str) -> list[bytes]:
        waiting.append(query)
        seen.append(len(waiting))
        if len(waiting) < 4:
            return []
        out = [reply_to(q, f"{q.question[0].name} 60 IN A 192.0.2.1").to_wire() for q in waiting]
        waiting.clear()
        return out

    server = await serve(handler)
    async with BulkResolver(
        [server.address], max_in_flight=4, sockets_per_server=1, timeout=2.0
    ) as bulk:
        answers = await bulk.resolve_many((f"n{i}.test", "A") for i in range(12))
    assert all(not a.failed for a in answers)
    assert max(seen) == 4


async def test_bulk_resolver_truncation_falls_back_to_tcp(serve) -> None:  # type: ignore[no-untyped-def]
    def handler(query: dns.message.Message, kind: str) -> bytes:
        if kind == "udp":
            return reply_to(query, tc=True).to_wire()
        return tcp_frame(reply_to(query, "a.test. 60 IN A 192.0.2.1", ad=True))

    server = await serve(handler)
    async with BulkResolver([server.address], **FAST) as bulk:
        answer = await bulk.resolve("a.test", "A")
    assert answer.records == ("192.0.2.1",)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(payload=st.binary(max_size=300), trusted=st.booleans(), keep_id=st.booleans())
async def test_random_bytes_from_the_server_never_escape(  # type: ignore[no-untyped-def]
    serve, payload: bytes, trusted: bool, keep_id: bool
) -> None:
    def handler(query: dns.message.Message, kind: str) -> bytes:
        head = query.id.to_bytes(2, "big") if keep_id else b""
        return head + payload

    server = await serve(handler)
    async with DnsResolver(
        [server.address], trusted=[server.address] if trusted else [], timeout=0.05, retries=0
    ) as r:
        answer = await r.resolve("a.test", "A")
    assert answer.security is not Security.SECURE or trusted
    assert answer.failed or answer.records or answer.nxdomain or answer.nodata


async def test_bulk_resolver_spreads_queries_over_its_sockets(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(
        lambda q, k: reply_to(q, f"{q.question[0].name} 60 IN A 192.0.2.1").to_wire()
    )
    async with BulkResolver([server.address], sockets_per_server=3, **FAST) as bulk:
        answers = await bulk.resolve_many((f"n{i}.test", "A") for i in range(9))
        assert all(a.records == ("192.0.2.1",) for a in answers)
        assert len(set(server.sources)) == 3
    with pytest.raises(UsageError):
        BulkResolver([server.address], sockets_per_server=0)
    with pytest.raises(UsageError):
        BulkResolver([server.address], max_in_flight=0)


async def test_default_resolver_uses_a_fresh_port_per_query(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(
        lambda q, k: reply_to(q, f"{q.question[0].name} 60 IN A 192.0.2.1").to_wire()
    )
    async with DnsResolver([server.address], **FAST) as r:
        for i in range(5):
            await r.resolve(f"n{i}.test", "A")
    assert len(set(server.sources)) == 5


async def test_closed_bulk_resolver_raises(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(lambda q, k: None)
    bulk = BulkResolver([server.address], **FAST)
    await bulk.aclose()
    with pytest.raises(DnsError):
        await bulk.resolve("a.test", "A")
