"""The Redis policy cache against a real redis-server on loopback (RFC 8461 §3.3, §5.1).

The shared conformance suite runs here too. Redis runs with no persistence;
failures are made the way a fleet meets them: a server that refuses writes
(``min-replicas-to-write`` with no replica) and a server that is killed.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from mtasecure import StoreError
from mtasecure.client import MtaSecure
from mtasecure.testing import FakeHttpClient, FakeResolver, FrozenClock
from mtasecure.transport import PolicyCache
from mtasecure.transport.redis_cache import (
    DEFAULT_GRACE,
    DEFAULT_PREFIX,
    MIN_KEY_TTL,
    RedisPolicyCache,
)
from tests.integration.servers import (
    LOOPBACK,
    free_port,
    require_binary,
    stop_process,
    wait_for_port,
)
from tests.policy_cache_suite import NOW, URL, PolicyCacheSuite, make_entry, policy_text

pytestmark = pytest.mark.integration


@dataclass
class RedisServer:
    process: subprocess.Popen[bytes]
    port: int
    root: Path

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"


def start_redis(port: int | None = None) -> RedisServer:
    binary = require_binary("redis-server")
    port = port or free_port()
    root = Path(tempfile.mkdtemp(prefix="mtasecure-sts-redis-"))
    log = root / "redis.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                *(binary, "--port", str(port), "--bind", LOOPBACK),
                *("--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", str(root)),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_for_port(port, process=process, log=log)
    return RedisServer(process, port, root)


def stop_redis(server: RedisServer) -> None:
    stop_process(server.process)
    shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = start_redis()
    try:
        yield server
    finally:
        stop_redis(server)


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:8]}:"


class TestRedisPolicyCache(PolicyCacheSuite):
    @pytest.fixture
    async def cache(
        self, redis_server: RedisServer, raw: aioredis.Redis, prefix: str
    ) -> AsyncIterator[PolicyCache]:
        self._raw, self._prefix = raw, prefix
        store = RedisPolicyCache(redis_server.url, prefix=prefix, clock=FrozenClock(NOW))
        yield store
        await store.aclose()

    async def raw_put(self, cache: PolicyCache, domain: str, value: bytes) -> None:
        await self._raw.set(self._prefix + domain, value)

    async def break_store(self, cache: PolicyCache) -> None:
        # Refuse every write (as a primary that lost its replicas does).
        await self._raw.config_set("min-replicas-to-write", 1)

    async def mend_store(self, cache: PolicyCache) -> None:
        await self._raw.config_set("min-replicas-to-write", 0)


async def test_key_lives_until_expiry_plus_grace(
    redis_server: RedisServer, raw: aioredis.Redis, prefix: str
) -> None:
    async with RedisPolicyCache(redis_server.url, prefix=prefix, clock=FrozenClock(NOW)) as cache:
        await cache.put(make_entry(max_age=604800))
        pttl = await raw.pttl(f"{prefix}example.com")
        full = (timedelta(seconds=604800) + DEFAULT_GRACE) / timedelta(milliseconds=1)
        assert full - 5000 < pttl <= full
        # Long expired: kept, but only for MIN_KEY_TTL.
        await cache.put(make_entry("old.example", fetched_at=NOW - timedelta(days=30)))
        pttl = await raw.pttl(f"{prefix}old.example")
        assert MIN_KEY_TTL / timedelta(milliseconds=1) - 5000 < pttl <= 60_000
    grace = timedelta(hours=2)
    clock = FrozenClock(NOW)
    async with RedisPolicyCache(redis_server.url, prefix=prefix, grace=grace, clock=clock) as cache:
        clock.advance(timedelta(days=1))
        await cache.put(make_entry(max_age=86400 * 3))  # expires in 2 days from the clock
        pttl = await raw.pttl(f"{prefix}example.com")
        full = (timedelta(days=2) + grace) / timedelta(milliseconds=1)
        assert full - 5000 < pttl <= full


async def test_the_prefix_separates_users_of_one_server(
    redis_server: RedisServer, raw: aioredis.Redis
) -> None:
    odd = "odd*[x]?\\-^:"  # glob characters must match themselves in SCAN
    async with (
        RedisPolicyCache(redis_server.url, prefix=odd) as a,
        RedisPolicyCache(redis_server.url, prefix="odd") as b,
    ):
        await a.put(make_entry("example.com", "a"))
        await b.put(make_entry("example.org", "b"))
        await raw.set("oddX[x]?\\-^:example.net", make_entry("example.net").to_json())
        assert [e.policy_id for e in await a.entries()] == ["a"]
        assert await a.get("example.org") is None
        assert await raw.exists(f"{odd}example.com") == 1
        # "odd" sees odd*... keys as domains that do not match their entries: absent.
        assert [e.policy_id for e in await b.entries()] == ["b"]


def test_default_prefix() -> None:
    assert DEFAULT_PREFIX == "mtasecure:sts:"


async def test_a_killed_server_raises_store_error_and_the_client_keeps_its_copy() -> None:
    server = start_redis()
    try:
        resolver = FakeResolver()
        resolver.add("_mta-sts.example.com", "TXT", ['"v=STSv1; id=1;"'], ttl=60)
        http = FakeHttpClient()
        http.add(URL, policy_text())
        clock = FrozenClock(NOW)
        store = RedisPolicyCache(server.url, timeout=0.5, clock=clock)
        async with store, MtaSecure(resolver=resolver, http=http, clock=clock, cache=store) as mta:
            policy = await mta.sts_policy("example.com")
            assert policy is not None
            assert await store.get("example.com") is not None
            server.process.send_signal(signal.SIGKILL)
            server.process.wait()
            calls: list[Callable[[], Awaitable[object]]] = [
                lambda: store.get("example.com"),
                lambda: store.put(make_entry()),
                lambda: store.delete("example.com"),
                store.entries,
            ]
            for call in calls:
                with pytest.raises(StoreError, match=r"Redis policy cache: .* failed"):
                    await call()
            # The client answers from memory; the id changes and the fetch fails too.
            resolver._rrsets.pop(("_mta-sts.example.com", "TXT"))
            resolver.add("_mta-sts.example.com", "TXT", ['"v=STSv1; id=2;"'], ttl=60)
            http.add(URL, "", status=500)
            clock.advance(120)
            assert await mta.sts_policy("example.com") == policy
            # The server comes back (empty: no persistence); the store reconnects.
            stop_redis(server)
            server = start_redis(server.port)
            assert await store.get("example.com") is None
            await store.put(make_entry(policy_id="back"))
            back = await store.get("example.com")
            assert back is not None
            assert back.policy_id == "back"
    finally:
        stop_redis(server)


@pytest.mark.parametrize("make", ["policy cache", "report store"])
async def test_aclose_hangs_up_once_and_is_idempotent(
    redis_server: RedisServer, raw: aioredis.Redis, make: str
) -> None:
    # Both Redis stores share one aclose (mtasecure.transport._redis.RedisStore).
    from mtasecure.transport.report_redis import RedisReportStore

    name = f"close-{uuid.uuid4().hex[:8]}"
    store = (
        RedisPolicyCache(redis_server.url, prefix=name + ":")
        if make == "policy cache"
        else RedisReportStore(redis_server.url, prefix=name + ":")
    )

    async def connected() -> bool:
        clients = await raw.client_list()
        return any(c.get("name") == name for c in clients)

    async with store:
        await store._redis.client_setname(name)  # the store's own pooled connection
        assert await connected()
    for _ in range(50):  # the server drops the client when the socket closes
        if not await connected():
            break
        await asyncio.sleep(0.02)
    assert not await connected()
    await store.aclose()  # again: nothing to do, no error
    assert not await connected()
