"""Local DNSSEC validation cost per answer (issue 3), without any network.

For each question, the responses the planner needs (answer, DS and DNSKEY at
every level, denials) are recorded once from zones signed at start-up; then
each answer is validated from the trust anchor over and over, replaying those
responses from a dict: cold (a fresh validator every time, as with no cache)
and warm (a shared ``TrustCache`` already holding the zones' proofs, as in a
running ``ValidatingResolver``: only the answer's own signatures are checked). Side by side, the bare-minimum baseline: calling
``dns.dnssec.validate`` directly on every signed RRset of the same responses
with the right keys already in hand (no DS digests, no chain, no denial
logic) — the signature work any validator must do.

Run from the repository root::

    /work/venv/bin/python benchmarks/bench_dnssec.py [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dns.dnssec
import dns.message
import dns.name
import dns.rdatatype

from mtasecure.dnssec import ChainValidator, Security, TrustAnchor, TrustCache
from tests.dnssec_world import NOW, World, standard_world

QUESTIONS = [
    ("example.test", "MX", "positive"),
    ("_25._tcp.mx.example.test", "TLSA", "positive, TLSA"),
    ("www.example.test", "A", "CNAME across zones"),
    ("nope.example.test", "A", "NXDOMAIN"),
    ("mx.example.test", "AAAA", "NODATA"),
    ("mx.insecure.test", "A", "insecure delegation"),
]


def record(world: World, anchor: TrustAnchor, qname: str, rdtype: str) -> dict:
    replies: dict = {}
    validator = ChainValidator(anchor, qname, rdtype, now=NOW)
    while (query := validator.next_query()) is not None:
        reply = world.query(*query)
        replies[query] = reply
        validator.feed(reply)
    return replies


def planner_run(
    anchor: TrustAnchor, qname: str, rdtype: str, replies: dict, cache: TrustCache | None = None
) -> Security:
    validator = ChainValidator(anchor, qname, rdtype, now=NOW, cache=cache)
    while (query := validator.next_query()) is not None:
        validator.feed(replies[query])
    return validator.result().security


def baseline_jobs(replies: dict, keys: dict) -> list[tuple]:
    jobs = []
    for reply in replies.values():
        for section in (reply.answer, reply.authority):
            for rrset in section:
                if rrset.rdtype == dns.rdatatype.RRSIG:
                    continue
                sigs = next(
                    (
                        s
                        for s in section
                        if s.rdtype == dns.rdatatype.RRSIG
                        and s.name == rrset.name
                        and s.covers == rrset.rdtype
                    ),
                    None,
                )
                if sigs is not None and rrset.rdtype != dns.rdatatype.SOA:
                    jobs.append((rrset, sigs))
    return jobs


def baseline_run(jobs: list[tuple], keys: dict) -> None:
    for rrset, sigs in jobs:
        dns.dnssec.validate(rrset, sigs, keys, now=NOW.timestamp())


def per_call(fn: Callable[[], object], seconds: float, rounds: int = 5) -> float:
    """Best-of-``rounds`` mean CPU µs per call (process time: the machine is shared)."""
    fn()
    best = float("inf")
    for _ in range(rounds):
        count = 0
        start = time.process_time()
        while (elapsed := time.process_time() - start) < seconds / rounds:
            fn()
            count += 1
        best = min(best, elapsed / count * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = parser.parse_args()
    print(
        f"{'algorithm':<16} {'question':<34} {'queries':>7} {'planner µs':>11} "
        f"{'validate µs':>12} {'ratio':>6} {'warm µs':>8} {'warm ratio':>10}"
    )
    for algorithm in ("ECDSAP256SHA256", "RSASHA256", "ED25519"):
        for nsec3 in (False, True):
            world, anchor, zones = standard_world(nsec3=nsec3, algorithm=algorithm)
            keys = {
                z.origin: z.rrsets[(z.origin, dns.rdatatype.DNSKEY)]
                for z in zones.values()
                if z.signed
            }
            for qname, rdtype, what in QUESTIONS:
                replies = record(world, anchor, qname, rdtype)
                assert planner_run(anchor, qname, rdtype, replies) in (
                    Security.SECURE,
                    Security.INSECURE,
                )
                jobs = baseline_jobs(replies, keys)
                planner = per_call(
                    functools.partial(planner_run, anchor, qname, rdtype, replies), args.seconds
                )
                bare = per_call(functools.partial(baseline_run, jobs, keys), args.seconds)
                cache = TrustCache()
                planner_run(anchor, qname, rdtype, replies, cache)
                warm = per_call(
                    functools.partial(planner_run, anchor, qname, rdtype, replies, cache),
                    args.seconds,
                )
                label = f"{what} ({'NSEC3' if nsec3 else 'NSEC'})"
                print(
                    f"{algorithm:<16} {label:<34} {len(replies):>7} {planner:>11.0f} "
                    f"{bare:>12.0f} {planner / bare:>6.2f} {warm:>8.0f} {warm / bare:>10.2f}"
                )


if __name__ == "__main__":
    main()
