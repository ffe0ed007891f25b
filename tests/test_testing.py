"""The public fakes behave like the real transports (mtasecure.testing)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

import mtasecure.testing
from mtasecure.dnssec import DnsAnswer, Security
from mtasecure.errors import UsageError
from mtasecure.testing import DEFAULT_FAKE_TTL, FakeResolver, FrozenClock
from mtasecure.transport import Clock, Resolver

ZONE = """
; a small world
$TTL 600
example.com.            MX    10 mx.example.com.   ; comment after data
example.com.            MX    20 mx2.example.com
mx.example.com.         A     192.0.2.25
_25._tcp.mx.example.com. 3600 IN TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
_mta-sts.example.com.   TXT   "v=STSv1; id=1;"
www.example.com.        CNAME example.com.
$SECURITY insecure
plain.example.          MX    0 .
alias.example.com.      CNAME plain.example.
gone.example.           NXDOMAIN
$SECURITY bogus
broken.example.         FAIL
"""


@pytest.fixture
def fake() -> FakeResolver:
    return FakeResolver.from_zone(ZONE)


def test_pinned_all() -> None:
    assert mtasecure.testing.__all__ == [
        "DEFAULT_FAKE_TTL",
        "FakeHttpClient",
        "FakeMailSubmitter",
        "FakeResolver",
        "FakeSmtp",
        "FrozenClock",
        "World",
    ]


def test_fakes_satisfy_the_protocols(fake: FakeResolver) -> None:
    assert isinstance(fake, Resolver)
    assert isinstance(FrozenClock(), Clock)


async def test_records_come_back_in_presentation_format(fake: FakeResolver) -> None:
    answer = await fake.resolve("Example.COM.", "mx")
    assert answer.records == ("10 mx.example.com.", "20 mx2.example.com.")
    assert answer.security is Security.SECURE
    assert answer.ttl == 600
    assert answer.name == "example.com"
    assert answer.rdtype == "MX"


async def test_ttl_and_class_columns_are_optional(fake: FakeResolver) -> None:
    answer = await fake.resolve("_25._tcp.mx.example.com", "TLSA")
    assert answer.ttl == 3600
    assert answer.records[0].startswith("3 1 1 0123")


async def test_txt_with_semicolons_inside_quotes(fake: FakeResolver) -> None:
    answer = await fake.resolve("_mta-sts.example.com", "TXT")
    assert answer.txt_strings() == ("v=STSv1; id=1;",)


async def test_cname_is_followed_and_status_combined(fake: FakeResolver) -> None:
    www = await fake.resolve("www.example.com", "MX")
    assert www.cname_chain == ("example.com",)
    assert www.records == ("10 mx.example.com.", "20 mx2.example.com.")
    alias = await fake.resolve("alias.example.com", "MX")
    assert alias.records == ("0 .",)
    assert alias.security is Security.INSECURE


async def test_cname_query_returns_the_alias(fake: FakeResolver) -> None:
    answer = await fake.resolve("www.example.com", "CNAME")
    assert answer.records == ("example.com.",)
    assert answer.cname_chain == ()


async def test_nxdomain_and_nodata(fake: FakeResolver) -> None:
    unknown = await fake.resolve("nothing.example.com", "A")
    assert unknown.nxdomain
    assert unknown.security is Security.SECURE  # closest enclosing name: example.com
    assert unknown.ttl == DEFAULT_FAKE_TTL
    nodata = await fake.resolve("example.com", "AAAA")
    assert nodata.nodata
    empty_non_terminal = await fake.resolve("_tcp.mx.example.com", "TXT")
    assert empty_non_terminal.nodata


async def test_explicit_nxdomain_has_its_status(fake: FakeResolver) -> None:
    answer = await fake.resolve("gone.example", "MX")
    assert answer.nxdomain
    assert answer.security is Security.INSECURE


async def test_fail_entries_fail_with_their_status(fake: FakeResolver) -> None:
    answer = await fake.resolve("broken.example", "TLSA")
    assert answer.failed
    assert answer.security is Security.BOGUS
    assert answer.records == ()


async def test_queries_are_recorded(fake: FakeResolver) -> None:
    await fake.resolve("example.com", "MX")
    await fake.resolve("WWW.example.com.", "a")
    assert fake.queries == [("example.com", "MX"), ("www.example.com", "A")]


async def test_mapping_with_records_and_answers() -> None:
    verbatim = DnsAnswer(name="x.example", rdtype="A", failed=True, why="lab")
    fake = FakeResolver(
        {("a.example", "A"): ["192.0.2.1"], ("x.example", "A"): verbatim},
        default_security=Security.INSECURE,
    )
    a = await fake.resolve("a.example", "A")
    assert a.records == ("192.0.2.1",)
    assert a.security is Security.INSECURE
    assert await fake.resolve("x.example", "A") is verbatim


async def test_mapping_and_zone_together() -> None:
    fake = FakeResolver({("a.example", "A"): ["192.0.2.1"]}, zone="b.example. A 192.0.2.2")
    assert (await fake.resolve("b.example", "A")).records == ("192.0.2.2",)
    assert (await fake.resolve("a.example", "A")).records == ("192.0.2.1",)


async def test_add_appends_records() -> None:
    fake = FakeResolver()
    fake.add("a.example", "A", ["192.0.2.1"], ttl=50)
    fake.add("a.example", "A", ["192.0.2.2"], ttl=70)
    answer = await fake.resolve("a.example", "A")
    assert answer.records == ("192.0.2.1", "192.0.2.2")
    assert answer.ttl == 50


async def test_cname_loop_and_chain_limit_fail() -> None:
    loop = FakeResolver.from_zone("a.example. CNAME b.example.\nb.example. CNAME a.example.")
    answer = await loop.resolve("a.example", "A")
    assert answer.failed
    assert answer.security is not Security.SECURE
    chain = "\n".join(f"n{i}.example. CNAME n{i + 1}.example." for i in range(5))
    limited = FakeResolver(zone=chain + "\nn5.example. A 192.0.2.1", max_chain=3)
    assert (await limited.resolve("n0.example", "A")).failed
    unlimited = FakeResolver(zone=chain + "\nn5.example. A 192.0.2.1")
    assert (await unlimited.resolve("n0.example", "A")).records == ("192.0.2.1",)


@pytest.mark.parametrize(
    "text",
    [
        "a.example.",  # no type
        "a.example. MX",  # no data
        "a.example. MX ten mx.example.",  # bad data
        "a.example. NXDOMAIN extra",
        "$SECURITY maybe",
        "$TTL soon",
        "ünï.example. A 192.0.2.1",
    ],
)
def test_bad_zone_text_names_the_line(text: str) -> None:
    with pytest.raises(UsageError, match="line 2"):
        FakeResolver.from_zone("; first\n" + text)


def test_frozen_clock_moves_only_when_told() -> None:
    clock = FrozenClock("2025-03-01T12:00:00Z")
    assert clock.now() == datetime(2025, 3, 1, 12, tzinfo=UTC)
    assert clock.now() == clock.now()
    assert clock.advance(90) == datetime(2025, 3, 1, 12, 1, 30, tzinfo=UTC)
    clock.advance(timedelta(days=1))
    assert clock.now().day == 2
    clock.set(datetime(2020, 1, 1, 5, tzinfo=timezone(timedelta(hours=5))))
    assert clock.now() == datetime(2020, 1, 1, tzinfo=UTC)
    assert clock.now().tzinfo is UTC


def test_frozen_clock_default_and_misuse() -> None:
    assert FrozenClock().now() == datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(UsageError):
        FrozenClock(datetime(2024, 1, 1))  # naive
    with pytest.raises(UsageError):
        FrozenClock("yesterday")
    with pytest.raises(UsageError):
        FrozenClock().advance(-1)
