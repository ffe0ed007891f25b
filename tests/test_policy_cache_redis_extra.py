"""The Redis policy cache without a server: the optional extra and its arguments."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mtasecure import UsageError
from mtasecure.transport import redis_cache
from mtasecure.transport.redis_cache import RedisPolicyCache


def test_public_names_and_limits() -> None:
    assert redis_cache.__all__ == [
        "DEFAULT_GRACE",
        "DEFAULT_PREFIX",
        "DEFAULT_TIMEOUT",
        "MIN_KEY_TTL",
        "SCAN_COUNT",
        "RedisPolicyCache",
    ]
    assert redis_cache.DEFAULT_GRACE.total_seconds() == 86400
    assert redis_cache.MIN_KEY_TTL.total_seconds() == 60
    assert redis_cache.DEFAULT_TIMEOUT == 2.0
    assert redis_cache.SCAN_COUNT == 500


def test_importing_the_module_does_not_import_redis() -> None:
    code = "import sys, mtasecure.transport.redis_cache; print('redis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_missing_extra_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(UsageError, match=r"needs the 'redis' extra: pip install"):
        RedisPolicyCache("redis://127.0.0.1:1/0")


def test_a_bad_url_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="not a Redis URL"):
        RedisPolicyCache("http://example.com/")
