"""Pins the types of the DNS API (type-checked by mypy, never run)."""

from __future__ import annotations

from datetime import datetime

from mtasecure.client import MtaSecure
from mtasecure.dnssec import DnsAnswer, Security
from mtasecure.mx import MxSet, parse_mx
from mtasecure.testing import FakeResolver, FrozenClock
from mtasecure.transport import BulkResolver, Clock, DnsResolver, Nameserver, Resolver


async def pins() -> None:
    resolver: Resolver = DnsResolver(["127.0.0.1:5353"], trusted=["127.0.0.1"], timeout=1.0)
    bulk: Resolver = BulkResolver(["127.0.0.1"], max_in_flight=128, sockets_per_server=2)
    fake: Resolver = FakeResolver.from_zone("example. MX 0 .")
    clock: Clock = FrozenClock("2024-01-01T00:00:00Z")
    answer: DnsAnswer = await resolver.resolve("example", "MX")
    status: Security = answer.security
    many: list[DnsAnswer] = await BulkResolver(["127.0.0.1"]).resolve_many([("example", "A")])
    server: Nameserver = Nameserver.parse("[::1]:53")
    async with MtaSecure(resolver=fake, clock=clock) as client:
        mx: MxSet = await client.resolve_mx("example")
        again: MxSet = parse_mx(await client.resolve("example", "MX"))
        now: datetime = client.clock.now()
    del bulk, status, many, server, mx, again, now
