"""MtaSecure.check_mx with the public fakes: DNS, DANE state, probe, verdicts (RFC 7672)."""

from __future__ import annotations

import pytest
from cryptography import x509

from mtasecure import FailureReason
from mtasecure._mxcheck import (
    MxCheck,
    check_session,
    plan_address_dane,
    plan_mx_set_dane,
    weakest_security,
)
from mtasecure.certs import TrustStore
from mtasecure.client import MtaSecure
from mtasecure.dane import DaneState, association_data
from mtasecure.decision import RequirementKind, StsState
from mtasecure.dnssec import DnsAnswer, Security
from mtasecure.mx import MxHost, MxSet
from mtasecure.testing import FakeResolver, FakeSmtp, FrozenClock
from mtasecure.transport import ProbeOutcome, ProbeResult, ProbeStage
from tests.pki import NOW
from tests.pki import pki as make_pki

MX = "mx.example.com"


@pytest.fixture(scope="module")
def pki() -> dict[str, object]:
    world = make_pki("checkmx")
    other = world.issue("other", sans=("other.example.net",))
    return {"good": world.chain, "other": other, "trust": TrustStore([world.root.cert])}


def _tlsa(cert: x509.Certificate, usage: int = 3, selector: int = 1, mtype: int = 1) -> str:
    data = association_data(cert, selector, mtype)
    assert data is not None
    return f"_25._tcp.{MX}. TLSA {usage} {selector} {mtype} {data.hex()}"


def _zone(*tlsa: str, address_security: str = "secure", tlsa_security: str = "secure") -> str:
    lines = [
        "$SECURITY secure",
        f"example.com. MX 10 {MX}.",
        f"$SECURITY {address_security}",
        f"{MX}. A 192.0.2.25",
        f"$SECURITY {tlsa_security}",
        *tlsa,
    ]
    return "\n".join(lines)


async def _check(zone: str, smtp: FakeSmtp, trust: TrustStore) -> tuple[MxCheck, FakeResolver]:
    resolver = FakeResolver(zone=zone)
    async with MtaSecure(resolver=resolver, smtp=smtp, clock=FrozenClock(NOW)) as client:
        return await client.check_mx("example.com", MX, trust=trust), resolver


async def test_dane_ee_match_and_webpki_pass(pki: dict[str, object]) -> None:
    chain = pki["good"]
    assert isinstance(chain, list)
    smtp = FakeSmtp()
    smtp.script(MX, chain=chain)
    result, _ = await _check(_zone(_tlsa(chain[0])), smtp, pki["trust"])  # type: ignore[arg-type]
    assert result.dane_policy.state is DaneState.USABLE
    (check,) = result.checks
    assert check.address == "192.0.2.25"
    assert check.dane.ok, check.dane.detail
    assert check.webpki is not None
    assert check.webpki.ok, check.webpki.detail
    assert result.dane_ok
    assert smtp.calls == [(MX, "192.0.2.25", 25)]
    # The decision joins in: DANE governs, and the session meets it.
    assert result.requirement is not None
    assert result.requirement.kind is RequirementKind.DANE
    assert result.sts == StsState()  # no _mta-sts record
    assert check.outcome is not None
    assert check.outcome.deliver
    assert (result.deliver, result.reasons) == (True, ())


async def test_dane_ta_match_on_the_intermediate(pki: dict[str, object]) -> None:
    chain = pki["good"]
    assert isinstance(chain, list)
    smtp = FakeSmtp()
    smtp.script(MX, chain=chain)
    zone = _zone(_tlsa(chain[1], usage=2, selector=0, mtype=1))
    result, _ = await _check(zone, smtp, pki["trust"])  # type: ignore[arg-type]
    assert result.checks[0].dane.ok, result.checks[0].dane.detail


async def test_dane_mismatch_fails_even_with_valid_webpki(pki: dict[str, object]) -> None:
    chain, other = pki["good"], pki["other"]
    assert isinstance(chain, list)
    assert isinstance(other, list)
    smtp = FakeSmtp()
    smtp.script(MX, chain=chain)
    result, _ = await _check(_zone(_tlsa(other[0])), smtp, pki["trust"])  # type: ignore[arg-type]
    check = result.checks[0]
    assert not check.dane.ok
    assert check.webpki is not None
    assert check.webpki.ok
    assert not result.dane_ok


