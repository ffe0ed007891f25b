"""MX host validation against policy patterns (RFC 8461 §4.1).

A pattern is a fully specified host name (``mail.example.com``) or a wildcard
suffix (``*.example.net``) whose ``*`` stands for exactly one left-most label:
``*.example.net`` covers ``mx.example.net`` but neither ``example.net`` nor
``a.b.example.net``. Both sides are compared as lower-case A-labels after
:mod:`mtasecure._names` normalised them; this module adds the "never raise on
a negative outcome" contract of ``match_*`` functions, and memoises
normalisation, since an MTA checks the same few MX names over and over.
"""

from __future__ import annotations

from collections.abc import Callable

from mtasecure._names import match_wildcard, normalize_host, normalize_pattern
from mtasecure.errors import NameSyntaxError

__all__ = ["NAME_CACHE_SIZE", "cached_host", "cached_pattern", "match_mx"]

NAME_CACHE_SIZE = 8192
"""How many distinct names each memo keeps before it starts afresh."""

_HOSTS: dict[str, str] = {}
_PATTERNS: dict[str, str] = {}


def _memo(normalize: Callable[[str], str], memo: dict[str, str]) -> Callable[[str], str]:
    get = memo.get

    def cached(name: str) -> str:
        found = get(name)
        if found is None:
            found = normalize(name)  # errors are raised, never stored
            if len(memo) >= NAME_CACHE_SIZE:
                memo.clear()
            memo[name] = found
        return found

    cached.__doc__ = f"{normalize.__name__}, memoised (at most {NAME_CACHE_SIZE} names)."
    return cached


cached_host = _memo(normalize_host, _HOSTS)
cached_pattern = _memo(normalize_pattern, _PATTERNS)


def match_mx(pattern: str, host: str) -> bool:
    """Whether an ``mx`` pattern of a policy covers an MX host (RFC 8461 §4.1).

    Args:
        pattern: a policy ``mx`` value, ``name`` or ``*.name``, in any case,
            with or without a trailing dot.
        host: the MX host name as found in the MX record.

    Returns:
        ``True`` when the pattern covers the host. ``False`` otherwise —
        including when either side is not a host name (an IP literal, an empty
        label, a misplaced ``*``): such a pattern covers nothing, and such a
        host is covered by nothing. It never raises on these inputs.
    """
    normal_pattern = _PATTERNS.get(pattern)
    normal_host = _HOSTS.get(host)
    if normal_pattern is None or normal_host is None:
        try:
            normal_pattern = cached_pattern(pattern)
            normal_host = cached_host(host)
        except (NameSyntaxError, AttributeError, TypeError):
            return False
    return match_wildcard(normal_pattern, normal_host)
