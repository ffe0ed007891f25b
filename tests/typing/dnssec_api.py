"""Pins the types of local DNSSEC validation's public API; type-checked by mypy, never run."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import assert_type

import dns.message
import dns.name
import dns.rdatatype

from mtasecure.dnssec import (
    MAX_NSEC3_ITERATIONS,
    ROOT_TRUST_ANCHOR,
    ChainResult,
    ChainValidator,
    DnsAnswer,
    Security,
    TrustAnchor,
    TrustCache,
    parse_trust_anchor,
)
from mtasecure.transport import Resolver
from mtasecure.transport.validating import ValidatingResolver

NOW = datetime(2026, 1, 1, tzinfo=UTC)

assert_type(ROOT_TRUST_ANCHOR, TrustAnchor)
assert_type(parse_trust_anchor(". DS 20326 8 2 00"), TrustAnchor)
assert_type(MAX_NSEC3_ITERATIONS, int)

cache = TrustCache(max_entries=100)
assert_type(len(cache), int)
validator = ChainValidator(ROOT_TRUST_ANCHOR, "example.com", "MX", now=NOW, cache=cache)
query = validator.next_query()
assert_type(query, tuple[dns.name.Name, dns.rdatatype.RdataType] | None)
validator.feed(dns.message.make_response(dns.message.make_query("example.com", "MX")))
validator.feed_failure("timed out")
result = validator.result()
assert_type(result, ChainResult)
assert_type(result.security, Security)
assert_type(result.answer("example.com", "MX"), DnsAnswer)


async def use() -> None:
    resolver: Resolver = ValidatingResolver(["127.0.0.1:53"], anchor=ROOT_TRUST_ANCHOR)
    assert_type(await resolver.resolve("example.com", "MX"), DnsAnswer)
    async with ValidatingResolver(cache=cache) as local:
        answers = await local.resolve_many([("example.com", "MX")])
        assert_type(answers, list[DnsAnswer])
