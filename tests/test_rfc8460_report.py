"""RFC 8460 §4: the report JSON model, rendering and parsing received reports."""

from __future__ import annotations

import contextlib
import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mtasecure.tlsrpt
from mtasecure.errors import ParseError, ReportSyntaxError
from mtasecure.results import FailureReason
from mtasecure.tlsrpt import (
    FailureDetail,
    PolicyResults,
    PolicyType,
    ReportDateRange,
    ReportPolicy,
    ReportSummary,
    TlsReport,
    _report,
    parse_report,
)
from tests._tlsrpt_support import assert_same_totals, parsedmarc

DATA = Path(__file__).parent / "data" / "tlsrpt"

EXPECTED_ALL = {
    "BuiltReport",
    "DetailCount",
    "DkimKey",
    "FailureDetail",
    "PolicyResults",
    "PolicyType",
    "ReportDateRange",
    "ReportOptions",
    "ReportPolicy",
    "ReportSummary",
    "ReportWindow",
    "ResultBatch",
    "SessionCount",
    "TlsReport",
    "TlsRptCollector",
    "WindowResults",
    "build_reports",
    "is_report_mail",
    "merge_results",
    "no_policy_found",
    "parse_report",
    "render_filename",
    "render_gzip",
    "render_report_message",
}


def test_report_side_of_tlsrpt_all_is_pinned() -> None:
    exported = set(mtasecure.tlsrpt.__all__)
    # The record side (parse_record, TlsRptRecord, ...) lands from another branch.
    assert exported >= EXPECTED_ALL
    assert list(mtasecure.tlsrpt.__all__) == sorted(mtasecure.tlsrpt.__all__)


def _load(name: str) -> bytes:
    return (DATA / name).read_bytes()


# name, organisation, policies, successes, failures, details in the first policy
SAMPLES = [
    ("rfc8460-appendix-b.json", "Company-X", 1, 5326, 303, 3),
    ("google-style.json", "Google Inc.", 1, 1942, 7, 2),
    ("microsoft-style.json", "Microsoft Corporation", 2, 401, 4, 1),
    ("minimal-sender.json", "Small Relay", 1, 0, 3, 1),
]


@pytest.mark.parametrize("sample", SAMPLES, ids=[s[0] for s in SAMPLES])
def test_real_sender_samples_parse(sample: tuple[str, str, int, int, int, int]) -> None:
    name, org, n_policies, ok, failed, n_details = sample
    report = parse_report(_load(name))
    assert report.organization_name == org
    assert len(report.policies) == n_policies
    assert report.total_successful == ok
    assert report.total_failed == failed
    assert len(report.policies[0].failure_details) == n_details


@pytest.mark.parametrize("name", [s[0] for s in SAMPLES])
def test_samples_parse_the_same_gzipped_and_as_text(name: str) -> None:
    raw = _load(name)
    assert parse_report(gzip.compress(raw)) == parse_report(raw) == parse_report(raw.decode())


@pytest.mark.parametrize("name", [s[0] for s in SAMPLES])
def test_rendering_a_parsed_sample_round_trips_and_parsedmarc_agrees(name: str) -> None:
    report = parse_report(_load(name))
    rendered = report.to_json()
    assert parse_report(rendered) == report
    assert_same_totals(parsedmarc().parse_smtp_tls_report_json(rendered), report)


def test_appendix_b_details() -> None:
    report = parse_report(_load("rfc8460-appendix-b.json"))
    policy = report.policies[0].policy
    assert policy.policy_type is PolicyType.STS
    assert policy.mx_host == ("*.mail.company-y.example",)  # a string in Appendix B
    assert report.date_range.start_datetime == datetime(2016, 4, 1, tzinfo=UTC)
    first, second, third = report.policies[0].failure_details
    assert first.result_type is FailureReason.CERTIFICATE_EXPIRED
    assert first.receiving_ip is None
    assert second.additional_information is not None
    assert third.failure_reason_code == "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED"


