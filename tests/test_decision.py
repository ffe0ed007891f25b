"""decision.plan / judge / conclude beyond the single-MX matrix: order, several MXes, edges."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from mtasecure import decision
from mtasecure._names import match_wildcard, normalize_host
from mtasecure.dane import DanePolicy, DaneState, parse_tlsa
from mtasecure.decision import (
    Authentication,
    MxCandidate,
    PolicyType,
    RequirementKind,
    SessionObservation,
    SessionOutcome,
    StsState,
    Verdict,
    conclude,
    judge,
    plan,
)
from mtasecure.dnssec import Security
from mtasecure.errors import NameSyntaxError, UsageError
from mtasecure.requiretls import MessageFlags, RequireTlsFailure
from mtasecure.results import CheckResult, FailureReason
from mtasecure.sts import PolicyMode, StsPolicy

REQUIRETLS = MessageFlags(requiretls=True)
GOOD = CheckResult.passed()


def good_session(host: str, *, advertised: bool = True) -> SessionObservation:
    return SessionObservation(
        host=host,
        starttls_offered=True,
        tls_established=True,
        webpki=GOOD,
        dane=GOOD,
        requiretls_advertised=advertised,
    )


def test_public_objects_have_docstrings() -> None:
    undocumented = [
        name
        for name in decision.__all__
        if callable(getattr(decision, name)) and not (getattr(decision, name).__doc__ or "").strip()
    ]
    assert undocumented == []


def test_all_is_pinned() -> None:
    assert decision.__all__ == sorted(decision.__all__)
    assert set(decision.__all__) == {
        "Authentication",
        "Conclusion",
        "DeliveryPlan",
        "MxCandidate",
        "PolicyType",
        "RequireTlsNeeds",
        "RequirementKind",
        "SessionObservation",
        "SessionOutcome",
        "StsState",
        "TransportRequirement",
        "Verdict",
        "conclude",
        "judge",
        "plan",
    }


def test_requirements_come_in_preference_order_stable_for_ties() -> None:
    mx = [
        MxCandidate(host="c.example", preference=20),
        MxCandidate(host="a.example", preference=10),
        MxCandidate(host="b.example", preference=10),
    ]
    result = plan("example", mx_security=Security.INSECURE, mx=mx)
    assert [r.host for r in result.requirements] == ["a.example", "b.example", "c.example"]


def test_names_are_normalised() -> None:
    result = plan(
        "Example.NET.",
        mx_security=Security.INSECURE,
        mx=[MxCandidate(host="MX.Example.NET.")],
        sts=StsState(mode=PolicyMode.ENFORCE, mx=("*.EXAMPLE.net",)),
    )
    assert result.domain == "example.net"
    assert result.requirements[0].host == "mx.example.net"
    assert result.requirements[0].kind is RequirementKind.STS_ENFORCE


def test_bad_inputs_are_usage_or_validation_errors() -> None:
    with pytest.raises(UsageError):
        plan("not a domain", mx_security=Security.SECURE, mx=[])
    with pytest.raises(ValidationError):
        MxCandidate(host="192.0.2.1")
    with pytest.raises(ValidationError):
        SessionObservation(host="mx..example")
    assert MxCandidate(host="MX.Example.").host == "mx.example"
    assert SessionObservation(host="Bücher.example").host == "xn--bcher-kva.example"
    with pytest.raises(ValidationError):
        MxCandidate(host="mx.example", preference=70000)
    with pytest.raises(ValidationError):
        StsState(mode=PolicyMode.ENFORCE, mx=("mx.*.example",))
    with pytest.raises(ValidationError):
        StsState(failure=FailureReason.DANE_REQUIRED)
    # RFC 8460 §4.3.2.2 lists all three as MTA-STS policy failures.
    for reason in (
        FailureReason.STS_POLICY_FETCH_ERROR,
        FailureReason.STS_POLICY_INVALID,
        FailureReason.STS_WEBPKI_INVALID,
    ):
        assert StsState(failure=reason).failure is reason


def test_mx_lookup_failure_is_like_bogus() -> None:
    result = plan(
        "example.net",
        mx_security=Security.INSECURE,
        mx=[MxCandidate(host="mx.example.net")],
        mx_lookup_failed=True,
    )
    (requirement,) = result.requirements
    assert requirement.kind is RequirementKind.UNUSABLE
    assert requirement.reason is FailureReason.DNSSEC_INVALID
    assert requirement.detail.startswith("MX lookup failed")


def test_dane_is_not_applied_for_an_insecure_mx_set() -> None:
    result = plan(
        "example.net",
        mx_security=Security.INSECURE,
        mx=[MxCandidate(host="mx.example.net", tlsa=DaneState.USABLE, tlsa_records=("3 1 1 ab",))],
    )
    assert result.requirements[0].kind is RequirementKind.OPPORTUNISTIC


def test_dane_requirement_carries_the_tlsa_set_and_policy_type() -> None:
    records = ("3 1 1 abcd", "2 1 1 ef01")
    result = plan(
        "example.net",
        mx_security=Security.SECURE,
        mx=[MxCandidate(host="mx.example.net", tlsa=DaneState.USABLE, tlsa_records=records)],
        sts=StsState(mode=PolicyMode.ENFORCE, mx=("mx.example.net",)),
    )
    (requirement,) = result.requirements
    assert requirement.kind is RequirementKind.DANE
    assert requirement.tlsa_records == records
    assert requirement.authentication is Authentication.DANE
    assert requirement.policy_type is PolicyType.TLSA


@pytest.mark.parametrize("state", list(DaneState))
def test_candidate_from_a_dane_policy(state: DaneState) -> None:
    records = (parse_tlsa("3 1 1 " + "ab" * 32),) if state is DaneState.USABLE else ()
    policy = DanePolicy(state=state, base_domain="mx.example.net", records=records)
    candidate = MxCandidate.from_dane("mx.example.net", 10, policy)
    assert candidate.tlsa is state
    assert candidate.tlsa_records == (("3 1 1 " + "ab" * 32,) if records else ())


def test_implicit_mx_is_validated_for_requiretls() -> None:
    result = plan(
        "example.net",
        mx_security=Security.INSECURE,
        mx=[MxCandidate(host="example.net", implicit=True)],
        flags=REQUIRETLS,
    )
    (requirement,) = result.requirements
    assert requirement.requiretls is not None
    assert requirement.requiretls.mx_validated
    assert requirement.usable


def test_fetch_failure_is_reported_unless_tls_required_no() -> None:
    sts = StsState(failure=FailureReason.STS_POLICY_FETCH_ERROR)
    mx = [MxCandidate(host="mx.example.net")]
    assert (
        plan("example.net", mx_security=Security.INSECURE, mx=mx, sts=sts).sts_failure
        is FailureReason.STS_POLICY_FETCH_ERROR
    )
    ignored = plan(
        "example.net",
        mx_security=Security.INSECURE,
        mx=mx,
        sts=sts,
        flags=MessageFlags(tls_required_no=True),
    )
    assert ignored.sts_failure is None


def test_cached_enforce_policy_applies_after_a_fetch_failure() -> None:
    # RFC 8461 §3.3: a valid cached policy is applied when no live policy can be had.
    sts = StsState(
        mode=PolicyMode.ENFORCE,
        mx=("mx.example.net",),
        failure=FailureReason.STS_POLICY_FETCH_ERROR,
    )
    result = plan(
        "example.net",
        mx_security=Security.INSECURE,
        mx=[MxCandidate(host="mx.example.net")],
        sts=sts,
    )
    assert result.requirements[0].kind is RequirementKind.STS_ENFORCE
    assert result.sts_failure is FailureReason.STS_POLICY_FETCH_ERROR


def test_tls_required_no_marks_ignored_policies() -> None:
    flags = MessageFlags(tls_required_no=True)
    enforced = plan(
        "example.net",
        mx_security=Security.INSECURE,
        mx=[MxCandidate(host="mx.example.net")],
        sts=StsState(mode=PolicyMode.ENFORCE, mx=("mx.example.net",)),
        flags=flags,
    )
    assert enforced.requirements[0].policy_ignored
    plain = plan(
        "example.net",
        mx_security=Security.INSECURE,
        mx=[MxCandidate(host="mx.example.net")],
        flags=flags,
    )
    assert not plain.requirements[0].policy_ignored


def test_judge_refuses_a_session_to_another_host() -> None:
    (requirement,) = plan(
        "example.net", mx_security=Security.INSECURE, mx=[MxCandidate(host="mx.example.net")]
    ).requirements
    with pytest.raises(UsageError):
        judge(requirement, good_session("other.example.net"))


def test_missing_certificate_check_fails_closed() -> None:
    (requirement,) = plan(
        "example.net",
        mx_security=Security.INSECURE,
        mx=[MxCandidate(host="mx.example.net")],
        sts=StsState(mode=PolicyMode.ENFORCE, mx=("mx.example.net",)),
    ).requirements
    session = SessionObservation(host="mx.example.net", starttls_offered=True, tls_established=True)
    outcome = judge(requirement, session)
    assert not outcome.deliver
    assert outcome.reason is FailureReason.VALIDATION_FAILURE


def test_handshake_failure_reason_is_passed_through() -> None:
    (requirement,) = plan(
        "example.net",
        mx_security=Security.INSECURE,
        mx=[MxCandidate(host="mx.example.net")],
        sts=StsState(mode=PolicyMode.TESTING, mx=("mx.example.net",)),
    ).requirements
    session = SessionObservation(
        host="mx.example.net",
        starttls_offered=True,
        tls_failure=FailureReason.CERTIFICATE_EXPIRED,
    )
    outcome = judge(requirement, session)
    assert outcome.deliver  # testing: deliver anyway (RFC 8461 §5)
    assert outcome.reason is FailureReason.CERTIFICATE_EXPIRED


# --- REQUIRETLS bounces (empty return path) ---------------------------------

BOUNCE_FLAGS = MessageFlags(requiretls=True, null_reverse_path=True)


def test_requiretls_bounce_is_not_bound_by_the_hop_rules() -> None:
    # RFC 8689 §4.2.1 binds only messages whose return path is not empty;
    # §5: a bounce SHOULD NOT be discarded for want of REQUIRETLS.
    (requirement,) = plan(
        "example.org",
        mx_security=Security.INSECURE,
        mx=[MxCandidate(host="mx.example.org")],
        flags=BOUNCE_FLAGS,
    ).requirements
    assert requirement.requiretls is None
    assert requirement.requiretls_parameter
    plain = judge(requirement, SessionObservation(host="mx.example.org"))
    assert plain.deliver
    assert not plain.use_requiretls_parameter
    offered = judge(requirement, good_session("mx.example.org"))
    assert offered.deliver
    assert offered.use_requiretls_parameter  # §5: the bounce also specifies REQUIRETLS


def test_requiretls_bounce_still_follows_the_recipient_policy() -> None:
    (requirement,) = plan(
        "example.org",
        mx_security=Security.INSECURE,
        mx=[MxCandidate(host="mx.example.org")],
        sts=StsState(mode=PolicyMode.ENFORCE, mx=("mx.example.org",)),
        flags=BOUNCE_FLAGS,
    ).requirements
    outcome = judge(requirement, SessionObservation(host="mx.example.org"))
    assert not outcome.deliver
    conclusion = conclude(
        plan(
            "example.org",
            mx_security=Security.INSECURE,
            mx=[MxCandidate(host="mx.example.org")],
            sts=StsState(mode=PolicyMode.ENFORCE, mx=("mx.example.org",)),
            flags=BOUNCE_FLAGS,
        ),
        {"mx.example.org": outcome},
    )
    assert conclusion.verdict is Verdict.DEFER  # never bounce a bounce


# --- conclude over several MXes ---------------------------------------------


def _two_mx_plan(flags: MessageFlags = REQUIRETLS) -> decision.DeliveryPlan:
    return plan(
        "example.net",
        mx_security=Security.SECURE,
        mx=[
            MxCandidate(host="a.example.net", preference=10),
            MxCandidate(host="b.example.net", preference=20),
        ],
        flags=flags,
    )


def test_requiretls_bounce_reports_the_furthest_step() -> None:
    delivery_plan = _two_mx_plan()
    a, b = delivery_plan.requirements
    no_tls = judge(a, SessionObservation(host="a.example.net"))
    no_keyword = judge(b, good_session("b.example.net", advertised=False))
    assert no_tls.requiretls_failure is RequireTlsFailure.TLS_NOT_ESTABLISHED
    assert no_keyword.requiretls_failure is RequireTlsFailure.REQUIRETLS_NOT_ADVERTISED
    conclusion = conclude(delivery_plan, {"a.example.net": no_tls, "b.example.net": no_keyword})
    assert conclusion.verdict is Verdict.BOUNCE
    assert conclusion.status == "5.7.30"
    only_tls = conclude(
        delivery_plan, {"a.example.net": no_tls, "b.example.net": no_tls.model_copy()}
    )
    assert only_tls.status == "5.7.10"


def test_an_unreached_mx_defers_a_requiretls_message() -> None:
    delivery_plan = _two_mx_plan()
    a, _ = delivery_plan.requirements
    no_keyword = judge(a, good_session("a.example.net", advertised=False))
    conclusion = conclude(delivery_plan, {"a.example.net": no_keyword, "b.example.net": None})
    assert conclusion.verdict is Verdict.DEFER
    assert conclude(delivery_plan, {"a.example.net": no_keyword}).verdict is Verdict.DEFER


def test_ordinary_message_failures_defer() -> None:
    delivery_plan = _two_mx_plan(MessageFlags())
    outcome = SessionOutcome(deliver=False, reason=FailureReason.STARTTLS_NOT_SUPPORTED)
    conclusion = conclude(delivery_plan, {"a.example.net": outcome, "b.example.net": outcome})
    assert conclusion.verdict is Verdict.DEFER


def test_a_failed_lookup_beside_an_unreached_mx_defers_with_directory_failure() -> None:
    # RFC 3463 §3.5 X.4.3: "The inability to connect to an Internet DNS server is one
    # example"; a failed TLSA lookup (RFC 7672 §2.1.2) is a DNS lookup too.
    delivery_plan = plan(
        "example.net",
        mx_security=Security.SECURE,
        mx=[
            MxCandidate(host="a.example.net", preference=10, tlsa=DaneState.FAILED),
            MxCandidate(host="b.example.net", preference=20),
        ],
    )
    conclusion = conclude(delivery_plan, {"b.example.net": None})
    assert (conclusion.verdict, conclusion.status) == (Verdict.DEFER, "4.4.3")
    assert "DNS lookup" in conclusion.detail


@pytest.mark.parametrize(
    ("security", "failed"),
    [(Security.INSECURE, True), (Security.BOGUS, False), (Security.INDETERMINATE, False)],
)
@pytest.mark.parametrize("hosts", [(), ("mx.example.net",)])
@pytest.mark.parametrize("flags", [MessageFlags(), REQUIRETLS])
def test_a_failed_mx_lookup_defers_with_directory_failure(
    security: Security, failed: bool, hosts: tuple[str, ...], flags: MessageFlags
) -> None:
    # The client passes no MX hosts when the MX lookup failed (mtasecure.client.plan_delivery).
    delivery_plan = plan(
        "example.net",
        mx_security=security,
        mx=[MxCandidate(host=h) for h in hosts],
        flags=flags,
        mx_lookup_failed=failed,
    )
    assert delivery_plan.mx_lookup_failed
    conclusion = conclude(delivery_plan, {})
    assert (conclusion.verdict, conclusion.status) == (Verdict.DEFER, "4.4.3")


def test_an_empty_plan_without_a_failed_lookup_is_not_a_directory_failure() -> None:
    delivery_plan = plan("example.net", mx_security=Security.SECURE, mx=[])
    assert not delivery_plan.mx_lookup_failed
    assert conclude(delivery_plan, {}).status == "4.4.0"


def test_a_requiretls_step_outranks_a_failed_lookup() -> None:
    delivery_plan = plan(
        "example.net",
        mx_security=Security.SECURE,
        mx=[
            MxCandidate(host="a.example.net", preference=10, tlsa=DaneState.FAILED),
            MxCandidate(host="b.example.net", preference=20),
        ],
        flags=REQUIRETLS,
    )
    _, b = delivery_plan.requirements
    no_keyword = judge(b, good_session("b.example.net", advertised=False))
    conclusion = conclude(delivery_plan, {"b.example.net": no_keyword})
    assert (conclusion.verdict, conclusion.status) == (Verdict.DEFER, "4.7.10")


def test_other_failures_keep_the_undefined_routing_status() -> None:
    delivery_plan = _two_mx_plan(MessageFlags())
    assert conclude(delivery_plan, {"a.example.net": None}).status == "4.4.0"
    listed_elsewhere = plan(
        "example.net",
        mx_security=Security.SECURE,
        mx=[MxCandidate(host="mx.example.net")],
        sts=StsState(mode=PolicyMode.ENFORCE, mx=("other.example.net",)),
    )
    assert conclude(listed_elsewhere, {}).status == "4.4.0"


def test_conclude_refuses_a_delivered_message() -> None:
    with pytest.raises(UsageError):
        conclude(_two_mx_plan(), {"a.example.net": SessionOutcome(deliver=True)})


# --- properties ---------------------------------------------------------------

SECURITY = st.sampled_from(list(Security))
TLSA = st.sampled_from(list(DaneState))
MODES = st.sampled_from([None, *PolicyMode])


@given(
    security=SECURITY,
    tlsa=TLSA,
    mode=MODES,
    listed=st.booleans(),
    requiretls=st.booleans(),
    no=st.booleans(),
)
def test_invariants(  # noqa: PLR0917 - one argument per table column
    security: Security,
    tlsa: DaneState,
    mode: PolicyMode | None,
    listed: bool,
    requiretls: bool,
    no: bool,
) -> None:
    flags = MessageFlags(requiretls=requiretls, tls_required_no=no)
    sts = StsState(mode=mode, mx=("mx.example.net" if listed else "other.example.net",))
    (requirement,) = plan(
        "example.net",
        mx_security=security,
        mx=[MxCandidate(host="mx.example.net", tlsa=tlsa)],
        sts=sts,
        flags=flags,
    ).requirements
    # A bogus answer is never treated as insecure (RFC 7672 §2.1.1).
    if security in (Security.BOGUS, Security.INDETERMINATE):
        assert requirement.kind is RequirementKind.UNUSABLE
    # MTA-STS enforce is never silently downgraded (RFC 8461 §5) unless TLS-Required: No.
    if mode is PolicyMode.ENFORCE and not flags.tls_optional and requirement.usable:
        assert requirement.tls_required
        assert requirement.authentication is not Authentication.NONE
    # A REQUIRETLS message is never sent in clear (RFC 8689 §4.2.1).
    if requiretls and requirement.usable:
        cleartext = SessionObservation(host="mx.example.net", starttls_offered=False)
        assert not judge(requirement, cleartext).deliver


# --- adapters -------------------------------------------------------------------


@dataclass(frozen=True)
class _Keyword:
    name: str
    params: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Ehlo:
    keywords: tuple[_Keyword, ...]


@dataclass(frozen=True)
class _Probe:
    """The fields of the smtp branch's ProbeResult that from_probe reads."""

    host: str
    starttls_offered: bool
    tls_established: bool
    ehlo_tls: _Ehlo | None


