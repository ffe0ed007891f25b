"""Public fakes for tests (ARCHITECTURE.md, "testing.py")."""

from __future__ import annotations

from mtasecure._fakesmtp import FakeSmtp as FakeSmtp  # noqa: PLC0414 - re-export (issue 5)
