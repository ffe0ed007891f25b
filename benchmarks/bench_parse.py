"""Per-call cost of the MTA-STS and TLS-RPT record/policy core, side by side with peers.

Measures, in one run and on the same inputs:

* ``sts.parse_record``   the RFC 8461 §3.1 example ``_mta-sts`` record
* ``sts.parse_policy``   a typical 4-mx policy, and a 60 KiB one
* ``sts.match_mx``       one pattern against one host, a hit and a miss
* ``StsPolicy.matches``  a host against the 4-mx policy, a hit and a miss
* ``tlsrpt.parse_record`` the RFC 8460 §3.1.1 and §3.1.2 example records

against the pure functions the peers use for the same job (names printed in
the table). Peers that do network I/O around these functions are measured on
the pure part only: no DNS, no HTTP. Each round times every implementation of
an operation back to back, about 0.2 ms each, alternating which goes
first. The table gives the median and the best round in ns per call, and the
ratio as the median over the rounds of the two sides' ratio within a round, so
that load from other processes, which comes and goes, falls on both alike.

Run from the repository root, with the peers in their own environment (see
benchmarks/README.md)::

    PYTHONPATH=. /work/benchvenv/bin/python benchmarks/bench_parse.py
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import timeit
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

ROUNDS = 1001
"""Timing rounds per operation; the median (and the best) is reported."""
TARGET_SECONDS = 0.0002
"""Roughly how long one implementation is timed in one round (short, so that
the contenders of one operation see the same load)."""

STS_RECORD = "v=STSv1; id=20160831085700Z;"  # RFC 8461 §3.1
POLICY_4MX = (
    "version: STSv1\r\n"
    "mode: enforce\r\n"
    "mx: mail.example.com\r\n"
    "mx: *.example.net\r\n"
    "mx: backupmx.example.com\r\n"
    "mx: mx4.example.org\r\n"
    "max_age: 604800\r\n"
)


def _policy_60k() -> str:
    lines = ["version: STSv1", "mode: enforce", "max_age: 86400"]
    size = sum(len(line) + 2 for line in lines)
    index = 0
    while size < 60 * 1024:
        line = f"mx: mx{index:05d}.mail-{index % 97:02d}.example.com"
        lines.append(line)
        size += len(line) + 2
        index += 1
    return "".join(line + "\r\n" for line in lines)


POLICY_60K = _policy_60k()
MX_PATTERNS_4 = ["mail.example.com", "*.example.net", "backupmx.example.com", "mx4.example.org"]
PATTERN = "*.example.net"
HOST_HIT = "mx1.example.net"
HOST_MISS = "mx1.example.org"
TLSRPT_MAILTO = "v=TLSRPTv1;rua=mailto:reports@example.com"  # RFC 8460 §3.1.1
TLSRPT_HTTPS = "v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt"  # §3.1.2


@dataclass
class Contender:
    """One implementation of one operation."""

    who: str
    function: str
    call: Callable[[], Any]
    per_call_ns: list[float] = field(default_factory=list)


@dataclass
class Operation:
    """One row group of the table: the same job done by each contender."""

    name: str
    contenders: list[Contender]


def _number_for(call: Callable[[], Any]) -> int:
    number = 1
    while True:
        elapsed = timeit.timeit(call, number=number)
        if elapsed >= TARGET_SECONDS / 4:
            return max(1, int(number * TARGET_SECONDS / elapsed))
        number *= 4


def measure(operations: list[Operation], rounds: int) -> None:
    """Time every contender ``rounds`` times, back to back within each round.

    The order of the contenders alternates from round to round, so neither
    side always runs first.
    """
    for op in operations:
        numbers = [_number_for(c.call) for c in op.contenders]
        pairs = list(zip(op.contenders, numbers, strict=True))
        for index in range(rounds):
            for contender, number in pairs if index % 2 == 0 else pairs[::-1]:
                elapsed = timeit.timeit(contender.call, number=number)
                contender.per_call_ns.append(elapsed / number * 1e9)


def build(only_mtasecure: bool) -> list[Operation]:
    """The operations, each with mtasecure first and the peers after it."""
    from mtasecure import sts, tlsrpt

    peers = not only_mtasecure
    if peers:
        from checkdmarc import mta_sts as cd_sts
        from checkdmarc import smtp_tls_reporting as cd_tlsrpt
        from postfix_mta_sts_resolver import utils as pmsr

    policy_4 = sts.parse_policy(POLICY_4MX)
    ops = [
        Operation(
            "sts record",
            [Contender("mtasecure", "sts.parse_record", lambda: sts.parse_record(STS_RECORD))],
        ),
        Operation(
            "sts policy, 4 mx",
            [Contender("mtasecure", "sts.parse_policy", lambda: sts.parse_policy(POLICY_4MX))],
        ),
        Operation(
            "sts policy, 60 KiB",
            [Contender("mtasecure", "sts.parse_policy", lambda: sts.parse_policy(POLICY_60K))],
        ),
        Operation(
            "match_mx, hit",
            [Contender("mtasecure", "sts.match_mx", lambda: sts.match_mx(PATTERN, HOST_HIT))],
        ),
        Operation(
            "match_mx, miss",
            [Contender("mtasecure", "sts.match_mx", lambda: sts.match_mx(PATTERN, HOST_MISS))],
        ),
        Operation(
            "policy.matches, 4 mx, hit",
            [Contender("mtasecure", "StsPolicy.matches", lambda: policy_4.matches(HOST_HIT))],
        ),
        Operation(
            "policy.matches, 4 mx, miss",
            [Contender("mtasecure", "StsPolicy.matches", lambda: policy_4.matches(HOST_MISS))],
        ),
        Operation(
            "tlsrpt record, mailto",
            [
                Contender(
                    "mtasecure", "tlsrpt.parse_record", lambda: tlsrpt.parse_record(TLSRPT_MAILTO)
                )
            ],
        ),
        Operation(
            "tlsrpt record, https",
            [
                Contender(
                    "mtasecure", "tlsrpt.parse_record", lambda: tlsrpt.parse_record(TLSRPT_HTTPS)
                )
            ],
        ),
    ]
    # sts.match_mx and StsPolicy.matches memoise name normalisation (an MTA
    # asks about the same few MX hosts over and over), so the rows above time
    # a warm memo. These rows empty the memo before every call.
    memo = _sts_memo()
    if memo:
        ops.insert(
            5,
            Operation(
                "match_mx, miss, cold memo",
                [
                    Contender(
                        "mtasecure",
                        "sts.match_mx",
                        lambda: (memo(), sts.match_mx(PATTERN, HOST_MISS))[1],
                    )
                ],
            ),
        )
        ops.insert(
            5,
            Operation(
                "match_mx, hit, cold memo",
                [
                    Contender(
                        "mtasecure",
                        "sts.match_mx",
                        lambda: (memo(), sts.match_mx(PATTERN, HOST_HIT))[1],
                    )
                ],
            ),
        )
    # parse_policy remembers normalised mx names and whole runs of mx lines
    # (policies of one mail host repeat them); its cold row forgets all of that
    # before every call. The policy.matches cold rows forget the host names (a
    # policy's own pattern index is built once per policy, like its parse).
    # The cost of forgetting is included in mtasecure's time.
    forget = _sts_forget_all()
    if forget and memo:
        index = next(i for i, op in enumerate(ops) if op.name == "sts policy, 60 KiB")
        ops.insert(
            index,
            Operation(
                "sts policy, 4 mx, cold memo",
                [
                    Contender(
                        "mtasecure",
                        "sts.parse_policy",
                        lambda: (forget(), sts.parse_policy(POLICY_4MX))[1],
                    )
                ],
            ),
        )
        for host, what in ((HOST_HIT, "hit"), (HOST_MISS, "miss")):
            ops.append(
                Operation(
                    f"policy.matches, 4 mx, {what}, cold memo",
                    [
                        Contender(
                            "mtasecure",
                            "StsPolicy.matches",
                            lambda h=host: (memo(), policy_4.matches(h))[1],
                        )
                    ],
                )
            )
    if not peers:
        return ops
    by_name = {op.name: op for op in ops}

    def add(name: str, who: str, function: str, call: Callable[[], Any]) -> None:
        by_name[name].contenders.append(Contender(who, function, call))

    pm, cd = "postfix-mta-sts-resolver", "checkdmarc"
    add(
        "sts record",
        pm,
        "utils.parse_mta_sts_record",
        lambda: pmsr.parse_mta_sts_record(STS_RECORD),
    )
    add(
        "sts record",
        cd,
        "mta_sts.parse_mta_sts_record",
        lambda: cd_sts.parse_mta_sts_record(STS_RECORD),
    )
    for name, text in (
        ("sts policy, 4 mx", POLICY_4MX),
        ("sts policy, 4 mx, cold memo", POLICY_4MX),
        ("sts policy, 60 KiB", POLICY_60K),
    ):
        if name not in by_name:
            continue
        add(name, pm, "utils.parse_mta_sts_policy", lambda t=text: pmsr.parse_mta_sts_policy(t))
        add(name, cd, "mta_sts.parse_mta_sts_policy", lambda t=text: cd_sts.parse_mta_sts_policy(t))
    # postfix-mta-sts-resolver does no MX matching: it hands the patterns to
    # Postfix (match=...), so only checkdmarc has a peer function here.
    for name, host in (
        ("match_mx, hit", HOST_HIT),
        ("match_mx, miss", HOST_MISS),
        ("match_mx, hit, cold memo", HOST_HIT),
        ("match_mx, miss, cold memo", HOST_MISS),
    ):
        if name not in by_name:
            continue
        add(
            name,
            cd,
            "mta_sts.mx_in_mta_sts_patterns([1])",
            lambda h=host: cd_sts.mx_in_mta_sts_patterns(h, [PATTERN]),
        )
    for name, host in (
        ("policy.matches, 4 mx, hit", HOST_HIT),
        ("policy.matches, 4 mx, miss", HOST_MISS),
        ("policy.matches, 4 mx, hit, cold memo", HOST_HIT),
        ("policy.matches, 4 mx, miss, cold memo", HOST_MISS),
    ):
        if name not in by_name:
            continue
        add(
            name,
            cd,
            "mta_sts.mx_in_mta_sts_patterns([4])",
            lambda h=host: cd_sts.mx_in_mta_sts_patterns(h, MX_PATTERNS_4),
        )
    for name, text in (
        ("tlsrpt record, mailto", TLSRPT_MAILTO),
        ("tlsrpt record, https", TLSRPT_HTTPS),
    ):
        add(
            name,
            cd,
            "smtp_tls_reporting.parse_smtp_tls_reporting_record",
            lambda t=text: cd_tlsrpt.parse_smtp_tls_reporting_record(t),
        )
    return ops


def _sts_memo() -> Callable[[], None] | None:
    """A function that empties mtasecure.sts's name memos, if it keeps any."""
    return _clearer("_match", ("_HOSTS", "_PATTERNS"))


