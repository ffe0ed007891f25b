"""Local validation straight from Knot agrees with Unbound as trusted validator (issue 3).

The same names, asked two ways: through a real Unbound whose AD bit the
default resolver trusts, and straight from the authoritative Knot with
mtasecure validating the chain itself from the tree's root DS.
"""

from __future__ import annotations

import pytest

from mtasecure.dnssec import Security, parse_trust_anchor
from mtasecure.transport import DnsResolver
from mtasecure.transport.validating import ValidatingResolver
from tests.integration.dnsworld import ZONES, DnsWorld

pytestmark = pytest.mark.integration

QUESTIONS = [
    *((z.name, "A") for z in ZONES),
    *((z.name, "TXT") for z in ZONES),
    ("signed.example", "MX"),
    ("_25._tcp.mx.signed.example", "TLSA"),
    ("_25._tcp.mx.nsec3.example", "TLSA"),
    ("_25._tcp.mx.unsigned.example", "TLSA"),
    ("_25._tcp.mx.expired.example", "TLSA"),
    ("mx.signed.example", "TLSA"),  # NODATA, NSEC
    ("mx.nsec3.example", "AAAA"),  # NODATA, NSEC3
    ("nothing-here.signed.example", "A"),  # NXDOMAIN, NSEC
    ("nothing-here.nsec3.example", "A"),  # NXDOMAIN, NSEC3
    ("nothing-here.unsigned.example", "A"),
    ("nothing-here.example", "A"),
    ("_tcp.mx.signed.example", "A"),  # empty non-terminal
    ("alias1.signed.example", "A"),  # CNAME chain in one zone
    ("www.nsec3.example", "A"),
    ("tounsigned.signed.example", "A"),  # CNAME into an insecure zone
    ("tounsigned.signed.example", "CNAME"),  # ...whose own record is secure (RFC 7672 §2.2.2)
    ("tosigned.unsigned.example", "CNAME"),  # an insecure CNAME record
    ("tosigned.unsigned.example", "A"),  # CNAME from an insecure zone
    ("toexpired.signed.example", "A"),  # CNAME into a bogus zone
    ("dangling.signed.example", "A"),  # CNAME to NXDOMAIN
    ("mxalias.signed.example", "MX"),
    ("multi.signed.example", "MX"),
    ("multitxt.signed.example", "TXT"),
    ("mx.unknownalgo.example", "A"),
]


def _server(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"


@pytest.fixture
async def both(dnsworld: DnsWorld) -> tuple[DnsResolver, ValidatingResolver]:
    anchor = parse_trust_anchor("\n".join(dnsworld.trust_anchor))
    async with (
        DnsResolver([_server(dnsworld.unbound)], timeout=2.0) as trusted,
        ValidatingResolver([_server(dnsworld.knot)], anchor=anchor, timeout=2.0) as local,
    ):
        yield trusted, local  # type: ignore[misc]


@pytest.mark.parametrize(("name", "rdtype"), QUESTIONS)
async def test_local_validation_agrees_with_unbound(
    both: tuple[DnsResolver, ValidatingResolver], dnsworld: DnsWorld, name: str, rdtype: str
) -> None:
    trusted, local = both
    via_unbound = await trusted.resolve(name, rdtype)
    via_knot = await local.resolve(name, rdtype)
    assert via_knot.security is via_unbound.security, (via_knot.why, via_unbound.why)
    assert via_knot.failed is via_unbound.failed
    assert sorted(via_knot.records) == sorted(via_unbound.records)
    assert via_knot.nxdomain is via_unbound.nxdomain
    if not via_unbound.failed:  # a SERVFAIL from Unbound carries no chain to compare
        assert via_knot.cname_chain == via_unbound.cname_chain


@pytest.mark.parametrize("zone", [z.name for z in ZONES])
async def test_each_zone_gets_its_documented_status_locally(
    both: tuple[DnsResolver, ValidatingResolver], dnsworld: DnsWorld, zone: str
) -> None:
    _, local = both
    answer = await local.resolve(f"{zone}", "A")
    assert answer.security is Security(dnsworld.security_of(zone)), answer.why


async def test_local_validation_with_the_wrong_anchor_is_bogus(dnsworld: DnsWorld) -> None:
    wrong = parse_trust_anchor(". IN DS 20326 8 2 " + "00" * 32)
    async with ValidatingResolver([_server(dnsworld.knot)], anchor=wrong) as local:
        answer = await local.resolve("signed.example", "A")
    assert answer.security is Security.BOGUS
    assert answer.failed


async def test_the_first_response_of_an_alias_into_an_unsigned_zone_is_secure(
    both: tuple[DnsResolver, ValidatingResolver],
) -> None:
    # What RFC 7672 §2.2.2's "Insecure CNAME" case turns on, in both modes.
    for resolver in both:
        chain = await resolver.resolve("tounsigned.signed.example", "A")
        own = await resolver.resolve("tounsigned.signed.example", "CNAME")
        assert chain.security is Security.INSECURE
        assert chain.cname_chain
        assert own.security is Security.SECURE
        assert own.records == ("unsigned.example.",)
