"""The facade's TLS-RPT side: record sessions, build and send the day's reports (RFC 8460)."""

from __future__ import annotations

import asyncio
import email
import gzip
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from mtasecure.client import MtaSecure
from mtasecure.decision import SessionObservation, judge
from mtasecure.errors import SmtpError, StoreError, UsageError
from mtasecure.requiretls import MessageFlags
from mtasecure.results import CheckResult, FailureReason
from mtasecure.sts import PolicyMode, StsPolicy
from mtasecure.testing import FakeHttpClient, FakeMailSubmitter, FakeResolver, FrozenClock
from mtasecure.tlsrpt import PolicyType, ReportOptions, ResultBatch, parse_report
from mtasecure.tlsrpt._submit import MEDIA_TYPE_GZIP, RetryPolicy
from mtasecure.transport import MailSubmitter
from mtasecure.transport.report_memory import MemoryReportStore
from mtasecure.transport.report_sqlite import SqliteReportStore

ZONE = """
$SECURITY insecure
sts.example.              MX    10 mx1.sts.example.
sts.example.              MX    20 mx2.other.example.
mx1.sts.example.          A     192.0.2.21
mx2.other.example.        A     192.0.2.22
_smtp._tls.sts.example.   TXT   "v=TLSRPTv1; rua=mailto:tls@sts.example,https://rpt.sts.example/v1"
plain.example.            MX    10 mx.plain.example.
mx.plain.example.         A     192.0.2.50
_smtp._tls.plain.example. TXT   "v=TLSRPTv1; rua=mailto:reports@plain.example"
quiet.example.            MX    10 mx.quiet.example.
mx.quiet.example.         A     192.0.2.60
"""
DAY = date(2026, 3, 1)
NOON = datetime(2026, 3, 1, 12, tzinfo=UTC)
NEXT_DAY = datetime(2026, 3, 2, 6, tzinfo=UTC)
POLICY = StsPolicy(mode=PolicyMode.ENFORCE, mx=("mx1.sts.example",), max_age=86400)
OPTIONS = ReportOptions(organization_name="Sender Org", contact_info="tlsrpt@sender.example")
NO_RETRY = RetryPolicy(max_attempts=1)
GOOD = SessionObservation(
    host="mx1.sts.example", starttls_offered=True, tls_established=True, webpki=CheckResult.passed()
)


def _client(**extra: object) -> tuple[MtaSecure, FrozenClock, FakeResolver]:
    clock = FrozenClock(NOON)
    resolver = FakeResolver.from_zone(ZONE)
    return MtaSecure(resolver=resolver, clock=clock, **extra), clock, resolver  # type: ignore[arg-type]


async def _deliver(client: MtaSecure, domain: str = "sts.example") -> int:
    """Plan a delivery, "have" a good session with every MX, record each."""
    delivery = await client.plan_delivery(
        domain, MessageFlags(), sts=POLICY if domain == "sts.example" else None
    )
    recorded = 0
    for requirement in delivery.requirements:
        outcome = judge(requirement, GOOD.model_copy(update={"host": requirement.host}))
        recorded += client.record_session(
            domain,
            requirement,
            outcome,
            sts_policy=POLICY if domain == "sts.example" else None,
            sending_ip="198.51.100.1",
            receiving_ip="192.0.2.21",
        )
    return recorded


def test_the_default_store_is_in_memory_and_a_given_one_is_used(tmp_path: Path) -> None:
    client, _, _ = _client()
    assert isinstance(client.store, MemoryReportStore)
    sqlite = SqliteReportStore(tmp_path / "r.db")
    assert _client(store=sqlite)[0].store is sqlite


async def test_recorded_sessions_make_the_days_report() -> None:
    client, _, _ = _client()
    assert await _deliver(client) == 2
    assert await _deliver(client, "plain.example") == 1
    (plain, sts) = await client.build_daily_reports(DAY, OPTIONS)
    assert (plain.policy_domain, sts.policy_domain) == ("plain.example", "sts.example")
    (entry,) = sts.report.policies
    assert entry.policy.policy_type is PolicyType.STS
    assert entry.policy.policy_string == (
        "version: STSv1",
        "mode: enforce",
        "mx: mx1.sts.example",
        "max_age: 86400",
    )
    assert entry.summary.total_successful_session_count == 1
    assert entry.summary.total_failure_session_count == 1
    (detail,) = entry.failure_details
    assert detail.result_type is FailureReason.VALIDATION_FAILURE
    assert detail.receiving_mx_hostname == "mx2.other.example"
    assert detail.sending_mta_ip == "198.51.100.1"
    # The gzip body is the same report, as a receiver reads it.
    assert parse_report(sts.gzip) == sts.report
    (nopolicy,) = plain.report.policies
    assert nopolicy.policy.policy_type is PolicyType.NO_POLICY_FOUND
    assert nopolicy.summary.total_successful_session_count == 1