async def test_wrong_name_without_dane_is_a_webpki_host_mismatch(pki: dict[str, object]) -> None:
    other = pki["other"]
    assert isinstance(other, list)
    smtp = FakeSmtp()
    smtp.script(MX, chain=other)
    result, resolver = await _check(_zone(), smtp, pki["trust"])  # type: ignore[arg-type]
    assert result.dane_policy.state is DaneState.NO_TLSA
    check = result.checks[0]
    assert check.webpki is not None
    assert check.webpki.reason is FailureReason.CERTIFICATE_HOST_MISMATCH
    assert check.dane.ok
    assert (f"_25._tcp.{MX}", "TLSA") in resolver.queries


async def test_insecure_addresses_skip_the_tlsa_lookup(pki: dict[str, object]) -> None:
    chain = pki["good"]
    assert isinstance(chain, list)
    smtp = FakeSmtp()
    smtp.script(MX, chain=chain)
    zone = _zone(_tlsa(chain[0]), address_security="insecure")
    result, resolver = await _check(zone, smtp, pki["trust"])  # type: ignore[arg-type]
    assert result.dane_policy.state is DaneState.INSECURE
    assert result.address_security is Security.INSECURE
    assert all(rdtype != "TLSA" for _, rdtype in resolver.queries)
    assert result.checks[0].dane.ok


async def test_bogus_tlsa_means_no_probe(pki: dict[str, object]) -> None:
    chain = pki["good"]
    assert isinstance(chain, list)
    smtp = FakeSmtp()
    zone = _zone(_tlsa(chain[0]), tlsa_security="bogus")
    result, _ = await _check(zone, smtp, pki["trust"])  # type: ignore[arg-type]
    assert result.dane_policy.state is DaneState.FAILED
    assert result.checks == ()
    assert smtp.calls == []
    assert "must not be used" in result.detail
    assert result.requirement is not None
    assert result.requirement.kind is RequirementKind.UNUSABLE
    assert (result.deliver, result.reasons) == (False, (FailureReason.DNSSEC_INVALID,))


async def test_no_starttls_under_dane_is_starttls_not_supported(pki: dict[str, object]) -> None:
    chain = pki["good"]
    assert isinstance(chain, list)
    smtp = FakeSmtp()
    smtp.script(MX, outcome=ProbeOutcome.STARTTLS_NOT_OFFERED)
    result, _ = await _check(_zone(_tlsa(chain[0])), smtp, pki["trust"])  # type: ignore[arg-type]
    check = result.checks[0]
    assert check.dane.reason is FailureReason.STARTTLS_NOT_SUPPORTED
    assert check.webpki is None
    assert check.outcome is not None
    assert not check.outcome.deliver  # DANE makes TLS mandatory (RFC 7672 §2.2)
    assert check.outcome.reason is FailureReason.STARTTLS_NOT_SUPPORTED


def test_unreadable_chain_is_a_validation_failure(pki: dict[str, object]) -> None:
    probe = ProbeResult(
        host=MX,
        address="192.0.2.25",
        outcome=ProbeOutcome.OK,
        stage=ProbeStage.QUIT,
        tls_version="TLSv1.3",
        chain=(b"junk",),
    )
    answer = DnsAnswer(name=MX, rdtype="A", records=("192.0.2.25",), security=Security.SECURE)
    assert plan_address_dane(MX, (answer,)) is None
    insecure = answer.model_copy(update={"security": Security.INSECURE})
    policy = plan_address_dane(MX, (insecure,))
    assert policy is not None
    assert policy.state is DaneState.INSECURE
    check = check_session(probe, policy, now=NOW, trust=pki["trust"])  # type: ignore[arg-type]
    assert check.webpki is not None
    assert check.webpki.reason is FailureReason.VALIDATION_FAILURE
    assert check.dane.ok  # DANE does not apply
    bogus = answer.model_copy(update={"security": Security.BOGUS, "why": "expired RRSIG"})
    failed = plan_address_dane(MX, (answer, bogus))
    assert failed is not None
    assert failed.state is DaneState.FAILED
    assert weakest_security((answer, bogus)) is Security.BOGUS


