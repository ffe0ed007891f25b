"""A :class:`~mtasecure.transport.ReportStore` in PostgreSQL, shared by a fleet of MTAs (RFC 8460 §4).

Needs the ``postgres`` extra (psycopg 3). Each add is one transaction: the
batch id goes into a table with a primary key (``ON CONFLICT DO NOTHING``),
and only when it was new are the counts upserted, so a committed add is
durable (PostgreSQL's WAL) and a retried one never double-counts. A claim is
a single conditional upsert, so two fleet members can never both hold a
window.

The tables are the SQLite store's, with the same names; they are created on
first use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from mtasecure.errors import StoreError, UsageError
from mtasecure.tlsrpt._collect import ReportWindow, ResultBatch, WindowResults
from mtasecure.tlsrpt._rows import rows_to_results
from mtasecure.transport._closing import AsyncClosing
from mtasecure.transport.report_sqlite import (
    BATCH_ID_RETENTION,
    UPSERT_DETAIL,
    UPSERT_SESSION,
    batch_rows,
    epoch,
    from_epoch,
)

try:
    import psycopg
except ImportError as exc:  # pragma: no cover - the extra is installed in tests
    raise UsageError("the PostgreSQL report store needs the 'postgres' extra") from exc

__all__ = ["CONNECT_TIMEOUT", "PostgresReportStore"]

#: Seconds to wait for the server to accept a connection (libpq counts whole
#: seconds, at least 2); without it libpq waits for ever.
CONNECT_TIMEOUT = 10

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS tlsrpt_batches (
        batch_id TEXT PRIMARY KEY, window_start BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS tlsrpt_sessions (
        window_start BIGINT NOT NULL, window_end BIGINT NOT NULL,
        policy_domain TEXT NOT NULL, policy TEXT NOT NULL,
        successful BIGINT NOT NULL, failed BIGINT NOT NULL,
        PRIMARY KEY (window_start, window_end, policy_domain, policy))""",
    """CREATE TABLE IF NOT EXISTS tlsrpt_details (
        window_start BIGINT NOT NULL, window_end BIGINT NOT NULL,
        policy_domain TEXT NOT NULL, policy TEXT NOT NULL, detail TEXT NOT NULL,
        count BIGINT NOT NULL,
        PRIMARY KEY (window_start, window_end, policy_domain, policy, detail))""",
    """CREATE TABLE IF NOT EXISTS tlsrpt_claims (
        window_start BIGINT NOT NULL, window_end BIGINT NOT NULL,
        owner TEXT NOT NULL, lease_until DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (window_start, window_end))""",
    """CREATE TABLE IF NOT EXISTS tlsrpt_sent (
        window_start BIGINT NOT NULL, window_end BIGINT NOT NULL,
        policy_domain TEXT NOT NULL, report_id TEXT NOT NULL,
        PRIMARY KEY (window_start, window_end, policy_domain))""",
]


@contextmanager
def _translated() -> Iterator[None]:
    """Turn psycopg's exceptions inside the block into ``StoreError``."""
    try:
        yield
    except psycopg.Error as exc:
        raise StoreError(f"PostgreSQL report store: {exc}") from exc


