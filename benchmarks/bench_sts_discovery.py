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

and, as floors no discovery can go under (address known, no DNS, no HTTP):

* ``tls``: asyncio TCP + TLS handshakes alone (same context, SNI and
  host-name check);
* ``threads``: blocking handshakes in a pool of up to four threads (OpenSSL
  runs without the GIL, so handshakes can use both cores);
* at concurrency 1, ``openssl s_time -new``: OpenSSL's own C client, one
  handshake after another (against a second nginx with the same certificate
  as its default server, since s_time sends no SNI).

For every contender the CPU time of the client process and of the servers
(nginx, Unbound, Knot: every process this script started) is measured around
the timed section, so the table shows what one discovery costs the whole
machine. The last table sets twice postfix-mta-sts-resolver's rate beside the
fastest handshakes-only floor.

Every implementation must return a policy for every domain, or the run stops.
Unbound's cache is warmed first, so every implementation sees the same DNS.
Each concurrency runs ``--rounds`` rounds, the contenders in a
rotating order; rates are the median of the rounds, and ratios the median of
the per-round ratios (the machine is shared, so load drifts).

Run from the repository root::

    /work/venv/bin/python benchmarks/bench_sts_discovery.py [--domains 1000] \\
        [--concurrency 1 16 64] [--rounds 3] [--openssl-seconds 5] \\
        [--peer-python /work/benchvenv/bin/python]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
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


async def run_tls_threads(
    port: int, ca_path: str, domains: list[str], concurrency: int
) -> tuple[float, float, int]:
    """Blocking TCP + TLS handshakes in a thread pool: OpenSSL runs without the GIL,
    so up to two handshakes proceed at once on this machine's two cores."""
    import concurrent.futures
    import socket
    import ssl

    context = ssl.create_default_context(cafile=ca_path)
    loop = asyncio.get_running_loop()
    pool = concurrent.futures.ThreadPoolExecutor(min(concurrency, 4))
    gate = asyncio.Semaphore(concurrency)
    ok = 0

    def handshake(domain: str) -> None:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=f"mta-sts.{domain}"),
        ):
            pass

    async def one(domain: str) -> None:
        nonlocal ok
        async with gate:
            await loop.run_in_executor(pool, handshake, domain)
        ok += 1

    cpu, start = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(d) for d in domains))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    pool.shutdown()
    return seconds, cpu, ok


