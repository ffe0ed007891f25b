"""Pins the policy stores' types: each is a PolicyCache; type-checked by mypy, never run."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import assert_type

from mtasecure.client import MtaSecure
from mtasecure.sts import CachedPolicy
from mtasecure.transport import MemoryPolicyCache, PolicyCache
from mtasecure.transport.redis_cache import RedisPolicyCache
from mtasecure.transport.sqlite_cache import SqlitePolicyCache


async def stores(entry: CachedPolicy, now: datetime) -> None:
    sqlite = SqlitePolicyCache("/tmp/x.sqlite3", create=False, synchronous="NORMAL")
    redis = RedisPolicyCache("redis://127.0.0.1/0", prefix="p:", grace=timedelta(hours=1))
    for cache in (MemoryPolicyCache(), sqlite, redis):
        store: PolicyCache = cache
        assert_type(await store.get("example.com"), CachedPolicy | None)
        await store.put(entry)
        assert_type(await store.delete("example.com"), bool)
        assert_type(await store.entries(), tuple[CachedPolicy, ...])
        MtaSecure(cache=cache)
    assert_type(await sqlite.rows(), tuple[tuple[str, CachedPolicy | None], ...])
    assert_type(await sqlite.purge(expired_at=now), int)
    await sqlite.aclose()
    await redis.aclose()
