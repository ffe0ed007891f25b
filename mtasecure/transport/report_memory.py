"""An in-memory :class:`~mtasecure.transport.ReportStore`: for tests and single processes.

Nothing survives the process; use :class:`~mtasecure.transport.report_sqlite.SqliteReportStore`
where results must survive a restart.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from mtasecure.tlsrpt._collect import ReportWindow, ResultBatch, WindowResults, merge_results
from mtasecure.transport.report_sqlite import BATCH_ID_RETENTION

__all__ = ["MemoryReportStore"]


class MemoryReportStore:
    """A :class:`~mtasecure.transport.ReportStore` held in a few dictionaries."""

    def __init__(self) -> None:
        self._batches: dict[str, datetime] = {}
        self._results: dict[ReportWindow, WindowResults] = {}
        self._claims: dict[ReportWindow, tuple[str, datetime]] = {}
        self._sent: dict[ReportWindow, dict[str, str]] = {}

    async def add(self, batch: ResultBatch) -> bool:
        """Add ``batch`` once; ``False`` if its id was seen before."""
        if batch.batch_id in self._batches:
            return False
        self._batches[batch.batch_id] = batch.window.start
        window = batch.window
        parts = [batch] if window not in self._results else [self._results[window], batch]
        self._results[window] = merge_results(window, list(parts))
        return True

    async def load(self, window: ReportWindow) -> WindowResults:
        """Everything added for ``window``."""
        return self._results.get(window, WindowResults(window=window))

    async def windows(self) -> tuple[ReportWindow, ...]:
        """Windows holding results, oldest first."""
        return tuple(sorted(self._results, key=lambda w: w.start))

    async def claim(self, window: ReportWindow, owner: str, *, now: datetime, lease: float) -> bool:
        """Hold ``window`` for ``owner`` for ``lease`` seconds, if free or lapsed."""
        held = self._claims.get(window)
        if held is not None and held[0] != owner and held[1] > now:
            return False
        self._claims[window] = (owner, now + timedelta(seconds=lease))
        return True

    async def mark_sent(self, window: ReportWindow, policy_domain: str, report_id: str) -> None:
        """Remember a delivered report."""
        self._sent.setdefault(window, {})[policy_domain] = report_id

    async def sent(self, window: ReportWindow) -> frozenset[str]:
        """Domains whose report for ``window`` was delivered."""
        return frozenset(self._sent.get(window, {}))

    async def prune(self, window: ReportWindow) -> None:
        """Forget ``window`` (batch ids stay for ``BATCH_ID_RETENTION``, as in SQLite)."""
        horizon = window.start - timedelta(seconds=BATCH_ID_RETENTION)
        self._batches = {k: v for k, v in self._batches.items() if v >= horizon}
        self._results.pop(window, None)
        self._claims.pop(window, None)
        self._sent.pop(window, None)
