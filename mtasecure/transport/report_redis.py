"""A :class:`~mtasecure.transport.ReportStore` in Redis, shared by a fleet of MTAs (RFC 8460 §4).

Needs the ``redis`` extra. Every add is one Lua script, so it is atomic on the
server: the batch id is set with ``NX`` first, and when it already exists the
script changes nothing (a retried add never double-counts). How durable an
acknowledged add is depends on the server's persistence (``appendonly yes``
with ``appendfsync always`` or ``everysec``); a fleet that must never lose a
count runs Redis that way, or uses the PostgreSQL store.

Keys, under a prefix (``tlsrpt:`` by default), per window ``<start>:<end>``
in UNIX seconds: ``…:ok`` and ``…:fail`` (hashes of session counts),
``…:details`` (hash of failure-group counts), ``…:claim`` (the sending
member, with the lease as expiry), ``…:sent`` (hash of sent domains); plus
``windows`` (a sorted set) and ``batch:<id>`` (expiring markers).
"""

from __future__ import annotations

from datetime import datetime

from mtasecure.errors import StoreError, UsageError
from mtasecure.tlsrpt._collect import ReportWindow, ResultBatch, WindowResults
from mtasecure.tlsrpt._rows import encode_detail, encode_policy, rows_to_results
from mtasecure.transport._redis import RedisStore, redis_errors
from mtasecure.transport.report_sqlite import epoch, from_epoch

__all__ = ["BATCH_TTL", "DEFAULT_TIMEOUT", "RedisReportStore"]

#: Seconds a batch id is remembered: far longer than any retry of an add.
BATCH_TTL = 8 * 24 * 3600
#: Seconds to connect to Redis, and to wait for each reply.
DEFAULT_TIMEOUT = 2.0

_WHAT = "Redis report store"

_SEP = "\x1f"

_ADD = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[2])
local n = tonumber(ARGV[4])
local i = 5
for _ = 1, n do
  if ARGV[i + 1] ~= '0' then redis.call('HINCRBY', KEYS[2], ARGV[i], ARGV[i + 1]) end
  if ARGV[i + 2] ~= '0' then redis.call('HINCRBY', KEYS[3], ARGV[i], ARGV[i + 2]) end
  i = i + 3
end
while ARGV[i] do
  redis.call('HINCRBY', KEYS[4], ARGV[i], ARGV[i + 1])
  i = i + 2
end
return 1
"""

_CLAIM = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


class RedisReportStore(RedisStore):
    """A :class:`~mtasecure.transport.ReportStore` on a Redis server.

    Args:
        url: a ``redis://`` URL.
        prefix: the key prefix (to share a server between uses).
        timeout: seconds to connect, and to wait for each reply.

    Raises:
        UsageError: the ``redis`` extra is not installed, or ``url`` is not a
            Redis URL.
    """

    def __init__(
        self, url: str, *, prefix: str = "tlsrpt:", timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        super().__init__(url, what=_WHAT, timeout=timeout, decode_responses=True)
        self._prefix = prefix
        self._add = self._redis.register_script(_ADD)
        self._claim = self._redis.register_script(_CLAIM)

    def _key(self, window: ReportWindow, part: str) -> str:
        return f"{self._prefix}w:{epoch(window.start)}:{epoch(window.end)}:{part}"

    async def add(self, batch: ResultBatch) -> bool:
        """Add ``batch`` atomically; ``False`` if its id was already added."""
        w = batch.window
        args: list[str | int] = [
            BATCH_TTL,
            f"{epoch(w.start)}:{epoch(w.end)}",
            epoch(w.start),
            len(batch.sessions),
        ]
        for s in batch.sessions:
            args += [f"{s.policy_domain}{_SEP}{encode_policy(s.policy)}", s.successful, s.failed]
        for d in batch.details:
            field = (
                f"{d.policy_domain}{_SEP}{encode_policy(d.policy)}{_SEP}{encode_detail(d.detail)}"
            )
            args += [field, d.detail.failed_session_count]
        keys = [
            f"{self._prefix}batch:{batch.batch_id}",
            self._key(w, "ok"),
            self._key(w, "fail"),
            self._key(w, "details"),
            f"{self._prefix}windows",
        ]
        with redis_errors(_WHAT, "add"):
            return bool(await self._add(keys=keys, args=args))

    async def load(self, window: ReportWindow) -> WindowResults:
        """Everything added for ``window``."""
        with redis_errors(_WHAT, "load"):
            ok = await self._redis.hgetall(self._key(window, "ok"))
            fail = await self._redis.hgetall(self._key(window, "fail"))
            details = await self._redis.hgetall(self._key(window, "details"))
        sessions = []
        rows = []
        try:
            for field in sorted(set(ok) | set(fail)):
                domain, _, policy = field.partition(_SEP)
                sessions.append((domain, policy, int(ok.get(field, 0)), int(fail.get(field, 0))))
            for field, count in details.items():
                domain, policy, detail = field.split(_SEP, 2)
                rows.append((domain, policy, detail, int(count)))
        except ValueError as exc:
            raise StoreError(f"{_WHAT}: a stored count of {window} is unreadable: {exc}") from exc
        return rows_to_results(window, sessions, rows)

    async def windows(self) -> tuple[ReportWindow, ...]:
        """Windows holding results, oldest first."""
        with redis_errors(_WHAT, "windows"):
            members = await self._redis.zrange(f"{self._prefix}windows", 0, -1)
        found = []
        for member in members:
            start, _, end = member.partition(":")
            try:
                found.append(ReportWindow(start=from_epoch(int(start)), end=from_epoch(int(end))))
            except (ValueError, OverflowError, UsageError) as exc:
                raise StoreError(f"{_WHAT}: stored window {member!r} is unreadable") from exc
        return tuple(found)

    async def claim(self, window: ReportWindow, owner: str, *, now: datetime, lease: float) -> bool:
        """Hold ``window`` for ``owner`` for ``lease`` seconds (the server's clock runs the lease)."""
        with redis_errors(_WHAT, "claim"):
            return bool(
                await self._claim(
                    keys=[self._key(window, "claim")], args=[owner, max(1, int(lease * 1000))]
                )
            )

    async def mark_sent(self, window: ReportWindow, policy_domain: str, report_id: str) -> None:
        """Remember a delivered report."""
        with redis_errors(_WHAT, "mark_sent"):
            await self._redis.hset(self._key(window, "sent"), policy_domain, report_id)

    async def sent(self, window: ReportWindow) -> frozenset[str]:
        """Domains whose report for ``window`` was delivered."""
        with redis_errors(_WHAT, "sent"):
            return frozenset(await self._redis.hkeys(self._key(window, "sent")))

    async def prune(self, window: ReportWindow) -> None:
        """Forget ``window``."""
        with redis_errors(_WHAT, "prune"):
            await self._redis.delete(
                *(self._key(window, p) for p in ("ok", "fail", "details", "claim", "sent"))
            )
            await self._redis.zrem(
                f"{self._prefix}windows", f"{epoch(window.start)}:{epoch(window.end)}"
            )
