"""Building a window's reports: options, gzip, file names (RFC 8460 §4, §5.1, §5.2).

Every report built here is also read back by parsedmarc's TLS-report parser,
which must see the same totals.
"""

from __future__ import annotations

import gzip
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtasecure.errors import UsageError
from mtasecure.results import FailureReason
from mtasecure.tlsrpt import (
    BuiltReport,
    PolicyType,
    ReportOptions,
    ReportPolicy,
    ReportWindow,
    TlsRptCollector,
    WindowResults,
    _build,
    build_reports,
    parse_report,
    render_filename,
)
from tests._tlsrpt_support import assert_same_totals, parsedmarc

NOW = datetime(2026, 3, 1, 13, 5, tzinfo=UTC)
WINDOW = ReportWindow.containing(NOW)
OPTIONS = ReportOptions(organization_name="Sender Org", contact_info="tlsrpt@mail.sender.example")
STS = ReportPolicy(
    policy_type=PolicyType.STS,
    policy_string=("version: STSv1", "mode: enforce", "mx: *.example.com", "max_age: 86400"),
    policy_domain="example.com",
    mx_host=("*.example.com",),
)
TLSA = ReportPolicy(
    policy_type=PolicyType.TLSA,
    policy_string=("3 1 1 " + "AB" * 32,),
    policy_domain="example.com",
    mx_host=("mx2.example.com",),
)


def _results(
    *sessions: tuple[str, ReportPolicy | None, FailureReason | None, str],
) -> WindowResults:
    c = TlsRptCollector()
    for domain, policy, outcome, ip in sessions:
        c.record(domain, policy, outcome, sending_ip=ip, mx_host="mx1.example.com")
    batch = c.drain(WINDOW)
    assert batch is not None
    return batch


def check_with_parsedmarc(built: tuple[BuiltReport, ...]) -> None:
    reader = parsedmarc()
    for report in built:
        raw = gzip.decompress(report.gzip)
        assert parse_report(report.gzip) == report.report
        assert_same_totals(reader.parse_smtp_tls_report_json(raw), report.report)


def test_one_report_per_policy_domain_with_its_policies() -> None:
    results = _results(
        ("example.com", STS, None, "192.0.2.1"),
        ("example.com", STS, None, "192.0.2.1"),
        ("example.com", STS, FailureReason.CERTIFICATE_EXPIRED, "192.0.2.1"),
        ("example.com", TLSA, FailureReason.TLSA_INVALID, "192.0.2.2"),
        ("other.example", None, None, "192.0.2.1"),
    )
    built = build_reports(results, OPTIONS)
    assert [b.policy_domain for b in built] == ["example.com", "other.example"]
    com = built[0].report
    assert com.organization_name == "Sender Org"
    assert com.contact_info == "tlsrpt@mail.sender.example"
    assert [p.policy.policy_type for p in com.policies] == [PolicyType.STS, PolicyType.TLSA]
    sts, tlsa = com.policies
    assert (
        sts.summary.total_successful_session_count,
        sts.summary.total_failure_session_count,
    ) == (
        2,
        1,
    )
    assert sts.failure_details[0].result_type is FailureReason.CERTIFICATE_EXPIRED
    assert tlsa.summary.total_failure_session_count == 1
    assert com.date_range.start_datetime == datetime(2026, 3, 1, tzinfo=UTC)
    assert com.date_range.end_datetime == datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC)
    check_with_parsedmarc(built)


def test_report_ids_are_unique_per_domain_and_window_and_stable() -> None:
    results = _results(("a.example", None, None, "x"), ("b.example", None, None, "x"))
    first = build_reports(results, OPTIONS)
    again = build_reports(results, OPTIONS)
    next_day = build_reports(results.model_copy(update={"window": WINDOW.next()}), OPTIONS)
    ids = {b.report.report_id for b in (*first, *next_day)}
    assert len(ids) == 4
    assert [b.report.report_id for b in first] == [b.report.report_id for b in again]
    # The id is a msg-id (for the Subject) whose left part is §5.1's unique-id.
    left, _, right = first[0].report.report_id.partition("@")
    assert re.fullmatch(r"[a-z0-9]+", left)
    assert right == "mail.sender.example"


