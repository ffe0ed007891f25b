"""The one normaliser for domain and host names, and the one wildcard matcher.

Every domain, MX host, MTA-STS ``mx`` pattern and certificate DNS-ID passes
through :func:`normalize_host` once; all comparisons are then plain string
equality on lower-case A-labels (RFC 8461 §4.1, RFC 6125 §6.4.1).

Rules applied, in order:

* one trailing dot (the root) is removed; a second is an empty label;
* an all-ASCII LDH name without ``xn--`` labels takes a fast path (no call
  into :mod:`idna`): lower-cased and checked for label syntax (RFC 1123 §2.1);
* anything else goes through UTS-46 mapping and IDNA 2008 (RFC 5891) to
  A-labels; ``xn--`` labels are checked to decode to valid U-labels;
* labels are 1–63 octets and the name at most 253 octets in presentation form
  (255 on the wire, RFC 1035 §2.3.4);
* IP literals (``[192.0.2.1]``, ``192.0.2.1``, ``2001:db8::1``) and names whose
  top-level label is all digits are not host names (RFC 3696 §2).
"""

from __future__ import annotations

import re
from functools import lru_cache

import idna

from mtasecure.errors import NameSyntaxError, excerpt

__all__ = [
    "MAX_LABEL_LENGTH",
    "MAX_NAME_LENGTH",
    "match_wildcard",
    "normalize_host",
    "normalize_pattern",
]

MAX_LABEL_LENGTH = 63
"""Longest label, in octets (RFC 1035 §2.3.4)."""
MAX_NAME_LENGTH = 253
"""Longest name in presentation form without the trailing dot (RFC 1035 §2.3.4)."""

_RULE = "RFC 1123 §2.1, RFC 5891 §4"
_LDH_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)
_LDH_CHARS = re.compile(r"[a-z0-9.-]+", re.ASCII)
# Letters, digits and hyphens in labels of 1 to 63 characters, one optional
# trailing dot. Possessive quantifiers: a failed match gives nothing back, so
# the engine never retries shorter labels.
_QUICK_LDH = re.compile(r"[A-Za-z0-9-]{1,63}+(?:\.[A-Za-z0-9-]{1,63}+)*+\.?", re.ASCII).fullmatch


def normalize_host(name: str) -> str:
    """Return ``name`` as lower-case A-labels without a trailing dot (RFC 5890 §2.3.2.1, RFC 5891 §5).

    Args:
        name: a domain or host name, in A-labels, U-labels or mixed case, with
            or without one trailing dot.

    Returns:
        The canonical form used for every comparison in mtasecure.

    Raises:
        NameSyntaxError: ``name`` is not a host name (empty labels, bad
            characters, over-long labels or names, IP literals, invalid IDNs).
    """
    # The quick test below accepts a strict subset of what _normalize_general
    # accepts, and returns what it would return; everything else (and every
    # error) comes from _normalize_general. The regular expression checks only
    # the characters and the label lengths (1-63); the plain string tests after
    # it do the rest, because each is cheaper than the same rule in the pattern:
    # no label starts or ends with "-", the top-level label ends in a letter (so
    # it is not all digits), no "xn--" label (that needs the IDNA checks), and
    # the name is at most MAX_NAME_LENGTH octets. tests/test_perf_equivalence.py
    # holds the two paths to the same answers.
    if type(name) is str and _QUICK_LDH(name) is not None:
        host = name.lower()
        if host[-1] == ".":
            host = host[:-1]
        if (
            host[-1] >= "a"
            and host[0] != "-"
            and len(host) <= MAX_NAME_LENGTH
            and "-." not in host
            and ".-" not in host
            and "xn--" not in host
        ):
            return host
    return _normalize_general(name)


