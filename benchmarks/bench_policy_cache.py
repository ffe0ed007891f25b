"""Policy cache get/put per second: mtasecure's stores next to the bare code a user would write.

Pairs, each timed in alternating rounds over the same 1,000 entries (the ratio
is the median of the per-round ratios):

* memory: ``MemoryPolicyCache`` (awaited) vs a plain ``dict`` of entries;
* SQLite: ``SqlitePolicyCache`` (WAL, ``synchronous=FULL``, calls on the
  store's own thread, entries as JSON and parsed back) vs plain ``sqlite3``
  ``SELECT`` / ``INSERT OR REPLACE`` of the same JSON text on the same pragmas,
  called directly (blocking the event loop) and through ``asyncio.to_thread``;
* Redis: ``RedisPolicyCache`` vs plain ``redis.asyncio`` ``GET`` / ``SET … PX``
  of the same text, against a private redis-server on a free loopback port.

Also prints the cost of the entry's JSON form alone (``to_json`` /
``from_json``), which the SQLite and Redis stores pay and the bare baselines
do not. Run from the repository root:

    /work/venv/bin/python benchmarks/bench_policy_cache.py [--ops 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mtasecure.sts import CachedPolicy, parse_policy
from mtasecure.transport import MemoryPolicyCache
from mtasecure.transport.redis_cache import RedisPolicyCache
from mtasecure.transport.sqlite_cache import SqlitePolicyCache

LOOPBACK = "127.0.0.1"
NOW = datetime.now(UTC)
DOMAINS = 1000

Op = Callable[[int], Awaitable[object]]


def entries() -> list[CachedPolicy]:
    policy = parse_policy(
        "version: STSv1\nmode: enforce\nmx: mx1.example.net\nmx: *.mx.example.org\nmax_age: 604800\n"
    )
    return [CachedPolicy.from_fetch(f"d{i}.example", policy, f"id{i}", NOW) for i in range(DOMAINS)]


@contextmanager
def redis_serving() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp:
        process = subprocess.Popen(
            [
                *(binary, "--port", str(port), "--bind", LOOPBACK),
                *("--save", "", "--appendonly", "no", "--dir", tmp),
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            for _ in range(200):
                try:
                    socket.create_connection((LOOPBACK, port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.02)
            yield f"redis://{LOOPBACK}:{port}/0"
        finally:
            process.terminate()
            process.wait()


async def timed(op: Op, ops: int) -> float:
    start = time.perf_counter()
    for i in range(ops):
        await op(i)
    return (time.perf_counter() - start) / ops


async def compare(name: str, ours: Op, peer: Op, peer_name: str, *, ops: int, rounds: int) -> None:
    await timed(ours, ops // 10)  # warm up both
    await timed(peer, ops // 10)
    a: list[float] = []
    b: list[float] = []
    for _ in range(rounds):
        a.append(await timed(ours, ops))
        b.append(await timed(peer, ops))
    ratio = statistics.median(x / y for x, y in zip(a, b, strict=True))
    ta, tb = statistics.median(a), statistics.median(b)
    print(
        f"| {name} | {ta * 1e6:.2f} µs ({1 / ta:,.0f}/s) | {tb * 1e6:.2f} µs ({1 / tb:,.0f}/s)"
        f" | {ratio:.2f}× | {peer_name} |"
    )


async def main(ops: int, rounds: int) -> None:
    items = entries()
    texts = [e.to_json() for e in items]
    print("| operation | mtasecure | peer | ratio | peer |")
    print("|---|---:|---:|---:|---|")

    # --- memory
    memory = MemoryPolicyCache()
    plain: dict[str, CachedPolicy] = {}
    for e in items:
        memory.store(e)
        plain[e.domain] = e

    async def mem_get(i: int) -> object:
        return await memory.get(items[i % DOMAINS].domain)

    async def dict_get(i: int) -> object:
        return plain.get(items[i % DOMAINS].domain)

    async def mem_put(i: int) -> object:
        return await memory.put(items[i % DOMAINS])

    async def dict_put(i: int) -> object:
        plain[items[i % DOMAINS].domain] = items[i % DOMAINS]
        return None

    await compare("memory get", mem_get, dict_get, "`dict.get`", ops=ops * 10, rounds=rounds)
    await compare("memory put", mem_put, dict_put, "`dict[k] = v`", ops=ops * 10, rounds=rounds)

    # --- JSON form alone
    async def to_json(i: int) -> object:
        return items[i % DOMAINS].to_json()

    async def from_json(i: int) -> object:
        return CachedPolicy.from_json(texts[i % DOMAINS])

    async def nothing(i: int) -> object:
        return None

    await compare("entry `to_json`", to_json, nothing, "(no work)", ops=ops, rounds=rounds)
    await compare("entry `from_json`", from_json, nothing, "(no work)", ops=ops, rounds=rounds)

    # --- SQLite
    with tempfile.TemporaryDirectory(prefix="bench-sqlite-") as tmp:
        store = SqlitePolicyCache(Path(tmp) / "ours.sqlite3")
        db = sqlite3.connect(
            Path(tmp) / "plain.sqlite3", isolation_level=None, check_same_thread=False
        )
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE t (domain TEXT PRIMARY KEY, entry TEXT NOT NULL) WITHOUT ROWID")
        for e, text in zip(items, texts, strict=True):
            await store.put(e)
            db.execute("INSERT OR REPLACE INTO t VALUES (?, ?)", (e.domain, text))

        def plain_select(i: int) -> object:
            return db.execute(
                "SELECT entry FROM t WHERE domain = ?", (items[i % DOMAINS].domain,)
            ).fetchone()

        def plain_insert(i: int) -> object:
            return db.execute(
                "INSERT OR REPLACE INTO t VALUES (?, ?)",
                (items[i % DOMAINS].domain, texts[i % DOMAINS]),
            )

        async def sq_get(i: int) -> object:
            return await store.get(items[i % DOMAINS].domain)

        async def sq_put(i: int) -> object:
            return await store.put(items[i % DOMAINS])

        async def plain_get(i: int) -> object:
            return plain_select(i)

        async def plain_put(i: int) -> object:
            return plain_insert(i)

        async def thread_get(i: int) -> object:
            return await asyncio.to_thread(plain_select, i)

        async def thread_put(i: int) -> object:
            return await asyncio.to_thread(plain_insert, i)

        await compare(
            "SQLite get", sq_get, plain_get, "sqlite3 `SELECT`, blocking", ops=ops, rounds=rounds
        )
        await compare(
            "SQLite get",
            sq_get,
            thread_get,
            "sqlite3 `SELECT` in `asyncio.to_thread`",
            ops=ops,
            rounds=rounds,
        )
        await compare(
            "SQLite put",
            sq_put,
            plain_put,
            "sqlite3 `INSERT OR REPLACE`, blocking",
            ops=ops // 4,
            rounds=rounds,
        )
        await compare(
            "SQLite put",
            sq_put,
            thread_put,
            "sqlite3 `INSERT OR REPLACE` in `asyncio.to_thread`",
            ops=ops // 4,
            rounds=rounds,
        )
        await store.aclose()
        db.close()

    # --- Redis
    with redis_serving() as url:
        store_r = RedisPolicyCache(url)
        raw = aioredis.Redis.from_url(url)
        for e in items:
            await store_r.put(e)
            await raw.set(f"plain:{e.domain}", e.to_json(), px=86400_000)

        async def r_get(i: int) -> object:
            return await store_r.get(items[i % DOMAINS].domain)

        async def r_put(i: int) -> object:
            return await store_r.put(items[i % DOMAINS])

        async def raw_get(i: int) -> object:
            return await raw.get(f"plain:{items[i % DOMAINS].domain}")

        async def raw_put(i: int) -> object:
            return await raw.set(
                f"plain:{items[i % DOMAINS].domain}", texts[i % DOMAINS], px=86400_000
            )

        await compare("Redis get", r_get, raw_get, "redis.asyncio `GET`", ops=ops, rounds=rounds)
        await compare(
            "Redis put", r_put, raw_put, "redis.asyncio `SET … PX`", ops=ops, rounds=rounds
        )
        await store_r.aclose()
        await raw.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=2000, help="operations per round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per pair")
    args = parser.parse_args()
    asyncio.run(main(args.ops, args.rounds))