def test_minimal_sender_quirks() -> None:
    report = parse_report(_load("minimal-sender.json"))
    assert report.contact_info is None
    policy = report.policies[0].policy
    assert policy.policy_type is PolicyType.NO_POLICY_FOUND
    assert policy.policy_string == ()
    assert policy.mx_host == ("mail.example.org",)
    assert report.policies[0].failure_details[0].sending_mta_ip is None
    # An offset of +00:00 is read as UTC; the end is kept as sent.
    assert report.date_range.end_datetime == datetime(2026, 3, 2, tzinfo=UTC)


def _sample_report() -> TlsReport:
    return TlsReport(
        organization_name="Sender",
        date_range=ReportDateRange(
            start_datetime=datetime(2026, 3, 1, tzinfo=UTC),
            end_datetime=datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC),
        ),
        contact_info="tlsrpt@sender.example",
        report_id="abc@sender.example",
        policies=(
            PolicyResults(
                policy=ReportPolicy(
                    policy_type=PolicyType.STS,
                    policy_string=("version: STSv1", "mode: enforce", "mx: mx.example.com"),
                    policy_domain="example.com",
                    mx_host=("mx.example.com",),
                ),
                summary=ReportSummary(
                    total_successful_session_count=10, total_failure_session_count=2
                ),
                failure_details=(
                    FailureDetail(
                        result_type=FailureReason.STARTTLS_NOT_SUPPORTED,
                        receiving_mx_hostname="mx.example.com",
                        failed_session_count=2,
                    ),
                ),
            ),
        ),
    )


def test_json_uses_exactly_the_rfc_field_names() -> None:
    data = json.loads(_sample_report().to_json())
    assert set(data) == {
        "organization-name",
        "date-range",
        "contact-info",
        "report-id",
        "policies",
    }
    assert data["date-range"] == {
        "start-datetime": "2026-03-01T00:00:00Z",
        "end-datetime": "2026-03-01T23:59:59Z",
    }
    entry = data["policies"][0]
    assert set(entry) == {"policy", "summary", "failure-details"}
    assert set(entry["policy"]) == {"policy-type", "policy-string", "policy-domain", "mx-host"}
    assert entry["policy"]["mx-host"] == ["mx.example.com"]
    assert set(entry["summary"]) == {
        "total-successful-session-count",
        "total-failure-session-count",
    }
    # Absent optional fields are left out, not written as null.
    assert entry["failure-details"] == [
        {
            "result-type": "starttls-not-supported",
            "receiving-mx-hostname": "mx.example.com",
            "failed-session-count": 2,
        }
    ]


def test_policies_is_an_array_even_with_one_policy() -> None:
    assert isinstance(json.loads(_sample_report().to_json())["policies"], list)


def test_models_are_frozen() -> None:
    report = _sample_report()
    with pytest.raises(ValueError, match="frozen"):
        report.report_id = "other"  # type: ignore[misc]


def test_datetime_with_fraction_and_offset_renders_in_utc() -> None:
    when = datetime.fromisoformat("2026-03-01T02:00:00.250000+02:00")
    assert _report.render_datetime(when) == "2026-03-01T00:00:00.250000Z"


def test_unknown_result_type_is_kept_as_text() -> None:
    doc = json.loads(_load("google-style.json"))
    doc["policies"][0]["failure-details"][0]["result-type"] = "some-future-type"
    report = parse_report(json.dumps(doc))
    assert report.policies[0].failure_details[0].result_type == "some-future-type"
    assert parse_report(report.to_json()) == report


def _mutated(path: list[Any], value: Any, *, delete: bool = False) -> str:
    doc = json.loads(_load("google-style.json"))
    target = doc
    for step in path[:-1]:
        target = target[step]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(doc)


