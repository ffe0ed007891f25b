"""Recording session results (RFC 8460 §4.2–§4.4) and the memory and SQLite result stores."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtasecure.errors import StoreError, UsageError
from mtasecure.results import CheckResult, FailureReason
from mtasecure.tlsrpt import (
    PolicyType,
    ReportPolicy,
    ReportWindow,
    ResultBatch,
    TlsRptCollector,
    WindowResults,
    merge_results,
    no_policy_found,
)
from mtasecure.transport import ReportStore
from mtasecure.transport.report_memory import MemoryReportStore
from mtasecure.transport.report_sqlite import SqliteReportStore

NOW = datetime(2026, 3, 1, 13, 5, tzinfo=UTC)
WINDOW = ReportWindow.containing(NOW)
STS = ReportPolicy(
    policy_type=PolicyType.STS,
    policy_string=("version: STSv1", "mode: enforce", "mx: mx.example.com", "max_age: 86400"),
    policy_domain="example.com",
    mx_host=("mx.example.com",),
)
TLSA = ReportPolicy(
    policy_type=PolicyType.TLSA,
    policy_string=("3 1 1 " + "ab" * 32,),
    policy_domain="example.net",
    mx_host=("mx.example.net",),
)


def test_window_is_the_utc_day() -> None:
    assert WINDOW.start == datetime(2026, 3, 1, tzinfo=UTC)
    assert WINDOW.end == datetime(2026, 3, 2, tzinfo=UTC)
    assert WINDOW.next().start == WINDOW.end
    tz = datetime(2026, 3, 1, 1, 0, tzinfo=UTC).astimezone(
        __import__("datetime").timezone(timedelta(hours=5))
    )
    assert ReportWindow.containing(tz) == WINDOW


def test_shorter_windows_line_up_with_days() -> None:
    hour = ReportWindow.containing(NOW, timedelta(hours=6))
    assert hour.start == datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert hour.end == datetime(2026, 3, 1, 18, tzinfo=UTC)
    with pytest.raises(UsageError, match="divide a day"):
        ReportWindow.containing(NOW, timedelta(hours=7))
    with pytest.raises(UsageError, match="whole number"):
        ReportWindow.containing(NOW, timedelta(0))
    with pytest.raises(UsageError, match="aware"):
        ReportWindow.containing(NOW.replace(tzinfo=None))


def test_record_counts_successes_and_failures_per_domain_and_policy() -> None:
    c = TlsRptCollector(batch_prefix="t")
    for _ in range(5):
        c.record("example.com", STS, None)
    c.record("example.com", STS, CheckResult.passed())
    c.record("Example.COM.", STS, FailureReason.CERTIFICATE_EXPIRED, mx_host="mx.example.com")
    c.record(
        "example.com",
        STS,
        CheckResult.failed(FailureReason.CERTIFICATE_NOT_TRUSTED, "X509_V_ERR_CERT_UNTRUSTED"),
        sending_ip="192.0.2.1",
        receiving_ip="198.51.100.7",
        mx_host="mx.example.com",
        helo="mx.example.com",
    )
    c.record("example.net", TLSA, FailureReason.TLSA_INVALID)
    c.record("nothing.example", None, None)
    assert c.pending == 10
    batch = c.drain(WINDOW)
    assert batch is not None
    assert c.pending == 0
    assert batch.batch_id == "t-1"
    by_domain = {(s.policy_domain, s.policy.policy_type): s for s in batch.sessions}
    com = by_domain["example.com", PolicyType.STS]
    assert (com.successful, com.failed) == (6, 2)
    net = by_domain["example.net", PolicyType.TLSA]
    assert (net.successful, net.failed) == (0, 1)
    nothing = by_domain["nothing.example", PolicyType.NO_POLICY_FOUND]
    assert nothing.policy == no_policy_found("nothing.example")
    assert (nothing.successful, nothing.failed) == (1, 0)
    details = {d.detail.result_type: d.detail for d in batch.details}
    assert details[FailureReason.CERTIFICATE_NOT_TRUSTED].failure_reason_code == (
        "X509_V_ERR_CERT_UNTRUSTED"
    )
    assert details[FailureReason.CERTIFICATE_NOT_TRUSTED].sending_mta_ip == "192.0.2.1"
    assert details[FailureReason.CERTIFICATE_NOT_TRUSTED].receiving_mx_helo == "mx.example.com"
    assert details[FailureReason.CERTIFICATE_EXPIRED].failed_session_count == 1
    assert c.drain(WINDOW) is None
    c.record("example.com", STS, None)
    second = c.drain(WINDOW)
    assert second is not None
    assert second.batch_id == "t-2"


def test_failures_are_grouped_by_every_detail_field() -> None:
    c = TlsRptCollector()
    for ip in ("192.0.2.1", "192.0.2.1", "192.0.2.2"):
        c.record("example.com", STS, FailureReason.STARTTLS_NOT_SUPPORTED, sending_ip=ip)
    c.record(
        "example.com", STS, FailureReason.STARTTLS_NOT_SUPPORTED, sending_ip="192.0.2.1", helo="x"
    )
    batch = c.drain(WINDOW)
    assert batch is not None
    counts = sorted(
        (d.detail.sending_mta_ip, d.detail.receiving_mx_helo or "", d.detail.failed_session_count)
        for d in batch.details
    )
    assert counts == [("192.0.2.1", "", 2), ("192.0.2.1", "x", 1), ("192.0.2.2", "", 1)]
    assert batch.sessions[0].failed == 4


def test_report_mail_sessions_are_not_counted() -> None:
    c = TlsRptCollector()
    c.record("example.com", STS, FailureReason.STARTTLS_NOT_SUPPORTED, is_report_mail=True)
    c.record("example.com", STS, None, is_report_mail=True)
    assert c.pending == 0
    assert c.drain(WINDOW) is None


def test_a_domain_that_is_not_a_host_name_is_dropped_at_drain() -> None:
    c = TlsRptCollector()
    c.record("not a domain!", STS, None)
    c.record("example.com", STS, None)
    batch = c.drain(WINDOW)
    assert batch is not None
    assert [s.policy_domain for s in batch.sessions] == ["example.com"]


def test_policy_domain_in_the_policy_follows_the_normalised_domain() -> None:
    c = TlsRptCollector()
    c.record("BÜCHER.example", no_policy_found("BÜCHER.example"), None)
    batch = c.drain(WINDOW)
    assert batch is not None
    assert batch.sessions[0].policy_domain == "xn--bcher-kva.example"
    assert batch.sessions[0].policy.policy_domain == "xn--bcher-kva.example"


def test_bad_outcome_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="outcome"):
        TlsRptCollector().record("example.com", STS, "certificate-expired")  # type: ignore[arg-type]


def test_equal_policies_built_separately_aggregate_together() -> None:
    c = TlsRptCollector()
    c.record("example.com", STS, None)
    c.record("example.com", STS.model_copy(), None)
    batch = c.drain(WINDOW)
    assert batch is not None
    assert len(batch.sessions) == 1
    assert batch.sessions[0].successful == 2


_outcomes = st.sampled_from([None, *FailureReason])


@settings(max_examples=50)
@given(st.lists(st.tuples(st.sampled_from(["a.example", "b.example"]), _outcomes), max_size=60))
def test_drained_totals_equal_what_was_recorded(
    sessions: list[tuple[str, FailureReason | None]],
) -> None:
    c = TlsRptCollector()
    for domain, outcome in sessions:
        c.record(domain, None, outcome, sending_ip="192.0.2.1")
    batch = c.drain(WINDOW)
    if not sessions:
        assert batch is None
        return
    assert batch is not None
    assert batch.session_total == len(sessions)
    failures = sum(1 for _, o in sessions if o is not None)
    assert sum(s.failed for s in batch.sessions) == failures
    assert sum(d.detail.failed_session_count for d in batch.details) == failures


def _batch(batch_id: str, n_ok: int = 3, n_fail: int = 1) -> ResultBatch:
    c = TlsRptCollector(batch_prefix="x")
    for _ in range(n_ok):
        c.record("example.com", STS, None)
    for _ in range(n_fail):
        c.record("example.com", STS, FailureReason.CERTIFICATE_EXPIRED, sending_ip="192.0.2.9")
    batch = c.drain(WINDOW)
    assert batch is not None
    return batch.model_copy(update={"batch_id": batch_id})


def test_merge_results_adds_up() -> None:
    merged = merge_results(WINDOW, [_batch("a"), _batch("b", 2, 2)])
    assert merged.sessions[0].successful == 5
    assert merged.sessions[0].failed == 3
    assert merged.details[0].detail.failed_session_count == 3


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReportStore]:
    if request.param == "memory":
        yield MemoryReportStore()
        return
    s = SqliteReportStore(tmp_path / "tlsrpt.db")
    yield s
    s.close()


async def test_store_satisfies_the_protocol(store: ReportStore) -> None:
    assert isinstance(store, ReportStore)


async def test_store_adds_each_batch_once(store: ReportStore) -> None:
    assert await store.add(_batch("one"))
    assert await store.add(_batch("two"))
    assert not await store.add(_batch("one"))  # a retry of a batch already in
    results = await store.load(WINDOW)
    assert results.session_total == 8
    assert results.sessions[0].policy == STS
    assert results.details[0].detail.failed_session_count == 2
    assert await store.windows() == (WINDOW,)
    empty = await store.load(WINDOW.next())
    assert empty == WindowResults(window=WINDOW.next())


async def test_store_claims_and_sent_marks(store: ReportStore) -> None:
    await store.add(_batch("one"))
    assert await store.claim(WINDOW, "mta-1", now=NOW, lease=60)
    assert await store.claim(WINDOW, "mta-1", now=NOW, lease=60)  # still ours
    assert not await store.claim(WINDOW, "mta-2", now=NOW + timedelta(seconds=30), lease=60)
    assert await store.claim(WINDOW, "mta-2", now=NOW + timedelta(seconds=61), lease=60)
    assert await store.sent(WINDOW) == frozenset()
    await store.mark_sent(WINDOW, "example.com", "id@sender.example")
    assert await store.sent(WINDOW) == {"example.com"}
    await store.prune(WINDOW)
    assert await store.windows() == ()
    assert await store.sent(WINDOW) == frozenset()


async def test_sqlite_store_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    first = SqliteReportStore(path)
    await first.add(_batch("one"))
    await first.mark_sent(WINDOW, "example.com", "rid")
    first.close()
    second = SqliteReportStore(path)
    try:
        assert (await second.load(WINDOW)).session_total == 4
        assert not await second.add(_batch("one"))
        assert await second.sent(WINDOW) == {"example.com"}
    finally:
        second.close()


def test_sqlite_store_errors_are_store_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open"):
        SqliteReportStore(tmp_path / "missing-dir" / "r.db")


def test_sqlite_store_refuses_a_file_from_a_newer_version(tmp_path: Path) -> None:
    import sqlite3

    from mtasecure.transport.report_sqlite import SCHEMA_VERSION

    path = tmp_path / "r.db"
    SqliteReportStore(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match=r"report store was written by a newer mtasecure"):
        SqliteReportStore(path)


def test_sqlite_store_upgrades_an_unversioned_file_in_place(tmp_path: Path) -> None:
    import sqlite3

    from mtasecure.transport.report_sqlite import SCHEMA_VERSION

    path = tmp_path / "r.db"
    store = SqliteReportStore(path)
    assert store.add_now(_batch("kept"))
    store.close()
    with sqlite3.connect(path) as db:  # as written before the layout was versioned
        db.execute("PRAGMA user_version = 0")
    store = SqliteReportStore(path)
    try:
        assert not store.add_now(_batch("kept"))  # the old rows are still there
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_a_closed_sqlite_store_raises_store_error(tmp_path: Path) -> None:
    async with SqliteReportStore(tmp_path / "r.db") as store:
        assert await store.add(_batch("one"))
    await store.aclose()  # idempotent
    store.close()
    with pytest.raises(StoreError, match="is closed"):
        await store.add(_batch("two"))
    with pytest.raises(StoreError, match="is closed"):
        store.add_now(_batch("two"))
    with pytest.raises(StoreError, match="is closed"):
        await store.load(WINDOW)


async def test_sqlite_store_in_memory_keeps_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with SqliteReportStore(":memory:") as store:
        assert await store.add(_batch("one"))
        assert (await store.load(WINDOW)).session_total == 4
    assert list(tmp_path.iterdir()) == []


async def test_sqlite_corrupted_row_is_a_store_error(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "r.db"
    store = SqliteReportStore(path)
    await store.add(_batch("one"))
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE tlsrpt_sessions SET policy = 'garbage'")
    store = SqliteReportStore(path)
    try:
        with pytest.raises(StoreError, match="unreadable"):
            await store.load(WINDOW)
    finally:
        store.close()


# The writer: adds batch i (ids b0, b1, ...) of BATCH_SESSIONS sessions each and
# prints the index after each add returns. It is killed with SIGKILL mid-run.
WRITER = """
import sys
from datetime import UTC, datetime
from mtasecure.tlsrpt import ReportWindow, TlsRptCollector
from mtasecure.transport.report_sqlite import SqliteReportStore