def test_filename_follows_rfc8460_section_5_1() -> None:
    built = build_reports(_results(("Example.COM", None, None, "x")), OPTIONS)[0]
    begin = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp())
    unique = built.report.report_id.partition("@")[0]
    assert (
        built.filename
        == f"mail.sender.example!example.com!{begin}!{begin + 86399}!{unique}.json.gz"
    )
    # The file name's instants are the body's (RFC 8460 §5.6: no disagreement).
    assert int(built.report.date_range.end_datetime.timestamp()) == begin + 86399


def test_render_filename_rules() -> None:
    window = ReportWindow.containing(datetime(2016, 8, 1, 1, tzinfo=UTC))
    name = render_filename("Mail.Sndr.Example.com.", "example.net", window, "001", compressed=True)
    assert name == "mail.sndr.example.com!example.net!1470009600!1470095999!001.json.gz"
    assert render_filename("a.example", "b.example", window, compressed=False).endswith(
        "!1470095999.json"
    )
    assert render_filename("ü.example", "b.example", window).startswith("xn--tda.example!")
    with pytest.raises(UsageError, match="unique-id"):
        render_filename("a.example", "b.example", window, "no-dashes")


def test_gzip_is_rfc1952_and_reproducible() -> None:
    results = _results(("example.com", STS, None, "x"))
    first, again = build_reports(results, OPTIONS)[0], build_reports(results, OPTIONS)[0]
    assert first.gzip[:2] == b"\x1f\x8b"
    assert first.gzip == again.gzip
    assert json.loads(gzip.decompress(first.gzip))["report-id"] == first.report.report_id


def test_submitter_defaults_to_contact_domain_and_can_be_set() -> None:
    assert OPTIONS.sender_domain == "mail.sender.example"
    options = OPTIONS.model_copy(update={"submitter": "MTA.Sender.Example"})
    assert options.sender_domain == "mta.sender.example"
    with pytest.raises(UsageError, match="submitter"):
        _ = OPTIONS.model_copy(update={"submitter": "not a domain"}).sender_domain


def test_bad_contact_info_is_refused() -> None:
    with pytest.raises(ValueError, match="addr-spec"):
        ReportOptions(organization_name="x", contact_info="no-at-sign")


def test_failure_type_filter_trims_details_not_summaries() -> None:
    results = _results(
        ("example.com", STS, FailureReason.CERTIFICATE_EXPIRED, "192.0.2.1"),
        ("example.com", STS, FailureReason.STARTTLS_NOT_SUPPORTED, "192.0.2.1"),
    )
    options = OPTIONS.model_copy(
        update={"failure_types": frozenset({FailureReason.STARTTLS_NOT_SUPPORTED})}
    )
    policy = build_reports(results, options)[0].report.policies[0]
    assert policy.summary.total_failure_session_count == 2
    assert [d.result_type for d in policy.failure_details] == [FailureReason.STARTTLS_NOT_SUPPORTED]


def test_max_failure_details_keeps_the_largest_groups() -> None:
    sessions = [
        ("example.com", STS, FailureReason.VALIDATION_FAILURE, f"192.0.2.{i}") for i in range(10)
    ]
    sessions += [("example.com", STS, FailureReason.VALIDATION_FAILURE, "192.0.2.5")] * 4
    options = OPTIONS.model_copy(update={"max_failure_details": 2})
    built = build_reports(_results(*sessions), options)
    details = built[0].report.policies[0].failure_details
    assert len(details) == 2
    assert details[0].sending_mta_ip == "192.0.2.5"
    assert details[0].failed_session_count == 5
    assert built[0].report.policies[0].summary.total_failure_session_count == 14
    check_with_parsedmarc(built)


