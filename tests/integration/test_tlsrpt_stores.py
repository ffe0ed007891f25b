"""The fleet result stores against real servers: Redis and PostgreSQL on loopback.

Each server is started by a fixture in a temporary directory on a free port
(Redis with no persistence; PostgreSQL initialised with ``initdb`` and run by
the ``postgres`` account, since it refuses to run as root). The same contract
runs against both, and then a "fleet" of MTAs — two collectors, two store
connections, two schedulers — must send exactly one report per domain.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mtasecure._http import HttpResponse
from mtasecure.results import FailureReason
from mtasecure.tlsrpt import (
    ReportOptions,
    ReportWindow,
    ResultBatch,
    TlsRptCollector,
    parse_report,
)
from mtasecure.tlsrpt._schedule import plan_send_time
from mtasecure.transport import ReportStore
from mtasecure.transport.report_postgres import PostgresReportStore
from mtasecure.transport.report_redis import RedisReportStore
from mtasecure.transport.report_submit import ResultFlusher, send_due_reports
from tests.integration.servers import (
    LOOPBACK,
    free_port,
    in_ci,
    require_binary,
    stop_process,
    wait_for_port,
)

pytestmark = pytest.mark.integration

PG_BIN = "/usr/lib/postgresql/15/bin"
DAY1 = ReportWindow.containing(datetime(2026, 3, 1, tzinfo=UTC))
OPTIONS = ReportOptions(organization_name="Fleet", contact_info="tlsrpt@mail.sender.example")


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    binary = require_binary("redis-server")
    port = free_port()
    root = Path(tempfile.mkdtemp(prefix="mtasecure-tlsrpt-redis-"))
    log = root / "redis.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                LOOPBACK,
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(root),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, process=process, log=log)
        yield f"redis://{LOOPBACK}:{port}/0"
    finally:
        stop_process(process)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres_conninfo() -> Iterator[str]:
    initdb = require_binary("initdb", PG_BIN)
    pg_ctl = require_binary("pg_ctl", PG_BIN)
    runuser = require_binary("runuser")
    if os.geteuid() != 0:
        message = "starting PostgreSQL as the postgres account needs root"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="mtasecure-tlsrpt-pg-"))
    root.chmod(0o711)
    data = root / "data"
    data.mkdir()
    shutil.chown(data, user="postgres")
    shutil.chown(root, user="postgres")
    port = free_port()
    as_postgres = [runuser, "-u", "postgres", "--"]
    subprocess.run(
        [*as_postgres, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {root} -c listen_addresses={LOOPBACK} -c fsync=off"
    subprocess.run(
        [
            *as_postgres,
            pg_ctl,
            "-D",
            str(data),
            "-l",
            str(root / "pg.log"),
            "-w",
            "-o",
            options,
            "start",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    try:
        wait_for_port(port, log=root / "pg.log")
        yield f"host={LOOPBACK} port={port} user=postgres dbname=postgres"
    finally:
        subprocess.run(
            [*as_postgres, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
            check=False,
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["redis", "postgres"])
async def fleet_stores(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[ReportStore, ReportStore]]:
    """Two connections to one fresh shared store (one per 'MTA')."""
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        prefix = f"t{os.urandom(4).hex()}:"
        a, b = RedisReportStore(url, prefix=prefix), RedisReportStore(url, prefix=prefix)
        yield a, b
        await a.aclose()
        await b.aclose()
        return
    conninfo = request.getfixturevalue("postgres_conninfo")
    a = await PostgresReportStore.connect(conninfo)
    b = await PostgresReportStore.connect(conninfo)
    for table in ("batches", "sessions", "details", "claims", "sent"):
        await a._fetch(f"DELETE FROM tlsrpt_{table} RETURNING 1", ())
    yield a, b
    await a.aclose()
    await b.aclose()


def _batch(batch_id: str, domains: Sequence[str] = ("example.net",)) -> ResultBatch:
    c = TlsRptCollector()
    for d in domains:
        c.record(d, None, None)
        c.record(d, None, FailureReason.CERTIFICATE_EXPIRED, sending_ip="192.0.2.1")
    batch = c.drain(DAY1)
    assert batch is not None
    return batch.model_copy(update={"batch_id": batch_id})


async def test_store_contract(fleet_stores: tuple[ReportStore, ReportStore]) -> None:
    store, other = fleet_stores
    assert isinstance(store, ReportStore)
    assert await store.add(_batch("one"))
    assert await other.add(_batch("two"))
    assert not await other.add(_batch("one"))
    results = await store.load(DAY1)
    assert results.session_total == 4
    assert results.sessions[0].failed == 2
    assert results.details[0].detail.failed_session_count == 2
    assert results.details[0].detail.sending_mta_ip == "192.0.2.1"
    assert await store.windows() == (DAY1,)
    now = datetime(2026, 3, 2, 3, tzinfo=UTC)
    assert await store.claim(DAY1, "mta1", now=now, lease=1)
    assert not await other.claim(DAY1, "mta2", now=now, lease=1)
    assert await store.claim(DAY1, "mta1", now=now, lease=1)
    await asyncio.sleep(1.2)  # Redis runs the lease on its own clock
    assert await other.claim(DAY1, "mta2", now=now + timedelta(seconds=1.2), lease=60)
    await store.mark_sent(DAY1, "example.net", "rid")
    assert await other.sent(DAY1) == {"example.net"}
    await other.prune(DAY1)
    assert await store.windows() == ()
    assert (await store.load(DAY1)).sessions == ()


class CountingHttp:
    def __init__(self) -> None:
        self.posts: list[str] = []
        self.bodies: list[bytes] = []

    async def get(self, url: str, *, max_bytes: int, timeout: float) -> HttpResponse:
        raise AssertionError("not used")

    async def post(
        self, url: str, *, body: bytes, content_type: str, timeout: float
    ) -> HttpResponse:
        self.posts.append(url)
        self.bodies.append(body)
        await asyncio.sleep(0.01)
        return HttpResponse(url=url, status=200)


async def test_a_fleet_sends_one_report_per_domain_and_day(
    fleet_stores: tuple[ReportStore, ReportStore],
) -> None:
    store_a, store_b = fleet_stores
    domains = [f"d{i}.example" for i in range(20)]
    for store in (store_a, store_b):  # two MTAs record and flush the same domains
        collector = TlsRptCollector()
        for d in domains:
            collector.record(d, None, None)
        await ResultFlusher(collector, store).flush(datetime(2026, 3, 1, 9, tzinfo=UTC))

    async def rua(domain: str) -> Sequence[str]:
        return [f"https://tlsrpt.{domain}/"]

    http = CountingHttp()
    at = plan_send_time(DAY1, submitter=OPTIONS.sender_domain)
    (sent_a, _), (sent_b, _) = await asyncio.gather(
        send_due_reports(store_a, OPTIONS, now=at, lookup_rua=rua, owner="mta-a", http=http),
        send_due_reports(store_b, OPTIONS, now=at, lookup_rua=rua, owner="mta-b", http=http),
    )
    assert sorted(http.posts) == sorted(f"https://tlsrpt.{d}/" for d in domains)
    assert len(sent_a) + len(sent_b) == len(domains)
    assert {s.policy_domain for s in (*sent_a, *sent_b)} == set(domains)
    # Both MTAs' sessions are in the one report per domain.
    assert [parse_report(b).total_successful for b in http.bodies] == [2] * len(domains)
    assert await store_a.windows() == ()


async def test_redis_unreadable_values_are_store_errors(redis_url: str) -> None:
    import redis.asyncio as aioredis

    from mtasecure.errors import StoreError
    from mtasecure.transport.report_sqlite import epoch

    prefix = f"t{os.urandom(4).hex()}:"
    raw = aioredis.Redis.from_url(redis_url)
    key = f"{prefix}w:{epoch(DAY1.start)}:{epoch(DAY1.end)}"
    async with RedisReportStore(redis_url, prefix=prefix) as store:
        assert await store.add(_batch("one"))
        # A hand-edited count, then a field without its separators: never a ValueError.
        field = next(iter(await raw.hkeys(f"{key}:ok")))
        await raw.hset(f"{key}:ok", field, "many")
        with pytest.raises(StoreError, match="unreadable"):
            await store.load(DAY1)
        await raw.delete(f"{key}:ok")
        await raw.hset(f"{key}:details", "no-separators", "1")
        with pytest.raises(StoreError, match="unreadable"):
            await store.load(DAY1)
        await raw.zadd(f"{prefix}windows", {"soon:later": 0})
        with pytest.raises(StoreError, match="unreadable"):
            await store.windows()
    await raw.aclose()


async def test_postgres_errors_after_connect_are_store_errors(postgres_conninfo: str) -> None:
    from mtasecure.errors import StoreError

    async with await PostgresReportStore.connect(postgres_conninfo) as store:
        await store.windows()  # works while open (raises otherwise)
    await store.aclose()  # idempotent
    # Every operation on a closed connection: psycopg's error, translated.
    with pytest.raises(StoreError, match="PostgreSQL report store"):
        await store.add(_batch("after-close"))
    with pytest.raises(StoreError, match="PostgreSQL report store"):
        await store.load(DAY1)
    with pytest.raises(StoreError, match="PostgreSQL report store"):
        await store.prune(DAY1)
