"""One SQLite file behind an async store: the plumbing the SQLite stores share.

Both embedded stores (the policy cache and the TLS-RPT result store) need the
same things from SQLite, and each used to carry its own copy: open the file
(optionally refusing to create it), WAL mode and a ``synchronous`` setting, a
layout versioned with ``PRAGMA user_version`` that refuses a file from a newer
mtasecure, one connection used by one thread at a time, a rollback and a
:class:`~mtasecure.errors.StoreError` for every ``sqlite3.Error``, and a close
after which every call fails with a ``StoreError`` rather than a
``sqlite3.ProgrammingError``.

sqlite3 calls block, so each file runs them on a dedicated thread of its own;
the event loop only awaits the result. :meth:`SqliteFile.call` runs the same
work in the calling thread, for code without an event loop; a lock keeps the
two from using the connection at once.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import quote

from mtasecure.errors import StoreError

__all__ = ["SqliteFile"]

_T = TypeVar("_T")

_MEMORY = ":memory:"


class SqliteFile:
    """An open SQLite file whose layout is ``schema`` at ``version``.

    Args:
        path: the file; ``":memory:"`` for a private in-memory database.
        what: what the file is, for messages (``"policy cache"``).
        schema: ``CREATE TABLE IF NOT EXISTS`` statements; run in one
            transaction, with ``user_version`` set to ``version``, when the
            file's version is older.
        version: the layout version this code writes; a file with a higher
            ``user_version`` is refused.
        create: create the file when missing; ``False`` fails instead.
        synchronous: SQLite's ``synchronous`` setting.
        busy_timeout: seconds to wait for another connection's lock.

    Raises:
        StoreError: the file cannot be opened or created, is not an SQLite
            database, or was written by a newer mtasecure.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        what: str,
        schema: str,
        version: int,
        create: bool,
        synchronous: Literal["FULL", "NORMAL"],
        busy_timeout: float,
    ) -> None:
        self.path = Path(path)
        self._what = what
        self._closed = False
        if str(path) == _MEMORY:
            target = _MEMORY
        else:
            mode = "rwc" if create else "rw"
            target = f"file:{quote(str(self.path.absolute()))}?mode={mode}"
        try:
            db = sqlite3.connect(
                target,
                uri=target != _MEMORY,
                timeout=busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the {what} {self.path}: {exc}") from exc
        try:
            _prepare(db, what, schema, version, synchronous)
        except StoreError:
            db.close()
            raise
        except sqlite3.Error as exc:
            db.close()
            raise StoreError(f"cannot open the {what} {self.path}: {exc}") from exc
        self._db = db
        self._lock = threading.Lock()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mtasecure-sqlite")

    def call(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``work`` on the connection in the calling thread.

        Raises:
            StoreError: the file is closed, or ``work`` raised an
                ``sqlite3.Error`` (its open transaction is rolled back).
        """
        with self._lock:
            if self._closed:
                raise StoreError(f"the {self._what} {self.path} is closed")
            db = self._db
            try:
                return work(db)
            except sqlite3.Error as exc:
                if db.in_transaction:
                    db.rollback()
                raise StoreError(f"{self._what} {self.path}: {exc}") from exc

    async def run(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """:meth:`call` on the file's own thread, awaited.

        Raises:
            StoreError: as :meth:`call`.
        """
        if self._closed:
            raise StoreError(f"the {self._what} {self.path} is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self.call, work)

    def close(self) -> None:
        """Close the connection and stop the thread; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._db.close()
        self._thread.shutdown(wait=False)

    async def aclose(self) -> None:
        """:meth:`close`, after the work already queued on the file's thread."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self.close)


def _prepare(
    db: sqlite3.Connection, what: str, schema: str, version: int, synchronous: str
) -> None:
    found = db.execute("PRAGMA user_version").fetchone()[0]
    if found > version:
        raise StoreError(
            f"the {what} was written by a newer mtasecure (schema {found}; "
            f"this one reads schema {version}); upgrade, or point at another file"
        )
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    if found < version:
        db.executescript(f"BEGIN IMMEDIATE;\n{schema}\nPRAGMA user_version = {version};\nCOMMIT;")
