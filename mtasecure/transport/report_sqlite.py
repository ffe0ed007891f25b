"""The embedded default :class:`~mtasecure.transport.ReportStore`: one SQLite file.

Durability: each :meth:`SqliteReportStore.add` is one ``BEGIN IMMEDIATE`` …
``COMMIT`` transaction in WAL mode with ``synchronous=FULL`` (by default): when
``add`` returns, the batch is on disk and survives a crash of the process or
the machine; when the process dies before that, none of the batch is there.
The batch id goes into a table with a primary key in the same transaction,
so adding a batch again (a retry after a crash whose outcome was unknown)
changes nothing. Together: a recorded result is never lost and never counted
twice.

Several processes on one machine may share the file (SQLite locks it); a
fleet shares a Redis or PostgreSQL store instead.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from mtasecure.tlsrpt._collect import ReportWindow, ResultBatch, WindowResults
from mtasecure.tlsrpt._rows import encode_detail, encode_policy, rows_to_results
from mtasecure.transport._closing import AsyncClosing
from mtasecure.transport._sqlite import SqliteFile

__all__ = ["BATCH_ID_RETENTION", "BUSY_TIMEOUT", "SCHEMA_VERSION", "SqliteReportStore"]

#: Seconds a writer waits for another process's lock before giving up.
BUSY_TIMEOUT = 30.0
#: Seconds batch ids are kept after their window starts (pruned with later windows).
BATCH_ID_RETENTION = 8 * 24 * 3600

#: ``PRAGMA user_version`` of the layout this module writes; a newer file is refused.
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tlsrpt_batches (
    batch_id TEXT PRIMARY KEY,
    window_start INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tlsrpt_sessions (
    window_start INTEGER NOT NULL,
    window_end INTEGER NOT NULL,
    policy_domain TEXT NOT NULL,
    policy TEXT NOT NULL,
    successful INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    PRIMARY KEY (window_start, window_end, policy_domain, policy)
);
CREATE TABLE IF NOT EXISTS tlsrpt_details (
    window_start INTEGER NOT NULL,
    window_end INTEGER NOT NULL,
    policy_domain TEXT NOT NULL,
    policy TEXT NOT NULL,
    detail TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (window_start, window_end, policy_domain, policy, detail)
);
CREATE TABLE IF NOT EXISTS tlsrpt_claims (
    window_start INTEGER NOT NULL,
    window_end INTEGER NOT NULL,
    owner TEXT NOT NULL,
    lease_until REAL NOT NULL,
    PRIMARY KEY (window_start, window_end)
);
CREATE TABLE IF NOT EXISTS tlsrpt_sent (
    window_start INTEGER NOT NULL,
    window_end INTEGER NOT NULL,
    policy_domain TEXT NOT NULL,
    report_id TEXT NOT NULL,
    PRIMARY KEY (window_start, window_end, policy_domain)
);
"""

