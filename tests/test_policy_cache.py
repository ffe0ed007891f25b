"""The PolicyCache conformance suite over the in-memory and SQLite stores (RFC 8461 §3.3, §5.1).

The Redis store runs the same suite in tests/integration/test_policy_cache_redis.py.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mtasecure.transport import MemoryPolicyCache, PolicyCache
from mtasecure.transport.sqlite_cache import SqlitePolicyCache
from tests.policy_cache_suite import PolicyCacheSuite


class TestMemoryPolicyCache(PolicyCacheSuite):
    @pytest.fixture
    async def cache(self) -> AsyncIterator[PolicyCache]:
        store = MemoryPolicyCache()
        yield store
        await store.aclose()


class TestSqlitePolicyCache(PolicyCacheSuite):
    """Failures come from another connection holding the write lock (as another process would)."""

    @pytest.fixture
    async def cache(self, tmp_path: Path) -> AsyncIterator[PolicyCache]:
        store = SqlitePolicyCache(tmp_path / "cache.sqlite3", busy_timeout=0.2)
        self._path = store.path
        yield store
        await store.aclose()

    async def raw_put(self, cache: PolicyCache, domain: str, value: bytes) -> None:
        with sqlite3.connect(self._path) as db:
            text: bytes | str = value
            with contextlib.suppress(UnicodeDecodeError):  # else a BLOB, as a careless edit
                text = value.decode("utf-8")
            db.execute("INSERT OR REPLACE INTO sts_policies VALUES (?, ?)", (domain, text))

    async def break_store(self, cache: PolicyCache) -> None:
        self._locker = sqlite3.connect(self._path, isolation_level=None)
        self._locker.execute("BEGIN EXCLUSIVE")

    async def mend_store(self, cache: PolicyCache) -> None:
        self._locker.execute("ROLLBACK")
        self._locker.close()