@pytest.mark.parametrize(
    ("security", "failed", "listed", "expected"),
    [
        # RFC 7672 §2.2.1: a bogus, indeterminate or failed MX answer: the MX must not be used.
        (Security.BOGUS, False, True, DaneState.FAILED),
        (Security.INDETERMINATE, False, True, DaneState.FAILED),
        (Security.SECURE, True, True, DaneState.FAILED),
        (Security.BOGUS, False, False, DaneState.FAILED),
        # An insecure MX RRset that lists the host: DANE does not apply, nothing more is asked.
        (Security.INSECURE, False, True, DaneState.INSECURE),
        # Go on to the address records: a secure MX set, or a relay the set does not list.
        (Security.SECURE, False, True, None),
        (Security.INSECURE, False, False, None),
    ],
)
def test_plan_mx_set_dane_rfc7672_2_2_1(
    security: Security, failed: bool, listed: bool, expected: DaneState | None
) -> None:
    mx_set = MxSet(
        domain="example.com",
        hosts=(MxHost(preference=10, host=MX),),
        security=security,
        failed=failed,
        why="expired RRSIG" if security is Security.BOGUS else "",
    )
    policy = plan_mx_set_dane(mx_set, MX, listed=listed, port=25)
    if expected is None:
        assert policy is None
        return
    assert policy is not None
    assert policy.state is expected
    assert policy.base_domain == MX
    if expected is DaneState.FAILED:
        assert policy.reason is FailureReason.DNSSEC_INVALID
        assert "must not be used" in policy.detail
    else:
        assert policy.reason is None


def test_client_exports_the_check_types() -> None:
    import mtasecure.client

    assert mtasecure.client.__all__ == [
        "DEFAULT_POLICY_PORT",
        "MAX_TRACKED_DOMAINS",
        "MtaSecure",
        "MxAddressCheck",
        "MxCheck",
        "MxDane",
        "StsLookup",
        "StsSettings",
    ]


def _zone_with_mx(mx_security: str, *tlsa: str) -> str:
    return "\n".join(
        [
            f"$SECURITY {mx_security}",
            f"example.com. MX 10 {MX}.",
            "$SECURITY secure",
            f"{MX}. A 192.0.2.25",
            *tlsa,
        ]
    )


async def test_an_insecure_mx_set_means_no_dane(pki: dict[str, object]) -> None:
    chain = pki["good"]
    assert isinstance(chain, list)
    smtp = FakeSmtp()
    smtp.script(MX, chain=chain)
    zone = _zone_with_mx("insecure", _tlsa(chain[0]))
    result, resolver = await _check(zone, smtp, pki["trust"])  # type: ignore[arg-type]
    assert result.dane_policy.state is DaneState.INSECURE
    assert "§2.2.1" in result.dane_policy.detail
    assert all(rdtype != "TLSA" for _, rdtype in resolver.queries)
    assert result.checks[0].dane.ok


async def test_a_bogus_mx_set_means_no_probe(pki: dict[str, object]) -> None:
    chain = pki["good"]
    assert isinstance(chain, list)
    smtp = FakeSmtp()
    result, _ = await _check(_zone_with_mx("bogus", _tlsa(chain[0])), smtp, pki["trust"])  # type: ignore[arg-type]
    assert result.dane_policy.state is DaneState.FAILED
    assert result.dane_policy.reason is FailureReason.DNSSEC_INVALID
    assert smtp.calls == []


async def test_an_unlisted_host_is_checked_as_a_relay(pki: dict[str, object]) -> None:
    chain = pki["good"]
    assert isinstance(chain, list)
    smtp = FakeSmtp()
    smtp.script(MX, chain=chain)
    zone = "\n".join(
        [
            "$SECURITY insecure",
            "example.com. MX 10 other-mx.example.net.",
            "$SECURITY secure",
            f"{MX}. A 192.0.2.25",
            _tlsa(chain[0]),
        ]
    )
    result, _ = await _check(zone, smtp, pki["trust"])  # type: ignore[arg-type]
    assert result.dane_policy.state is DaneState.USABLE
    assert result.dane_policy.reference_names == (MX,)
    assert result.checks[0].dane.ok


