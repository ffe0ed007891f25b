"""From decision to report entry: policy types, policy strings, what is recorded (RFC 8460 §4.4, §4.5)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mtasecure.tlsrpt
from mtasecure.decision import (
    MxCandidate,
    RequirementKind,
    SessionObservation,
    SessionOutcome,
    StsState,
    TransportRequirement,
    judge,
    plan,
)
from mtasecure.decision import PolicyType as DecisionPolicyType
from mtasecure.dnssec import Security
from mtasecure.errors import UsageError
from mtasecure.requiretls import MessageFlags
from mtasecure.results import CheckResult, FailureReason
from mtasecure.sts import PolicyMode, StsPolicy, parse_policy
from mtasecure.tlsrpt import (
    PolicyType,
    ReportPolicy,
    ReportWindow,
    TlsRptCollector,
    build_reports,
    plan_session_record,
    render_sts_policy_string,
    render_tlsa_policy_string,
    report_policy_for,
)
from mtasecure.tlsrpt import ReportOptions as Options

TLSA_HEX = "1F850A337E6DB9C609C522D136A475638CC43E1ED424F8EEC8513D747D1D085D"
STS_POLICY = StsPolicy(
    mode=PolicyMode.ENFORCE, mx=("mx1.example.com", "*.example.net"), max_age=86400
)
STS_LINES = (
    "version: STSv1",
    "mode: enforce",
    "mx: mx1.example.com",
    "mx: *.example.net",
    "max_age: 86400",
)


def _req(
    kind: RequirementKind, policy_type: DecisionPolicyType, **extra: object
) -> TransportRequirement:
    return TransportRequirement(
        host="mx1.example.com", preference=10, kind=kind, policy_type=policy_type, **extra
    )


DANE = _req(RequirementKind.DANE, DecisionPolicyType.TLSA, tlsa_records=(f"3 1 1 {TLSA_HEX}",))
ENFORCE = _req(RequirementKind.STS_ENFORCE, DecisionPolicyType.STS, sts_mx_match=True)
OPPORTUNISTIC = _req(RequirementKind.OPPORTUNISTIC, DecisionPolicyType.NO_POLICY_FOUND)


def test_all_names_of_this_module_are_exported() -> None:
    names = {
        "SessionRecord",
        "plan_session_record",
        "render_sts_policy_string",
        "render_tlsa_policy_string",
        "report_policy_for",
    }
    assert names <= set(mtasecure.tlsrpt.__all__)


# --- policy strings (RFC 8460 §4.5) ---------------------------------------------


def test_sts_policy_string_is_the_file_one_line_per_element() -> None:
    assert render_sts_policy_string(STS_POLICY) == STS_LINES


def test_sts_policy_string_of_the_rfc_appendix_b_policy() -> None:
    text = "version: STSv1\r\nmode: testing\r\nmx: *.mail.company-y.example\r\nmax_age: 86400\r\n"
    assert render_sts_policy_string(parse_policy(text)) == (
        "version: STSv1",
        "mode: testing",
        "mx: *.mail.company-y.example",
        "max_age: 86400",
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (f"3 1 1 {TLSA_HEX}", f"3 1 1 {TLSA_HEX.lower()}"),
        (f"3  0   1 {TLSA_HEX[:32]} {TLSA_HEX[32:]}", f"3 0 1 {TLSA_HEX.lower()}"),
        (f"2 0 2 {'ab' * 64}", f"2 0 2 {'ab' * 64}"),
    ],
)
def test_tlsa_policy_string_is_presentation_format_without_grouping(
    given: str, expected: str
) -> None:
    assert render_tlsa_policy_string([given]) == (expected,)


def test_tlsa_policy_string_refuses_garbage() -> None:
    with pytest.raises(UsageError, match="TLSA record"):
        render_tlsa_policy_string(["3 1 1 xyz"])


# --- report_policy_for: a table over requirement kinds ---------------------------

POLICY_TABLE = [
    # (requirement, sts_policy, sts_failure, expected type, string, mx-host)
    (DANE, None, None, PolicyType.TLSA, (f"3 1 1 {TLSA_HEX.lower()}",), ("mx1.example.com",)),
    (DANE, STS_POLICY, FailureReason.STS_POLICY_FETCH_ERROR, PolicyType.TLSA,
     (f"3 1 1 {TLSA_HEX.lower()}",), ("mx1.example.com",)),
    (_req(RequirementKind.UNUSABLE, DecisionPolicyType.TLSA, reason=FailureReason.DNSSEC_INVALID),
     None, None, PolicyType.TLSA, (), ("mx1.example.com",)),
    (ENFORCE, STS_POLICY, None, PolicyType.STS, STS_LINES, ("mx1.example.com", "*.example.net")),
    (_req(RequirementKind.STS_TESTING, DecisionPolicyType.STS), STS_POLICY, None, PolicyType.STS,
     STS_LINES, ("mx1.example.com", "*.example.net")),
    (_req(RequirementKind.UNUSABLE, DecisionPolicyType.STS, reason=FailureReason.VALIDATION_FAILURE),
     STS_POLICY, None, PolicyType.STS, STS_LINES, ("mx1.example.com", "*.example.net")),
    (OPPORTUNISTIC, None, None, PolicyType.NO_POLICY_FOUND, (), ()),
    (OPPORTUNISTIC, STS_POLICY, None, PolicyType.NO_POLICY_FOUND, (), ()),
    (OPPORTUNISTIC, None, FailureReason.STS_POLICY_FETCH_ERROR, PolicyType.STS, (), ()),
    (OPPORTUNISTIC, None, FailureReason.STS_POLICY_INVALID, PolicyType.STS, (), ()),
    (OPPORTUNISTIC, STS_POLICY, FailureReason.STS_WEBPKI_INVALID, PolicyType.STS, STS_LINES,
     ("mx1.example.com", "*.example.net")),
    # Not a discovery failure: ignored.
    (OPPORTUNISTIC, None, FailureReason.CERTIFICATE_EXPIRED, PolicyType.NO_POLICY_FOUND, (), ()),
]  # fmt: skip


@pytest.mark.parametrize(
    ("requirement", "sts_policy", "sts_failure", "kind", "strings", "mx"), POLICY_TABLE
)
def test_report_policy_for(  # noqa: PLR0917 - one parameter per table column
    requirement: TransportRequirement,
    sts_policy: StsPolicy | None,
    sts_failure: FailureReason | None,
    kind: PolicyType,
    strings: tuple[str, ...],
    mx: tuple[str, ...],
) -> None:
    policy = report_policy_for(
        "Example.COM.", requirement, sts_policy=sts_policy, sts_failure=sts_failure
    )
    assert policy == ReportPolicy(
        policy_type=kind, policy_string=strings, policy_domain="example.com", mx_host=mx
    )


def test_the_policy_domain_is_in_a_labels() -> None:
    policy = report_policy_for("bücher.example", OPPORTUNISTIC)
    assert policy.policy_domain == "xn--bcher-kva.example"


def test_an_sts_requirement_needs_its_policy() -> None:
    with pytest.raises(UsageError, match="sts_policy"):
        report_policy_for("example.com", ENFORCE)


def test_a_bad_policy_domain_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="policy domain"):
        report_policy_for("not a domain", OPPORTUNISTIC)


def test_policy_types_are_the_same_wire_tokens() -> None:
    # decision.PolicyType and tlsrpt.PolicyType must not drift apart.
    assert {p.value for p in DecisionPolicyType} == {p.value for p in PolicyType}


# --- plan_session_record: what is counted ----------------------------------------

FAIL_EXPIRED = SessionOutcome(
    deliver=False,
    reason=FailureReason.CERTIFICATE_EXPIRED,
    policy_type=DecisionPolicyType.STS,
    detail="certificate expired",
)
OK = SessionOutcome(deliver=True, policy_type=DecisionPolicyType.STS, detail="fine")

RECORD_TABLE = [
    # (requirement, outcome, sts_failure, expected result, expected code)
    (ENFORCE, OK, None, None, None),
    # A SessionOutcome's detail is about the decision, not a TLS error: not used.
    (ENFORCE, FAIL_EXPIRED, None, FailureReason.CERTIFICATE_EXPIRED, None),
    (ENFORCE, OK, FailureReason.STS_POLICY_FETCH_ERROR, FailureReason.STS_POLICY_FETCH_ERROR, None),
    (ENFORCE, FAIL_EXPIRED, FailureReason.STS_POLICY_FETCH_ERROR, FailureReason.CERTIFICATE_EXPIRED,
     None),
    (OPPORTUNISTIC, None, FailureReason.STS_POLICY_INVALID, FailureReason.STS_POLICY_INVALID, None),
    (OPPORTUNISTIC, None, None, None, None),
    (DANE, None, FailureReason.STS_POLICY_FETCH_ERROR, None, None),
    (DANE, FailureReason.DANE_REQUIRED, None, FailureReason.DANE_REQUIRED, None),
    (DANE, CheckResult.failed(FailureReason.TLSA_INVALID, "no match"), None,
     FailureReason.TLSA_INVALID, "no match"),
    (DANE, CheckResult.passed(), None, None, None),
]  # fmt: skip


@pytest.mark.parametrize(("requirement", "outcome", "sts_failure", "result", "code"), RECORD_TABLE)
def test_plan_session_record(
    requirement: TransportRequirement,
    outcome: SessionOutcome | CheckResult | FailureReason | None,
    sts_failure: FailureReason | None,
    result: FailureReason | None,
    code: str | None,
) -> None:
    record = plan_session_record(
        "example.com", requirement, outcome, sts_policy=STS_POLICY, sts_failure=sts_failure
    )
    assert record is not None
    assert record.result is result
    assert record.failure_reason_code == code
    assert record.mx_host == "mx1.example.com"
    assert record.policy_domain == "example.com"


def test_the_caller_can_give_the_failure_reason_code() -> None:
    record = plan_session_record(
        "example.com",
        ENFORCE,
        FAIL_EXPIRED,
        sts_policy=STS_POLICY,
        failure_reason_code="X509_V_ERR_CERT_HAS_EXPIRED",
    )
    assert record is not None
    assert record.failure_reason_code == "X509_V_ERR_CERT_HAS_EXPIRED"


def test_report_mails_and_tls_required_no_are_not_recorded() -> None:
    assert plan_session_record("example.com", OPPORTUNISTIC, None, is_report_mail=True) is None
    ignored = OPPORTUNISTIC.model_copy(update={"policy_ignored": True})
    assert plan_session_record("example.com", ignored, None) is None


def test_from_plan_and_judge_to_a_built_report() -> None:
    """The whole path: plan -> judge -> plan_session_record -> collector -> report."""
    flags = MessageFlags()
    mx = [
        MxCandidate(host="mx1.example.com", preference=10),
        MxCandidate(host="mx2.example.org", preference=20),
    ]
    sts = StsState.of(STS_POLICY)
    delivery = plan("example.com", mx_security=Security.INSECURE, mx=mx, sts=sts, flags=flags)
    good = SessionObservation(
        host="mx1.example.com",
        starttls_offered=True,
        tls_established=True,
        webpki=CheckResult.passed(),
    )
    collector = TlsRptCollector()
    for requirement in delivery.requirements:
        observation = good.model_copy(update={"host": requirement.host})
        outcome = judge(requirement, observation)
        record = plan_session_record("example.com", requirement, outcome, sts_policy=STS_POLICY)
        assert record is not None
        collector.record(
            record.policy_domain,
            record.policy,
            record.result,
            mx_host=record.mx_host,
            failure_reason_code=record.failure_reason_code,
        )
    window = ReportWindow.containing(datetime(2026, 3, 1, tzinfo=UTC))
    batch = collector.drain(window)
    assert batch is not None
    (built,) = build_reports(
        batch, Options(organization_name="Org", contact_info="tls@sender.example")
    )
    (entry,) = built.report.policies
    assert entry.policy.policy_type is PolicyType.STS
    assert entry.policy.policy_string == STS_LINES
    assert entry.summary.total_successful_session_count == 1
    assert entry.summary.total_failure_session_count == 1
    (detail,) = entry.failure_details
    # mx2.example.org is not in the enforce policy (RFC 8461 §4.1).
    assert detail.result_type is FailureReason.VALIDATION_FAILURE
    assert detail.receiving_mx_hostname == "mx2.example.org"


@settings(max_examples=100)
@given(
    kind=st.sampled_from(list(RequirementKind)),
    policy_type=st.sampled_from(list(DecisionPolicyType)),
    reason=st.none() | st.sampled_from(list(FailureReason)),
    sts_failure=st.none() | st.sampled_from(list(FailureReason)),
    ignored=st.booleans(),
)
def test_every_requirement_maps_to_a_valid_policy_or_nothing(
    kind: RequirementKind,
    policy_type: DecisionPolicyType,
    reason: FailureReason | None,
    sts_failure: FailureReason | None,
    ignored: bool,
) -> None:
    requirement = _req(
        kind, policy_type, tlsa_records=(f"3 1 1 {TLSA_HEX}",), policy_ignored=ignored
    )
    record = plan_session_record(
        "example.com", requirement, reason, sts_policy=STS_POLICY, sts_failure=sts_failure
    )
    if ignored:
        assert record is None
        return
    assert record is not None
    assert record.policy.policy_domain == "example.com"
    if reason is not None:
        assert record.result is reason
    if record.policy.policy_type is PolicyType.TLSA:
        assert record.policy.mx_host == ("mx1.example.com",)


def test_report_policies_are_memoised_within_a_bound() -> None:
    from mtasecure.tlsrpt import _policy

    first = report_policy_for("example.com", ENFORCE, sts_policy=STS_POLICY)
    assert report_policy_for("example.com", ENFORCE, sts_policy=STS_POLICY) is first
    # A different policy for the same domain is a different entry, never the cached one.
    other = STS_POLICY.model_copy(update={"max_age": 604800})
    assert report_policy_for("example.com", ENFORCE, sts_policy=other).policy_string[-1] == (
        "max_age: 604800"
    )
    for memo in (_policy._sts_policy, _policy._tlsa_policy, _policy._no_policy):
        assert memo.cache_info().maxsize == _policy.MAX_POLICY_MEMO
