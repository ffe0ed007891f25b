"""The ``_mta-sts`` TXT record (RFC 8461 §3.1).

Grammar (RFC 8461 §3.1, ABNF with RFC 7405 case-sensitive strings)::

    sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim]
    sts-field       = sts-id / sts-extension       ; sts-id is required
    sts-field-delim = *WSP ";" *WSP
    sts-version     = %s"v=STSv1"
    sts-id          = %s"id=" 1*32(ALPHA / DIGIT)
    sts-extension   = sts-ext-name "=" sts-ext-value

Decisions where the RFC leaves room:

* The record MUST be US-ASCII: any other character makes it invalid.
* Field names are case-sensitive (``%s"id="``): ``ID=1`` is an extension
  named ``ID``, and the record then lacks its ``id``.
* A repeated field — ``id``, ``v`` or an extension — keeps its first value and
  the rest are ignored, as RFC 8461 §3.2 requires of every non-repeated field
  of "TXT records and policy files". A later, ignored ``id`` need only be a
  well-formed extension (``name=value``); the first must be a valid ``sts-id``.
  Every field must fit the grammar even when its value is then ignored.
* :func:`select_record` keeps the strings that begin with ``v=STSv1`` followed
  by ``;`` (optionally after spaces or tabs, the grammar's ``sts-field-delim``)
  and discards the rest, as §3.1 says.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

from mtasecure._tagvalue import (
    EXT_NAME,
    EXT_VALUE,
    MAX_RECORD_LENGTH,
    one_field_record,
    record_owner,
    select_one_record,
    split_record,
)
from mtasecure.errors import RecordSyntaxError, UsageError, excerpt
from mtasecure.sts._fast import new, set_extra, set_fields_set, set_private

__all__ = [
    "MAX_ID_LENGTH",
    "RECORD_VERSION",
    "StsRecord",
    "parse_record",
    "record_name",
    "render_record",
    "select_record",
]

RECORD_VERSION = "v=STSv1"
"""The version field every ``_mta-sts`` record starts with (RFC 8461 §3.1)."""
MAX_ID_LENGTH = 32
"""Longest ``id`` value: ``1*32(ALPHA / DIGIT)`` (RFC 8461 §3.1)."""

_RULE = "RFC 8461 §3.1"
_ID = re.compile(r"[A-Za-z0-9]{1,32}", re.ASCII)
_ext_name = EXT_NAME.fullmatch
_ext_value = EXT_VALUE.fullmatch
_id_match = _ID.fullmatch
_usual = one_field_record(RECORD_VERSION, r"id=([A-Za-z0-9]{1,32})").fullmatch


class StsRecord(BaseModel):
    """A parsed ``_mta-sts`` TXT record (RFC 8461 §3.1).

    Attributes:
        id: the policy instance identifier, 1 to 32 ASCII letters and digits,
            compared case-sensitively with the id of a cached policy.
        extensions: the other fields, ``(name, value)`` in record order, first
            occurrence of each name only.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    extensions: tuple[tuple[str, str], ...] = ()