path, first, last, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
window = ReportWindow.containing(datetime(2026, 3, 1, tzinfo=UTC))
store = SqliteReportStore(path)
for i in range(first, last):
    c = TlsRptCollector(batch_prefix="unused")
    for j in range(per):
        c.record(f"d{j % 7}.example", None, None)
    batch = c.drain(window).model_copy(update={"batch_id": f"b{i}"})
    store.add_now(batch)
    print(i, flush=True)
"""


def _total(path: Path) -> int:
    import sqlite3

    with sqlite3.connect(path) as db:
        row = db.execute("SELECT COALESCE(SUM(successful + failed), 0) FROM tlsrpt_sessions")
        return int(row.fetchone()[0])


def test_sqlite_kill_mid_write_loses_nothing_and_counts_nothing_twice(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    per, batches = 500, 400
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(path), "0", str(batches), str(per)],
        stdout=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    acked = -1
    deadline = time.monotonic() + 60
    # Kill it once it is well into writing, in the middle of the run.
    while acked < 20 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        acked = int(line)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert 20 <= acked < batches - 1, "the writer must be killed mid-run"
    # Every acknowledged batch is there; at most the one in flight also is; never half a batch.
    total = _total(path)
    assert total % per == 0
    assert (acked + 1) * per <= total <= (acked + 2) * per
    # After the restart the writer replays everything from the start: batches
    # already stored are skipped, so each is counted exactly once.
    subprocess.run(
        [sys.executable, str(script), str(path), "0", str(batches), str(per)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    assert _total(path) == batches * per


def test_name_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from mtasecure.tlsrpt import _collect

    monkeypatch.setattr(_collect, "MAX_NAME_CACHE", 5)
    c = TlsRptCollector()
    for round_ in range(3):
        for i in range(10):
            c.record(f"d{round_}-{i}.example", None, None)
        batch = c.drain(WINDOW)
        assert batch is not None
        assert len(batch.sessions) == 10
    assert len(c._names) <= 10  # cleared whenever it passed the limit


async def test_sqlite_busy_timeout_gives_a_store_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from mtasecure.transport import report_sqlite

    monkeypatch.setattr(report_sqlite, "BUSY_TIMEOUT", 0.1)
    path = tmp_path / "busy.db"
    store = SqliteReportStore(path)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        with pytest.raises(StoreError, match="locked"):
            await store.add(_batch("blocked"))
        assert time.monotonic() - started < 5
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert await store.add(_batch("blocked"))  # nothing half-applied; it goes in now
    assert (await store.load(WINDOW)).session_total == 4
    store.close()


async def test_batch_ids_outlive_a_pruned_window(store: ReportStore) -> None:
    assert await store.add(_batch("late"))
    await store.prune(WINDOW)
    # A retry of the same add arriving after the report went out changes nothing.
    assert not await store.add(_batch("late"))
    assert await store.windows() == ()


async def test_batch_ids_are_forgotten_after_the_retention(store: ReportStore) -> None:
    from mtasecure.transport.report_sqlite import BATCH_ID_RETENTION

    assert await store.add(_batch("old"))
    later = ReportWindow.containing(WINDOW.start + timedelta(seconds=BATCH_ID_RETENTION + 86400))
    await store.prune(WINDOW.next())
    assert not await store.add(_batch("old"))  # within the retention: still known
    await store.prune(later)
    assert await store.add(_batch("old"))  # past it: forgotten, counted as new
