"""The ``k=v; k=v`` grammar shared by ``_mta-sts`` and ``_smtp._tls`` records.

Both records (RFC 8461 §3.1, RFC 8460 §3) have the same shape::

    record    = version 1*(sep field) [sep]
    version   = %s"v=" <literal>            ; case-sensitive, first
    sep       = *WSP %x3B *WSP              ; WSP = SP / HTAB
    field     = name "=" value
    ext-name  = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
    ext-value = 1*(%x21-3A / %x3C / %x3E-7E) ; no ';', no '=', no space

Each record then gives some fields a stricter value grammar of its own (``id``
for MTA-STS, ``rua`` for TLS-RPT); this module only splits and checks the
generic shape and leaves the per-field rules to the caller.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TypeVar

from mtasecure._names import MAX_NAME_LENGTH, normalize_host
from mtasecure.errors import NameSyntaxError, RecordSyntaxError, excerpt

__all__ = [
    "EXT_NAME",
    "EXT_VALUE",
    "MAX_RECORD_LENGTH",
    "one_field_record",
    "record_owner",
    "select_one_record",
    "split_record",
]

_R = TypeVar("_R")

MAX_RECORD_LENGTH = 8192
"""Longest record text accepted, in characters; far above any real record."""

EXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}", re.ASCII)
"""An extension name (RFC 8461 §3.1 ``sts-ext-name``, RFC 8460 §3 ``tlsrpt-ext-name``)."""
EXT_VALUE = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+", re.ASCII)
"""An extension value (RFC 8461 §3.1 ``sts-ext-value``, RFC 8460 §3 ``tlsrpt-ext-value``)."""
_SEP = r"[ \t]*;[ \t]*"  # sep = *WSP ";" *WSP


def one_field_record(version: str, field: str) -> re.Pattern[str]:
    """The usual record shape, ``version; field`` and an optional separator, as one pattern.

    The shape is RFC 8461 §3.1's and RFC 8460 §3's record grammar with one field.

    For a parser's fast path: a record this pattern fully matches is one that
    :func:`split_record` would cut into exactly one field, the ``field`` part
    (with any groups it defines), so the parser can take the value from the
    match and skip the general split. It matches a strict subset of what
    :func:`split_record` accepts; the caller still checks the length limit
    and falls back to :func:`split_record` (and its error messages) for
    anything the pattern does not match.

    Args:
        version: the exact version field, e.g. ``"v=STSv1"``.
        field: a regular expression for the one field, e.g.
            ``"id=(?P<id>[A-Za-z0-9]{1,32})"``; it must not match ``;``, a
            leading or trailing space or tab, or nothing.
    """
    return re.compile(rf"{re.escape(version)}{_SEP}{field}(?:{_SEP})?", re.ASCII)


def split_record(text: str, version: str, *, rule: str) -> list[tuple[str, str]]:
    """Split a record into its ``(name, value)`` fields after the version.

    Args:
        text: the whole TXT record, its character-strings already joined.
        version: the exact version field, e.g. ``"v=STSv1"``.
        rule: the RFC section to cite in errors.

    Returns:
        The fields after the version, in order, duplicates included.

    Raises:
        RecordSyntaxError: the text does not start with ``version``, a
            separator is malformed, a field has no ``=``, or there is no field
            after the version.
    """
    if len(text) > MAX_RECORD_LENGTH:
        raise RecordSyntaxError(
            f"record is {len(text)} characters long, more than {MAX_RECORD_LENGTH}", rule=rule
        )
    # Equivalent to splitting on the sep regex, but str.split plus strips run
    # in C: the part before each ";" loses trailing WSP, the part after it
    # loses leading WSP, and nothing else is touched.
    parts = text.split(";")
    last = len(parts) - 1
    if (parts[0].rstrip(" \t") if last else parts[0]) != version:
        raise RecordSyntaxError(f"record must start with {version!r}", where="field 1", rule=rule)
    tail = parts[last].lstrip(" \t")
    body = [part.strip(" \t") for part in parts[1:last]]
    if last and tail:  # an empty tail is the optional trailing separator
        body.append(tail)
    fields: list[tuple[str, str]] = []
    for index, part in enumerate(body, 2):
        name, eq, value = part.partition("=")
        if not eq or not name:
            raise RecordSyntaxError(
                f"{excerpt(part)!r} is not of the form name=value",
                where=f"field {index}",
                rule=rule,
            )
        fields.append((name, value))
    if not fields:
        raise RecordSyntaxError(f"no field after {version!r}", rule=rule)
    return fields


def record_owner(prefix: str, domain: str) -> str:
    """The owner name ``<prefix>.<domain>`` of a domain's record (RFC 8461 §3.1, RFC 8460 §3).

    ``_mta-sts`` and ``_smtp._tls`` are not LDH labels, so the whole name
    cannot go through :func:`~mtasecure._names.normalize_host`; the domain
    does, and the length of the whole name is checked here (RFC 1035 §2.3.4).

    Args:
        prefix: the underscore labels, e.g. ``"_mta-sts"``.
        domain: the policy domain, in any form ``normalize_host`` accepts.

    Raises:
        NameSyntaxError: ``domain`` is not a host name, or the whole name is
            longer than :data:`~mtasecure._names.MAX_NAME_LENGTH`.
    """
    name = f"{prefix}.{normalize_host(domain)}"
    if len(name) > MAX_NAME_LENGTH:
        raise NameSyntaxError(
            f"{excerpt(name, 40)!r} is longer than {MAX_NAME_LENGTH} octets",
            rule="RFC 1035 §2.3.4",
        )
    return name


def select_one_record(texts: Iterable[str], version: str, parse: Callable[[str], _R]) -> _R | None:
    """The one record among a name's TXT strings, or ``None`` (RFC 8461 §3.1, RFC 8460 §3).

    Both RFCs: strings that do not begin with the version and a separator
    (``v=STSv1;``, ``v=TLSRPTv1;``; spaces or tabs may precede the ``;``) are
    discarded; if the number left is not exactly one, or the one left does not
    parse, the domain publishes no record.

    Args:
        texts: every TXT record found, each with its strings already joined.
        version: the exact version field, e.g. ``"v=STSv1"``.
        parse: the record's parser (raises :class:`RecordSyntaxError`).
    """
    keep = _version_then_sep(version)
    kept = [text for text in texts if isinstance(text, str) and keep(text)]
    if len(kept) != 1:
        return None
    try:
        return parse(kept[0])
    except RecordSyntaxError:
        return None


_KEEPERS: dict[str, Callable[[str], re.Match[str] | None]] = {}


def _version_then_sep(version: str) -> Callable[[str], re.Match[str] | None]:
    keep = _KEEPERS.get(version)
    if keep is None:
        keep = _KEEPERS[version] = re.compile(rf"{re.escape(version)}[ \t]*;", re.ASCII).match
    return keep
