"""The embedded default :class:`~mtasecure.transport.PolicyCache`: one SQLite file (RFC 8461 §3.3, §5.1).

A long-running MTA keeps its MTA-STS policies here so that they survive a
restart: an ``enforce`` policy learnt yesterday still protects the first
delivery after a reboot, even if an attacker now blocks the policy fetch.

Durability:

* Each :meth:`SqlitePolicyCache.put` and :meth:`~SqlitePolicyCache.delete`
  is one SQLite transaction in WAL mode, ``synchronous=FULL`` by default.
  When it returns, the entry is on disk; when the process (or the machine,
  with ``FULL``) dies first, the file holds the old entry, never part of the
  new one. A failed write (disk full, a lock held too long) raises
  :class:`~mtasecure.errors.StoreError` and leaves the old entry in place.
* A row that cannot be read back — hand-edited into invalid JSON, a policy
  that no longer parses, an entry filed under another domain's key, or
  larger than :data:`MAX_ENTRY_BYTES` — counts as absent: ``get`` returns
  ``None`` and ``entries`` leaves it out, so the client fetches the policy
  again. ``mtasecure cache list`` still shows it, so an operator can delete it.
* The layout is versioned with ``PRAGMA user_version``
  (:data:`SCHEMA_VERSION`); a file written by a newer mtasecure is refused
  with a :class:`~mtasecure.errors.StoreError` that says so, never misread.

Each row is the domain and the entry's JSON text
(:meth:`~mtasecure.sts.CachedPolicy.to_json`), so an operator can read the
file with the ``sqlite3`` shell too.

sqlite3 calls block, so each store runs them on one dedicated thread of its
own; the event loop only awaits the result. Several processes on one
machine may share the file (SQLite locks it, and a writer waits up to
``busy_timeout`` for another's lock); a fleet shares a Redis store
(:mod:`mtasecure.transport.redis_cache`) instead.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Literal

from mtasecure.errors import ParseError, StoreError
from mtasecure.sts._cache import CachedPolicy
from mtasecure.transport._closing import AsyncClosing
from mtasecure.transport._sqlite import SqliteFile

__all__ = [
    "BUSY_TIMEOUT",
    "DEFAULT_PATH",
    "MAX_ENTRY_BYTES",
    "SCHEMA_VERSION",
    "SqlitePolicyCache",
]

SCHEMA_VERSION = 1
"""``PRAGMA user_version`` of the layout this module writes; a newer file is refused."""
BUSY_TIMEOUT = 5.0
"""Seconds a read or write waits for another connection's lock before it fails."""
MAX_ENTRY_BYTES = 256 * 1024
"""Largest entry stored or read back: four times the 64 KiB policy cap, for JSON escaping."""
DEFAULT_PATH = "/var/lib/mtasecure/sts-policies.sqlite3"
"""Where ``mtasecure cache`` looks for the file when no ``--db`` is given."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sts_policies (
    domain TEXT PRIMARY KEY NOT NULL,
    entry TEXT NOT NULL
) WITHOUT ROWID;
"""


def read_row(domain: str, text: object) -> CachedPolicy | None:
    """The entry a row holds, or ``None`` when it cannot be read (it counts as absent).

    Shared with the Redis store: bytes must be UTF-8, at most
    :data:`MAX_ENTRY_BYTES`, a :meth:`~mtasecure.sts.CachedPolicy.to_json`
    text, and filed under its own domain.
    """
    if isinstance(text, bytes):
        if len(text) > MAX_ENTRY_BYTES:
            return None
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not isinstance(text, str) or len(text) > MAX_ENTRY_BYTES:
        return None
    try:
        entry = CachedPolicy.from_json(text)
    except ParseError:
        return None
    return entry if entry.domain == domain else None


def write_row(entry: CachedPolicy) -> str:
    """The text stored for ``entry``.

    Raises:
        StoreError: the entry is larger than :data:`MAX_ENTRY_BYTES`.
    """
    text = entry.to_json()
    if len(text.encode("utf-8")) > MAX_ENTRY_BYTES:
        raise StoreError(
            f"policy cache entry for {entry.domain} is larger than {MAX_ENTRY_BYTES} bytes"
        )
    return text


