"""Fixtures shared by the integration tests (each defined in its own harness module)."""

from __future__ import annotations

from tests.integration.dnsworld import dnsworld

__all__ = ["dnsworld"]