@contextlib.contextmanager
def sni_free_nginx(directory: Path, chain: Path, key: Path) -> Iterator[int]:
    """A second nginx whose default server has ``chain``: ``openssl s_time`` sends no SNI,
    and the benchmark's own nginx refuses handshakes without it. Same settings
    otherwise (one worker, TLS 1.2-1.3, no session cache)."""
    from tests.integration.servers import free_port, stop_process, wait_for_port

    port = free_port()
    directory.mkdir()
    config = directory / "nginx.conf"
    config.write_text(
        "worker_processes 1;\n"
        f"pid {directory / 'nginx.pid'};\n"
        f"error_log {directory / 'error.log'} warn;\n"
        "events { worker_connections 1024; }\n"
        "http {\n  access_log off;\n  ssl_protocols TLSv1.2 TLSv1.3;\n"
        f"  client_body_temp_path {directory};\n  proxy_temp_path {directory};\n"
        f"  fastcgi_temp_path {directory};\n  uwsgi_temp_path {directory};\n"
        f"  scgi_temp_path {directory};\n"
        f"  server {{\n    listen 127.0.0.1:{port} ssl default_server;\n"
        f"    ssl_certificate {chain};\n    ssl_certificate_key {key};\n"
        "    return 200;\n  }\n}\n"
    )
    process = subprocess.Popen(
        [
            "nginx",
            "-p",
            str(directory),
            "-e",
            str(directory / "error.log"),
            "-c",
            str(config),
            "-g",
            "daemon off; user root;",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout=15, process=process, log=directory / "error.log")
        yield port
    finally:
        stop_process(process)


def run_openssl_floor(port: int, ca_path: str, seconds: int) -> tuple[float, float]:
    """``openssl s_time -new``: OpenSSL's own C client, one handshake after another.

    Returns handshakes per second of wall time and the client's CPU (user +
    system) per handshake in ms, its certificate chain verified against the
    test CA.
    """
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    command = ["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-new"]
    command += ["-time", str(seconds), "-CAfile", ca_path, "-verify", "1"]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    count = int(out.split(" connections in ")[0].split()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return count / wall, cpu / count * 1000


def server_pids() -> list[int]:
    """Every process descended from this one now: nginx, Unbound and Knot."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [os.getpid()]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def servers_cpu(pids: list[int]) -> float:
    """Seconds of CPU (user + system) the processes ``pids`` have used so far."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


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


NAMES = ["httpx", "mtasecure", "postfix", "tls", "threads"]
LABELS = {
    "httpx": "plain httpx + dnspython",
    "mtasecure": "mtasecure",
    "postfix": "postfix-mta-sts-resolver",
    "tls": "TLS handshakes only (asyncio)",
    "threads": "TLS handshakes only (threads)",
}


def run_one(  # noqa: PLR0917 - a benchmark's dispatcher
    name: str,
    args: argparse.Namespace,
    unbound: int,
    port: int,
    ca: bytes,
    ca_path: str,
    domains: list[str],
    concurrency: int,
) -> tuple[float, float, int]:
    if name == "mtasecure":
        return asyncio.run(run_mtasecure(unbound, port, ca, domains, concurrency))
    if name == "httpx":
        return asyncio.run(run_httpx(unbound, port, ca_path, domains, concurrency))
    if name == "tls":
        return asyncio.run(run_tls_floor(port, ca_path, domains, concurrency))
    if name == "threads":
        return asyncio.run(run_tls_threads(port, ca_path, domains, concurrency))
    return run_postfix(args, unbound, port, ca_path, concurrency)


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
            sni_free_nginx(
                base / "plain", base / "nginx" / "d0.pem", base / "nginx" / "d0.key"
            ) as plain_port,
        ):
            unbound = dns_world.unbound[1]
            ca = web.ca.cert_pem.bytes()
            ca_path = str(base / "ca.pem")
            Path(ca_path).write_bytes(ca)
            servers = server_pids()  # nginx, Unbound, Knot: not the peer's worker
            # Warm Unbound's cache (and nginx) with one untimed pass.
            asyncio.run(run_httpx(unbound, web.port, ca_path, domains, 32))
            rows = []
            c_floor: list[tuple[float, float]] = []
            for concurrency in args.concurrency:
                rates: dict[str, list[float]] = {name: [] for name in NAMES}
                cpus: dict[str, list[float]] = {name: [] for name in NAMES}
                serving: dict[str, list[float]] = {name: [] for name in NAMES}
                for round_ in range(args.rounds):
                    # Rotate the order each round so load drifts hit everyone.
                    turn = round_ % len(NAMES)
                    for name in NAMES[turn:] + NAMES[:turn]:
                        served = servers_cpu(servers)
                        seconds, cpu, ok = run_one(
                            name, args, unbound, web.port, ca, ca_path, domains, concurrency
                        )
                        served = servers_cpu(servers) - served
                        if ok != len(domains):
                            raise SystemExit(
                                f"{name}: {ok} of {len(domains)} discoveries succeeded"
                            )
                        rates[name].append(len(domains) / seconds)
                        cpus[name].append(cpu / len(domains) * 1000)
                        serving[name].append(served / len(domains) * 1000)
                    if concurrency == 1 and args.openssl_seconds:
                        c_floor.append(run_openssl_floor(plain_port, ca_path, args.openssl_seconds))
                results = {name: statistics.median(values) for name, values in rates.items()}
                cpu_ms = {name: statistics.median(values) for name, values in cpus.items()}
                server_ms = {name: statistics.median(values) for name, values in serving.items()}
                ratios = {
                    other: statistics.median(
                        m / h for m, h in zip(rates["mtasecure"], rates[other], strict=True)
                    )
                    for other in ("httpx", "postfix")
                }
                twice = statistics.median(2 * p for p in rates["postfix"])
                rows.append((concurrency, results, ratios, cpu_ms, server_ms, twice))
                print(
                    f"c={concurrency:3d}  "
                    + "  ".join(f"{name} {results[name]:7.1f}/s" for name in NAMES)
                    + "   client CPU ms: "
                    + "  ".join(f"{name} {cpu_ms[name]:.2f}" for name in NAMES)
                    + "   server CPU ms: "
                    + "  ".join(f"{name} {server_ms[name]:.2f}" for name in NAMES),
                    flush=True,
                )
    median, p99 = asyncio.run(warm_latency(args.samples))
    print()
    print(
        "| concurrency | "
        + " | ".join(LABELS[n] for n in NAMES)
        + " | mtasecure / httpx | mtasecure / postfix |"
    )
    print("|---:" * (len(NAMES) + 3) + "|")
    for concurrency, r, q, _, _, _ in rows:
        print(
            f"| {concurrency} | "
            + " | ".join(f"{r[n]:.1f}/s" for n in NAMES)
            + f" | {q['httpx']:.2f}× | {q['postfix']:.2f}× |"
        )
    print()
    print(
        "Client CPU per discovery (or handshake), and in brackets the servers' (nginx + Unbound + Knot):"
    )
    print()
    print("| concurrency | " + " | ".join(LABELS[n] for n in NAMES) + " |")
    print("|---:" * (len(NAMES) + 1) + "|")
    for concurrency, _, _, c, srv, _ in rows:
        print(
            f"| {concurrency} | "
            + " | ".join(f"{c[n]:.2f} ms ({srv[n]:.2f} ms)" for n in NAMES)
            + " |"
        )
    print()
    print(
        "| concurrency | 2 × postfix-mta-sts-resolver | fastest handshakes-only floor | mtasecure |"
    )
    print("|---:|---:|---:|---:|")
    for concurrency, r, _, _, _, twice in rows:
        print(
            f"| {concurrency} | {twice:.1f}/s | {max(r['tls'], r['threads']):.1f}/s "
            f"| {r['mtasecure']:.1f}/s |"
        )
    if c_floor:
        rate = statistics.median(f[0] for f in c_floor)
        cpu_c = statistics.median(f[1] for f in c_floor)
        print()
        print(
            f"openssl s_time -new (C, one handshake after another): {rate:.1f}/s, "
            f"client CPU {cpu_c:.2f} ms per handshake ({len(c_floor)} runs of "
            f"{args.openssl_seconds} s)"
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
    parser.add_argument(
        "--openssl-seconds",
        type=int,
        default=5,
        help="length of each openssl s_time run at concurrency 1 (0: skip)",
    )
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
