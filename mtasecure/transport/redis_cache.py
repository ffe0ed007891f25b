"""A :class:`~mtasecure.transport.PolicyCache` in Redis, shared by a fleet of MTAs (RFC 8461 §3.3, §5.1).

Needs the ``redis`` extra (``pip install 'mtasecure[redis]'``); without it,
building a :class:`RedisPolicyCache` raises a
:class:`~mtasecure.errors.UsageError` that says so. Importing this module
does not import ``redis``.

Layout: one string key per Policy Domain, ``<prefix><domain>`` (prefix
``mtasecure:sts:`` by default), holding the entry's JSON text
(:meth:`~mtasecure.sts.CachedPolicy.to_json`), so every member of the fleet
sees the same policy and any of them may refresh it.

* Each put is one ``SET … PX`` command, atomic on the server: a reader sees
  the old entry or the new one, never a mix.
* A key lives until the entry's expiry plus ``grace``
  (:data:`DEFAULT_GRACE`), so Redis forgets expired policies by itself while
  operators can still see recently expired ones; never less than
  :data:`MIN_KEY_TTL`, so a put is never a silent no-op.
* :meth:`RedisPolicyCache.entries` walks the keys with ``SCAN`` (never
  ``KEYS``), so listing does not block the server.
* A value that cannot be read back counts as absent, as in the SQLite store.
* Any Redis or connection error becomes a
  :class:`~mtasecure.errors.StoreError`; a failed put changes nothing on the
  server.

How durable an acknowledged put is depends on the server's persistence
settings; a lost policy cache is not a security failure on its own (the next
delivery fetches the policy again), but the protection against a blocked
fetch is only as long-lived as the cache.
"""

from __future__ import annotations

import math
from datetime import timedelta

from mtasecure.sts._cache import CachedPolicy
from mtasecure.transport._clock import SystemClock
from mtasecure.transport._protocols import Clock
from mtasecure.transport._redis import RedisStore, redis_errors
from mtasecure.transport.sqlite_cache import read_row, write_row

__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_PREFIX",
    "DEFAULT_TIMEOUT",
    "MIN_KEY_TTL",
    "SCAN_COUNT",
    "RedisPolicyCache",
]

DEFAULT_PREFIX = "mtasecure:sts:"
"""Key prefix of the policy entries."""
DEFAULT_GRACE = timedelta(days=1)
"""How long a key outlives its entry's expiry (for operators; the client ignores expired entries)."""
MIN_KEY_TTL = timedelta(seconds=60)
"""Shortest lifetime given to a key, even for an entry long expired."""
DEFAULT_TIMEOUT = 2.0
"""Seconds to connect to Redis, and to wait for each reply."""
SCAN_COUNT = 500
"""Keys asked for per ``SCAN`` step and per ``MGET`` in :meth:`RedisPolicyCache.entries`."""

_WHAT = "Redis policy cache"
_GLOB_SPECIAL = str.maketrans({c: "\\" + c for c in "*?[]\\^-"})


class RedisPolicyCache(RedisStore):
    """A :class:`~mtasecure.transport.PolicyCache` on a Redis server.

    Args:
        url: a ``redis://`` (or ``rediss://``, ``unix://``) URL.
        prefix: prepended to every key, to share a server between uses.
        grace: how long a key outlives its entry's expiry.
        timeout: seconds to connect, and to wait for each reply.
        clock: where the key lifetimes are measured from; ``None`` is the
            system clock.

    Raises:
        UsageError: the ``redis`` extra is not installed, or ``url`` is not a
            Redis URL.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        grace: timedelta = DEFAULT_GRACE,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(url, what=_WHAT, timeout=timeout)
        self.prefix = prefix
        self.grace = grace
        self.clock: Clock = clock if clock is not None else SystemClock()

    def _key(self, domain: str) -> str:
        return self.prefix + domain

    def _ttl_ms(self, entry: CachedPolicy) -> int:
        remaining = entry.expires_at + self.grace - self.clock.now()
        return math.ceil(max(remaining, MIN_KEY_TTL).total_seconds() * 1000)

    async def get(self, domain: str) -> CachedPolicy | None:
        """The entry for ``domain``, or ``None`` (also for an unreadable value).

        Raises:
            StoreError: Redis could not be reached or answered with an error.
        """
        with redis_errors(_WHAT, f"get {domain}"):
            value = await self._redis.get(self._key(domain))
        return None if value is None else read_row(domain, value)

    async def put(self, entry: CachedPolicy) -> None:
        """Store ``entry`` with one atomic ``SET … PX`` (expiry plus grace).

        Raises:
            StoreError: the write failed; the old entry is still there.
        """
        value = write_row(entry)
        with redis_errors(_WHAT, f"put {entry.domain}"):
            await self._redis.set(self._key(entry.domain), value, px=self._ttl_ms(entry))

    async def delete(self, domain: str) -> bool:
        """Remove the entry for ``domain``; whether there was one.

        Raises:
            StoreError: the write failed.
        """
        with redis_errors(_WHAT, f"delete {domain}"):
            return bool(await self._redis.delete(self._key(domain)))

    async def entries(self) -> tuple[CachedPolicy, ...]:
        """Every readable entry under the prefix, found with ``SCAN``.

        Raises:
            StoreError: Redis could not be reached or answered with an error.
        """
        match = self.prefix.translate(_GLOB_SPECIAL) + "*"
        start = len(self.prefix)
        found: dict[str, CachedPolicy] = {}
        with redis_errors(_WHAT, "entries"):
            cursor = 0
            while True:
                cursor, keys = await self._redis.scan(cursor, match=match, count=SCAN_COUNT)
                names = [k.decode("utf-8", "replace") for k in keys]
                names = [k for k in names if k not in found]
                if names:
                    values = await self._redis.mget(names)
                    for key, value in zip(names, values, strict=True):
                        entry = None if value is None else read_row(key[start:], value)
                        if entry is not None:
                            found[key] = entry
                if cursor == 0:
                    break
        return tuple(found.values())
