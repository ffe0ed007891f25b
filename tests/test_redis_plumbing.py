"""Both Redis stores without a Redis server: the extra, URLs, timeouts, error translation."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from mtasecure import StoreError, UsageError
from mtasecure.tlsrpt import ReportWindow
from mtasecure.transport import redis_cache, report_redis
from mtasecure.transport.redis_cache import RedisPolicyCache
from mtasecure.transport.report_redis import RedisReportStore

WINDOW = ReportWindow.containing(datetime(2026, 3, 1, 12, tzinfo=UTC))


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A loopback port that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def _closed_port() -> int:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return port


def test_report_store_limits_are_named() -> None:
    assert report_redis.__all__ == ["BATCH_TTL", "DEFAULT_TIMEOUT", "RedisReportStore"]
    assert report_redis.DEFAULT_TIMEOUT == 2.0
    assert report_redis.BATCH_TTL == 8 * 24 * 3600


def test_report_store_bad_url_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="not a Redis URL"):
        RedisReportStore("http://example.com/")


def test_report_store_missing_extra_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(UsageError, match=r"Redis report store needs the 'redis' extra"):
        RedisReportStore("redis://127.0.0.1:1/0")


async def test_an_unreachable_server_is_a_store_error() -> None:
    port = await _closed_port()
    async with RedisReportStore(f"redis://127.0.0.1:{port}/0") as store:
        with pytest.raises(StoreError, match=r"Redis report store: windows failed"):
            await store.windows()
        with pytest.raises(StoreError, match=r"Redis report store: sent failed"):
            await store.sent(WINDOW)
    async with RedisPolicyCache(f"redis://127.0.0.1:{port}/0") as cache:
        with pytest.raises(StoreError, match=r"Redis policy cache: get example.com failed"):
            await cache.get("example.com")


@pytest.mark.parametrize("make", [RedisReportStore, RedisPolicyCache])
async def test_a_silent_server_fails_within_the_timeout(
    silent_port: int, make: type[RedisReportStore] | type[RedisPolicyCache]
) -> None:
    store = make(f"redis://127.0.0.1:{silent_port}/0", timeout=0.2)
    read = store.windows() if isinstance(store, RedisReportStore) else store.get("example.com")
    started = time.monotonic()
    with pytest.raises(StoreError, match="failed"):
        await read
    assert time.monotonic() - started < 2.0  # bounded by the timeout, not hung
    await store.aclose()
    await store.aclose()  # idempotent


def test_both_stores_default_to_the_same_timeout() -> None:
    assert redis_cache.DEFAULT_TIMEOUT == report_redis.DEFAULT_TIMEOUT


def test_both_stores_close_through_one_aclose() -> None:
    from mtasecure.transport._redis import RedisStore

    assert RedisPolicyCache.aclose is RedisStore.aclose
    assert RedisReportStore.aclose is RedisStore.aclose


@pytest.mark.parametrize("make", [RedisReportStore, RedisPolicyCache])
async def test_aclose_closes_the_client_once(
    make: type[RedisReportStore] | type[RedisPolicyCache],
) -> None:
    store = make(f"redis://127.0.0.1:{await _closed_port()}/0")
    calls: list[None] = []
    real = store._redis.aclose

    async def counted() -> None:
        calls.append(None)
        await real()

    store._redis.aclose = counted
    async with store:
        pass
    await store.aclose()
    await store.aclose()
    assert len(calls) == 1
