"""The facade's TLS-RPT recording cost: ``MtaSecure.record_session`` per session.

Run from the repository root::

    python benchmarks/bench_client_report.py [--quick]

Side by side, for the same sessions:

* ``TlsRptCollector.record`` with a ``ReportPolicy`` the caller built once per
  policy (the hand-wired path: the caller maps decision to report itself);
* ``plan_session_record`` + ``TlsRptCollector.record`` (the core mapping done
  per session, what a caller using the pure API writes);
* ``MtaSecure.record_session`` (the facade: mapping, day tracking, collector).

The workload: 1,000 policy domains under one MTA-STS ``enforce`` policy
each, 5 % of sessions failing with ``certificate-expired``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mtasecure.client import MtaSecure
from mtasecure.decision import (
    PolicyType,
    RequirementKind,
    SessionOutcome,
    TransportRequirement,
)
from mtasecure.results import FailureReason
from mtasecure.sts import PolicyMode, StsPolicy
from mtasecure.testing import FakeResolver, FrozenClock
from mtasecure.tlsrpt import TlsRptCollector, plan_session_record, report_policy_for

DOMAINS = [f"d{i}.example" for i in range(1000)]
POLICIES = {d: StsPolicy(mode=PolicyMode.ENFORCE, mx=(f"mx.{d}",), max_age=86400) for d in DOMAINS}
REQUIREMENTS = {
    d: TransportRequirement(
        host=f"mx.{d}",
        preference=10,
        kind=RequirementKind.STS_ENFORCE,
        policy_type=PolicyType.STS,
        sts_mx_match=True,
    )
    for d in DOMAINS
}
OK = SessionOutcome(deliver=True, policy_type=PolicyType.STS)
FAIL = SessionOutcome(
    deliver=False, reason=FailureReason.CERTIFICATE_EXPIRED, policy_type=PolicyType.STS
)


def _sessions(n: int) -> list[tuple[str, SessionOutcome]]:
    return [(DOMAINS[i % len(DOMAINS)], FAIL if i % 20 == 0 else OK) for i in range(n)]


def _rate(label: str, n: int, run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    rate = n / seconds
    print(f"{label:<52} {rate:>12,.0f} sessions/s")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    n = 20_000 if parser.parse_args().quick else 200_000
    sessions = _sessions(n)
    built = {d: report_policy_for(d, REQUIREMENTS[d], sts_policy=POLICIES[d]) for d in DOMAINS}

    def raw() -> None:
        c = TlsRptCollector()
        for domain, outcome in sessions:
            c.record(domain, built[domain], outcome.reason, mx_host=f"mx.{domain}")

    def mapped() -> None:
        c = TlsRptCollector()
        for domain, outcome in sessions:
            r = plan_session_record(
                domain, REQUIREMENTS[domain], outcome, sts_policy=POLICIES[domain]
            )
            assert r is not None
            c.record(r.policy_domain, r.policy, r.result, mx_host=r.mx_host)

    client = MtaSecure(resolver=FakeResolver(), clock=FrozenClock("2026-03-01T12:00:00Z"))

    def facade() -> None:
        for domain, outcome in sessions:
            client.record_session(
                domain, REQUIREMENTS[domain], outcome, sts_policy=POLICIES[domain]
            )

    print(f"{n:,} sessions, {len(DOMAINS):,} policy domains, 5 % failing")
    base = _rate("TlsRptCollector.record, policy built once", n, raw)
    core = _rate("plan_session_record + TlsRptCollector.record", n, mapped)
    front = _rate("MtaSecure.record_session", n, facade)
    print(f"ratio facade / hand-wired collector: {front / base:.2f}")
    print(f"ratio facade / core mapping per session: {front / core:.2f}")


if __name__ == "__main__":
    main()
