"""When to send a window's reports (RFC 8460 §4.1).

§4.1 asks senders to wait "some delay, perhaps several hours" after a window
closes, at a random time, so receivers are not flooded at 00:00 UTC. The
delay here is random across submitters and windows but *deterministic* for a
given (submitter, window): a sender that restarts computes the same send time
again instead of drawing a new one, and every member of a fleet agrees on it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime, timedelta

from mtasecure.errors import UsageError
from mtasecure.tlsrpt._collect import ReportWindow

__all__ = ["DEFAULT_MAX_DELAY", "DEFAULT_MIN_DELAY", "plan_due_windows", "plan_send_time"]

#: Earliest send time after a window closes: leaves stragglers time to drain.
DEFAULT_MIN_DELAY = timedelta(minutes=5)
#: Latest send time after a window closes (RFC 8460 §4.1's example: up to 4 hours).
DEFAULT_MAX_DELAY = timedelta(hours=4)


def plan_send_time(
    window: ReportWindow,
    *,
    submitter: str,
    min_delay: timedelta = DEFAULT_MIN_DELAY,
    max_delay: timedelta = DEFAULT_MAX_DELAY,
) -> datetime:
    """The time to send ``window``'s reports: a jittered delay after it ends (RFC 8460 §4.1).

    Raises:
        UsageError: ``max_delay`` is shorter than ``min_delay``.
    """
    if max_delay < min_delay or min_delay < timedelta(0):
        raise UsageError("need 0 <= min_delay <= max_delay")
    seed = hashlib.sha256(f"{submitter}|{window.start.isoformat()}".encode()).digest()
    fraction = int.from_bytes(seed[:8], "big") / 2**64
    return window.end + min_delay + (max_delay - min_delay) * fraction


def plan_due_windows(
    windows: Iterable[ReportWindow],
    *,
    now: datetime,
    submitter: str,
    min_delay: timedelta = DEFAULT_MIN_DELAY,
    max_delay: timedelta = DEFAULT_MAX_DELAY,
) -> tuple[tuple[ReportWindow, ...], datetime | None]:
    """Which windows are due now, and when the next one falls due (RFC 8460 §4.1).

    Returns:
        The closed windows whose send time has come (oldest first), and the
        earliest send time still ahead (``None`` when none is).
    """
    due = []
    upcoming: datetime | None = None
    for window in sorted(windows, key=lambda w: w.start):
        at = plan_send_time(window, submitter=submitter, min_delay=min_delay, max_delay=max_delay)
        if at <= now:
            due.append(window)
        elif upcoming is None or at < upcoming:
            upcoming = at
    return tuple(due), upcoming
