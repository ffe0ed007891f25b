"""Cost of one certificate verification and one TLSA match (issue 5), pure, no network.

Chains are minted at start-up (EC P-256: root → intermediate → leaf). Each
mtasecure call is timed side by side with the bare peer a user would otherwise
call:

* ``check_certificate`` (path validation + the one name matcher + reason
  classification) against cryptography's own server verifier, built and run the
  same way (``PolicyBuilder().store().time().build_server_verifier().verify()``)
  — with the system trust bundle plus the test root in the store, as in
  production;
* ``match_tlsa`` with a DANE-EE(3) ``3 1 1`` record against a plain
  ``hashlib.sha256(spki) == data`` compare;
* ``match_tlsa`` with a DANE-TA(2) ``2 0 1`` record against the same digest
  compare on the intermediate plus cryptography's client verifier anchored on it.

Run from the repository root::

    /work/venv/bin/python benchmarks/bench_certs_dane.py [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import verification

from mtasecure.certs import TrustStore, check_certificate
from mtasecure.dane import TlsaRecord, match_tlsa
from mtasecure.transport.trust import load_system_trust_store
from tests.pki import NOW, pki


def _batch(fn: Callable[[], object], budget: float) -> int:
    fn()
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < 0.05:
        fn()
        calls += 1
    return max(1, int(calls * budget / 0.05))


def _time(fn: Callable[[], object], batch: int) -> float:
    start = time.perf_counter()
    for _ in range(batch):
        fn()
    return (time.perf_counter() - start) / batch


def compare(
    ours: Callable[[], object], peer: Callable[[], object], seconds: float, rounds: int = 9
) -> tuple[float, float, float]:
    """Median per-call seconds of each, and the median of per-round ratios.

    The two are timed in alternating rounds so that load from other processes
    on a shared machine hits both alike.
    """
    a_batch = _batch(ours, seconds / rounds / 2)
    b_batch = _batch(peer, seconds / rounds / 2)
    a_times, b_times = [], []
    for _ in range(rounds):
        a_times.append(_time(ours, a_batch))
        b_times.append(_time(peer, b_batch))
    ratios = sorted(a / b for a, b in zip(a_times, b_times, strict=True))
    return sorted(a_times)[rounds // 2], sorted(b_times)[rounds // 2], ratios[rounds // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = parser.parse_args()

    world = pki("bench")
    chain = world.chain
    leaf, inter = world.leaf.cert, world.inter.cert
    system = load_system_trust_store()
    trust = TrustStore([*system.certificates, world.root.cert])
    host = "mx.example.com"

    def ours_webpki() -> None:
        assert check_certificate(chain, host, now=NOW, trust=trust).ok

    def cryptography_webpki() -> None:
        verifier = (
            verification.PolicyBuilder()
            .store(trust.store)
            .time(NOW)
            .build_server_verifier(x509.DNSName(host))
        )
        verifier.verify(leaf, chain[1:])

    ee = TlsaRecord.for_certificate(leaf)
    ta = TlsaRecord.for_certificate(inter, usage=2, selector=0, mtype=1)

    def ours_ee() -> None:
        assert match_tlsa([ee], chain, now=NOW, reference_names=(host,)).ok

    def hashlib_ee() -> None:
        spki = leaf.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert hashlib.sha256(spki).digest() == ee.data

    def ours_ta() -> None:
        assert match_tlsa([ta], chain, now=NOW, reference_names=(host,)).ok

    def bare_ta() -> None:
        assert hashlib.sha256(inter.public_bytes(serialization.Encoding.DER)).digest() == ta.data
        verification.PolicyBuilder().store(verification.Store([inter])).time(
            NOW
        ).build_server_verifier(x509.DNSName(host)).verify(leaf, chain[1:])

    rows = [
        ("certificate verification (WebPKI)", ours_webpki, "cryptography server verifier", cryptography_webpki),
        ("TLSA match, DANE-EE 3 1 1", ours_ee, "hashlib SPKI digest compare", hashlib_ee),
        ("TLSA match, DANE-TA 2 0 1", ours_ta, "digest + cryptography verifier", bare_ta),
    ]  # fmt: skip
    print(f"trust store: {len(trust)} certificates; {args.seconds:.1f} s per measurement")
    print(f"{'operation':38} {'mtasecure':>12} {'peer':>12} {'ratio':>7}  peer")
    for label, ours, peer_label, peer in rows:
        a, b, ratio = compare(ours, peer, args.seconds)
        print(f"{label:38} {a * 1e6:9.1f} µs {b * 1e6:9.1f} µs {ratio:6.2f}x  {peer_label}")


if __name__ == "__main__":
    main()
