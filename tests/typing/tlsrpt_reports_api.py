"""Pins the types of the TLS-RPT report side's public API; type-checked by mypy, never run."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import assert_type

from mtasecure.results import CheckResult, FailureReason
from mtasecure.testing import FakeResolver
from mtasecure.tlsrpt import (
    BuiltReport,
    ReportOptions,
    ReportWindow,
    ResultBatch,
    TlsReport,
    TlsRptCollector,
    WindowResults,
    build_reports,
    is_report_mail,
    no_policy_found,
    parse_report,
    render_filename,
    render_report_message,
)
from mtasecure.tlsrpt._submit import DeliveryOutcome
from mtasecure.transport import MailSubmitter, ReportStore
from mtasecure.transport.report_memory import MemoryReportStore
from mtasecure.transport.report_sqlite import SqliteReportStore
from mtasecure.transport.report_submit import resolve_rua, send_due_reports, submit_report

now = datetime(2026, 3, 1, tzinfo=UTC)
window = ReportWindow.containing(now)
collector = TlsRptCollector()
collector.record("example.net", None, None)
collector.record("example.net", no_policy_found("example.net"), FailureReason.TLSA_INVALID)
collector.record("example.net", None, CheckResult.passed(), sending_ip="192.0.2.1", helo="mx")
assert_type(collector.drain(window), ResultBatch | None)

report = parse_report(b"{}")
assert_type(report, TlsReport)
assert_type(report.to_json(), bytes)
options = ReportOptions(organization_name="x", contact_info="a@b.example")
built = build_reports(WindowResults(window=window), options)
assert_type(built, tuple[BuiltReport, ...])
assert_type(render_filename("a.example", "b.example", window), str)
assert_type(
    render_report_message(built[0], sender="a@b.example", recipients=["c@d.example"], now=now),
    bytes,
)
assert_type(is_report_mail([("TLS-Report-Domain", "b.example")]), bool)

memory: ReportStore = MemoryReportStore()
sqlite: ReportStore = SqliteReportStore(":memory:")


async def deliver(mail: MailSubmitter) -> None:
    outcomes = await submit_report(
        built[0], ["mailto:c@d.example"], mail=mail, sender="a@b.example"
    )
    assert_type(outcomes, tuple[DeliveryOutcome, ...])
    lookup = partial(resolve_rua, resolver=FakeResolver())
    rua: Sequence[str] = await lookup("example.net")
    sent, upcoming = await send_due_reports(memory, options, now=now, lookup_rua=lookup, owner="m")
    assert_type(upcoming, datetime | None)
    del rua, sent