def parse_record(text: str) -> StsRecord:
    """Parse one ``_mta-sts`` TXT record (RFC 8461 §3.1).

    Args:
        text: the record's character-strings, already concatenated without
            spaces (RFC 8461 §3.1: a multi-string record "MUST be treated as if
            those strings are concatenated without adding spaces").

    Returns:
        The record's ``id`` and extensions.

    Raises:
        RecordSyntaxError: the text is not US-ASCII, does not start with
            ``v=STSv1``, has a malformed field, or has no valid ``id``.
    """
    if type(text) is str and len(text) <= MAX_RECORD_LENGTH:
        # The usual record, "v=STSv1; id=...;", takes one regular expression;
        # _USUAL accepts only records the general path below reads as exactly
        # this id and no extension (tests/test_perf_equivalence.py).
        match = _usual(text)
        if match is not None:
            return _record(match[1], ())
    if not isinstance(text, str):
        raise RecordSyntaxError(f"expected a str, got {type(text).__name__}", rule=_RULE)
    if not text.isascii():
        raise RecordSyntaxError("record MUST be US-ASCII", rule=_RULE)
    record_id: str | None = None
    extensions: dict[str, str] = {}
    for name, value in split_record(text, RECORD_VERSION, rule=_RULE):
        if name == "id" and record_id is None:
            # 1*32(ALPHA / DIGIT); the text is known to be ASCII, so isalnum is exact
            if not value.isalnum() or len(value) > MAX_ID_LENGTH:
                raise RecordSyntaxError(
                    f"id {excerpt(value, 40)!r} is not 1 to 32 letters and digits",
                    where="field 'id'",
                    rule=_RULE,
                )
            record_id = value
        else:
            # Every other field, a repeated id included, must still be a
            # well-formed sts-extension; only its value is then ignored.
            if _ext_name(name) is None:
                raise RecordSyntaxError(
                    f"field name {excerpt(name, 40)!r} is not a valid extension name",
                    where=f"field {name!r}",
                    rule=_RULE,
                )
            if _ext_value(value) is None:
                raise RecordSyntaxError(
                    "value is empty or holds a character outside %x21-3A / %x3C / %x3E-7E",
                    where=f"field {name!r}",
                    rule=_RULE,
                )
            extensions.setdefault(name, value)
    if record_id is None:
        raise RecordSyntaxError("record has no id field", rule=_RULE)
    if extensions:
        # A repeated version or id field is ignored, like any repeat (RFC 8461 §3.2).
        extensions.pop("v", None)
        extensions.pop("id", None)
    return _record(record_id, tuple(extensions.items()) if extensions else ())


def _record(record_id: str, extensions: tuple[tuple[str, str], ...]) -> StsRecord:
    record: StsRecord = new(StsRecord)  # every field was validated by the caller
    state = record.__dict__
    state["id"] = record_id
    state["extensions"] = extensions
    set_fields_set(record, {"id", "extensions"})
    set_extra(record, None)
    set_private(record, None)
    return record


def select_record(texts: Iterable[str]) -> StsRecord | None:
    """Apply the RFC 8461 §3.1 selection rule to every TXT string at ``_mta-sts.<domain>``.

    Records that do not begin with ``v=STSv1;`` are discarded. If the number
    left is not exactly one, or the one left is invalid, the domain has no
    available MTA-STS policy and the result is ``None``. (A ``None`` never
    removes a cached policy on its own: RFC 8461 §5.1.)

    Args:
        texts: each TXT record found, its strings already concatenated.

    Returns:
        The one valid record, or ``None``.
    """
    return select_one_record(texts, RECORD_VERSION, parse_record)


def render_record(record_id: str, extensions: Iterable[tuple[str, str]] = ()) -> str:
    """Render a ``_mta-sts`` TXT record value (RFC 8461 §3.1).

    Args:
        record_id: 1 to 32 ASCII letters and digits.
        extensions: extra ``(name, value)`` fields, rendered in order.

    Returns:
        ``"v=STSv1; id=<id>;"`` followed by any extensions, ready to publish
        as one TXT character-string.

    Raises:
        UsageError: the id or an extension does not fit the grammar.
    """
    if _id_match(record_id) is None:
        raise UsageError(f"id {record_id!r} is not 1 to 32 letters and digits ({_RULE})")
    parts = [RECORD_VERSION, f"id={record_id}"]
    for name, value in extensions:
        if _ext_name(name) is None or name in {"v", "id"} or _ext_value(value) is None:
            raise UsageError(f"extension {name!r}={value!r} does not fit the grammar ({_RULE})")
        parts.append(f"{name}={value}")
    return "; ".join(parts) + ";"


def record_name(domain: str) -> str:
    """The owner name of a domain's ``_mta-sts`` TXT record (RFC 8461 §3.1).

    Raises:
        NameSyntaxError: ``domain`` is not a host name.
    """
    return record_owner("_mta-sts", domain)