# Shared with the PostgreSQL store: both speak this ON CONFLICT dialect.
UPSERT_SESSION = (
    "INSERT INTO tlsrpt_sessions VALUES ({p}, {p}, {p}, {p}, {p}, {p}) "
    "ON CONFLICT (window_start, window_end, policy_domain, policy) DO UPDATE SET "
    "successful = tlsrpt_sessions.successful + excluded.successful, "
    "failed = tlsrpt_sessions.failed + excluded.failed"
)
UPSERT_DETAIL = (
    "INSERT INTO tlsrpt_details VALUES ({p}, {p}, {p}, {p}, {p}, {p}) "
    "ON CONFLICT (window_start, window_end, policy_domain, policy, detail) DO UPDATE SET "
    "count = tlsrpt_details.count + excluded.count"
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch(instant: datetime) -> int:
    """UNIX seconds of an aware datetime."""
    return int((instant - _EPOCH).total_seconds())


def from_epoch(seconds: int) -> datetime:
    """The aware UTC datetime of UNIX ``seconds``."""
    return _EPOCH + timedelta(seconds=seconds)


def batch_rows(
    batch: ResultBatch,
) -> tuple[list[tuple[int, int, str, str, int, int]], list[tuple[int, int, str, str, str, int]]]:
    """A batch as session rows and detail rows, ready for the upserts."""
    start, end = epoch(batch.window.start), epoch(batch.window.end)
    sessions = [
        (start, end, s.policy_domain, encode_policy(s.policy), s.successful, s.failed)
        for s in batch.sessions
    ]
    details = [
        (
            start,
            end,
            d.policy_domain,
            encode_policy(d.policy),
            encode_detail(d.detail),
            d.detail.failed_session_count,
        )
        for d in batch.details
    ]
    return sessions, details


class SqliteReportStore(AsyncClosing):
    """A :class:`~mtasecure.transport.ReportStore` in one SQLite file (WAL mode).

    Args:
        path: the database file (created with its tables if missing).
        synchronous: SQLite's ``synchronous`` setting; ``FULL`` (default)
            survives power loss, ``NORMAL`` only a crash of the process.

    Raises:
        StoreError: the file cannot be opened or created, is not an SQLite
            database, or was written by a newer mtasecure
            (``user_version`` above :data:`SCHEMA_VERSION`).

    Use it as an async context manager, or call :meth:`aclose` (or
    :meth:`close`, without an event loop).
    """

    def __init__(
        self, path: str | Path, *, synchronous: Literal["FULL", "NORMAL"] = "FULL"
    ) -> None:
        self._file = SqliteFile(
            path,
            what="report store",
            schema=_SCHEMA,
            version=SCHEMA_VERSION,
            create=True,
            synchronous=synchronous,
            busy_timeout=BUSY_TIMEOUT,
        )

    def close(self) -> None:
        """Close the database; idempotent."""
        self._file.close()

    async def aclose(self) -> None:
        """Close the database after the work already queued; idempotent."""
        await self._file.aclose()

    def add_now(self, batch: ResultBatch) -> bool:
        """:meth:`add`, in the calling thread (for code without an event loop)."""
        return self._file.call(lambda db: _add(db, batch))

    async def add(self, batch: ResultBatch) -> bool:
        """Add ``batch`` in one transaction; ``False`` if its id was already added."""
        return await self._file.run(lambda db: _add(db, batch))

    async def load(self, window: ReportWindow) -> WindowResults:
        """Everything added for ``window``."""
        key = (epoch(window.start), epoch(window.end))

        def work(db: sqlite3.Connection) -> WindowResults:
            sessions = db.execute(
                "SELECT policy_domain, policy, successful, failed FROM tlsrpt_sessions "
                "WHERE window_start = ? AND window_end = ?",
                key,
            ).fetchall()
            details = db.execute(
                "SELECT policy_domain, policy, detail, count FROM tlsrpt_details "
                "WHERE window_start = ? AND window_end = ?",
                key,
            ).fetchall()
            return rows_to_results(window, sessions, details)

        return await self._file.run(work)

    async def windows(self) -> tuple[ReportWindow, ...]:
        """Windows holding results, oldest first."""
        rows = await self._file.run(
            lambda db: db.execute(
                "SELECT DISTINCT window_start, window_end FROM tlsrpt_sessions ORDER BY 1, 2"
            ).fetchall()
        )
        return tuple(ReportWindow(start=from_epoch(s), end=from_epoch(e)) for s, e in rows)

    async def claim(self, window: ReportWindow, owner: str, *, now: datetime, lease: float) -> bool:
        """Hold ``window`` for ``owner`` for ``lease`` seconds, if free, lapsed or ours."""
        key = (epoch(window.start), epoch(window.end))
        stamp = now.timestamp()

        def work(db: sqlite3.Connection) -> bool:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute(
                "SELECT owner, lease_until FROM tlsrpt_claims "
                "WHERE window_start = ? AND window_end = ?",
                key,
            ).fetchone()
            if row is not None and row[0] != owner and row[1] > stamp:
                db.execute("ROLLBACK")
                return False
            db.execute(
                "INSERT OR REPLACE INTO tlsrpt_claims VALUES (?, ?, ?, ?)",
                (*key, owner, stamp + lease),
            )
            db.execute("COMMIT")
            return True

        return await self._file.run(work)

    async def mark_sent(self, window: ReportWindow, policy_domain: str, report_id: str) -> None:
        """Remember a delivered report."""
        row = (epoch(window.start), epoch(window.end), policy_domain, report_id)
        await self._file.run(
            lambda db: db.execute("INSERT OR REPLACE INTO tlsrpt_sent VALUES (?, ?, ?, ?)", row)
        )

    async def sent(self, window: ReportWindow) -> frozenset[str]:
        """Domains whose report for ``window`` was delivered."""
        key = (epoch(window.start), epoch(window.end))
        rows = await self._file.run(
            lambda db: db.execute(
                "SELECT policy_domain FROM tlsrpt_sent WHERE window_start = ? AND window_end = ?",
                key,
            ).fetchall()
        )
        return frozenset(r[0] for r in rows)

    async def prune(self, window: ReportWindow) -> None:
        """Forget ``window``: results, claim and sent marks (batch ids are kept a while longer)."""
        key = (epoch(window.start), epoch(window.end))

        def work(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            for table in ("tlsrpt_sessions", "tlsrpt_details", "tlsrpt_claims", "tlsrpt_sent"):
                db.execute(f"DELETE FROM {table} WHERE window_start = ? AND window_end = ?", key)
            # Batch ids outlive their window by BATCH_ID_RETENTION, so a very
            # late retry of an add is still recognised and not counted anew.
            db.execute(
                "DELETE FROM tlsrpt_batches WHERE window_start < ?",
                (key[0] - BATCH_ID_RETENTION,),
            )
            db.execute("COMMIT")

        await self._file.run(work)


def _add(db: sqlite3.Connection, batch: ResultBatch) -> bool:
    sessions, details = batch_rows(batch)
    db.execute("BEGIN IMMEDIATE")
    cursor = db.execute(
        "INSERT OR IGNORE INTO tlsrpt_batches VALUES (?, ?)",
        (batch.batch_id, epoch(batch.window.start)),
    )
    if cursor.rowcount == 0:
        db.execute("ROLLBACK")
        return False
    db.executemany(UPSERT_SESSION.format(p="?"), sessions)
    db.executemany(UPSERT_DETAIL.format(p="?"), details)
    db.execute("COMMIT")
    return True
