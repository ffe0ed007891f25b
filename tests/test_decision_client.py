"""MtaSecure.plan_delivery: MX, address and TLSA lookups through a resolver, then decision.plan."""

from __future__ import annotations

import pytest

from mtasecure.client import MtaSecure
from mtasecure.decision import RequirementKind, StsState
from mtasecure.errors import NameSyntaxError
from mtasecure.requiretls import MessageFlags, RequireTlsFailure
from mtasecure.results import FailureReason
from mtasecure.sts import PolicyMode, StsPolicy
from mtasecure.testing import FakeResolver

DIGEST = "ab" * 32

ZONE = f"""
$SECURITY secure
dane.example.       MX    10 mx1.dane.example.
dane.example.       MX    20 mx2.dane.example.
mx1.dane.example.   A     192.0.2.1
mx2.dane.example.   A     192.0.2.2
_25._tcp.mx1.dane.example. TLSA 3 1 1 {DIGEST}
v6.example.         MX    10 mx.v6.example.
mx.v6.example.      AAAA  2001:db8::25
_25._tcp.mx.v6.example. TLSA 3 1 1 {DIGEST}
badtlsa.example.    MX    10 mx.badtlsa.example.
mx.badtlsa.example. A     192.0.2.3
implicit.example.   A     192.0.2.4
$SECURITY bogus
_25._tcp.mx.badtlsa.example. FAIL
$SECURITY secure
hosted.example.     MX    10 mx.provider.example.
$SECURITY insecure
mx.provider.example. A    192.0.2.5
_25._tcp.mx.provider.example. TLSA 3 1 1 {DIGEST}
plain.example.      MX    10 mx.plain.example.
mx.plain.example.   A     192.0.2.6
_25._tcp.mx.plain.example. TLSA 3 1 1 {DIGEST}
$SECURITY bogus
broken.example.     FAIL
"""


@pytest.fixture
def resolver() -> FakeResolver:
    return FakeResolver(zone=ZONE)


async def test_dane_mx_and_plain_mx_in_preference_order(resolver: FakeResolver) -> None:
    async with MtaSecure(resolver=resolver) as client:
        result = await client.plan_delivery("dane.example")
    kinds = [(r.host, r.kind) for r in result.requirements]
    assert kinds == [
        ("mx1.dane.example", RequirementKind.DANE),
        ("mx2.dane.example", RequirementKind.OPPORTUNISTIC),
    ]
    assert result.requirements[0].tlsa_records == (f"3 1 1 {DIGEST}",)


async def test_aaaa_is_tried_when_there_is_no_a_record(resolver: FakeResolver) -> None:
    async with MtaSecure(resolver=resolver) as client:
        result = await client.plan_delivery("v6.example")
    assert result.requirements[0].kind is RequirementKind.DANE


async def test_failed_tlsa_lookup_makes_the_mx_unusable(resolver: FakeResolver) -> None:
    async with MtaSecure(resolver=resolver) as client:
        result = await client.plan_delivery("badtlsa.example")
    (requirement,) = result.requirements
    assert requirement.kind is RequirementKind.UNUSABLE
    assert requirement.reason is FailureReason.DNSSEC_INVALID


async def test_insecure_address_means_no_tlsa_lookup(resolver: FakeResolver) -> None:
    async with MtaSecure(resolver=resolver) as client:
        result = await client.plan_delivery("hosted.example")
    assert result.requirements[0].kind is RequirementKind.OPPORTUNISTIC
    assert ("_25._tcp.mx.provider.example", "TLSA") not in resolver.queries  # RFC 7672 §2.2.2


async def test_insecure_mx_set_means_no_address_or_tlsa_lookup(resolver: FakeResolver) -> None:
    async with MtaSecure(resolver=resolver) as client:
        result = await client.plan_delivery("plain.example", MessageFlags(requiretls=True))
    (requirement,) = result.requirements
    assert requirement.kind is RequirementKind.OPPORTUNISTIC
    assert requirement.requiretls_failure is RequireTlsFailure.MX_NOT_VALIDATED
    assert [q for q in resolver.queries if q[1] in ("A", "TLSA")] == []


async def test_sts_policy_validates_an_insecure_mx_for_requiretls(resolver: FakeResolver) -> None:
    policy = StsPolicy(mode=PolicyMode.TESTING, mx=("mx.plain.example",), max_age=86400)
    async with MtaSecure(resolver=resolver) as client:
        result = await client.plan_delivery(
            "plain.example", MessageFlags(requiretls=True), sts=policy
        )
    (requirement,) = result.requirements
    assert requirement.kind is RequirementKind.STS_TESTING
    assert requirement.usable
    state = StsState(mode=PolicyMode.ENFORCE, mx=("mx.plain.example",))
    async with MtaSecure(resolver=resolver) as client:
        enforced = await client.plan_delivery("plain.example", sts=state)
    assert enforced.requirements[0].kind is RequirementKind.STS_ENFORCE


async def test_failed_mx_lookup(resolver: FakeResolver) -> None:
    async with MtaSecure(resolver=resolver) as client:
        result = await client.plan_delivery("broken.example")
    assert result.requirements == ()
    assert result.usable == ()


async def test_implicit_mx(resolver: FakeResolver) -> None:
    async with MtaSecure(resolver=resolver) as client:
        result = await client.plan_delivery("implicit.example", MessageFlags(requiretls=True))
    (requirement,) = result.requirements
    assert requirement.host == "implicit.example"
    assert requirement.usable  # no MX record to forge (RFC 8689 §4.2.1 step 2)


async def test_bad_domain(resolver: FakeResolver) -> None:
    async with MtaSecure(resolver=resolver) as client:
        with pytest.raises(NameSyntaxError):
            await client.plan_delivery("not a domain")
