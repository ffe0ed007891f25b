"""MX + TXT lookups per second: mtasecure's resolvers next to plain dns.asyncresolver.

Starts a private Knot (knotd) on a free loopback port serving a generated zone
of N domains (``d<i>.bench.``, each with one MX and one TXT record), then, for
each concurrency level, looks up MX and TXT of every domain with:

* ``dnspython``: ``dns.asyncresolver.Resolver`` (no cache), as a user would;
* ``DnsResolver``: mtasecure's default stub (a fresh UDP socket per query);
* ``BulkResolver``: mtasecure's bulk mode (one shared UDP socket, IDs demultiplexed).

Prints domains/s and the ratio to dnspython at the same concurrency. Run:

    /work/venv/bin/python benchmarks/bench_dns.py [--domains 10000] [--concurrency 1 16 128]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dns.asyncresolver
import dns.rdatatype

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mtasecure.transport import BulkResolver, DnsResolver

LOOPBACK = "127.0.0.1"


def _free_port() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((LOOPBACK, 0))
            port = int(u.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind((LOOPBACK, port))
                except OSError:
                    continue
            return port


@contextmanager
def knot_serving(domains: int) -> Iterator[int]:
    """Start knotd with a zone of ``domains`` domains; yield its port."""
    knotd = shutil.which("knotd", path="/usr/sbin:/usr/bin:/sbin")
    if knotd is None:
        raise SystemExit("knotd is not installed (apt-get install knot)")
    with tempfile.TemporaryDirectory(prefix="bench-dns-") as tmp:
        directory = Path(tmp)
        lines = [
            "bench. 3600 IN SOA ns.bench. h.bench. 1 3600 900 604800 300",
            "bench. 3600 IN NS ns.bench.",
            f"ns.bench. 3600 IN A {LOOPBACK}",
        ]
        for i in range(domains):
            lines.append(f"d{i}.bench. 300 IN MX 10 mx.d{i}.bench.")
            lines.append(f'd{i}.bench. 300 IN TXT "v=spf1 ip4:192.0.2.{i % 256} -all"')
        zone = directory / "bench.zone"
        zone.write_text("\n".join(lines) + "\n")
        port = _free_port()
        config = directory / "knot.conf"
        config.write_text(
            "server:\n"
            f'  rundir: "{directory}"\n'
            f"  listen: {LOOPBACK}@{port}\n"
            "log:\n"
            f'  - target: "{directory / "knot.log"}"\n'
            "    any: warning\n"
            "database:\n"
            f'  storage: "{directory / "db"}"\n'
            "template:\n"
            "  - id: default\n"
            "    zonefile-sync: -1\n"
            "    journal-content: none\n"
            "zone:\n"
            f'  - domain: bench.\n    file: "{zone}"\n'
        )
        process = subprocess.Popen(
            [knotd, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    with socket.create_connection((LOOPBACK, port), timeout=0.5):
                        break
                except OSError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise SystemExit("knotd did not start") from None
                    time.sleep(0.05)
            yield port
        finally:
            process.terminate()
            process.wait(timeout=10)


Lookup = Callable[[str], Awaitable[bool]]


async def run(lookup: Lookup, names: list[str], concurrency: int) -> tuple[float, int]:
    """Look up every name with ``concurrency`` workers; return (seconds, failures)."""
    queue = iter(names)
    failures = 0

    async def worker() -> None:
        nonlocal failures
        for name in queue:
            if not await lookup(name):
                failures += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start, failures


def dnspython_lookup(port: int) -> Lookup:
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [LOOPBACK]
    resolver.port = port
    resolver.cache = None
    resolver.lifetime = 10.0
    resolver.timeout = 2.0

    async def lookup(name: str) -> bool:
        mx = await resolver.resolve(name, dns.rdatatype.MX, raise_on_no_answer=False)
        txt = await resolver.resolve(name, dns.rdatatype.TXT, raise_on_no_answer=False)
        return mx.rrset is not None and txt.rrset is not None

    return lookup


def mtasecure_lookup(resolver: DnsResolver) -> Lookup:
    async def lookup(name: str) -> bool:
        mx = await resolver.resolve(name, "MX")
        txt = await resolver.resolve(name, "TXT")
        return bool(mx.records and txt.records)

    return lookup


async def bench(port: int, domains: int, levels: list[int]) -> None:
    names = [f"d{i}.bench" for i in range(domains)]
    server = f"{LOOPBACK}:{port}"
    print(f"{domains} domains, MX + TXT each, Knot on {server}")
    print(f"{'concurrency':>11} {'implementation':>15} {'domains/s':>10} {'vs dnspython':>13}")
    for level in levels:
        base = 0.0
        async with (
            DnsResolver([server], timeout=2.0) as stub,
            BulkResolver([server], timeout=2.0) as bulk,
        ):
            contenders: list[tuple[str, Lookup]] = [
                ("dnspython", dnspython_lookup(port)),
                ("DnsResolver", mtasecure_lookup(stub)),
                ("BulkResolver", mtasecure_lookup(bulk)),
            ]
            for label, lookup in contenders:
                await run(lookup, names[:50], level)  # warm up
                seconds, failures = await run(lookup, names, level)
                rate = domains / seconds
                base = base or rate
                note = f" ({failures} failed)" if failures else ""
                print(f"{level:>11} {label:>15} {rate:>10.0f} {rate / base:>12.2f}x{note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 128])
    args = parser.parse_args()
    with knot_serving(args.domains) as port:
        asyncio.run(bench(port, args.domains, args.concurrency))


if __name__ == "__main__":
    main()
