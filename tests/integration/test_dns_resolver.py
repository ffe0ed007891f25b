"""The default resolver through a real Unbound in trusted-validator mode (RFC 4035 §4.9.3)."""

from __future__ import annotations

import pytest

from mtasecure.dnssec import Security
from mtasecure.transport import BulkResolver, DnsResolver
from tests.integration.dnsworld import EXPECTED_SECURITY, TLSA_DIGEST, ZONES, DnsWorld

pytestmark = pytest.mark.integration


def _server(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"


@pytest.fixture
async def resolver(dnsworld: DnsWorld) -> DnsResolver:
    async with DnsResolver([_server(dnsworld.unbound)], timeout=2.0) as r:
        yield r  # type: ignore[misc]


@pytest.mark.parametrize("zone", [z.name for z in ZONES])
async def test_each_zone_gets_its_documented_status(resolver: DnsResolver, zone: str) -> None:
    answer = await resolver.resolve(zone, "A")
    expected = Security(EXPECTED_SECURITY[zone])
    assert answer.security is expected, answer.why
    if expected is Security.BOGUS:
        assert answer.failed
        assert answer.records == ()
    else:
        assert not answer.failed
        assert answer.records == ("127.0.0.1",)


async def test_secure_mx_and_tlsa(resolver: DnsResolver) -> None:
    mx = await resolver.resolve("signed.example", "MX")
    assert (mx.records, mx.security, mx.failed) == (
        ("10 mx.signed.example.",),
        Security.SECURE,
        False,
    )
    assert 0 < mx.ttl <= 300
    tlsa = await resolver.resolve("_25._tcp.mx.signed.example", "TLSA")
    assert tlsa.records == (f"3 1 1 {TLSA_DIGEST}",)
    assert tlsa.security is Security.SECURE


async def test_txt_records_keep_their_strings(resolver: DnsResolver) -> None:
    answer = await resolver.resolve("multitxt.signed.example", "TXT")
    assert sorted(answer.txt_strings()) == ["firstsecond", "third"]


async def test_nxdomain_is_secure_and_not_nodata(resolver: DnsResolver) -> None:
    answer = await resolver.resolve("nothing-here.signed.example", "A")
    assert answer.nxdomain
    assert not answer.nodata
    assert not answer.failed
    assert answer.security is Security.SECURE
    assert 0 < answer.ttl <= 300


async def test_nodata_is_secure_and_not_nxdomain(resolver: DnsResolver) -> None:
    answer = await resolver.resolve("signed.example", "TLSA")
    assert answer.nodata
    assert not answer.nxdomain
    assert answer.security is Security.SECURE


async def test_nxdomain_in_an_unsigned_zone_is_insecure(resolver: DnsResolver) -> None:
    answer = await resolver.resolve("nothing-here.unsigned.example", "MX")
    assert answer.nxdomain
    assert answer.security is Security.INSECURE


async def test_nsec3_denial_is_secure(resolver: DnsResolver) -> None:
    nx = await resolver.resolve("nothing-here.nsec3.example", "A")
    nodata = await resolver.resolve("nsec3.example", "TLSA")
    assert nx.nxdomain
    assert nx.security is Security.SECURE
    assert nodata.nodata
    assert nodata.security is Security.SECURE


async def test_cname_chain_is_followed_and_recorded(resolver: DnsResolver) -> None:
    answer = await resolver.resolve("alias1.signed.example", "A")
    assert answer.records == ("127.0.0.1",)
    assert answer.cname_chain == ("alias2.signed.example", "www.signed.example", "signed.example")
    assert answer.final_name == "signed.example"
    assert answer.security is Security.SECURE


async def test_cname_query_returns_the_alias_itself(resolver: DnsResolver) -> None:
    answer = await resolver.resolve("www.signed.example", "CNAME")
    assert answer.records == ("signed.example.",)
    assert answer.cname_chain == ()


async def test_cname_from_signed_to_unsigned_is_insecure(resolver: DnsResolver) -> None:
    answer = await resolver.resolve("tounsigned.signed.example", "A")
    assert answer.records == ("127.0.0.1",)
    assert answer.cname_chain == ("unsigned.example",)
    assert answer.security is Security.INSECURE


async def test_cname_to_an_expired_zone_is_bogus(resolver: DnsResolver) -> None:
    answer = await resolver.resolve("toexpired.signed.example", "A")
    assert answer.failed
    assert answer.security is Security.BOGUS


async def test_dangling_cname_ends_in_nxdomain(resolver: DnsResolver) -> None:
    answer = await resolver.resolve("dangling.signed.example", "A")
    assert answer.nxdomain
    assert answer.cname_chain == ("nothing.signed.example",)
    assert answer.security is Security.SECURE


async def test_cname_loop_fails_without_being_secure(resolver: DnsResolver) -> None:
    answer = await resolver.resolve("loop1.signed.example", "A")
    assert answer.failed
    assert answer.security is not Security.SECURE


async def test_untrusted_validator_is_indeterminate(dnsworld: DnsWorld) -> None:
    async with DnsResolver([_server(dnsworld.unbound)], trusted=[]) as r:
        answer = await r.resolve("signed.example", "A")
    assert answer.records == ("127.0.0.1",)
    assert answer.security is Security.INDETERMINATE
    assert not answer.failed


async def test_authoritative_server_is_not_a_validator(dnsworld: DnsWorld) -> None:
    # Knot sets no AD bit; trusted or not, its answers are never secure.
    async with DnsResolver([_server(dnsworld.knot)]) as r:
        answer = await r.resolve("signed.example", "MX")
    assert answer.records == ("10 mx.signed.example.",)
    assert answer.security is Security.INSECURE


async def test_authoritative_server_cname_chain_is_requeried(dnsworld: DnsWorld) -> None:
    async with DnsResolver([_server(dnsworld.knot)], trusted=[]) as r:
        answer = await r.resolve("tosigned.unsigned.example", "A")
    assert answer.records == ("127.0.0.1",)
    assert answer.cname_chain == ("signed.example",)
    assert answer.security is Security.INDETERMINATE


async def test_bulk_resolver_gives_the_same_answers(dnsworld: DnsWorld) -> None:
    names = [z.name for z in ZONES] * 20
    async with BulkResolver([_server(dnsworld.unbound)], max_in_flight=16) as bulk:
        answers = await bulk.resolve_many((n, "A") for n in names)
    assert [a.name for a in answers] == names
    assert [a.security.value for a in answers] == [EXPECTED_SECURITY[n] for n in names]