async def test_a_datetime_names_its_utc_day_and_naive_ones_are_refused() -> None:
    client, _, _ = _client()
    await _deliver(client)
    assert len(await client.build_daily_reports(NOON + timedelta(hours=5), OPTIONS)) == 1
    with pytest.raises(UsageError, match="timezone-aware"):
        await client.build_daily_reports(datetime(2026, 3, 1, 12), OPTIONS)
    with pytest.raises(UsageError, match="one day"):
        await client.build_daily_reports(
            DAY, OPTIONS.model_copy(update={"window": timedelta(hours=1)})
        )


async def test_sessions_count_in_the_day_they_were_recorded() -> None:
    client, clock, _ = _client()
    await _deliver(client)
    clock.set(NEXT_DAY)
    await _deliver(client)
    await _deliver(client)
    (first,) = await client.build_daily_reports(DAY, OPTIONS)
    (second,) = await client.build_daily_reports(DAY + timedelta(days=1), OPTIONS)
    assert first.report.policies[0].summary.total_successful_session_count == 1
    assert second.report.policies[0].summary.total_successful_session_count == 2


async def test_report_mails_and_tls_required_no_are_not_counted() -> None:
    client, _, _ = _client()
    delivery = await client.plan_delivery("plain.example")
    (requirement,) = delivery.requirements
    assert not client.record_session("plain.example", requirement, None, is_report_mail=True)
    optional = await client.plan_delivery(
        "sts.example", MessageFlags(tls_required_no=True), sts=POLICY
    )
    assert all(r.policy_ignored for r in optional.requirements)
    assert not client.record_session("sts.example", optional.requirements[0], None)
    assert await client.build_daily_reports(DAY, OPTIONS) == ()


async def test_an_sts_requirement_without_its_policy_is_a_usage_error() -> None:
    client, _, _ = _client()
    delivery = await client.plan_delivery("sts.example", sts=POLICY)
    with pytest.raises(UsageError, match="sts_policy"):
        client.record_session("sts.example", delivery.requirements[0], None)


async def test_the_policy_plan_delivery_discovered_is_the_default() -> None:
    # plan_delivery did the MTA-STS discovery itself: record_session takes the
    # policy it found, and the report names it (RFC 8460 §4.4 policy-string).
    client, _, resolver = _client(http=FakeHttpClient())
    resolver.add("_mta-sts.sts.example", "TXT", ['"v=STSv1; id=1;"'], ttl=300)
    policy_text = "version: STSv1\nmode: enforce\nmx: mx1.sts.example\nmax_age: 86400\n"
    client.http.add("https://mta-sts.sts.example/.well-known/mta-sts.txt", policy_text)  # type: ignore[attr-defined]
    delivery = await client.plan_delivery("sts.example")
    (requirement,) = delivery.usable  # mx2.other.example is not in the policy
    outcome = judge(requirement, GOOD)
    assert client.record_session("sts.example", requirement, outcome)
    (built,) = [
        b
        for b in await client.build_daily_reports(DAY, OPTIONS)
        if b.policy_domain == "sts.example"
    ]
    (entry,) = built.report.policies
    assert entry.policy.policy_type is PolicyType.STS
    assert entry.policy.policy_string == (
        "version: STSv1",
        "mode: enforce",
        "mx: mx1.sts.example",
        "max_age: 86400",
    )


async def test_a_discovery_failure_is_reported_under_sts() -> None:
    client, _, _ = _client()
    delivery = await client.plan_delivery("plain.example")
    client.record_session(
        "plain.example",
        delivery.requirements[0],
        None,
        sts_failure=FailureReason.STS_POLICY_FETCH_ERROR,
    )
    (built,) = await client.build_daily_reports(DAY, OPTIONS)
    (entry,) = built.report.policies
    assert entry.policy.policy_type is PolicyType.STS
    assert entry.failure_details[0].result_type is FailureReason.STS_POLICY_FETCH_ERROR


