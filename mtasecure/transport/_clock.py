"""The default clock: the system's time, in UTC."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["SystemClock"]


class SystemClock:
    """A :class:`~mtasecure.transport.Clock` that reads the system time (UTC)."""

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        return datetime.now(UTC)