def _sts_forget_all() -> Callable[[], None] | None:
    """A function that empties every memo of mtasecure.sts's policy parser and matcher."""
    names = _clearer("_match", ("_HOSTS", "_PATTERNS", "_INDEXES"))
    policy = _clearer("_policy", ("_MX_CACHE", "_MX_BLOCKS"))
    if names is None or policy is None:
        return None

    def forget() -> None:
        names()
        policy()

    return forget


def _clearer(module: str, names: tuple[str, ...]) -> Callable[[], None] | None:
    """The memos' own ``clear`` methods, called in a row (as cheap as clearing gets)."""
    import importlib

    try:
        found = importlib.import_module(f"mtasecure.sts.{module}")
    except ImportError:
        return None
    memos = [getattr(found, name, None) for name in names]
    if not all(isinstance(m, dict) for m in memos):
        return None
    clears = [m.clear for m in memos]  # type: ignore[union-attr]
    if len(clears) == 2:
        first, second = clears
        return lambda: (first(), second())[0]

    def clear() -> None:
        for each in clears:
            each()

    return clear


def check_agreement(operations: list[Operation]) -> None:
    """Refuse to time anything unless every contender gets the same answer."""
    from mtasecure import sts

    for op in operations:
        answers = [c.call() for c in op.contenders]
        for contender, answer in zip(op.contenders, answers, strict=True):
            if op.name.startswith("match") or op.name.startswith("policy.matches"):
                expected = " hit" in op.name
                assert answer is expected, (op.name, contender.who, answer)
            elif op.name.startswith("sts policy"):
                mx = sts.parse_policy(POLICY_4MX if "4 mx" in op.name else POLICY_60K).mx
                got = answer.mx if contender.who == "mtasecure" else _peer_policy_mx(answer)
                assert tuple(got) == tuple(mx), (op.name, contender.who)
            elif op.name == "sts record":
                got_id = answer.id if contender.who == "mtasecure" else _peer_record_id(answer)
                assert got_id == "20160831085700Z", (op.name, contender.who, got_id)
            else:
                got_rua = answer.rua if contender.who == "mtasecure" else _peer_rua(answer)
                assert len(got_rua) == 1, (op.name, contender.who, got_rua)


