"""The domain owner's side: building a policy, its file, URL and ``_mta-sts`` record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mtasecure.sts
from mtasecure.errors import UsageError
from mtasecure.sts import (
    PolicyMode,
    StsPolicy,
    build_policy,
    build_publication,
    parse_policy,
    parse_record,
    policy_id,
    select_record,
)
from mtasecure.sts._publish import DEFAULT_MAX_AGE

NOW = datetime(2026, 11, 29, 1, 2, 3, tzinfo=UTC)


def test_build_policy() -> None:
    policy = build_policy(mode="enforce", mx=["Mail.Example.com", "*.bücher.example"])
    assert policy == StsPolicy(
        mode=PolicyMode.ENFORCE,
        mx=("mail.example.com", "*.xn--bcher-kva.example"),
        max_age=DEFAULT_MAX_AGE,
    )
    assert DEFAULT_MAX_AGE == 14 * 86400


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "enforcing", "mx": ["a.example"]},
        {"mode": "enforce", "mx": []},
        {"mode": "testing", "mx": []},
        {"mode": "enforce", "mx": ["192.0.2.1"]},
        {"mode": "enforce", "mx": ["mx*.example"]},
        {"mode": "enforce", "mx": ["a.example"], "max_age": -1},
        {"mode": "enforce", "mx": ["a.example"], "max_age": 31557601},
        {"mode": "none", "mx": [], "extensions": [("mx", "a.example")]},
    ],
)
def test_build_policy_refuses_with_a_usage_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        build_policy(**kwargs)  # type: ignore[arg-type]


def test_mode_none_needs_no_mx() -> None:
    assert build_policy(mode=PolicyMode.NONE, mx=[], max_age=86400).mx == ()


def test_content_id_is_stable_and_changes_with_the_content() -> None:
    first = build_policy(mode="enforce", mx=["a.example"])
    again = build_policy(mode="enforce", mx=["A.example."])
    other = build_policy(mode="testing", mx=["a.example"])
    assert policy_id(first) == policy_id(again)
    assert policy_id(first) != policy_id(other)
    assert len(policy_id(first)) == 32
    assert policy_id(first).isalnum()


def test_time_id_uses_now_in_utc_plus_content() -> None:
    policy = build_policy(mode="enforce", mx=["a.example"])
    record_id = policy_id(policy, now=NOW)
    assert record_id.startswith("20261129010203Z")
    assert len(record_id) == 23
    assert record_id.isalnum()
    elsewhere = NOW.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert policy_id(policy, now=elsewhere) == record_id
    other = build_policy(mode="testing", mx=["a.example"])
    assert policy_id(other, now=NOW) != record_id  # same second, different policy


def test_naive_now_is_refused() -> None:
    with pytest.raises(UsageError, match="timezone-aware"):
        policy_id(build_policy(mode="none", mx=[]), now=datetime(2026, 1, 1))


def test_build_publication() -> None:
    policy = build_policy(mode="enforce", mx=["mail.example.com", "*.example.net"], max_age=604800)
    published = build_publication("Example.COM.", policy, now=NOW)
    assert published.domain == "example.com"
    assert published.policy_url == "https://mta-sts.example.com/.well-known/mta-sts.txt"
    assert published.record_name == "_mta-sts.example.com"
    assert published.policy_text == (
        "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
        "mx: *.example.net\r\nmax_age: 604800\r\n"
    )
    assert published.record_text == f"v=STSv1; id={published.record.id};"
    # what a sender would read back
    assert parse_policy(published.policy_text) == policy
    assert parse_record(published.record_text) == published.record
    assert select_record(["v=spf1 -all", published.record_text]) == published.record


def test_build_publication_idn_domain() -> None:
    published = build_publication("bücher.example", build_policy(mode="none", mx=[]))
    assert published.record_name == "_mta-sts.xn--bcher-kva.example"
    assert published.domain == "xn--bcher-kva.example"


@pytest.mark.parametrize("domain", ["", "192.0.2.1", "a..example", "under_score.example"])
def test_build_publication_refuses_bad_domains(domain: str) -> None:
    with pytest.raises(UsageError):
        build_publication(domain, build_policy(mode="none", mx=[]))


_labels = st.from_regex(r"[a-z]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True).filter(
    lambda s: "--" not in s
)
_hosts = st.lists(_labels, min_size=2, max_size=3).map(".".join)


@given(
    st.sampled_from(PolicyMode),
    st.lists(st.one_of(_hosts, _hosts.map("*.".__add__)), min_size=1, max_size=5),
    st.integers(0, 31557600),
    st.datetimes(timezones=st.just(UTC)) | st.none(),
)
def test_every_publication_reads_back(
    mode: PolicyMode, mx: list[str], max_age: int, now: datetime | None
) -> None:
    policy = build_policy(mode=mode, mx=mx, max_age=max_age)
    published = build_publication("example.com", policy, now=now)
    assert parse_policy(published.policy_text) == policy
    assert select_record([published.record_text]) == published.record


def test_sts_all_is_pinned() -> None:
    assert mtasecure.sts.__all__ == [
        "CachedPolicy",
        "DEFAULT_FETCH_TIMEOUT",
        "DEFAULT_REFRESH_INTERVAL",
        "FETCH_RETRY_DELAY",
        "FetchFailure",
        "Finding",
        "MAX_AGE_LIMIT",
        "MAX_MX_PATTERNS",
        "MAX_POLICY_BYTES",
        "MxTls",
        "POLICY_MEDIA_TYPE",
        "PolicyMode",
        "Severity",
        "Step",
        "StepAction",
        "StsDecision",
        "StsExclusions",
        "StsMxDecision",
        "StsPolicy",
        "StsPublication",
        "StsRecord",
        "TxtOutcome",
        "TxtState",
        "apply_policy",
        "build_policy",
        "build_publication",
        "check_response",
        "check_transport_failure",
        "lint_policy",
        "lint_record",
        "match_mx",
        "parse_policy",
        "parse_record",
        "plan_after_fetch",
        "plan_proactive",
        "plan_refresh",
        "policy_id",
        "policy_url",
        "record_name",
        "render_policy",
        "render_record",
        "select_record",
        "txt_expiry",
    ]
    assert mtasecure.sts.__all__ == sorted(mtasecure.sts.__all__)
    for name in mtasecure.sts.__all__:
        member = getattr(mtasecure.sts, name)
        if callable(member):
            assert (member.__doc__ or "").strip(), f"{name} has no docstring"