async def test_send_delivers_to_every_rua_and_marks_the_domain() -> None:
    http = FakeHttpClient()
    http.add("https://rpt.sts.example/v1", b"", status=201)
    mail = FakeMailSubmitter()
    assert isinstance(mail, MailSubmitter)
    client, clock, _ = _client(http=http)
    await _deliver(client)
    await _deliver(client, "quiet.example")  # no _smtp._tls record: nothing to send
    clock.set(NEXT_DAY)
    sent = await client.send_daily_reports(DAY, OPTIONS, mail=mail, retry=NO_RETRY)
    assert sorted((s.uri, s.delivered) for s in sent) == [
        ("https://rpt.sts.example/v1", True),
        ("mailto:tls@sts.example", True),
    ]
    assert {s.policy_domain for s in sent} == {"sts.example"}
    ((url, body, media),) = http.posts
    assert (url, media) == ("https://rpt.sts.example/v1", MEDIA_TYPE_GZIP)
    report = parse_report(body)
    assert report.policies[0].policy.policy_domain == "sts.example"
    ((sender, recipients, message),) = mail.sent
    assert sender == "tlsrpt@sender.example"
    assert recipients == ("tls@sts.example",)
    parsed = email.message_from_bytes(message)
    assert parsed["TLS-Report-Domain"] == "sts.example"
    assert parsed["TLS-Report-Submitter"] == "sender.example"
    attachment = next(p for p in parsed.walk() if p.get_filename())
    assert attachment.get_filename().startswith("sender.example!sts.example!")
    assert gzip.decompress(attachment.get_payload(decode=True)) == report.to_json()
    # Done: a second call sends nothing (the day was pruned from the store).
    assert await client.send_daily_reports(DAY, OPTIONS, mail=mail, retry=NO_RETRY) == ()
    assert len(mail.sent) == 1
    assert await client.store.windows() == ()


async def test_failed_deliveries_are_values() -> None:
    http = FakeHttpClient()
    http.add("https://rpt.sts.example/v1", b"", status=403)
    mail = FakeMailSubmitter([SmtpError("550 no such user")])
    client, clock, _ = _client(http=http)
    await _deliver(client)
    clock.set(NEXT_DAY)
    sent = await client.send_daily_reports(DAY, OPTIONS, mail=mail, retry=NO_RETRY)
    assert sorted((s.uri, s.delivered) for s in sent) == [
        ("https://rpt.sts.example/v1", False),
        ("mailto:tls@sts.example", False),
    ]
    assert mail.attempts == 1


async def test_a_failed_rua_lookup_leaves_the_domain_for_the_next_call() -> None:
    client, clock, resolver = _client()
    await _deliver(client, "plain.example")
    resolver.add_failure("_smtp._tls.plain.example")
    clock.set(NEXT_DAY)
    mail = FakeMailSubmitter()
    (failed,) = await client.send_daily_reports(DAY, OPTIONS, mail=mail)
    assert not failed.delivered
    assert failed.uri == "_smtp._tls.plain.example"
    assert failed.policy_domain == "plain.example"
    assert mail.sent == []
    # The record is back: the report goes out on the next call.
    repaired = FakeResolver.from_zone(ZONE)
    client.resolver = repaired
    (ok,) = await client.send_daily_reports(DAY, OPTIONS, mail=mail, retry=NO_RETRY)
    assert ok.delivered
    assert ok.uri == "mailto:reports@plain.example"
    assert len(mail.sent) == 1


async def test_a_day_that_is_not_over_is_not_sent() -> None:
    client, _, _ = _client()
    await _deliver(client)
    with pytest.raises(UsageError, match="not over"):
        await client.send_daily_reports(DAY, OPTIONS, mail=FakeMailSubmitter())


async def test_a_day_claimed_by_another_sender_is_left_to_it() -> None:
    store = MemoryReportStore()
    first, clock, _ = _client(store=store)
    second = MtaSecure(resolver=FakeResolver.from_zone(ZONE), clock=clock, store=store)
    await _deliver(first)
    clock.set(NEXT_DAY)
    assert await store.windows() == ()  # nothing flushed yet: counts are in memory
    await first.flush_reports()
    (window,) = await store.windows()
    assert await store.claim(window, "someone-else", now=clock.now(), lease=3600)
    mail = FakeMailSubmitter()
    assert await second.send_daily_reports(DAY, OPTIONS, mail=mail) == ()
    assert mail.sent == []