BAD = [
    ("not json", b"{not json", "not JSON"),
    ("array", b"[]", "JSON object"),
    ("nan", b'{"a": NaN}', "I-JSON"),
    ("duplicate", b'{"a": 1, "a": 2}', "appears twice"),
    ("latin1", '{"organization-name": "é"}'.encode("latin-1"), "not UTF-8"),
    ("bad gzip", b"\x1f\x8b\x08\x00garbage", "gzip"),
    ("truncated gzip", gzip.compress(b'{"a": 1}')[:-9], "truncated"),
    ("missing org", _mutated(["organization-name"], None, delete=True), "organization-name"),
    ("missing policies", _mutated(["policies"], None, delete=True), "policies"),
    ("policies object", _mutated(["policies"], {}), "policies"),
    ("bad policy type", _mutated(["policies", 0, "policy", "policy-type"], "dane"), "policy-type"),
    (
        "negative count",
        _mutated(["policies", 0, "summary", "total-successful-session-count"], -1),
        "total-successful-session-count",
    ),
    (
        "string count",
        _mutated(["policies", 0, "summary", "total-failure-session-count"], "7"),
        "total-failure-session-count",
    ),
    (
        "boolean count",
        _mutated(["policies", 0, "failure-details", 0, "failed-session-count"], True),
        "failed-session-count",
    ),
    (
        "float count",
        _mutated(["policies", 0, "failure-details", 0, "failed-session-count"], 1.5),
        "failed-session-count",
    ),
    (
        "count beyond I-JSON",
        _mutated(["policies", 0, "summary", "total-failure-session-count"], 2**53),
        "total-failure-session-count",
    ),
    ("naive datetime", _mutated(["date-range", "start-datetime"], "2026-03-01T00:00:00.0"), "zone"),
    ("short datetime", _mutated(["date-range", "start-datetime"], "2026-03-01T00:00Z"), "RFC 3339"),
    ("date only", _mutated(["date-range", "end-datetime"], "2026-03-01"), "RFC 3339"),
    ("number datetime", _mutated(["date-range", "end-datetime"], 1700000000), "string"),
    ("empty report id", _mutated(["report-id"], ""), "report-id"),
    ("mx-host number", _mutated(["policies", 0, "policy", "mx-host"], 5), "mx-host"),
    ("huge integer", b'{"a": ' + b"9" * 5000 + b"}", "JSON"),
]


@pytest.mark.parametrize(("data", "needle"), [(b, n) for _, b, n in BAD], ids=[i for i, *_ in BAD])
def test_garbage_is_rejected_with_report_syntax_error(data: bytes | str, needle: str) -> None:
    with pytest.raises(ReportSyntaxError, match=needle):
        parse_report(data)


def test_error_says_where_and_which_rule() -> None:
    with pytest.raises(ReportSyntaxError) as info:
        parse_report(_mutated(["policies", 0, "policy", "policy-type"], "dane"))
    assert info.value.where == "report.policies[0].policy.policy-type"
    assert info.value.rule == "RFC 8460 §4.4"


def test_gzip_bomb_stops_at_the_decompressed_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_report, "MAX_REPORT_BYTES", 1024 * 1024)
    bomb = gzip.compress(b" " * (50 * 1024 * 1024))  # 50 MiB of spaces, ~50 KiB packed
    assert len(bomb) < 100_000
    with pytest.raises(ReportSyntaxError, match="larger than 1048576 bytes when decompressed"):
        parse_report(bomb)


def test_default_decompressed_limit_is_generous_but_finite() -> None:
    assert 10 * 1024 * 1024 <= _report.MAX_REPORT_BYTES <= 256 * 1024 * 1024


def test_plain_input_over_the_limit_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_report, "MAX_REPORT_BYTES", 100)
    with pytest.raises(ReportSyntaxError, match="larger than 100 bytes"):
        parse_report(b" " * 101)
    with pytest.raises(ReportSyntaxError, match="larger than 100 bytes"):
        parse_report(" " * 101)


def test_multi_member_gzip_is_read_whole() -> None:
    raw = _load("google-style.json")
    half = len(raw) // 2
    data = gzip.compress(raw[:half]) + gzip.compress(raw[half:])
    assert parse_report(data) == parse_report(raw)


def test_too_many_policies_are_rejected() -> None:
    doc = json.loads(_load("google-style.json"))
    small = {
        "policy": {"policy-type": "no-policy-found", "policy-domain": "a.example"},
        "summary": {"total-successful-session-count": 1, "total-failure-session-count": 0},
    }
    doc["policies"] = [small] * (_report.MAX_POLICIES + 1)
    with pytest.raises(ReportSyntaxError, match="policies"):
        parse_report(json.dumps(doc))


