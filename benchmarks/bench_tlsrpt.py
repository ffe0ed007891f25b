"""TLS-RPT numbers: recording session results, storing them, building a day's reports.

Run from the repository root::

    python benchmarks/bench_tlsrpt.py [--quick]

Each measurement is taken side by side with what a user would otherwise write:

* recording in memory: ``TlsRptCollector.record`` against a dict of
  ``collections.Counter`` keyed by (domain, policy) and (domain, policy,
  failure fields), the obvious hand-rolled aggregation;
* recording into SQLite: the collector drained every ``BATCH`` sessions into
  ``SqliteReportStore`` (one transaction per drain, WAL, ``synchronous=FULL``
  and ``NORMAL``) against plain ``sqlite3`` ``executemany`` of one row per
  session, one transaction per ``BATCH`` rows, same WAL settings;
* building a day's reports for 10,000 policy domains (RFC 8460 §4 JSON +
  gzip + file name) against ``json.dumps`` + ``gzip.compress`` of
  hand-built dicts.

The workload: 1,000 policy domains, two MTA-STS policies in use, 5 % of
sessions failing with one of four result types from one of eight sending
addresses (a busy outbound relay's mix).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mtasecure.results import FailureReason
from mtasecure.tlsrpt import (
    DetailCount,
    FailureDetail,
    PolicyType,
    ReportOptions,
    ReportPolicy,
    ReportWindow,
    SessionCount,
    TlsRptCollector,
    WindowResults,
    build_reports,
)
from mtasecure.transport.report_sqlite import SqliteReportStore

BATCH = 10_000
WINDOW = ReportWindow.containing(datetime(2026, 3, 1, tzinfo=UTC))
REASONS = [
    FailureReason.STARTTLS_NOT_SUPPORTED,
    FailureReason.CERTIFICATE_EXPIRED,
    FailureReason.CERTIFICATE_HOST_MISMATCH,
    FailureReason.VALIDATION_FAILURE,
]


def _policy(domain: str, mode: str) -> ReportPolicy:
    return ReportPolicy(
        policy_type=PolicyType.STS,
        policy_string=("version: STSv1", f"mode: {mode}", f"mx: mx.{domain}", "max_age: 86400"),
        policy_domain=domain,
        mx_host=(f"mx.{domain}",),
    )


def workload(n: int) -> list[tuple[str, ReportPolicy, FailureReason | None, str, str, str]]:
    domains = [f"d{i}.example" for i in range(1000)]
    policies = {d: (_policy(d, "enforce"), _policy(d, "testing")) for d in domains}
    sessions = []
    for i in range(n):
        d = domains[(i * 7919) % len(domains)]
        outcome = REASONS[i % 4] if i % 20 == 0 else None
        sessions.append(
            (d, policies[d][i % 2], outcome, f"192.0.2.{i % 8}", f"mx.{d}", f"198.51.100.{i % 3}")
        )
    return sessions


def best_of(runs: int, fn: Callable[[], float]) -> float:
    return max(fn() for _ in range(runs))


def bench_memory(sessions: list, runs: int) -> tuple[float, float]:  # type: ignore[type-arg]
    def ours() -> float:
        c = TlsRptCollector()
        record = c.record
        t = time.perf_counter()
        for d, p, o, sip, mx, rip in sessions:
            record(d, p, o, sending_ip=sip, mx_host=mx, receiving_ip=rip)
        elapsed = time.perf_counter() - t
        assert c.pending == len(sessions)
        return len(sessions) / elapsed

    def peer() -> float:
        summary: dict[tuple[str, ReportPolicy], Counter[str]] = {}
        details: Counter[tuple[object, ...]] = Counter()
        t = time.perf_counter()
        for d, p, o, sip, mx, rip in sessions:
            key = (d, p)
            counter = summary.get(key)
            if counter is None:
                counter = summary[key] = Counter()
            if o is None:
                counter["ok"] += 1
            else:
                counter["fail"] += 1
                details[(d, p, o, sip, mx, rip)] += 1
        elapsed = time.perf_counter() - t
        assert sum(sum(c.values()) for c in summary.values()) == len(sessions)
        return len(sessions) / elapsed

    return best_of(runs, ours), best_of(runs, peer)


def bench_sqlite(sessions: list, runs: int, synchronous: str) -> tuple[float, float]:  # type: ignore[type-arg]
    def ours() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            store = SqliteReportStore(Path(tmp) / "r.db", synchronous=synchronous)  # type: ignore[arg-type]
            c = TlsRptCollector()
            record = c.record
            t = time.perf_counter()
            for i, (d, p, o, sip, mx, rip) in enumerate(sessions, 1):
                record(d, p, o, sending_ip=sip, mx_host=mx, receiving_ip=rip)
                if i % BATCH == 0:
                    batch = c.drain(WINDOW)
                    assert batch is not None
                    store.add_now(batch)
            last = c.drain(WINDOW)
            if last is not None:
                store.add_now(last)
            elapsed = time.perf_counter() - t
            total = asyncio.run(store.load(WINDOW)).session_total
            store.close()
            assert total == len(sessions)
            return len(sessions) / elapsed

    def peer() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            db = sqlite3.connect(Path(tmp) / "p.db", isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={synchronous}")
            db.execute(
                "CREATE TABLE results (day INTEGER, domain TEXT, policy TEXT, result TEXT, "
                "sending_ip TEXT, mx TEXT, receiving_ip TEXT)"
            )
            rows: list[tuple[object, ...]] = []
            t = time.perf_counter()
            for d, p, o, sip, mx, rip in sessions:
                rows.append((20260301, d, p.policy_string[1], o or "ok", sip, mx, rip))
                if len(rows) == BATCH:
                    db.execute("BEGIN")
                    db.executemany("INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
                    db.execute("COMMIT")
                    rows = []
            if rows:
                db.execute("BEGIN")
                db.executemany("INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
                db.execute("COMMIT")
            elapsed = time.perf_counter() - t
            assert db.execute("SELECT COUNT(*) FROM results").fetchone()[0] == len(sessions)
            db.close()
            return len(sessions) / elapsed

    return best_of(runs, ours), best_of(runs, peer)


def day_of_results(n_domains: int) -> WindowResults:
    sessions = []
    details = []
    for i in range(n_domains):
        d = f"d{i}.example"
        p = _policy(d, "enforce")
        failed = 3 if i % 10 == 0 else 0
        sessions.append(
            SessionCount(policy_domain=d, policy=p, successful=100 + i % 50, failed=failed)
        )
        if failed:
            details.append(
                DetailCount(
                    policy_domain=d,
                    policy=p,
                    detail=FailureDetail(
                        result_type=FailureReason.CERTIFICATE_EXPIRED,
                        sending_mta_ip="192.0.2.1",
                        receiving_mx_hostname=f"mx.{d}",
                        receiving_ip="198.51.100.1",
                        failed_session_count=failed,
                    ),
                )
            )
    return WindowResults(window=WINDOW, sessions=tuple(sessions), details=tuple(details))


def bench_build(n_domains: int, runs: int) -> tuple[float, float, int]:
    results = day_of_results(n_domains)
    options = ReportOptions(organization_name="Bench", contact_info="tlsrpt@mail.sender.example")

    def ours() -> float:
        t = time.perf_counter()
        built = build_reports(results, options)
        elapsed = time.perf_counter() - t
        assert len(built) == n_domains
        return elapsed

    def peer() -> float:
        t = time.perf_counter()
        out = []
        for s in results.sessions:
            doc = {
                "organization-name": "Bench",
                "date-range": {
                    "start-datetime": "2026-03-01T00:00:00Z",
                    "end-datetime": "2026-03-01T23:59:59Z",
                },
                "contact-info": "tlsrpt@mail.sender.example",
                "report-id": f"{s.policy_domain}-20260301",
                "policies": [
                    {
                        "policy": {
                            "policy-type": "sts",
                            "policy-string": list(s.policy.policy_string),
                            "policy-domain": s.policy_domain,
                            "mx-host": list(s.policy.mx_host),
                        },
                        "summary": {
                            "total-successful-session-count": s.successful,
                            "total-failure-session-count": s.failed,
                        },
                    }
                ],
            }
            out.append(gzip.compress(json.dumps(doc).encode(), mtime=0))
        elapsed = time.perf_counter() - t
        assert len(out) == n_domains
        return elapsed

    size = sum(len(b.gzip) for b in build_reports(results, options))
    return min(ours() for _ in range(runs)), min(peer() for _ in range(runs)), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (a smoke test)")
    args = parser.parse_args()
    n = 200_000 if args.quick else 1_000_000
    runs = 2 if args.quick else 5
    sessions = workload(n)
    print(f"python {sys.version.split()[0]}, {n:,} sessions, best of {runs}")
    ours, peer = bench_memory(sessions, runs)
    print(
        f"record, in memory:        {ours:>12,.0f}/s   dict-of-Counter {peer:>12,.0f}/s   ratio {ours / peer:.2f}"
    )
    for sync in ("FULL", "NORMAL"):
        ours, peer = bench_sqlite(sessions, runs, sync)
        print(
            f"record + SQLite {sync:<6}:   {ours:>12,.0f}/s   sqlite3 executemany {peer:>8,.0f}/s   "
            f"ratio {ours / peer:.2f}   (batch {BATCH:,})"
        )
    domains = 2_000 if args.quick else 10_000
    ours_t, peer_t, size = bench_build(domains, max(1, runs // 2))
    print(
        f"build + gzip {domains:,} reports: {ours_t:8.2f} s   json.dumps+gzip {peer_t:8.2f} s   "
        f"ratio {peer_t / ours_t:.2f}   ({size / domains:.0f} bytes/report gzip)"
    )


if __name__ == "__main__":
    main()