class SqlitePolicyCache(AsyncClosing):
    """A :class:`~mtasecure.transport.PolicyCache` in one SQLite file (WAL mode).

    Args:
        path: the database file; created with its table when missing (unless
            ``create`` is false).
        create: create the file when it does not exist; ``False`` (the CLI)
            fails instead.
        synchronous: SQLite's ``synchronous`` setting: ``FULL`` (default)
            survives a power loss, ``NORMAL`` only a crash of the process.
        busy_timeout: seconds to wait for another connection's lock.

    Raises:
        StoreError: the file cannot be opened or created, is not an SQLite
            database, or was written by a newer mtasecure
            (``user_version`` above :data:`SCHEMA_VERSION`).

    Use it as an async context manager, or call :meth:`aclose`.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        create: bool = True,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        busy_timeout: float = BUSY_TIMEOUT,
    ) -> None:
        self._file = SqliteFile(
            path,
            what="policy cache",
            schema=_SCHEMA,
            version=SCHEMA_VERSION,
            create=create,
            synchronous=synchronous,
            busy_timeout=busy_timeout,
        )
        self.path = self._file.path

    async def get(self, domain: str) -> CachedPolicy | None:
        """The entry for ``domain``, or ``None`` (also for an unreadable row).

        Raises:
            StoreError: the file could not be read.
        """
        row = await self._file.run(
            lambda db: db.execute(
                "SELECT entry FROM sts_policies WHERE domain = ?", (domain,)
            ).fetchone()
        )
        return None if row is None else read_row(domain, row[0])

    async def put(self, entry: CachedPolicy) -> None:
        """Store ``entry`` in one transaction, replacing any entry for its domain.

        Raises:
            StoreError: the write failed; the old entry is still there.
        """
        row = (entry.domain, write_row(entry))
        await self._file.run(
            lambda db: db.execute("INSERT OR REPLACE INTO sts_policies VALUES (?, ?)", row)
        )

    async def delete(self, domain: str) -> bool:
        """Remove the entry for ``domain`` (readable or not); whether there was one.

        Raises:
            StoreError: the write failed.
        """
        count = await self._file.run(
            lambda db: db.execute("DELETE FROM sts_policies WHERE domain = ?", (domain,)).rowcount
        )
        return count > 0

    async def entries(self) -> tuple[CachedPolicy, ...]:
        """Every readable entry, in domain order.

        Raises:
            StoreError: the file could not be read.
        """
        rows = await self.rows()
        return tuple(entry for _, entry in rows if entry is not None)

    async def rows(self) -> tuple[tuple[str, CachedPolicy | None], ...]:
        """Every row as ``(domain, entry)``, ``entry`` being ``None`` when unreadable.

        For operators (``mtasecure cache list``), who need to see the rows
        that :meth:`entries` leaves out.

        Raises:
            StoreError: the file could not be read.
        """
        raw = await self._file.run(
            lambda db: db.execute(
                "SELECT domain, entry FROM sts_policies ORDER BY domain"
            ).fetchall()
        )
        return tuple((domain, read_row(domain, text)) for domain, text in raw)

    async def purge(self, *, expired_at: datetime | None = None) -> int:
        """Delete every row, or only those expired at ``expired_at`` and unreadable ones.

        Runs in one transaction. Returns how many rows were deleted.

        Raises:
            StoreError: the write failed; nothing was deleted.
        """

        def work(db: sqlite3.Connection) -> int:
            db.execute("BEGIN IMMEDIATE")
            if expired_at is None:
                count = db.execute("DELETE FROM sts_policies").rowcount
            else:
                doomed = [
                    (domain,)
                    for domain, text in db.execute("SELECT domain, entry FROM sts_policies")
                    if (entry := read_row(domain, text)) is None or not entry.valid_at(expired_at)
                ]
                db.executemany("DELETE FROM sts_policies WHERE domain = ?", doomed)
                count = len(doomed)
            db.execute("COMMIT")
            return count

        return await self._file.run(work)

    async def aclose(self) -> None:
        """Close the file and stop the store's thread; idempotent."""
        await self._file.aclose()
