"""DnsSettings / resolver_from_settings: the two ways to reach ``secure``, chosen by configuration."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mtasecure.client import MtaSecure
from mtasecure.dnssec import ROOT_TRUST_ANCHOR, parse_trust_anchor
from mtasecure.errors import DnsError, UsageError
from mtasecure.testing import FakeResolver, FrozenClock
from mtasecure.transport import (
    DnsResolver,
    DnssecMode,
    DnsSettings,
    ValidatingResolver,
    resolver_from_settings,
)
from mtasecure.transport.dnsconfig import MAX_RETRIES

ANCHOR = ". 3600 IN DS 4242 13 2 " + "ab" * 32


def test_default_is_a_trusted_validator_resolver() -> None:
    resolver = resolver_from_settings(DnsSettings(nameservers=("127.0.0.1:5353", "192.0.2.53")))
    assert type(resolver) is DnsResolver
    assert [(ns.address, ns.port, ns.trusted) for ns in resolver.nameservers] == [
        ("127.0.0.1", 5353, True),  # loopback: trusted by default (RFC 4035 §4.9.3)
        ("192.0.2.53", 53, False),
    ]


def test_validator_mode_names_the_trusted_servers() -> None:
    settings = DnsSettings(nameservers=("192.0.2.53", "127.0.0.1"), trusted=("192.0.2.53",))
    resolver = resolver_from_settings(settings)
    assert [ns.trusted for ns in resolver.nameservers] == [True, False]


def test_local_mode_validates_from_the_root_by_default() -> None:
    clock = FrozenClock("2026-01-01T00:00:00Z")
    settings = DnsSettings(dnssec=DnssecMode.LOCAL, nameservers=("192.0.2.53",))
    resolver = resolver_from_settings(settings, clock=clock)
    assert isinstance(resolver, ValidatingResolver)
    assert resolver.anchor == ROOT_TRUST_ANCHOR
    assert resolver.clock is clock


def test_local_mode_reads_an_anchor_from_text() -> None:
    settings = DnsSettings.model_validate(
        {"dnssec": "local", "nameservers": ["127.0.0.1:5300"], "trust_anchor": ANCHOR}
    )
    resolver = resolver_from_settings(settings)
    assert isinstance(resolver, ValidatingResolver)
    assert resolver.anchor == parse_trust_anchor(ANCHOR)
    assert resolver.anchor != ROOT_TRUST_ANCHOR


def test_retry_limit() -> None:
    assert MAX_RETRIES == 10
    assert DnsSettings(retries=MAX_RETRIES).retries == MAX_RETRIES


def test_limits_are_passed_on() -> None:
    for mode in DnssecMode:
        settings = DnsSettings(
            dnssec=mode, nameservers=("127.0.0.1",), timeout=0.5, retries=0, lifetime=1.5
        )
        resolver = resolver_from_settings(settings)
        assert (resolver.timeout, resolver.retries, resolver.lifetime) == (0.5, 0, 1.5)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"dnssec": "local", "trusted": ("127.0.0.1",)}, "local mode"),
        ({"trust_anchor": ANCHOR}, "validator mode"),
        ({"dnssec": "local", "trust_anchor": "not a record"}, "trust anchor"),
        ({"nameservers": ("ns.example",)}, "not an IP address"),
        ({"dnssec": "remote"}, "dnssec"),
        ({"timeout": 0}, "timeout"),
        ({"retries": MAX_RETRIES + 1}, "retries"),
    ],
)
def test_settings_that_do_not_fit_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DnsSettings.model_validate(fields)


async def test_client_builds_and_closes_the_configured_resolver() -> None:
    clock = FrozenClock("2026-01-01T00:00:00Z")
    settings = DnsSettings(dnssec="local", nameservers=("127.0.0.1:5300",), trust_anchor=ANCHOR)
    async with MtaSecure(dns=settings, clock=clock) as client:
        resolver = client.resolver
        assert isinstance(resolver, ValidatingResolver)
        assert resolver.clock is clock
    with pytest.raises(DnsError, match="closed"):
        await resolver.resolve("example.com", "A")


async def test_client_refuses_both_resolver_and_settings() -> None:
    with pytest.raises(UsageError, match="not both"):
        MtaSecure(resolver=FakeResolver(), dns=DnsSettings())
