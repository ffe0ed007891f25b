"""Pins the types of the facade's TLS-RPT API and the decision-to-report mapping; never run."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

from mtasecure.client import MtaSecure
from mtasecure.decision import RequirementKind, SessionOutcome, TransportRequirement
from mtasecure.results import FailureReason
from mtasecure.sts import StsPolicy
from mtasecure.testing import FakeMailSubmitter
from mtasecure.tlsrpt import (
    BuiltReport,
    ReportOptions,
    ReportPolicy,
    SessionRecord,
    plan_session_record,
    render_sts_policy_string,
    render_tlsa_policy_string,
    report_policy_for,
)
from mtasecure.transport import MailSubmitter, ReportStore
from mtasecure.transport.report_sqlite import SqliteReportStore
from mtasecure.transport.report_submit import SentReport


async def use(
    requirement: TransportRequirement, outcome: SessionOutcome, policy: StsPolicy
) -> None:
    client = MtaSecure(store=SqliteReportStore("/tmp/reports.db"))
    store: ReportStore = client.store
    counted: bool = client.record_session(
        "example.net",
        requirement,
        outcome,
        sts_policy=policy,
        sts_failure=FailureReason.STS_POLICY_FETCH_ERROR,
        sending_ip="192.0.2.1",
        receiving_ip="198.51.100.25",
        helo="mx.example.net",
        failure_reason_code="X509_V_ERR_CERT_HAS_EXPIRED",
        is_report_mail=False,
    )
    stored: int = await client.flush_reports()
    options = ReportOptions(organization_name="Org", contact_info="tls@sender.example")
    built: tuple[BuiltReport, ...] = await client.build_daily_reports(date(2026, 3, 1), options)
    also: tuple[BuiltReport, ...] = await client.build_daily_reports(
        datetime(2026, 3, 1, tzinfo=UTC), options
    )
    mail: MailSubmitter = FakeMailSubmitter()
    sent: tuple[SentReport, ...] = await client.send_daily_reports(
        date(2026, 3, 1), options, mail=mail
    )
    await client.run_daily_reports(options, stop=asyncio.Event(), mail=mail, owner="mx-out-1")
    entry: ReportPolicy = report_policy_for("example.net", requirement, sts_policy=policy)
    record: SessionRecord | None = plan_session_record("example.net", requirement, None)
    lines: tuple[str, ...] = render_sts_policy_string(policy)
    tlsa: tuple[str, ...] = render_tlsa_policy_string(["3 1 1 " + "ab" * 32])
    kind: RequirementKind = requirement.kind
    del store, counted, stored, built, also, sent, entry, record, lines, tlsa, kind
