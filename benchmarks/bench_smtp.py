"""Probes per second against a local Postfix, at concurrency 1 and 16.

Compares, on the same Postfix instance (started by the test harness, a leaf
certificate under an intermediate CA, loopback only):

* ``mtasecure``: ``AsyncioSmtpConnector.probe`` (banner, EHLO, STARTTLS, TLS,
  EHLO, QUIT; the whole chain captured; every reply parsed and checked);
* ``asyncio baseline``: the same steps as a user would write them on bare
  asyncio streams and ``ssl`` (read until the last reply line, no checks,
  the leaf only via ``getpeercert``);
* ``smtplib threads``: ``smtplib.SMTP`` + ``starttls`` + ``ehlo`` + ``quit``
  in a thread pool of the same size.

Run as root (Postfix's master needs it), from the repository root::

    /work/venv/bin/python benchmarks/bench_smtp.py --probes 300 --rounds 5

Prints probes/s per client and concurrency, and each peer's ratio to mtasecure.
"""

from __future__ import annotations

import argparse
import asyncio
import smtplib
import ssl
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import trustme

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mtasecure.transport import ProbeOutcome
from mtasecure.transport.smtp import AsyncioSmtpConnector
from tests.integration.postfixworld import PostfixWorld

HOST = "mx.bench.test"
HELO = "bench.example.net"


def _client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def _gather(n: int, concurrency: int, one: object) -> float:
    semaphore = asyncio.Semaphore(concurrency)

    async def guarded() -> None:
        async with semaphore:
            await one()  # type: ignore[operator]

    started = time.perf_counter()
    await asyncio.gather(*(guarded() for _ in range(n)))
    return time.perf_counter() - started


async def bench_mtasecure(port: int, n: int, concurrency: int) -> float:
    connector = AsyncioSmtpConnector(helo_name=HELO)

    async def one() -> None:
        result = await connector.probe(HOST, "127.0.0.1", port=port)
        if result.outcome is not ProbeOutcome.OK:
            raise RuntimeError(f"probe failed: {result.outcome} {result.detail}")

    return await _gather(n, concurrency, one)


async def _read_reply(reader: asyncio.StreamReader) -> bytes:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("closed")
        if line[3:4] != b"-":
            return line


async def bench_asyncio_baseline(port: int, n: int, concurrency: int) -> float:
    context = _client_context()

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await _read_reply(reader)
        writer.write(f"EHLO {HELO}\r\n".encode())
        await _read_reply(reader)
        writer.write(b"STARTTLS\r\n")
        await _read_reply(reader)
        await writer.start_tls(context, server_hostname=HOST)
        writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.write(f"EHLO {HELO}\r\n".encode())
        await _read_reply(reader)
        writer.write(b"QUIT\r\n")
        await _read_reply(reader)
        writer.close()
        await writer.wait_closed()

    return await _gather(n, concurrency, one)


def bench_smtplib_threads(port: int, n: int, concurrency: int) -> float:
    context = _client_context()

    def one(_: int) -> None:
        with smtplib.SMTP("127.0.0.1", port, local_hostname=HELO, timeout=30) as client:
            client.starttls(context=context)
            client.ehlo()
            assert client.sock is not None
            client.sock.getpeercert(binary_form=True)  # type: ignore[attr-defined]

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(n)))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--probes", type=int, default=200, help="probes per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="best of this many rounds")
    args = parser.parse_args()

    ca = trustme.CA()
    cert = ca.create_child_ca().issue_cert(HOST)
    world = PostfixWorld()
    try:
        instance = world.start(
            "bench", hostname=HOST, chain_pem=cert.private_key_and_cert_chain_pem.bytes()
        )
        port = instance.port
        clients = {
            "mtasecure": lambda c: asyncio.run(bench_mtasecure(port, args.probes, c)),
            "asyncio baseline": lambda c: asyncio.run(bench_asyncio_baseline(port, args.probes, c)),
            "smtplib threads": lambda c: bench_smtplib_threads(port, args.probes, c),
        }
        clients["asyncio baseline"](16)  # warm-up: Postfix spawns its smtpd processes
        print(f"{args.probes} probes per round, best of {args.rounds}")
        print(f"{'client':<18} {'conc':>4} {'probes/s':>9} {'vs mtasecure':>13}")
        for concurrency in (1, 16):
            # Rounds interleave the clients, so a burst of load from elsewhere
            # on the machine hits them all alike; each keeps its best round.
            best = dict.fromkeys(clients, float("inf"))
            for _ in range(args.rounds):
                for name, run in clients.items():
                    best[name] = min(best[name], run(concurrency))
            rates = {name: args.probes / seconds for name, seconds in best.items()}
            for name, rate in rates.items():
                ratio = rate / rates["mtasecure"]
                print(f"{name:<18} {concurrency:>4} {rate:>9.1f} {ratio:>12.2f}x")
    finally:
        world.stop_all()


if __name__ == "__main__":
    main()