def test_sending_ips_can_be_left_out_and_groups_merge() -> None:
    sessions = [
        ("example.com", STS, FailureReason.VALIDATION_FAILURE, f"192.0.2.{i}") for i in range(3)
    ]
    options = OPTIONS.model_copy(update={"include_sending_ip": False})
    details = build_reports(_results(*sessions), options)[0].report.policies[0].failure_details
    assert len(details) == 1
    assert details[0].sending_mta_ip is None
    assert details[0].failed_session_count == 3
    assert b"sending-mta-ip" not in build_reports(_results(*sessions), options)[0].report.to_json()


def test_excluded_domains_and_their_subdomains_get_no_report() -> None:
    results = _results(
        ("example.com", None, None, "x"),
        ("sub.example.com", None, None, "x"),
        ("example.org", None, None, "x"),
        ("notexample.com", None, None, "x"),
    )
    options = OPTIONS.model_copy(update={"exclude_domains": frozenset({"EXAMPLE.com."})})
    options = ReportOptions.model_validate(options.model_dump())
    assert [b.policy_domain for b in build_reports(results, options)] == [
        "example.org",
        "notexample.com",
    ]


def test_size_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    sessions = [
        ("example.com", STS, FailureReason.VALIDATION_FAILURE, f"2001:db8::{i:x}")
        for i in range(3000)
    ]
    options = OPTIONS.model_copy(update={"max_report_bytes": 4096, "max_failure_details": 5000})
    built = build_reports(_results(*sessions), options)[0]
    assert len(built.gzip) <= 4096
    policy = built.report.policies[0]
    assert 0 < len(policy.failure_details) < 3000
    assert policy.summary.total_failure_session_count == 3000
    assert parse_report(built.gzip) == built.report
    check_with_parsedmarc((built,))


def test_size_bound_drops_smallest_policies_last() -> None:
    sessions = [
        (
            "example.com",
            ReportPolicy(
                policy_type=PolicyType.TLSA,
                policy_string=(f"3 1 1 {i:064x}",),
                policy_domain="example.com",
                mx_host=(f"mx{i}.example.com",),
            ),
            None,
            "x",
        )
        for i in range(400)
    ]
    sessions += [("example.com", STS, None, "x")] * 50
    options = OPTIONS.model_copy(update={"max_report_bytes": 2048})
    built = build_reports(_results(*sessions), options)[0]
    assert len(built.gzip) <= 2048
    kinds = [p.policy.policy_type for p in built.report.policies]
    assert PolicyType.STS in kinds  # the policy with the most sessions survives
    assert len(kinds) < 401


def test_a_single_policy_that_cannot_fit_is_a_usage_error() -> None:
    huge = ReportPolicy(
        policy_type=PolicyType.STS,
        policy_string=tuple(f"mx: {i:x}{'q' * 40}.example.com" for i in range(3000)),
        policy_domain="example.com",
    )
    options = OPTIONS.model_copy(update={"max_report_bytes": 1024})
    with pytest.raises(UsageError, match="does not fit"):
        build_reports(_results(("example.com", huge, None, "x")), options)


def test_default_limits_are_named_and_sane() -> None:
    assert _build.MAX_REPORT_SIZE < 10 * 1024 * 1024  # under RFC 8460 §5.2's common 10 MB
    assert OPTIONS.max_failure_details == _build.DEFAULT_MAX_FAILURE_DETAILS
    assert OPTIONS.window == timedelta(days=1)


_sessions = st.lists(
    st.tuples(
        st.sampled_from(["a.example", "b.example", "c.example"]),
        st.sampled_from([None, STS, TLSA]),
        st.sampled_from([None, *FailureReason]),
        st.sampled_from(["192.0.2.1", "2001:db8::1"]),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=30)
@given(_sessions)
def test_built_reports_account_for_every_session_and_parsedmarc_agrees(
    sessions: list[tuple[str, ReportPolicy | None, FailureReason | None, str]],
) -> None:
    built = build_reports(_results(*sessions), OPTIONS)
    assert sum(b.report.total_successful + b.report.total_failed for b in built) == len(sessions)
    assert sum(b.report.total_failed for b in built) == sum(1 for s in sessions if s[2])
    check_with_parsedmarc(built)
