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
from typing import TypeVar

from mtasecure._names import match_wildcard, normalize_host, normalize_pattern
from mtasecure.errors import NameSyntaxError

__all__ = [
    "INDEX_CACHE_SIZE",
    "NAME_CACHE_SIZE",
    "PatternIndex",
    "cached_host",
    "cached_pattern",
    "match_mx",
    "pattern_index",
]

NAME_CACHE_SIZE = 8192
"""How many distinct names each memo keeps before it starts afresh."""

INDEX_CACHE_SIZE = 256
"""How many policies' pattern indexes are kept before the memo starts afresh.

Smaller than :data:`NAME_CACHE_SIZE`: an index holds its policy's patterns
alive, and a policy may have up to ``MAX_MX_PATTERNS`` of them.
"""

_K = TypeVar("_K")
_V = TypeVar("_V")
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

    How it stays cheap without skipping a check. The answer is ``True`` only
    when both names are valid *and* their normal forms match. For an ASCII
    name, the normal form is the name lower-cased with one trailing dot
    removed, or there is none (the name is invalid): ASCII needs no IDNA
    mapping beyond case, and every rule of :func:`normalize_host` only
    accepts or rejects. So when each side is ASCII or already in the memo
    (whose forms are normal forms):

    * if the lower-cased, dot-stripped strings do not match, the normal forms
      could not match either, and the answer is ``False`` whether or not the
      names are valid: nothing needs validating;
    * if they match, the host is validated in full. A wildcard pattern's
      suffix is then the host minus its first label; when the host holds no
      ``xn--`` label, every rule the suffix must meet (LDH labels of 1-63
      octets, total length, a top-level label that is not all digits) follows
      from the host meeting it, so only the pattern's own rule is left to
      check (a ``*`` must stand above at least two labels). With an ``xn--``
      label, or a non-ASCII side not in the memo, both names go through the
      full normalisers.

    Validated names go into the memos, so the next call with the same names
    costs two dictionary look-ups.
    """
    try:
        normal_pattern = _PATTERNS.get(pattern)
        normal_host = _HOSTS.get(host)
    except TypeError:  # unhashable: not a name
        return False
    if normal_pattern is not None and normal_host is not None:
        return match_wildcard(normal_pattern, normal_host)
    # The "quick form" of each side: its normal form when the memo has it,
    # else for ASCII the lower-cased name without one trailing dot, which is
    # its normal form if it has one (see above).
    quick_pattern = normal_pattern
    if quick_pattern is None and type(pattern) is str and pattern.isascii():
        quick_pattern = pattern.lower()
        if quick_pattern[-1:] == ".":
            quick_pattern = quick_pattern[:-1]
    quick_host = normal_host
    if quick_host is None and type(host) is str and host.isascii():
        quick_host = host.lower()
        if quick_host[-1:] == ".":
            quick_host = quick_host[:-1]
    if quick_pattern is not None and quick_host is not None:
        if quick_pattern[:2] == "*.":  # match_wildcard, inlined
            first, _, rest = quick_host.partition(".")
            if not (first and rest == quick_pattern[2:]):
                return False
        elif quick_pattern != quick_host:
            return False
        if "xn--" not in quick_host:
            try:
                normal_host = cached_host(host)
            except NameSyntaxError:
                return False
            if quick_pattern[:2] == "*." and "." not in quick_pattern[2:]:
                return False  # RFC 6125 §7.2, as normalize_pattern says
            if normal_pattern is None:
                _remember(_PATTERNS, pattern, quick_pattern)
            return match_wildcard(quick_pattern, normal_host)
    try:
        normal_pattern = cached_pattern(pattern)
        normal_host = cached_host(host)
    except (NameSyntaxError, AttributeError, TypeError):
        return False
    return match_wildcard(normal_pattern, normal_host)


class PatternIndex:
    """A policy's ``mx`` patterns, split for constant-time look-ups.

    Attributes:
        patterns: the normalised patterns the index was built from.
        exact: the patterns without a wildcard.
        parents: for each ``*.name`` pattern, ``name``.
    """

    __slots__ = ("exact", "parents", "patterns")

    def __init__(self, patterns: tuple[str, ...]) -> None:
        self.patterns = patterns
        self.exact = frozenset(p for p in patterns if not p.startswith("*."))
        self.parents = frozenset(p[2:] for p in patterns if p.startswith("*."))

    def covers(self, host: object) -> bool:
        """Whether a pattern covers ``host`` (any object; non-names are covered by nothing).

        Equal to ``any(match_wildcard(p, normalize_host(host)) for p in
        patterns)``, ``False`` when ``host`` is not a host name. A normalised
        host is covered by an exact pattern when it is in :attr:`exact`, and
        by ``*.name`` when what follows its first label is ``name`` (its first
        label is never empty). The same reasoning as :func:`match_mx` lets an
        ASCII host that cannot be covered be answered without validation.
        """
        try:
            name = _HOSTS.get(host)  # type: ignore[call-overload]
        except TypeError:
            return False
        if name is None:
            if type(host) is str and host.isascii():
                low = host.lower()
                if low[-1:] == ".":
                    low = low[:-1]
                if low not in self.exact and low.partition(".")[2] not in self.parents:
                    return False  # no normal form of host could be covered
            try:
                name = cached_host(host)  # type: ignore[arg-type]
            except NameSyntaxError:
                return False
        return name in self.exact or name.partition(".")[2] in self.parents


_INDEXES: dict[int, PatternIndex] = {}


def pattern_index(patterns: tuple[str, ...]) -> PatternIndex:
    """The :class:`PatternIndex` of a tuple of normalised patterns, memoised by identity."""
    index = _INDEXES.get(id(patterns))
    if index is None or index.patterns is not patterns:
        index = PatternIndex(patterns)
        _remember(_INDEXES, id(patterns), index, INDEX_CACHE_SIZE)
    return index


def _remember(memo: dict[_K, _V], key: _K, value: _V, size: int = NAME_CACHE_SIZE) -> None:
    if len(memo) >= size:
        memo.clear()
    memo[key] = value
