"""Full MTA-STS discoveries per second, and the warm-cache latency of ``sts_policy``.

Starts the DNS tree of the integration tests (Knot + validating Unbound, with
``_mta-sts`` TXT and ``mta-sts`` A records for N domains ``d<i>.signed.example``)
and nginx serving their policies over HTTPS with a test CA (one certificate
per policy host, a new TLS connection per domain, no TLS session resumption
on any side: nginx logs ``$ssl_session_reused`` as ``.`` for all three). Then,
at each concurrency, discovers every domain with:

* ``mtasecure``: ``MtaSecure.sts_lookup`` with a fresh (empty) cache: TXT
  lookup through ``DnsResolver``, A lookup, HTTPS fetch through
  ``HttpsClient``, the RFC 8461 §3.3 checks, parsing, caching;
* ``httpx``: the same work by hand with plain httpx and dnspython's async
  resolver (TXT and A lookups, GET with SNI, no parsing): the floor;
* ``postfix-mta-sts-resolver``: its ``STSResolver.resolve`` (aiodns + aiohttp),
  run in its own virtualenv (``--peer-python``) in a subprocess, pointed at the
  same Unbound (aiodns ``nameservers``) and at nginx (an aiohttp resolver that
  looks the A record up with the same aiodns channel and answers nginx's port;
  the test CA as its trust store).

and, as the floor no discovery can go under, ``tls``: asyncio TCP + TLS
handshakes alone (same context, SNI and hostname check, address known, no DNS,
no HTTP).

Every implementation must return a policy for every domain, or the run stops.
Unbound's cache is warmed first, so every implementation sees the same DNS.
Each concurrency runs ``--rounds`` rounds, the three implementations in a
rotating order; rates are the median of the rounds, and ratios the median of
the per-round ratios (the machine is shared, so load drifts).

Run from the repository root::

    /work/venv/bin/python benchmarks/bench_sts_discovery.py [--domains 1000] \\
        [--concurrency 1 16 64] [--rounds 3] [--peer-python /work/benchvenv/bin/python]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ZONE = "signed.example"


# --- the postfix-mta-sts-resolver worker (runs in the peer's virtualenv) -------------


def postfix_worker(args: argparse.Namespace) -> None:
    """Discover every domain with postfix-mta-sts-resolver; print JSON timing."""
    import socket
    import ssl

    import aiodns
    import aiohttp
    from aiohttp.abc import AbstractResolver
    from postfix_mta_sts_resolver import resolver as peer

    context = ssl.create_default_context(cafile=args.ca)

    async def main() -> dict[str, float]:
        loop = asyncio.get_running_loop()
        dns = aiodns.DNSResolver(nameservers=[f"127.0.0.1:{args.unbound_port}"])

        class LocalResolver(AbstractResolver):
            async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET):  # type: ignore[no-untyped-def]
                answer = await dns.query(host, "A")
                return [
                    {
                        "hostname": host,
                        "host": record.host,
                        "port": args.nginx_port,
                        "family": socket.AF_INET,
                        "proto": 0,
                        "flags": socket.AI_NUMERICHOST,
                    }
                    for record in answer
                ]

            async def close(self) -> None:
                return None

        original = aiohttp.ClientSession

        def session(*a: object, **kw: object) -> aiohttp.ClientSession:
            kw.pop("loop", None)
            kw["connector"] = aiohttp.TCPConnector(
                resolver=LocalResolver(), ssl=context, force_close=True
            )
            return original(*a, **kw)  # type: ignore[arg-type]

        peer.aiohttp.ClientSession = session  # type: ignore[attr-defined]
        resolver = peer.STSResolver(loop=loop, timeout=10)
        resolver._resolver = dns
        domains = [f"d{i}.{ZONE}" for i in range(args.domains)]
        gate = asyncio.Semaphore(args.worker_concurrency)
        ok = 0

        async def one(domain: str) -> None:
            nonlocal ok
            async with gate:
                status, result = await resolver.resolve(domain)
            if status is peer.STSFetchResult.VALID and result is not None:
                ok += 1

        cpu, start = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(d) for d in domains))
        return {
            "seconds": time.perf_counter() - start,
            "cpu": time.process_time() - cpu,
            "ok": ok,
        }

    print(json.dumps(asyncio.run(main())))


# --- the driver ---------------------------------------------------------------------------------


async def run_mtasecure(
    unbound: int, port: int, ca: bytes, domains: list[str], concurrency: int
) -> tuple[float, float, int]:
    from mtasecure.certs import TrustStore
    from mtasecure.client import MtaSecure, StsSettings
    from mtasecure.transport import DnsResolver
    from mtasecure.transport.http import HttpsClient

    resolver = DnsResolver([f"127.0.0.1:{unbound}"])
    http = HttpsClient(resolver=resolver, trust=TrustStore.from_pem(ca))
    async with (
        resolver,
        http,
        MtaSecure(resolver=resolver, http=http, sts=StsSettings(policy_port=port)) as client,
    ):
        gate = asyncio.Semaphore(concurrency)
        ok = 0

        async def one(domain: str) -> None:
            nonlocal ok
            async with gate:
                lookup = await client.sts_lookup(domain)
            if lookup.policy is not None:
                ok += 1

        cpu, start = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(d) for d in domains))
        return time.perf_counter() - start, time.process_time() - cpu, ok


async def run_httpx(
    unbound: int, port: int, ca_path: str, domains: list[str], concurrency: int
) -> tuple[float, float, int]:
    import ssl

    import dns.asyncresolver
    import httpx

    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = unbound
    resolver.cache = None
    context = ssl.create_default_context(cafile=ca_path)
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(verify=context, limits=limits, follow_redirects=False) as client:
        gate = asyncio.Semaphore(concurrency)
        ok = 0

        async def one(domain: str) -> None:
            nonlocal ok
            host = f"mta-sts.{domain}"
            async with gate:
                txt = await resolver.resolve(f"_mta-sts.{domain}", "TXT")
                address = await resolver.resolve(host, "A")
                response = await client.get(
                    f"https://{address[0].address}:{port}/.well-known/mta-sts.txt",
                    headers={"Host": host},
                    extensions={"sni_hostname": host},
                )
            if txt and response.status_code == 200 and b"STSv1" in response.content:
                ok += 1

        cpu, start = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(d) for d in domains))
        return time.perf_counter() - start, time.process_time() - cpu, ok


async def run_tls_floor(
    port: int, ca_path: str, domains: list[str], concurrency: int
) -> tuple[float, float, int]:
    import ssl

    context = ssl.create_default_context(cafile=ca_path)
    gate = asyncio.Semaphore(concurrency)
    ok = 0

    async def one(domain: str) -> None:
        nonlocal ok
        async with gate:
            _, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=context, server_hostname=f"mta-sts.{domain}"
            )
            writer.transport.abort()
        ok += 1

    cpu, start = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(d) for d in domains))
    return time.perf_counter() - start, time.process_time() - cpu, ok


def run_postfix(
    args: argparse.Namespace, unbound: int, port: int, ca_path: str, concurrency: int
) -> tuple[float, float, int]:
    out = subprocess.run(
        [
            args.peer_python,
            __file__,
            "--worker",
            "--domains",
            str(args.domains),
            "--worker-concurrency",
            str(concurrency),
            "--unbound-port",
            str(unbound),
            "--nginx-port",
            str(port),
            "--ca",
            ca_path,
        ],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return float(data["seconds"]), float(data["cpu"]), int(data["ok"])


async def warm_latency(samples: int) -> tuple[float, float]:
    from mtasecure.client import MtaSecure
    from mtasecure.testing import FakeHttpClient, FakeResolver

    resolver = FakeResolver()
    resolver.add("_mta-sts.example.com", "TXT", ['"v=STSv1; id=1;"'], ttl=86400)
    http = FakeHttpClient()
    http.add_policy(
        "example.com", "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 604800\n"
    )
    async with MtaSecure(resolver=resolver, http=http) as client:
        await client.sts_policy("example.com")
        timings = []
        clock = time.perf_counter_ns
        sts_policy = client.sts_policy
        for _ in range(samples):
            start = clock()
            await sts_policy("example.com")
            timings.append(clock() - start)
    timings.sort()
    return statistics.median(timings) / 1000, timings[int(len(timings) * 0.99)] / 1000


def driver(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.integration.dnsworld import run_dnsworld
    from tests.integration.nginxworld import dns_records, run_nginxworld

    domains = [f"d{i}.{ZONE}" for i in range(args.domains)]
    with tempfile.TemporaryDirectory(prefix="bench-sts-") as tmp:
        base = Path(tmp)
        records = dns_records(ZONE, cases=(), count=args.domains)
        with (
            run_dnsworld(base / "dns", extra_records={ZONE: records}) as dns_world,
            run_nginxworld(base / "nginx", ZONE, count=args.domains) as web,
        ):
            unbound = dns_world.unbound[1]
            ca = web.ca.cert_pem.bytes()
            ca_path = str(base / "ca.pem")
            Path(ca_path).write_bytes(ca)
            # Warm Unbound's cache (and nginx) with one untimed pass.
            asyncio.run(run_httpx(unbound, web.port, ca_path, domains, 32))
            rows = []
            names = ["httpx", "mtasecure", "postfix", "tls"]
            for concurrency in args.concurrency:
                rates: dict[str, list[float]] = {name: [] for name in names}
                cpus: dict[str, list[float]] = {name: [] for name in names}
                for round_ in range(args.rounds):
                    # Rotate the order each round so load drifts hit everyone.
                    turn = round_ % len(names)
                    for name in names[turn:] + names[:turn]:
                        if name == "mtasecure":
                            seconds, cpu, ok = asyncio.run(
                                run_mtasecure(unbound, web.port, ca, domains, concurrency)
                            )
                        elif name == "httpx":
                            seconds, cpu, ok = asyncio.run(
                                run_httpx(unbound, web.port, ca_path, domains, concurrency)
                            )
                        elif name == "tls":
                            seconds, cpu, ok = asyncio.run(
                                run_tls_floor(web.port, ca_path, domains, concurrency)
                            )
                        else:
                            seconds, cpu, ok = run_postfix(
                                args, unbound, web.port, ca_path, concurrency
                            )
                        if ok != len(domains):
                            raise SystemExit(
                                f"{name}: {ok} of {len(domains)} discoveries succeeded"
                            )
                        rates[name].append(len(domains) / seconds)
                        cpus[name].append(cpu / len(domains) * 1000)
                results = {name: statistics.median(values) for name, values in rates.items()}
                cpu_ms = {name: statistics.median(values) for name, values in cpus.items()}
                ratios = {
                    "httpx": statistics.median(
                        m / h for m, h in zip(rates["mtasecure"], rates["httpx"], strict=True)
                    ),
                    "postfix": statistics.median(
                        m / p for m, p in zip(rates["mtasecure"], rates["postfix"], strict=True)
                    ),
                }
                rows.append((concurrency, results, ratios, cpu_ms))
                print(
                    f"c={concurrency:3d}  httpx {results['httpx']:8.1f}/s  "
                    f"mtasecure {results['mtasecure']:8.1f}/s  postfix {results['postfix']:8.1f}/s  "
                    f"TLS only {results['tls']:8.1f}/s   client CPU ms per discovery: "
                    + "  ".join(f"{name} {cpu_ms[name]:.2f}" for name in names),
                    flush=True,
                )
    median, p99 = asyncio.run(warm_latency(args.samples))
    print()
    print(
        "| concurrency | plain httpx + dnspython | mtasecure | postfix-mta-sts-resolver "
        "| TLS handshakes only | mtasecure / httpx | mtasecure / postfix |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for concurrency, r, q, _ in rows:
        print(
            f"| {concurrency} | {r['httpx']:.1f}/s | {r['mtasecure']:.1f}/s | {r['postfix']:.1f}/s "
            f"| {r['tls']:.1f}/s "
            f"| {q['httpx']:.2f}× | {q['postfix']:.2f}× |"
        )
    print()
    print(
        "| concurrency | plain httpx + dnspython | mtasecure | postfix-mta-sts-resolver "
        "| TLS handshakes only |"
    )
    print("|---:|---:|---:|---:|---:|")
    for concurrency, _, _, c in rows:
        print(
            f"| {concurrency} | {c['httpx']:.2f} ms | {c['mtasecure']:.2f} ms "
            f"| {c['postfix']:.2f} ms | {c['tls']:.2f} ms |"
        )
    print()
    print(f"warm-cache sts_policy: median {median:.2f} µs, p99 {p99:.2f} µs ({args.samples} calls)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--domains", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--peer-python", default="/work/benchvenv/bin/python")
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker-concurrency", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--unbound-port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--nginx-port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--ca", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        postfix_worker(args)
    else:
        driver(args)


if __name__ == "__main__":
    main()