def _alias_zone(*tlsa: str) -> str:
    return "\n".join(
        [
            "$SECURITY secure",
            f"example.com. MX 10 {MX}.",
            f"{MX}. CNAME real.example.net.",
            "real.example.net. A 192.0.2.25",
            *tlsa,
        ]
    )


async def test_a_secure_alias_tries_the_expanded_tlsa_base_first(pki: dict[str, object]) -> None:
    chain = pki["good"]
    assert isinstance(chain, list)
    smtp = FakeSmtp()
    smtp.script("real.example.net", chain=chain)
    leaf = _tlsa(chain[0]).split(" TLSA ")[1]
    zone = _alias_zone(f"_25._tcp.real.example.net. TLSA {leaf}")
    result, resolver = await _check(zone, smtp, pki["trust"])  # type: ignore[arg-type]
    # RFC 7672 §2.2.3: the expanded name is the TLSA base domain, and the SNI (§8.1).
    assert result.dane_policy.base_domain == "real.example.net"
    assert smtp.calls == [("real.example.net", "192.0.2.25", 25)]
    check = result.checks[0]
    assert check.dane.ok, check.dane.detail
    # WebPKI still checks the MX host name (RFC 8461 §4.2).
    assert check.webpki is not None
    assert check.webpki.ok, check.webpki.detail
    assert ("_25._tcp.real.example.net", "TLSA") in resolver.queries


async def test_a_secure_alias_falls_back_to_the_original_name(pki: dict[str, object]) -> None:
    chain = pki["good"]
    assert isinstance(chain, list)
    smtp = FakeSmtp()
    smtp.script(MX, chain=chain)
    result, resolver = await _check(_alias_zone(_tlsa(chain[0])), smtp, pki["trust"])  # type: ignore[arg-type]
    assert result.dane_policy.base_domain == MX
    tlsa_queries = [name for name, rdtype in resolver.queries if rdtype == "TLSA"]
    assert tlsa_queries == ["_25._tcp.real.example.net", f"_25._tcp.{MX}"]
    assert result.checks[0].dane.ok


def _signed_alias_to_unsigned_zone(*tlsa: str, alias_security: str = "secure") -> str:
    """A signed MX host name that is an alias into an unsigned provider zone."""
    return "\n".join(
        [
            "$SECURITY secure",
            f"example.com. MX 10 {MX}.",
            *tlsa,
            f"$SECURITY {alias_security}",
            f"{MX}. CNAME mx.provider.example.",
            "$SECURITY insecure",
            "mx.provider.example. A 192.0.2.25",
        ]
    )


async def test_a_secure_alias_into_an_unsigned_zone_keeps_its_tlsa_rfc7672_2_2_2(
    pki: dict[str, object],
) -> None:
    # §2.2.2 "Insecure CNAME": the first response is secure, the addresses are
    # not; TLSA is looked up at the original name, and only there.
    chain = pki["good"]
    assert isinstance(chain, list)
    smtp = FakeSmtp()
    smtp.script(MX, chain=chain)
    zone = _signed_alias_to_unsigned_zone(_tlsa(chain[0]))
    result, resolver = await _check(zone, smtp, pki["trust"])  # type: ignore[arg-type]
    assert result.dane_policy.state is DaneState.USABLE, result.dane_policy.detail
    assert result.dane_policy.base_domain == MX
    assert (MX, "CNAME") in resolver.queries
    assert [n for n, t in resolver.queries if t == "TLSA"] == [f"_25._tcp.{MX}"]
    assert result.checks[0].dane.ok
    assert result.requirement is not None
    assert result.requirement.kind is RequirementKind.DANE


async def test_an_insecure_alias_into_an_unsigned_zone_means_no_dane_rfc7672_2_2_2(
    pki: dict[str, object],
) -> None:
    chain = pki["good"]
    assert isinstance(chain, list)
    smtp = FakeSmtp()
    smtp.script(MX, chain=chain)
    zone = _signed_alias_to_unsigned_zone(_tlsa(chain[0]), alias_security="insecure")
    result, resolver = await _check(zone, smtp, pki["trust"])  # type: ignore[arg-type]
    assert result.dane_policy.state is DaneState.INSECURE
    assert not [n for n, t in resolver.queries if t == "TLSA"]