def _peer_policy_mx(answer: dict[str, Any]) -> list[str]:
    return answer["policy"]["mx"] if "policy" in answer else answer["mx"]


def _peer_record_id(answer: dict[str, Any]) -> str:
    return answer["tags"]["id"] if "tags" in answer else answer["id"]


def _peer_rua(answer: dict[str, Any]) -> list[str]:
    value: list[str] = answer["tags"]["rua"]["value"]
    return value


def report(operations: list[Operation], rounds: int) -> str:
    """The results as a Markdown table, with the environment above it."""
    versions = []
    for dist in ("mtasecure", "postfix-mta-sts-resolver", "checkdmarc", "pydantic", "idna"):
        try:
            versions.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            if dist == "mtasecure":
                from mtasecure import __version__

                versions.append(f"mtasecure {__version__} (source tree)")
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            cpu = next(
                line.split(":", 1)[1].strip() for line in info if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        f"Python {platform.python_version()} ({platform.python_implementation()}) on"
        f" {platform.system()} {platform.machine()}, {os.cpu_count()} cores, {cpu};"
        f" load average {load}",
        "; ".join(versions),
        f"{rounds} rounds; ns per call, median and best round; ratio = median over the"
        " rounds of mtasecure time / peer time in that round (below 1: mtasecure is faster)",
        "",
        "| operation | implementation (function measured) | median ns | best ns | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    for op in operations:
        ours = op.contenders[0].per_call_ns
        for c in op.contenders:
            ratio = ""
            if c is not op.contenders[0]:
                # Per-round ratios of back-to-back timings: load that comes
                # and goes hits both sides of a round alike.
                ratio = f"{statistics.median(a / b for a, b in zip(ours, c.per_call_ns, strict=True)):.2f}"
            lines.append(
                f"| {op.name} | {c.who} (`{c.function}`) | {statistics.median(c.per_call_ns):,.0f}"
                f" | {min(c.per_call_ns):,.0f} | {ratio} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, default=ROUNDS, help="timing rounds (median reported)"
    )
    parser.add_argument("--only-mtasecure", action="store_true", help="skip the peers")
    parser.add_argument("--filter", default="", help="only operations whose name contains this")
    args = parser.parse_args(argv)
    operations = [op for op in build(args.only_mtasecure) if args.filter in op.name]
    check_agreement(operations)
    measure(operations, args.rounds)
    print(report(operations, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
