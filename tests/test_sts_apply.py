"""RFC 8461 §4, §5: applying a policy to an MX set; the exclusion list."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mtasecure.sts
from mtasecure import CheckResult, FailureReason, UsageError
from mtasecure.sts import MxTls, PolicyMode, StsExclusions, StsPolicy, apply_policy

MXS = ["mx1.example.com", "MX2.Example.COM.", "evil.example.net", "[192.0.2.1]"]


def policy(mode: PolicyMode) -> StsPolicy:
    mx = () if mode is PolicyMode.NONE else ("mx1.example.com", "*.example.com")
    return StsPolicy(mode=mode, mx=mx, max_age=86400)


def test_enforce_allows_matching_mx_with_webpki_and_refuses_others() -> None:
    decision = apply_policy("example.com", policy(PolicyMode.ENFORCE), MXS)
    assert decision.mode is PolicyMode.ENFORCE
    assert [(d.host, d.usable, d.tls, d.mx_match) for d in decision.mx] == [
        ("mx1.example.com", True, MxTls.WEBPKI, True),
        ("mx2.example.com", True, MxTls.WEBPKI, True),
        ("evil.example.net", False, MxTls.WEBPKI, False),
        ("[192.0.2.1]", False, MxTls.WEBPKI, False),
    ]
    assert decision.mx[2].result.reason is FailureReason.VALIDATION_FAILURE
    assert "RFC 8461 §4.1" in decision.mx[2].result.detail
    assert decision.usable_hosts == ("mx1.example.com", "mx2.example.com")


def test_testing_delivers_everywhere_and_reports_mismatches() -> None:
    decision = apply_policy("example.com", policy(PolicyMode.TESTING), MXS)
    assert all(d.usable and d.tls is MxTls.REPORT for d in decision.mx)
    assert [d.result.reason for d in decision.mx] == [
        None,
        None,
        FailureReason.VALIDATION_FAILURE,
        FailureReason.VALIDATION_FAILURE,
    ]


@pytest.mark.parametrize("given_policy", [None, policy(PolicyMode.NONE)])
def test_none_or_absent_requires_nothing(given_policy: StsPolicy | None) -> None:
    decision = apply_policy("example.com", given_policy, MXS)
    assert all(d.usable and d.tls is MxTls.NONE and d.mx_match is None for d in decision.mx)
    assert all(d.result.ok for d in decision.mx)


def test_discovery_failure_is_carried_for_reporting() -> None:
    failure = CheckResult.failed(FailureReason.STS_WEBPKI_INVALID, "certificate expired")
    decision = apply_policy("example.com", policy(PolicyMode.ENFORCE), MXS[:1], failure=failure)
    assert (decision.failure, decision.detail) == (
        FailureReason.STS_WEBPKI_INVALID,
        "certificate expired",
    )
    assert decision.mx[0].usable  # a cached enforce policy still applies
    passed = apply_policy("example.com", None, MXS[:1], failure=CheckResult.passed("x"))
    assert (passed.failure, passed.detail) == (None, "")


@given(
    mode=st.sampled_from([*PolicyMode, None]),
    hosts=st.lists(st.text(max_size=30) | st.sampled_from(MXS), max_size=6),
)
def test_apply_never_raises_and_enforce_uses_only_matches(
    mode: PolicyMode | None, hosts: list[str]
) -> None:
    decision = apply_policy("example.com", policy(mode) if mode else None, hosts)
    assert len(decision.mx) == len(hosts)
    for verdict in decision.mx:
        if mode is PolicyMode.ENFORCE:
            assert verdict.usable == bool(verdict.mx_match)
        else:
            assert verdict.usable


def test_exclusions_match_names_and_suffixes() -> None:
    excluded = StsExclusions(["Broken.Example.", "*.bad.example", "bücher.example"])
    assert excluded.patterns == ("broken.example", "*.bad.example", "xn--bcher-kva.example")
    assert excluded.match("broken.example")
    assert not excluded.match("sub.broken.example")
    assert excluded.match("mx.bad.example")
    assert excluded.match("a.b.bad.example")
    assert not excluded.match("bad.example")
    assert not excluded.match("notbad.example")
    assert excluded.match("xn--bcher-kva.example")
    assert bool(excluded)
    assert not StsExclusions()


@pytest.mark.parametrize("bad", ["", "*", "a.*.example", "*.com", "192.0.2.1", "exa mple.com"])
def test_bad_exclusions_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError, match="exclusion"):
        StsExclusions([bad])


def test_sts_all_is_pinned() -> None:
    assert {
        "CachedPolicy",
        "MxTls",
        "POLICY_MEDIA_TYPE",
        "StsDecision",
        "StsExclusions",
        "StsMxDecision",
        "Step",
        "StepAction",
        "TxtOutcome",
        "TxtState",
        "FetchFailure",
        "DEFAULT_REFRESH_INTERVAL",
        "FETCH_RETRY_DELAY",
        "apply_policy",
        "check_response",
        "check_transport_failure",
        "plan_after_fetch",
        "plan_proactive",
        "plan_refresh",
        "txt_expiry",
    } <= set(mtasecure.sts.__all__)
