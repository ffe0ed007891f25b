"""The in-memory, bounded :class:`~mtasecure.transport.PolicyCache` (the default).

Entries live in an ordered dict kept in least-recently-used order; when it is
full, the least recently used entry is evicted. Nothing survives a restart;
use the SQLite store for that.
"""

from __future__ import annotations

from collections import OrderedDict

from mtasecure.errors import UsageError
from mtasecure.sts._cache import CachedPolicy

__all__ = ["DEFAULT_MAX_ENTRIES", "MemoryPolicyCache"]

DEFAULT_MAX_ENTRIES = 100_000
"""Most policies a :class:`MemoryPolicyCache` holds before it evicts (about 1 KiB each)."""


class MemoryPolicyCache:
    """A :class:`~mtasecure.transport.PolicyCache` in a bounded LRU dict.

    Args:
        max_entries: most entries kept; the least recently used goes first.

    Raises:
        UsageError: ``max_entries`` is less than 1.
    """

    def __init__(self, *, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise UsageError(f"max_entries must be at least 1, not {max_entries}")
        self.max_entries = max_entries
        self._entries: OrderedDict[str, CachedPolicy] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def peek(self, domain: str) -> CachedPolicy | None:
        """The entry for ``domain`` without awaiting (the client's fast path); marks it used."""
        entry = self._entries.get(domain)
        if entry is not None:
            self._entries.move_to_end(domain)
        return entry

    def store(self, entry: CachedPolicy) -> None:
        """Store ``entry`` without awaiting, evicting the least recently used if full."""
        entries = self._entries
        entries[entry.domain] = entry
        entries.move_to_end(entry.domain)
        while len(entries) > self.max_entries:
            entries.popitem(last=False)

    def discard(self, domain: str) -> bool:
        """Remove ``domain`` without awaiting; whether it was there."""
        return self._entries.pop(domain, None) is not None

    async def get(self, domain: str) -> CachedPolicy | None:
        """The entry for ``domain``, or ``None``."""
        return self.peek(domain)

    async def put(self, entry: CachedPolicy) -> None:
        """Store ``entry`` under ``entry.domain``."""
        self.store(entry)

    async def delete(self, domain: str) -> bool:
        """Remove the entry for ``domain``; whether there was one."""
        return self.discard(domain)

    async def entries(self) -> tuple[CachedPolicy, ...]:
        """Every entry, least recently used first."""
        return tuple(self._entries.values())

    async def aclose(self) -> None:
        """Nothing to release."""