def _normalize_general(name: str) -> str:
    """:func:`normalize_host` without its quick path: every rule, every message."""
    if not isinstance(name, str):
        raise NameSyntaxError(f"expected a str, got {type(name).__name__}", rule=_RULE)
    if name.endswith("."):
        name = name[:-1]
    host = name.lower()
    # The fast path: letters, digits, hyphens and dots, every label 1-63
    # characters without a hyphen at either end, no "xn--" (RFC 1123 §2.1).
    # Plain string tests, as they cost less than one structured regex.
    if not (
        name.isascii()
        and _LDH_CHARS.fullmatch(host) is not None
        and "xn--" not in host
        and ".." not in host
        and ".-" not in host
        and "-." not in host
        and host[0] not in ".-"
        and host[-1] not in ".-"
        and (len(host) <= MAX_LABEL_LENGTH or max(map(len, host.split("."))) <= MAX_LABEL_LENGTH)
    ):
        host = _normalize_slow(name)
    if len(host) > MAX_NAME_LENGTH:
        raise NameSyntaxError(
            f"name is {len(host)} octets long, more than {MAX_NAME_LENGTH}",
            where=repr(excerpt(name, 80)),
            rule="RFC 1035 §2.3.4",
        )
    if host[host.rfind(".") + 1 :].isdigit():  # host is ASCII here: digits are 0-9
        raise NameSyntaxError(
            "an IP address or all-numeric top-level label is not a host name",
            where=repr(excerpt(name, 80)),
            rule="RFC 3696 §2",
        )
    return host


def normalize_pattern(pattern: str) -> str:
    """Normalise an MX pattern or certificate DNS-ID that may start with ``*.``.

    A ``*`` is allowed only as the whole left-most label (RFC 8461 §4.1,
    RFC 6125 §6.4.3); the rest is normalised with :func:`normalize_host`.

    Raises:
        NameSyntaxError: the ``*`` stands anywhere else, or the rest is not a
            host name.
    """
    if pattern.startswith("*."):
        rest = normalize_host(pattern[2:])
        if "." not in rest:
            raise NameSyntaxError(
                "a wildcard must stand above at least two labels",
                where=repr(excerpt(pattern, 80)),
                rule="RFC 6125 §7.2",
            )
        return "*." + rest
    if "*" in pattern:
        raise NameSyntaxError(
            "'*' is allowed only as the whole left-most label",
            where=repr(excerpt(pattern, 80)),
            rule="RFC 8461 §4.1",
        )
    return normalize_host(pattern)


def match_wildcard(pattern: str, host: str) -> bool:
    """Whether a normalised ``pattern`` covers a normalised ``host``.

    ``*.example.com`` covers exactly one extra left-most label:
    ``mx.example.com`` but neither ``example.com`` nor ``a.b.example.com``
    (RFC 8461 §4.1, RFC 6125 §6.4.3). Without a wildcard the names must be
    equal. Both arguments must already be in the form returned by
    :func:`normalize_pattern` and :func:`normalize_host`.
    """
    if pattern.startswith("*."):
        first, dot, rest = host.partition(".")
        return bool(dot) and bool(first) and rest == pattern[2:]
    return pattern == host


@lru_cache(maxsize=4096)
def _normalize_slow(name: str) -> str:
    if not name:
        raise NameSyntaxError("empty name", rule=_RULE)
    if name.startswith("[") or ":" in name:
        raise NameSyntaxError(
            "an address literal is not a host name",
            where=repr(excerpt(name, 80)),
            rule="RFC 5321 §4.1.3",
        )
    labels = name.split(".")
    for index, label in enumerate(labels):
        if not label:
            raise NameSyntaxError(
                "empty label", where=f"label {index + 1} of {excerpt(name, 80)!r}", rule=_RULE
            )
    try:
        encoded = idna.encode(name, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError) as exc:
        raise NameSyntaxError(
            f"not a valid internationalised host name: {exc}",
            where=repr(excerpt(name, 80)),
            rule="RFC 5891 §4",
        ) from exc
    for label in encoded.split("."):
        if not _LDH_LABEL.fullmatch(label):
            raise NameSyntaxError(
                f"label {excerpt(label, 80)!r} is not letters, digits and inner hyphens",
                where=repr(excerpt(name, 80)),
                rule=_RULE,
            )
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except (idna.IDNAError, UnicodeError, ValueError) as exc:
                raise NameSyntaxError(
                    f"label {label!r} is not a valid A-label: {exc}",
                    where=repr(excerpt(name, 80)),
                    rule="RFC 5891 §5.4",
                ) from exc
    return encoded
