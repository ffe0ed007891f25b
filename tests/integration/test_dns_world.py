"""The DNS test harness itself: the tree is served and validated as documented."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from tests.integration.dnsworld import EXPECTED_SECURITY, ZONES, DnsWorld

pytestmark = pytest.mark.integration


def _ask(server: tuple[str, int], name: str, rdtype: str) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, want_dnssec=True)
    return dns.query.udp(query, server[0], port=server[1], timeout=5)


def test_knot_serves_every_zone_authoritatively(dnsworld: DnsWorld) -> None:
    for zone in [".", "example.", *(f"{z.name}." for z in ZONES)]:
        reply = _ask(dnsworld.knot, zone, "SOA")
        assert reply.rcode() == dns.rcode.NOERROR, zone
        assert reply.flags & dns.flags.AA, zone


def test_unbound_validates_each_zone_as_documented(dnsworld: DnsWorld) -> None:
    seen = {}
    for zone in ZONES:
        reply = _ask(dnsworld.unbound, zone.name, "A")
        if reply.rcode() == dns.rcode.SERVFAIL:
            seen[zone.name] = "bogus"
        else:
            seen[zone.name] = "secure" if reply.flags & dns.flags.AD else "insecure"
    assert seen == {z.name: EXPECTED_SECURITY[z.name] for z in ZONES}


def test_security_of_uses_the_closest_zone(dnsworld: DnsWorld) -> None:
    assert dnsworld.security_of("mx.expired.example.") == "bogus"
    assert dnsworld.security_of("x.unsigned.example") == "insecure"
    assert dnsworld.security_of("other.example") == "secure"
