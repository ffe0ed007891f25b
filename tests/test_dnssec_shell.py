"""The local-validating resolver's loop, with its I/O replaced by the in-memory world."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtasecure._resolution import Question
from mtasecure._wire import Reply, parse_reply
from mtasecure.dnssec import Security, TrustCache
from mtasecure.errors import DnsError
from mtasecure.transport import Nameserver, Resolver
from mtasecure.transport.validating import ValidatingResolver
from tests.dnssec_world import NOW, World, standard_world


class Frozen:
    def __init__(self, now: datetime) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at


class WorldResolver(ValidatingResolver):
    """Answers from the in-memory world instead of a socket; records what was sent."""

    world: World
    sent: list[Question]
    fail_on: set[str]

    async def _ask(
        self, query: Question, deadline: float, servers: object = None
    ) -> tuple[Reply, Nameserver]:
        self.sent.append(query)
        if query.qname.to_text() in self.fail_on:
            raise DnsError("no usable reply: timed out")
        reply = self.world.query(query.qname, query.rdtype)
        reply.flags |= dns.flags.AD  # a lying upstream: the AD bit must be ignored
        return parse_reply(reply.to_wire()), self.nameservers[0]


def make(world: World, anchor, *, fail_on: set[str] = frozenset()) -> WorldResolver:  # type: ignore[no-untyped-def]
    resolver = WorldResolver(["127.0.0.1:1"], anchor=anchor, clock=Frozen(NOW))
    resolver.world = world
    resolver.sent = []
    resolver.fail_on = set(fail_on)
    return resolver


async def test_is_a_resolver_and_validates_with_do_and_cd() -> None:
    world, anchor, _ = standard_world()
    async with make(world, anchor) as resolver:
        assert isinstance(resolver, Resolver)
        answer = await resolver.resolve("www.example.test", "A")
    assert answer.security is Security.SECURE
    assert answer.records == ("192.0.2.26",)
    assert answer.cname_chain == ("mx.other.test",)
    for question in resolver.sent:
        sent = dns.message.from_wire(question.to_wire(1))
        assert sent.flags & dns.flags.CD
        assert sent.ednsflags & dns.flags.DO


async def test_ad_bit_from_upstream_is_not_believed() -> None:
    world, anchor, zones = standard_world()
    zones["example"].sigs.clear()
    async with make(world, anchor) as resolver:
        answer = await resolver.resolve("mx.example.test", "A")
    assert answer.security is Security.BOGUS
    assert answer.failed


async def test_ds_and_dnskey_responses_are_cached_between_lookups() -> None:
    world, anchor, _ = standard_world()
    async with make(world, anchor) as resolver:
        first = await resolver.resolve("mx.example.test", "A")
        count = len(resolver.sent)
        second = await resolver.resolve("example.test", "MX")
    assert first.security is second.security is Security.SECURE
    assert count == 6
    assert len(resolver.sent) == count + 1  # only the MX query itself


async def test_cache_is_bounded() -> None:
    world, anchor, _ = standard_world()
    async with make(world, anchor) as resolver:
        resolver.cache = TrustCache(max_entries=2)
        await resolver.resolve("mx.example.test", "A")
        assert len(resolver.cache) == 2


async def test_a_failed_fetch_is_indeterminate_and_failed() -> None:
    world, anchor, _ = standard_world()
    async with make(world, anchor, fail_on={"example.test."}) as resolver:
        answer = await resolver.resolve("mx.example.test", "A")
    assert answer.security is Security.INDETERMINATE
    assert answer.failed
    assert "timed out" in answer.why


async def test_closed_resolver_raises() -> None:
    world, anchor, _ = standard_world()
    resolver = make(world, anchor)
    await resolver.aclose()
    with pytest.raises(DnsError):
        await resolver.resolve("mx.example.test", "A")


async def test_resolve_many_keeps_order() -> None:
    world, anchor, _ = standard_world(nsec3=True)
    async with make(world, anchor) as resolver:
        answers = await resolver.resolve_many(
            [("nope.example.test", "A"), ("mx.insecure.test", "A"), ("example.test", "MX")]
        )
    assert [a.security for a in answers] == [Security.SECURE, Security.INSECURE, Security.SECURE]
    assert answers[0].nxdomain


def test_public_names_are_pinned() -> None:
    import mtasecure.transport.validating as shell

    assert set(shell.__all__) == {"ValidatingResolver"}


async def test_a_failed_ds_reply_is_not_cached() -> None:
    world, anchor, _ = standard_world()

    def servfail(message: dns.message.Message) -> dns.message.Message:
        if message.question[0].rdtype == dns.rdatatype.DS:
            message.set_rcode(dns.rcode.SERVFAIL)
            message.answer.clear()
            message.authority.clear()
        return message

    async with make(world, anchor) as resolver:
        world.mutate = servfail
        first = await resolver.resolve("mx.example.test", "A")
        world.mutate = None
        second = await resolver.resolve("mx.example.test", "A")
    assert first.security is Security.BOGUS
    assert second.security is Security.SECURE


async def test_cached_replies_expire_with_their_ttl() -> None:
    world, anchor, _ = standard_world()
    async with make(world, anchor) as resolver:
        await resolver.resolve("mx.example.test", "A")
        count = len(resolver.sent)
        resolver.clock.at = NOW + timedelta(seconds=3601)  # type: ignore[attr-defined]
        await resolver.resolve("mx.example.test", "A")
    assert len(resolver.sent) == 2 * count


@settings(max_examples=50, deadline=None)
@given(garbage=st.binary(max_size=64))
async def test_an_unreadable_reply_is_a_failed_fetch(garbage: bytes) -> None:
    """Only our DnsError crosses the wire boundary; the lookup fails, nothing escapes."""
    world, anchor, _ = _GARBAGE_WORLD

    class Garbled(WorldResolver):
        async def _ask(
            self, query: Question, deadline: float, servers: object = None
        ) -> tuple[Reply, Nameserver]:
            reply, server = await super()._ask(query, deadline)
            return dataclasses.replace(reply, wire=garbage), server

    resolver = Garbled(["127.0.0.1:1"], anchor=anchor, clock=Frozen(NOW))
    resolver.world, resolver.sent, resolver.fail_on = world, [], set()
    answer = await resolver.resolve("mx.example.test", "A")
    assert answer.failed
    assert answer.security is not Security.SECURE


_GARBAGE_WORLD = standard_world()