def test_too_many_failure_details_are_rejected() -> None:
    doc = json.loads(_load("google-style.json"))
    details = doc["policies"][0]["failure-details"]
    doc["policies"][0]["failure-details"] = details[:1] * (_report.MAX_FAILURE_DETAILS + 1)
    with pytest.raises(ReportSyntaxError, match="failure-details"):
        parse_report(json.dumps(doc))


def test_deep_nesting_is_a_report_syntax_error() -> None:
    with pytest.raises(ReportSyntaxError, match="nested too deeply"):
        parse_report("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ReportSyntaxError, match="nested too deeply"):
        parse_report('{"a": ' * 50_000 + "1" + "}" * 50_000)
    # Moderate nesting in an unknown member is read and ignored.
    doc = json.loads(_load("google-style.json"))
    doc["x-vendor"] = json.loads("[" * 100 + "]" * 100)
    assert parse_report(json.dumps(doc)).report_id == doc["report-id"]


@given(st.binary(max_size=400))
def test_fuzz_bytes_only_parse_errors_escape(data: bytes) -> None:
    with contextlib.suppress(ParseError):
        parse_report(data)


@given(st.binary(max_size=300))
def test_fuzz_gzipped_bytes_only_parse_errors_escape(data: bytes) -> None:
    with contextlib.suppress(ParseError):
        parse_report(gzip.compress(data))


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
_FIELDS = [
    "organization-name",
    "date-range",
    "contact-info",
    "report-id",
    "policies",
    "policy",
    "summary",
    "failure-details",
    "policy-type",
    "policy-domain",
    "mx-host",
]


@given(st.dictionaries(st.sampled_from(_FIELDS), _json_values, max_size=8))
def test_fuzz_structured_json_only_parse_errors_escape(doc: dict[str, Any]) -> None:
    with contextlib.suppress(ParseError):
        parse_report(json.dumps(doc))


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
_opt = st.none() | _text
_details = st.builds(
    FailureDetail,
    result_type=st.sampled_from(list(FailureReason)),
    sending_mta_ip=_opt,
    receiving_mx_hostname=_opt,
    receiving_mx_helo=_opt,
    receiving_ip=_opt,
    failed_session_count=st.integers(0, 2**53 - 1),
    additional_information=_opt,
    failure_reason_code=_opt,
)
_policies = st.builds(
    PolicyResults,
    policy=st.builds(
        ReportPolicy,
        policy_type=st.sampled_from(list(PolicyType)),
        policy_string=st.lists(_text, max_size=4).map(tuple),
        policy_domain=_text.filter(bool),
        mx_host=st.lists(_text.filter(bool), max_size=3).map(tuple),
    ),
    summary=st.builds(
        ReportSummary,
        total_successful_session_count=st.integers(0, 10**9),
        total_failure_session_count=st.integers(0, 10**9),
    ),
    failure_details=st.lists(_details, max_size=3).map(tuple),
)
_instants = st.datetimes(
    min_value=datetime(1971, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.just(UTC),
)


@given(
    st.builds(
        TlsReport,
        organization_name=_text,
        date_range=st.builds(ReportDateRange, start_datetime=_instants, end_datetime=_instants),
        contact_info=_opt,
        report_id=_text.filter(bool),
        policies=st.lists(_policies, max_size=3).map(tuple),
    )
)
def test_round_trip_render_then_parse(report: TlsReport) -> None:
    assert parse_report(report.to_json()) == report
    assert parse_report(gzip.compress(report.to_json())) == report


def test_count_at_the_i_json_limit_is_accepted() -> None:
    # RFC 7493 §2.2: 2**53 - 1 is the largest exact integer; one more is refused (BAD above).
    data = _mutated(["policies", 0, "summary", "total-failure-session-count"], _report.MAX_COUNT)
    report = parse_report(data)
    assert report.policies[0].summary.total_failure_session_count == _report.MAX_COUNT
    assert parse_report(report.to_json()) == report