class PostgresReportStore(AsyncClosing):
    """A :class:`~mtasecure.transport.ReportStore` on PostgreSQL.

    Create it with :meth:`connect`; use it as an async context manager, or
    call :meth:`aclose`.
    """

    def __init__(self, connection: Any) -> None:
        self._db = connection
        self._lock = asyncio.Lock()

    @classmethod
    async def connect(cls, conninfo: str, *, timeout: int = CONNECT_TIMEOUT) -> PostgresReportStore:
        """Connect (a libpq connection string or URL) and create the tables if needed.

        Args:
            conninfo: the libpq connection string or URL.
            timeout: whole seconds to wait for the connection (libpq's
                ``connect_timeout``; at least 2).

        Raises:
            UsageError: ``timeout`` is below 2 seconds.
            StoreError: the server cannot be reached in time, or refused.
        """
        if timeout < 2:
            raise UsageError(f"timeout must be at least 2 whole seconds (libpq), not {timeout}")
        with _translated():
            db = await psycopg.AsyncConnection.connect(conninfo, connect_timeout=timeout)
            async with db.transaction():
                # Serialise concurrent first-time schema creation across the fleet.
                await db.execute("SELECT pg_advisory_xact_lock(846008460)")
                for statement in _SCHEMA:
                    await db.execute(statement)
        return cls(db)

    async def aclose(self) -> None:
        """Close the connection; idempotent."""
        await self._db.close()

    async def _fetch(self, sql: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
        async with self._lock:
            with _translated():
                async with self._db.transaction():
                    cursor = await self._db.execute(sql, params)
                    return list(await cursor.fetchall())

    async def add(self, batch: ResultBatch) -> bool:
        """Add ``batch`` in one transaction; ``False`` if its id was already added."""
        sessions, details = batch_rows(batch)
        async with self._lock:
            with _translated():
                async with self._db.transaction(), self._db.cursor() as cursor:
                    await cursor.execute(
                        "INSERT INTO tlsrpt_batches VALUES (%s, %s) ON CONFLICT DO NOTHING",
                        (batch.batch_id, epoch(batch.window.start)),
                    )
                    if cursor.rowcount == 0:
                        return False
                    if sessions:
                        await cursor.executemany(UPSERT_SESSION.format(p="%s"), sessions)
                    if details:
                        await cursor.executemany(UPSERT_DETAIL.format(p="%s"), details)
                    return True

    async def load(self, window: ReportWindow) -> WindowResults:
        """Everything added for ``window``."""
        key = (epoch(window.start), epoch(window.end))
        sessions = await self._fetch(
            "SELECT policy_domain, policy, successful, failed FROM tlsrpt_sessions "
            "WHERE window_start = %s AND window_end = %s",
            key,
        )
        details = await self._fetch(
            "SELECT policy_domain, policy, detail, count FROM tlsrpt_details "
            "WHERE window_start = %s AND window_end = %s",
            key,
        )
        return rows_to_results(
            window,
            [(d, p, int(s), int(f)) for d, p, s, f in sessions],
            [(d, p, k, int(n)) for d, p, k, n in details],
        )

    async def windows(self) -> tuple[ReportWindow, ...]:
        """Windows holding results, oldest first."""
        rows = await self._fetch(
            "SELECT DISTINCT window_start, window_end FROM tlsrpt_sessions ORDER BY 1, 2", ()
        )
        return tuple(ReportWindow(start=from_epoch(s), end=from_epoch(e)) for s, e in rows)

    async def claim(self, window: ReportWindow, owner: str, *, now: datetime, lease: float) -> bool:
        """Hold ``window`` for ``owner`` for ``lease`` seconds, if free, lapsed or ours."""
        stamp = now.timestamp()
        rows = await self._fetch(
            "INSERT INTO tlsrpt_claims AS c VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (window_start, window_end) DO UPDATE "
            "SET owner = excluded.owner, lease_until = excluded.lease_until "
            "WHERE c.owner = excluded.owner OR c.lease_until <= %s "
            "RETURNING owner",
            (epoch(window.start), epoch(window.end), owner, stamp + lease, stamp),
        )
        return bool(rows)

    async def mark_sent(self, window: ReportWindow, policy_domain: str, report_id: str) -> None:
        """Remember a delivered report."""
        await self._fetch(
            "INSERT INTO tlsrpt_sent VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (window_start, window_end, policy_domain) "
            "DO UPDATE SET report_id = excluded.report_id RETURNING 1",
            (epoch(window.start), epoch(window.end), policy_domain, report_id),
        )

    async def sent(self, window: ReportWindow) -> frozenset[str]:
        """Domains whose report for ``window`` was delivered."""
        rows = await self._fetch(
            "SELECT policy_domain FROM tlsrpt_sent WHERE window_start = %s AND window_end = %s",
            (epoch(window.start), epoch(window.end)),
        )
        return frozenset(r[0] for r in rows)

    async def prune(self, window: ReportWindow) -> None:
        """Forget ``window``: results, claim and sent marks (batch ids are kept a while longer)."""
        key = (epoch(window.start), epoch(window.end))
        async with self._lock:
            with _translated():
                async with self._db.transaction():
                    for table in (
                        "tlsrpt_sessions",
                        "tlsrpt_details",
                        "tlsrpt_claims",
                        "tlsrpt_sent",
                    ):
                        await self._db.execute(
                            f"DELETE FROM {table} WHERE window_start = %s AND window_end = %s",
                            key,
                        )
                    await self._db.execute(
                        "DELETE FROM tlsrpt_batches WHERE window_start < %s",
                        (key[0] - BATCH_ID_RETENTION,),
                    )
