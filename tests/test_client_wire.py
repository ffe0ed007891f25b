"""plan_delivery and check_mx run MTA-STS discovery themselves (issues 4, 5, 6).

Every test goes through the public fakes: FakeResolver for DNS, FakeHttpClient
for the policy host, FakeSmtp for the MX, FrozenClock for time.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509

from mtasecure import FailureReason, HttpError
from mtasecure.certs import TrustStore
from mtasecure.client import MtaSecure, MxAddressCheck, MxCheck, StsLookup, StsSettings
from mtasecure.dane import association_data
from mtasecure.decision import RequirementKind, SessionOutcome, StsMode, StsState
from mtasecure.requiretls import MessageFlags
from mtasecure.results import CheckResult
from mtasecure.sts import PolicyMode, StsPolicy
from mtasecure.testing import FakeHttpClient, FakeResolver, FakeSmtp, FrozenClock
from tests.pki import NOW
from tests.pki import pki as make_pki

DOMAIN = "example.com"
MX = "mx.example.com"
URL = "https://mta-sts.example.com/.well-known/mta-sts.txt"


def policy(mode: str, mx: str = MX) -> str:
    return f"version: STSv1\nmode: {mode}\nmx: {mx}\nmax_age: 604800\n"


def zone(*extra: str, mx_security: str = "insecure", record: str | None = "id=1") -> str:
    lines = [
        f"$SECURITY {mx_security}",
        f"{DOMAIN}. MX 10 {MX}.",
        f"{MX}. A 192.0.2.25",
        *extra,
    ]
    if record is not None:
        lines += ["$SECURITY insecure", f'_mta-sts.{DOMAIN}. TXT "v=STSv1; {record};"']
    return "\n".join(lines)


def client(
    resolver: FakeResolver,
    http: FakeHttpClient,
    *,
    smtp: FakeSmtp | None = None,
    clock: FrozenClock | None = None,
    exclude: tuple[str, ...] = (),
) -> MtaSecure:
    return MtaSecure(
        resolver=resolver,
        http=http,
        smtp=smtp or FakeSmtp(),
        clock=clock or FrozenClock(NOW),
        sts=StsSettings(exclude=exclude),
    )


def served(body: str | None) -> FakeHttpClient:
    http = FakeHttpClient()
    if body is not None:
        http.add(URL, body)
    return http


# --- StsLookup.state ---------------------------------------------------------------


def test_lookup_state_keeps_the_policy_and_the_discovery_failure() -> None:
    enforce = StsPolicy(mode=PolicyMode.ENFORCE, mx=(MX,), max_age=86400)
    webpki = FailureReason.STS_WEBPKI_INVALID
    cached = StsLookup(domain=DOMAIN, policy=enforce, result=CheckResult.failed(webpki, "x"))
    assert cached.state == StsState(mode=StsMode.ENFORCE, mx=(MX,), failure=webpki)
    none = StsLookup(domain=DOMAIN, result=CheckResult.failed(webpki, "x"))
    assert none.state == StsState(failure=webpki)
    excluded = StsLookup(domain=DOMAIN, excluded=True)
    assert excluded.state == StsState()
    # A result that is no discovery failure is not passed on as one.
    odd = StsLookup(domain=DOMAIN, result=CheckResult.failed(FailureReason.DNSSEC_INVALID, "x"))
    assert odd.state == StsState()


# --- plan_delivery ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "kind", "match"),
    [
        (policy("enforce"), RequirementKind.STS_ENFORCE, True),
        (policy("enforce", "other.example.net"), RequirementKind.UNUSABLE, False),
        (policy("testing"), RequirementKind.STS_TESTING, True),
        (policy("testing", "other.example.net"), RequirementKind.STS_TESTING, False),
        (policy("none"), RequirementKind.OPPORTUNISTIC, None),
    ],
)
async def test_plan_delivery_discovers_the_policy(
    body: str, kind: RequirementKind, match: bool | None
) -> None:
    http = served(body)
    async with client(FakeResolver(zone=zone()), http) as mta:
        result = await mta.plan_delivery(DOMAIN)
    (requirement,) = result.requirements
    assert requirement.kind is kind
    assert requirement.sts_mx_match is match
    assert result.sts_failure is None
    assert http.requests == [URL]


async def test_plan_delivery_without_a_record_is_opportunistic() -> None:
    http = served(policy("enforce"))
    async with client(FakeResolver(zone=zone(record=None)), http) as mta:
        result = await mta.plan_delivery(DOMAIN)
    assert result.requirements[0].kind is RequirementKind.OPPORTUNISTIC
    assert result.sts_failure is None
    assert http.requests == []  # no _mta-sts record: no fetch (RFC 8461 §3.1)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (HttpError(f"{URL}: connection refused"), FailureReason.STS_POLICY_FETCH_ERROR),
        (
            HttpError(f"{URL}: certificate verify failed", certificate=True),
            FailureReason.STS_WEBPKI_INVALID,
        ),
    ],
)
async def test_failed_fetch_without_cache_is_no_policy_reported(
    error: HttpError, reason: FailureReason
) -> None:
    http = FakeHttpClient()
    http.fail(URL, error)
    async with client(FakeResolver(zone=zone()), http) as mta:
        result = await mta.plan_delivery(DOMAIN, MessageFlags(requiretls=True))
    (requirement,) = result.requirements
    # RFC 8461 §3.3: as though the domain had no policy ...
    assert requirement.kind is RequirementKind.OPPORTUNISTIC
    # ... so an insecure MX is not validated for REQUIRETLS (RFC 8689 §4.2.1 step 2).
    assert not requirement.usable
    # RFC 8460 §4.3.2.2: the failure is reported.
    assert result.sts_failure is reason


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (HttpError(f"{URL}: timed out"), FailureReason.STS_POLICY_FETCH_ERROR),
        (HttpError(f"{URL}: bad certificate", certificate=True), FailureReason.STS_WEBPKI_INVALID),
    ],
)
async def test_failed_fetch_keeps_the_cached_enforce_policy(
    error: HttpError, reason: FailureReason
) -> None:
    resolver = FakeResolver(zone=zone())
    http = served(policy("enforce"))
    clock = FrozenClock(NOW)
    async with client(resolver, http, clock=clock) as mta:
        first = await mta.plan_delivery(DOMAIN)
        assert first.requirements[0].kind is RequirementKind.STS_ENFORCE
        # A new id is published, but the new policy cannot be fetched.
        resolver._rrsets.pop((f"_mta-sts.{DOMAIN}", "TXT"))
        resolver.add(f"_mta-sts.{DOMAIN}", "TXT", ['"v=STSv1; id=2;"'])
        http.fail(URL, error)
        clock.advance(timedelta(hours=1))
        later = await mta.plan_delivery(DOMAIN)
    # RFC 8461 §3.3, §5.1: never downgrade a cached enforce policy on a failed fetch.
    assert later.requirements[0].kind is RequirementKind.STS_ENFORCE
    assert later.sts_failure is reason
    assert http.requests == [URL, URL]


async def test_excluded_domain_skips_discovery() -> None:
    resolver = FakeResolver(zone=zone())
    http = served(policy("enforce", "other.example.net"))
    async with client(resolver, http, exclude=("Example.COM.",)) as mta:
        result = await mta.plan_delivery(DOMAIN)
    assert result.requirements[0].kind is RequirementKind.OPPORTUNISTIC
    assert result.sts_failure is None
    assert http.requests == []
    assert (f"_mta-sts.{DOMAIN}", "TXT") not in resolver.queries


async def test_secure_tlsa_beats_mta_sts() -> None:
    tlsa = f"_25._tcp.{MX}. TLSA 3 1 1 {'ab' * 32}"
    http = served(policy("enforce", "other.example.net"))
    async with client(FakeResolver(zone=zone(tlsa, mx_security="secure")), http) as mta:
        result = await mta.plan_delivery(DOMAIN)
    # RFC 8461 §2: DANE, when it applies, takes precedence over MTA-STS;
    # even a policy that leaves the MX out does not make it unusable.
    assert result.requirements[0].kind is RequirementKind.DANE
    assert http.requests == [URL]  # MTA-STS is still discovered (and reported on)


async def test_sts_argument_overrides_discovery() -> None:
    resolver = FakeResolver(zone=zone())
    http = served(policy("none"))
    override = StsState(mode=StsMode.ENFORCE, mx=(MX,))
    async with client(resolver, http) as mta:
        result = await mta.plan_delivery(DOMAIN, sts=override)
    assert result.requirements[0].kind is RequirementKind.STS_ENFORCE
    assert http.requests == []
    assert (f"_mta-sts.{DOMAIN}", "TXT") not in resolver.queries


# --- check_mx ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki() -> dict[str, object]:
    world = make_pki("wire")
    other = world.issue("other", sans=("other.example.net",))
    return {"good": world.chain, "other": other, "trust": TrustStore([world.root.cert])}


def chain(pki: dict[str, object], name: str) -> list[x509.Certificate]:
    found = pki[name]
    assert isinstance(found, list)
    return found


def outcome(address: MxAddressCheck) -> SessionOutcome:
    assert address.outcome is not None
    return address.outcome


def kind(result: MxCheck) -> RequirementKind:
    assert result.requirement is not None
    return result.requirement.kind


async def check(
    pki: dict[str, object],
    body: str | None,
    certificate: str,
    *extra: str,
    mx_security: str = "insecure",
    exclude: tuple[str, ...] = (),
) -> tuple[MxCheck, FakeSmtp]:
    smtp = FakeSmtp()
    smtp.script(MX, chain=chain(pki, certificate))
    resolver = FakeResolver(zone=zone(*extra, mx_security=mx_security))
    trust = pki["trust"]
    assert isinstance(trust, TrustStore)
    async with client(resolver, served(body), smtp=smtp, exclude=exclude) as mta:
        return await mta.check_mx(DOMAIN, MX, trust=trust), smtp


async def test_check_mx_enforce_good_certificate_delivers(pki: dict[str, object]) -> None:
    result, _ = await check(pki, policy("enforce"), "good")
    assert kind(result) is RequirementKind.STS_ENFORCE
    assert result.sts is not None
    assert result.sts.mode is StsMode.ENFORCE
    (address,) = result.checks
    assert outcome(address).deliver
    assert outcome(address).reason is None
    assert result.deliver
    assert result.reasons == ()


async def test_check_mx_enforce_wrong_name_is_not_delivered(pki: dict[str, object]) -> None:
    result, _ = await check(pki, policy("enforce"), "other")
    (address,) = result.checks
    assert not outcome(address).deliver
    assert outcome(address).reason is FailureReason.CERTIFICATE_HOST_MISMATCH
    assert not result.deliver
    assert result.reasons == (FailureReason.CERTIFICATE_HOST_MISMATCH,)


async def test_check_mx_testing_wrong_name_delivers_and_reports(pki: dict[str, object]) -> None:
    result, _ = await check(pki, policy("testing"), "other")
    (address,) = result.checks
    assert outcome(address).deliver  # RFC 8461 §5: testing delivers anyway
    assert outcome(address).reason is FailureReason.CERTIFICATE_HOST_MISMATCH


async def test_check_mx_outside_enforce_policy_is_not_probed(pki: dict[str, object]) -> None:
    result, smtp = await check(pki, policy("enforce", "other.example.net"), "good")
    assert kind(result) is RequirementKind.UNUSABLE
    assert result.checks == ()
    assert "RFC 8461 §4.1" in result.detail
    assert smtp.calls == []
    assert result.reasons == (FailureReason.VALIDATION_FAILURE,)


async def test_check_mx_webpki_invalid_policy_host_is_reported(pki: dict[str, object]) -> None:
    smtp = FakeSmtp()
    smtp.script(MX, chain=chain(pki, "other"))
    http = FakeHttpClient()
    http.fail(URL, HttpError(f"{URL}: bad certificate", certificate=True))
    trust = pki["trust"]
    assert isinstance(trust, TrustStore)
    async with client(FakeResolver(zone=zone()), http, smtp=smtp) as mta:
        result = await mta.check_mx(DOMAIN, MX, trust=trust)
    assert result.requirement is not None
    assert kind(result) is RequirementKind.OPPORTUNISTIC
    assert result.sts is not None
    assert result.sts.failure is FailureReason.STS_WEBPKI_INVALID
    assert result.deliver
    assert result.reasons == (FailureReason.STS_WEBPKI_INVALID,)


async def test_check_mx_excluded_domain_is_opportunistic(pki: dict[str, object]) -> None:
    result, _ = await check(pki, policy("enforce"), "other", exclude=(DOMAIN,))
    assert kind(result) is RequirementKind.OPPORTUNISTIC
    assert result.deliver


async def test_check_mx_dane_beats_sts(pki: dict[str, object]) -> None:
    good = chain(pki, "good")
    data = association_data(good[0], 1, 1)
    assert data is not None
    tlsa = f"_25._tcp.{MX}. TLSA 3 1 1 {data.hex()}"
    # The policy leaves the MX out; DANE applies and decides (RFC 8461 §2).
    result, _ = await check(
        pki, policy("enforce", "other.example.net"), "good", tlsa, mx_security="secure"
    )
    assert kind(result) is RequirementKind.DANE
    (address,) = result.checks
    assert outcome(address).deliver
    assert address.dane.ok
