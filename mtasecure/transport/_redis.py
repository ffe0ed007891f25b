"""The plumbing the Redis stores share: connect with timeouts, translate errors.

The policy cache and the TLS-RPT result store both talk to Redis through
``redis.asyncio``; each used to build its client and catch Redis's exceptions
its own way, and only one of them bounded how long a reply may take. Here is
the one way: ``redis`` is imported only when a store is built (it is an
optional extra), every connect and reply waits at most ``timeout`` seconds,
every ``RedisError`` or ``OSError`` becomes a
:class:`~mtasecure.errors.StoreError` that names the store and the action,
and :class:`RedisStore` holds the client and closes it once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mtasecure.errors import StoreError, UsageError
from mtasecure.transport._closing import AsyncClosing

__all__ = ["RedisStore", "connect_redis", "redis_errors"]


def connect_redis(url: str, *, what: str, timeout: float, decode_responses: bool = False) -> Any:
    """A ``redis.asyncio.Redis`` client for ``url`` (it connects on first use).

    Raises:
        UsageError: the ``redis`` extra is not installed, or ``url`` is not a
            Redis URL.
    """
    try:
        import redis.asyncio as aioredis  # noqa: PLC0415 - the extra is optional
    except ImportError as exc:
        raise UsageError(
            f"the {what} needs the 'redis' extra: pip install 'mtasecure[redis]'"
        ) from exc
    try:
        return aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=decode_responses,
        )
    except ValueError as exc:
        raise UsageError(f"not a Redis URL: {url!r}: {exc}") from exc


@contextmanager
def redis_errors(what: str, action: str) -> Iterator[None]:
    """Turn Redis's and the socket's exceptions inside the block into ``StoreError``.

    Raises:
        StoreError: ``"<what>: <action> failed: <cause>"``.
    """
    from redis.exceptions import RedisError  # noqa: PLC0415 - imported by connect_redis

    try:
        yield
    except (RedisError, OSError) as exc:
        raise StoreError(f"{what}: {action} failed: {exc}") from exc


class RedisStore(AsyncClosing):
    """Base of the Redis stores: the client, built by :func:`connect_redis`, and its close.

    Args:
        url: a ``redis://`` (or ``rediss://``, ``unix://``) URL.
        what: the store, for messages (``"Redis policy cache"``).
        timeout: seconds to connect, and to wait for each reply.
        decode_responses: replies as ``str`` rather than ``bytes``.

    Raises:
        UsageError: the ``redis`` extra is not installed, or ``url`` is not a
            Redis URL.
    """

    def __init__(
        self, url: str, *, what: str, timeout: float, decode_responses: bool = False
    ) -> None:
        self._redis: Any = connect_redis(
            url, what=what, timeout=timeout, decode_responses=decode_responses
        )
        self._what = what
        self._closed = False

    async def aclose(self) -> None:
        """Close the connection pool; idempotent."""
        if self._closed:
            return
        self._closed = True
        # A dead connection closes anyway.
        with contextlib.suppress(StoreError), redis_errors(self._what, "close"):
            await self._redis.aclose()