class FlakyStore(MemoryReportStore):
    """A store whose ``add`` fails while ``broken`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = True

    async def add(self, batch: ResultBatch) -> bool:
        if self.broken:
            raise StoreError("database is locked")
        return await super().add(batch)


async def test_a_failing_store_loses_nothing_and_counts_nothing_twice() -> None:
    store = FlakyStore()
    client, _, _ = _client(store=store)
    await _deliver(client)
    with pytest.raises(StoreError):
        await client.flush_reports()
    await _deliver(client)
    with pytest.raises(StoreError):
        await client.build_daily_reports(DAY, OPTIONS)
    store.broken = False
    assert await client.flush_reports() == 2
    assert await client.flush_reports() == 0
    (built,) = await client.build_daily_reports(DAY, OPTIONS)
    summary = built.report.policies[0].summary
    assert (summary.total_successful_session_count, summary.total_failure_session_count) == (2, 2)


async def test_sqlite_results_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "reports.db"
    clock = FrozenClock(NOON)
    async with MtaSecure(
        resolver=FakeResolver.from_zone(ZONE), clock=clock, store=SqliteReportStore(path)
    ) as client:
        await _deliver(client)
    # aclose flushed the counts; a new process sees them.
    async with MtaSecure(
        resolver=FakeResolver.from_zone(ZONE), clock=clock, store=SqliteReportStore(path)
    ) as again:
        (built,) = await again.build_daily_reports(DAY, OPTIONS)
    assert built.report.policies[0].summary.total_successful_session_count == 1


async def test_closing_with_a_broken_store_logs(caplog: pytest.LogCaptureFixture) -> None:
    store = FlakyStore()
    client, _, _ = _client(store=store)
    await _deliver(client)
    await client.aclose()
    assert "could not be stored on close" in caplog.text


async def test_counts_recorded_straight_into_the_collector_are_flushed() -> None:
    client, _, _ = _client()
    client.reports.record("plain.example", None, FailureReason.STARTTLS_NOT_SUPPORTED)
    (built,) = await client.build_daily_reports(DAY, OPTIONS)
    assert built.report.policies[0].summary.total_failure_session_count == 1


async def test_dns_errors_from_rua_lookup_are_values_not_exceptions() -> None:
    client, clock, resolver = _client()
    await _deliver(client, "plain.example")
    resolver.add_failure("_smtp._tls.plain.example")
    clock.set(NEXT_DAY)
    (entry,) = await client.send_daily_reports(DAY, OPTIONS, mail=FakeMailSubmitter())
    assert "failed" in entry.detail
    assert entry.attempts == 0


async def test_run_daily_reports_flushes_and_sends_when_due() -> None:
    http = FakeHttpClient()
    http.add("https://rpt.sts.example/v1", b"", status=200)
    mail = FakeMailSubmitter()
    client, clock, _ = _client(http=http)
    await _deliver(client)
    seen: list[str] = []
    stop = asyncio.Event()

    async def run() -> None:
        await client.run_daily_reports(
            OPTIONS,
            stop=stop,
            mail=mail,
            retry=NO_RETRY,
            flush_interval=0.01,
            on_sent=lambda s: seen.append(s.uri),
        )

    task = asyncio.create_task(run())
    # Still the same day: the counts reach the store, nothing is sent.
    while not await client.store.windows():
        await asyncio.sleep(0.01)
    assert mail.sent == []
    # After the latest jittered send time (4 hours after midnight, RFC 8460 §4.1).
    clock.set(datetime(2026, 3, 2, 4, 6, tzinfo=UTC))
    for _ in range(500):
        if len(seen) == 2:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert sorted(seen) == ["https://rpt.sts.example/v1", "mailto:tls@sts.example"]
    assert len(mail.sent) == 1
    assert await client.store.windows() == ()


async def test_run_daily_reports_survives_a_failing_store() -> None:
    store = FlakyStore()
    client, _, _ = _client(store=store)
    await _deliver(client)
    stop = asyncio.Event()
    task = asyncio.create_task(
        client.run_daily_reports(OPTIONS, stop=stop, mail=FakeMailSubmitter(), flush_interval=0.01)
    )
    await asyncio.sleep(0.05)
    assert not task.done()  # the StoreError was logged, not raised
    store.broken = False
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    (built,) = await client.build_daily_reports(DAY, OPTIONS)
    assert built.report.policies[0].summary.total_successful_session_count == 1


async def test_public_only_keeps_report_uploads_off_private_addresses() -> None:
    from mtasecure.client import StsSettings

    zone = (
        ZONE.replace(
            '"v=TLSRPTv1; rua=mailto:tls@sts.example,https://rpt.sts.example/v1"',
            '"v=TLSRPTv1; rua=https://rpt.sts.example/v1"',
        )
        + "rpt.sts.example. A 127.0.0.1\n"
    )
    clock = FrozenClock(NOON)
    async with MtaSecure(
        resolver=FakeResolver.from_zone(zone), clock=clock, sts=StsSettings(public_only=True)
    ) as client:
        await _deliver(client)
        clock.set(NEXT_DAY)
        (outcome,) = await client.send_daily_reports(DAY, OPTIONS, retry=NO_RETRY)
    assert not outcome.delivered
    assert outcome.uri == "https://rpt.sts.example/v1"
    assert "refusing non-public address 127.0.0.1" in outcome.detail