@pytest.mark.parametrize(
    ("keywords", "tls", "advertised"),
    [
        ((_Keyword("SIZE", ("10",)), _Keyword("REQUIRETLS")), True, True),
        ((_Keyword("REQUIRETLS", ("X",)),), True, False),  # RFC 8689 §7: no parameters
        ((_Keyword("SIZE"),), True, False),
        ((_Keyword("REQUIRETLS"),), False, False),  # only inside TLS (RFC 8689 §2)
    ],
)
def test_observation_from_probe(
    keywords: tuple[_Keyword, ...], tls: bool, advertised: bool
) -> None:
    probe = _Probe("MX.example.net", True, tls, _Ehlo(keywords))
    observation = SessionObservation.from_probe(probe, webpki=GOOD)
    assert observation.host == "mx.example.net"
    assert observation.tls_established is tls
    assert observation.requiretls_advertised is advertised
    assert observation.webpki == GOOD
    assert SessionObservation.from_probe(_Probe("mx.example.net", False, False, None)).dane is None


def test_sts_state_of_a_policy_object() -> None:
    @dataclass(frozen=True)
    class Policy:
        mode: str
        mx: tuple[str, ...]

    state = StsState.of(
        Policy("testing", ("*.Example.net",)), failure=FailureReason.STS_POLICY_INVALID
    )
    assert state.mode is PolicyMode.TESTING
    assert state.mx == ("*.example.net",)
    assert state.matches("mx.example.net")
    assert not state.matches("example.net")


@given(
    patterns=st.lists(
        st.sampled_from(["mx.example.net", "*.example.net", "*.b.example.net"]), max_size=3
    ),
    host=st.sampled_from(
        ["mx.example.net", "a.b.example.net", "example.net", "MX.Example.Net.", "x..y"]
    ),
)
def test_sts_state_and_policy_agree_on_mx_coverage(patterns: list[str], host: str) -> None:
    # RFC 8461 §4.1: the decision must not read a policy's mx list differently from the policy.
    state = StsState(mode=PolicyMode.ENFORCE, mx=tuple(patterns))
    policy = StsPolicy(
        mode=PolicyMode.ENFORCE, mx=tuple(patterns) or ("mx.example.net",), max_age=86400
    )
    if patterns:
        assert state.matches(host) is policy.matches(host)
    try:
        normal = [normalize_host(host)]
    except NameSyntaxError:
        normal = []  # not a host name: covered by nothing
    assert state.matches(host) is any(match_wildcard(p, h) for p in state.mx for h in normal)
