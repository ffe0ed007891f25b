"""Time decision.plan, decision.judge and requiretls.flag_message (no peer library does this).

Run from the checkout root: ``PYTHONPATH=. /work/venv/bin/python benchmarks/bench_decision.py``
"""

from __future__ import annotations

import timeit

from mtasecure.decision import MxCandidate, SessionObservation, StsMode, StsState, judge, plan
from mtasecure.dnssec import Security
from mtasecure.requiretls import MessageFlags, flag_message
from mtasecure.results import CheckResult

HEADER = (
    b"From: a@example.org\r\nTo: b@example.net\r\nSubject: x\r\nTLS-Required: No\r\n\r\nbody\r\n"
)


def main() -> None:
    mx = [MxCandidate(host=f"mx{i}.example.net", preference=10 * i) for i in range(3)]
    sts = StsState(mode=StsMode.ENFORCE, mx=("*.example.net",))
    flags = MessageFlags(requiretls=True)
    delivery_plan = plan("example.net", mx_security=Security.INSECURE, mx=mx, sts=sts, flags=flags)
    session = SessionObservation(
        host="mx0.example.net",
        starttls_offered=True,
        tls_established=True,
        webpki=CheckResult.passed(),
        requiretls_advertised=True,
    )
    cases = {
        "plan, 3 MX, MTA-STS enforce, REQUIRETLS": lambda: plan(
            "example.net", mx_security=Security.INSECURE, mx=mx, sts=sts, flags=flags
        ),
        "judge one session": lambda: judge(delivery_plan.requirements[0], session),
        "flag_message with a header block": lambda: flag_message(
            reverse_path="a@example.org", recipients=["b+requiretls@example.net"], headers=HEADER
        ),
    }
    for name, call in cases.items():
        number = 5000
        best = min(timeit.repeat(call, number=number, repeat=5)) / number
        print(f"{name:45s} {best * 1e6:8.1f} µs")


if __name__ == "__main__":
    main()
