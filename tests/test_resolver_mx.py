"""MX sets (RFC 5321 §5.1, RFC 7505) and the MtaSecure facade's DNS methods."""

from __future__ import annotations

import pytest

from mtasecure.client import MtaSecure
from mtasecure.dnssec import DnsAnswer, Security
from mtasecure.errors import NameSyntaxError, ParseError, UsageError
from mtasecure.mx import MxHost, MxSet, parse_mx
from mtasecure.testing import FakeResolver, FrozenClock
from mtasecure.transport import DnsResolver, SystemClock

WORLD = """
multi.example.     MX 20 b.mx.example.
multi.example.     MX 10 C.mx.example.
multi.example.     MX 10 a.mx.example.
multi.example.     MX 10 a.mx.example.
null.example.      MX 0 .
mixed.example.     MX 0 .
mixed.example.     MX 10 mx.mixed.example.
implicit.example.  A 192.0.2.1
odd.example.       MX 10 192.0.2.1.
odd.example.       MX 20 mx.odd.example.
xn--bcher-kva.example. MX 10 mx.xn--bcher-kva.example.
$SECURITY insecure
plain.example.     MX 10 mx.plain.example.
$SECURITY bogus
bad.example.       FAIL
"""


@pytest.fixture
def client() -> MtaSecure:
    return MtaSecure(resolver=FakeResolver.from_zone(WORLD), clock=FrozenClock())


async def test_hosts_in_preference_order_without_duplicates(client: MtaSecure) -> None:
    mx = await client.resolve_mx("multi.example")
    assert [(h.preference, h.host) for h in mx.hosts] == [
        (10, "a.mx.example"),
        (10, "c.mx.example"),
        (20, "b.mx.example"),
    ]
    assert mx.security is Security.SECURE
    assert (mx.null, mx.implicit, mx.failed, mx.nxdomain) == (False, False, False, False)


async def test_null_mx(client: MtaSecure) -> None:
    mx = await client.resolve_mx("null.example")
    assert mx.null
    assert mx.hosts == ()


async def test_null_mx_next_to_real_ones_is_ignored(client: MtaSecure) -> None:
    mx = await client.resolve_mx("mixed.example")
    assert not mx.null
    assert [h.host for h in mx.hosts] == ["mx.mixed.example"]


async def test_implicit_mx_is_the_domain_itself(client: MtaSecure) -> None:
    mx = await client.resolve_mx("implicit.example")
    assert mx.implicit
    assert mx.hosts == (MxHost(preference=0, host="implicit.example"),)


async def test_nxdomain_has_no_hosts(client: MtaSecure) -> None:
    mx = await client.resolve_mx("nowhere.example")
    assert mx.nxdomain
    assert mx.hosts == ()
    assert not mx.implicit


async def test_failure_is_not_no_mx(client: MtaSecure) -> None:
    mx = await client.resolve_mx("bad.example")
    assert mx.failed
    assert mx.security is Security.BOGUS
    assert not mx.implicit


async def test_insecure_status_is_carried(client: MtaSecure) -> None:
    mx = await client.resolve_mx("plain.example")
    assert mx.security is Security.INSECURE
    assert mx.hosts[0].host == "mx.plain.example"


async def test_targets_that_are_not_host_names_are_set_aside(client: MtaSecure) -> None:
    mx = await client.resolve_mx("odd.example")
    assert [h.host for h in mx.hosts] == ["mx.odd.example"]
    assert mx.invalid == ("192.0.2.1",)


async def test_idn_domain_is_looked_up_in_a_labels(client: MtaSecure) -> None:
    mx = await client.resolve_mx("bücher.example")
    assert mx.domain == "xn--bcher-kva.example"
    assert mx.hosts[0].host == "mx.xn--bcher-kva.example"


async def test_bad_domain_is_a_name_syntax_error(client: MtaSecure) -> None:
    with pytest.raises(NameSyntaxError):
        await client.resolve_mx("exa mple.com")


def test_parse_mx_needs_an_mx_answer() -> None:
    with pytest.raises(UsageError):
        parse_mx(DnsAnswer(name="example", rdtype="A"))


def test_parse_mx_unreadable_record_is_a_parse_error() -> None:
    with pytest.raises(ParseError):
        parse_mx(DnsAnswer(name="example", rdtype="MX", records=("ten mx.example.",)))


def test_mx_set_is_frozen() -> None:
    mx = MxSet(domain="example")
    with pytest.raises(ValueError, match="frozen"):
        mx.domain = "other"  # type: ignore[misc]


async def test_client_resolve_passes_through(client: MtaSecure) -> None:
    answer = await client.resolve("implicit.example", "A")
    assert answer.records == ("192.0.2.1",)


async def test_client_builds_and_closes_defaults() -> None:
    async with MtaSecure() as built:
        assert isinstance(built.resolver, DnsResolver)
        assert isinstance(built.clock, SystemClock)
        resolver = built.resolver
    with pytest.raises(Exception, match="closed"):
        await resolver.resolve("example", "A")


async def test_client_never_closes_what_it_was_given() -> None:
    given = DnsResolver(["127.0.0.1"])
    async with MtaSecure(resolver=given, http="h", smtp="s", cache="c", store="st") as client:
        assert (client.http, client.smtp, client.cache, client.store) == ("h", "s", "c", "st")
    assert not given._closed
    await given.aclose()
