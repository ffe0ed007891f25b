"""The ``_smtp._tls`` TXT record that asks for TLS reports (RFC 8460 §3).

Grammar (RFC 8460 §3, with RFC 5234 and RFC 7405; ``%s`` is case-sensitive)::

    tlsrpt-record    = tlsrpt-version 1*(field-delim tlsrpt-field) [field-delim]
    field-delim      = *WSP ";" *WSP
    tlsrpt-field     = tlsrpt-rua / tlsrpt-extension   ; rua is required
    tlsrpt-version   = %s"v=TLSRPTv1"
    tlsrpt-rua       = %s"rua=" tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)
    tlsrpt-uri       = URI            ; RFC 3986; ",", "!" and ";" MUST be encoded
    tlsrpt-extension = tlsrpt-ext-name "=" tlsrpt-ext-value

What this module decides where the RFC is silent, the way a sender that wants
its reports delivered and cannot be steered into abuse would:

* **Syntax is enforced, usability is reported.** A ``rua`` value that is not
  an RFC 3986 URI, or that holds an unencoded ``,``, ``!`` or ``;``, breaks
  the grammar: :class:`~mtasecure.errors.RecordSyntaxError`. A URI that *is*
  one but cannot be used (a scheme other than ``mailto`` and ``https``, a
  ``mailto`` without exactly one valid address, an ``https`` URI without a
  valid host name) keeps the record valid — RFC 8460 §3 says syntactically
  valid records MUST be accepted — and is listed in
  :attr:`TlsRptRecord.ignored_rua` with the reason.
* **A missing** ``rua`` **field** is a syntax error (the grammar's note: "the
  tlsrpt-rua record is required").
* **Several** ``rua`` **fields** are allowed by the grammar
  (``1*(field-delim tlsrpt-field)``), so their URIs are joined in order.
* **Repeated URIs** are kept once (a report is sent once per endpoint).
* **No usable URI** gives a valid record with ``rua == ()``: there is nowhere
  to send a report, which the caller sees; the reasons are in ``ignored_rua``.
* **At most** :data:`MAX_RUA_URIS` usable URIs are kept, in the published
  order; the rest are listed as ignored. RFC 8460 §3 defers to DMARC, whose
  RFC 7489 §6.2 lets a reporter cap the list and truncate it in order.
* URI schemes are compared without regard to case (RFC 3986 §3.1) and kept in
  lower case in :attr:`TlsRptRecord.rua`; the rest of each URI is kept exactly
  as published.
* A field named ``v`` after the first is, by the grammar, an extension.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict

from mtasecure._names import normalize_host
from mtasecure._tagvalue import (
    EXT_NAME,
    EXT_VALUE,
    one_field_record,
    record_owner,
    select_one_record,
    split_record,
)
from mtasecure.errors import NameSyntaxError, RecordSyntaxError, excerpt

__all__ = [
    "MAX_RECORD_LENGTH",
    "MAX_RUA_URIS",
    "MAX_URI_LENGTH",
    "SkippedRua",
    "TlsRptRecord",
    "parse_record",
    "record_name",
    "select_record",
]

VERSION = "v=TLSRPTv1"
"""The version field every TLS-RPT record starts with (RFC 8460 §3)."""

MAX_RECORD_LENGTH = 4096
"""Longest record accepted, in characters, after joining its strings.

Real records are well under 300 characters; this bounds the work a hostile
zone can ask of a parser.
"""

MAX_RUA_URIS = 10
"""Most usable ``rua`` URIs kept; later ones are ignored (RFC 7489 §6.2 via RFC 8460 §3)."""

MAX_URI_LENGTH = 2048
"""Longest single ``rua`` URI accepted, in characters."""

_RULE = "RFC 8460 §3"
_MAILTO_RULE = "RFC 8460 §3, RFC 6068 §2"
_HTTPS_RULE = "RFC 8460 §3, RFC 9110 §4.2.2"

# RFC 3986 §3 with RFC 8460 §3's extra rule: "!", "," and ";" (sub-delims) may
# appear only percent-encoded, so they are left out of every character class.
_PCT = r"%[0-9A-Fa-f]{2}"
_SAFE = r"A-Za-z0-9\-._~$&'()*+="  # unreserved + the sub-delims still allowed
_PCHAR = rf"(?:[{_SAFE}:@]|{_PCT})"
_URI = re.compile(
    rf"""
    (?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*):
    (?:
        //(?:(?P<userinfo>(?:[{_SAFE}:]|{_PCT})*)@)?
        (?P<host>\[(?:[0-9A-Fa-f:.]+|[vV][0-9A-Fa-f]+\.[{_SAFE}:]+)\]|(?:[{_SAFE}]|{_PCT})*)
        (?::(?P<port>[0-9]*))?
        (?P<abempty>(?:/{_PCHAR}*)*)
    |
        (?P<path>/?{_PCHAR}+(?:/{_PCHAR}*)*|/)?
    )
    (?:\?(?P<query>(?:{_PCHAR}|[/?])*))?
    (?:\#(?P<fragment>(?:{_PCHAR}|[/?])*))?
    """,
    re.VERBOSE | re.ASCII,
)
# The usual shapes, a strict subset of _URI plus the mailto and https rules:
# mailto:dot-atom@host and https://host[:port][/path of unreserved characters].
_SIMPLE_URI = (
    r"(?i:mailto):[A-Za-z0-9_+\-]+(?:\.[A-Za-z0-9_+\-]+)*@(?P<domain>[A-Za-z0-9.\-]+)"
    r"|(?i:https)://(?P<host>[A-Za-z0-9.\-]+)(?::(?P<port>[0-9]{1,5}))?(?:/[A-Za-z0-9._~\-]*)*"
)
_SIMPLE = re.compile(_SIMPLE_URI, re.ASCII)
# Records that split_record would cut into the version and one rua field:
# with a single URI of the usual shape, and with any value.
_ONE_SIMPLE = one_field_record(VERSION, rf"rua=(?P<uri>{_SIMPLE_URI})")
_RUA_ONLY = one_field_record(VERSION, r"rua=([^; \t]+)")
_URI_LIST_SEP = re.compile(r"[ \t]*,[ \t]*", re.ASCII)

# RFC 5322 §3.2.3 dot-atom-text, widened by RFC 6532 §3.2 to UTF-8 (an
# SMTPUTF8 local part, which RFC 6068 §2 carries percent-encoded).
_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff"
_DOT_ATOM = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*")
# RFC 5322 §3.2.4 quoted-string, without obsolete forms or folding.
_QUOTED = re.compile(r'"(?:[ \x21\x23-\x5b\x5d-\x7e\u0080-\U0010ffff]|\\[ -~])*"')
_HFIELD = re.compile(rf"(?:[{_SAFE}:@/?]|{_PCT})*", re.ASCII)


class SkippedRua(BaseModel):
    """A ``rua`` URI that is valid URI syntax but that no report can be sent to.

    Attributes:
        uri: the URI as published.
        reason: why it is ignored, with the rule (``"scheme 'ftp' is not
            mailto or https (RFC 8460 §3)"``).
    """

    model_config = ConfigDict(frozen=True)

    uri: str
    reason: str


class TlsRptRecord(BaseModel):
    """A parsed ``_smtp._tls`` TXT record (RFC 8460 §3).

    Attributes:
        rua: where aggregate reports go, in the published order: ``mailto:``
            and ``https:`` URIs only, each checked (one valid address; a valid
            host name), at most :data:`MAX_RUA_URIS`. Empty when the record
            names no usable endpoint.
        ignored_rua: the URIs left out of ``rua`` and why (another scheme, an
            unusable address or host, over the count limit).
        extensions: the other fields, ``(name, value)`` in order; RFC 8460 §3
            says unknown fields are ignored, so they change nothing here.
    """

    model_config = ConfigDict(frozen=True)

    rua: tuple[str, ...]
    ignored_rua: tuple[SkippedRua, ...] = ()
    extensions: tuple[tuple[str, str], ...] = ()


# Building a model through its validator skips BaseModel.__init__'s keyword
# handling: the same checks, about a third less time.
_validate = TlsRptRecord.__pydantic_validator__.validate_python


def record_name(domain: str) -> str:
    """The DNS name at which ``domain`` publishes its TLS-RPT record (RFC 8460 §3).

    Args:
        domain: the Policy Domain, in any form :func:`~mtasecure._names.normalize_host`
            accepts (U-labels, mixed case, a trailing dot).

    Returns:
        ``_smtp._tls.`` followed by the domain in lower-case A-labels.

    Raises:
        NameSyntaxError: ``domain`` is not a host name, or the whole name is
            longer than 253 octets (RFC 1035 §2.3.4).
    """
    return record_owner("_smtp._tls", domain)


def parse_record(text: str) -> TlsRptRecord:
    """Parse one ``_smtp._tls`` TXT record (RFC 8460 §3).

    Args:
        text: the record, its character-strings already joined without spaces
            (RFC 8460 §3, RFC 7208 §3.3).

    Returns:
        The record; see the module docstring for the cases the RFC leaves
        open.

    Raises:
        RecordSyntaxError: the text breaks the §3 grammar: it does not start
            with ``v=TLSRPTv1``, a field or URI is malformed, ``rua`` is
            missing, or a limit is exceeded; or it is not a ``str``.
    """
    if not isinstance(text, str):
        raise RecordSyntaxError(f"expected a str, got {type(text).__name__}", rule=_RULE)
    if len(text) <= MAX_RECORD_LENGTH:
        # The usual records first, with the same checks as the general path.
        match = _ONE_SIMPLE.fullmatch(text)
        if match is not None:
            uri = _usable_simple_uri(match, "uri")
            if uri is not None:
                return _validate({"rua": (uri,)})  # type: ignore[no-any-return]
        match = _RUA_ONLY.fullmatch(text)
        if match is not None:
            rua: list[str] = []
            ignored: list[SkippedRua] = []
            _parse_rua(match[1], 2, rua, ignored)
            return _validate({"rua": tuple(rua), "ignored_rua": tuple(ignored)})  # type: ignore[no-any-return]
    return _parse_record_fully(text)


def _parse_record_fully(text: str) -> TlsRptRecord:
    if len(text) > MAX_RECORD_LENGTH:
        raise RecordSyntaxError(
            f"record is {len(text)} characters long, more than {MAX_RECORD_LENGTH}", rule=_RULE
        )
    fields = split_record(text, VERSION, rule=_RULE)
    rua: list[str] = []
    ignored: list[SkippedRua] = []
    extensions: list[tuple[str, str]] = []
    seen_rua = False
    for index, (name, value) in enumerate(fields, start=2):
        if name == "rua":
            seen_rua = True
            _parse_rua(value, index, rua, ignored)
        elif EXT_NAME.fullmatch(name) is None:
            raise RecordSyntaxError(
                f"field name {excerpt(name)!r} is not letters, digits, '_', '-' and '.'"
                " of at most 32 characters",
                where=f"field {index}",
                rule=_RULE,
            )
        elif EXT_VALUE.fullmatch(value) is None:
            raise RecordSyntaxError(
                f"value of {name!r} must be printable ASCII without ' ', ';' or '='",
                where=f"field {index}",
                rule=_RULE,
            )
        else:
            extensions.append((name, value))
    if not seen_rua:
        raise RecordSyntaxError("the required 'rua' field is missing", rule=_RULE)
    return TlsRptRecord(rua=tuple(rua), ignored_rua=tuple(ignored), extensions=tuple(extensions))


def select_record(texts: Iterable[str]) -> TlsRptRecord | None:
    """Pick the TLS-RPT record out of every TXT record at ``_smtp._tls.<domain>``.

    RFC 8460 §3: records that do not begin with ``v=TLSRPTv1;`` are discarded
    (the ``;`` may be preceded by spaces or tabs, as the grammar's
    ``field-delim`` allows, so ``v=TLSRPTv10;`` and a bare ``v=TLSRPTv1`` are
    discarded); if the number left is not one, the domain does not implement
    TLS-RPT.

    Args:
        texts: every TXT record found, each with its strings already joined.

    Returns:
        The one record, or ``None`` when there is not exactly one or the one
        left does not parse — meaning "send no report".
    """
    return select_one_record(texts, VERSION, parse_record)


def check_rua_uri(uri: str, *, where: str = "rua URI") -> tuple[str, str | None]:
    """Judge one ``rua`` URI by the rule :func:`parse_record` applies (RFC 8460 §3).

    For a URI that did not come from a parsed record (the one rule for both;
    see the module docstring).

    Args:
        uri: one URI, exactly as published (no surrounding space).
        where: what an error message names as the URI's place.

    Returns:
        ``(uri with its scheme in lower case, None)`` when reports can be sent
        to it, or ``(uri, why not)`` when it is a URI that no report can be
        sent to (another scheme, no valid address or host).

    Raises:
        RecordSyntaxError: ``uri`` is not an RFC 3986 URI, holds an unencoded
            ``,``, ``!`` or ``;``, is empty or longer than :data:`MAX_URI_LENGTH`.
    """
    return _check_uri(uri, where)


def _parse_rua(value: str, index: int, rua: list[str], ignored: list[SkippedRua]) -> None:
    uris = _URI_LIST_SEP.split(value) if " " in value or "\t" in value else value.split(",")
    where = f"field {index} (rua)"
    for uri in uris:
        normal, reason = _check_uri(uri, where)
        if reason is not None:
            ignored.append(SkippedRua(uri=uri, reason=reason))
        elif normal in rua:
            continue
        elif len(rua) >= MAX_RUA_URIS:
            reason = f"more than {MAX_RUA_URIS} usable URIs; later ones are ignored (RFC 7489 §6.2)"
            ignored.append(SkippedRua(uri=uri, reason=reason))
        else:
            rua.append(normal)


def _check_uri(uri: str, where: str) -> tuple[str, str | None]:
    """``(uri with its scheme lower-cased, why it is unusable or None)``.

    The common shapes take a fast path: :data:`_SIMPLE` accepts only a strict
    subset of what :func:`_check_uri_fully` accepts, so when it matches and the
    host is a host name the full check would say the same; anything else, and
    every reason for skipping a URI, comes from the full check.
    """
    match = _SIMPLE.fullmatch(uri) if len(uri) <= MAX_URI_LENGTH else None
    if match is not None:
        normal = _usable_simple_uri(match, 0)
        if normal is not None:
            return normal, None
    return _check_uri_fully(uri, where)


def _usable_simple_uri(match: re.Match[str], group: int | str) -> str | None:
    """The URI a :data:`_SIMPLE_URI` match holds, scheme lower-cased, if it is usable."""
    uri = match[group]
    if len(uri) > MAX_URI_LENGTH:
        return None
    port = match["port"]
    if port and not 0 < int(port) <= 65535:
        return None
    try:
        normalize_host(match["host"] or match["domain"])
    except NameSyntaxError:
        return None
    scheme = "mailto" if match["host"] is None else "https"
    return scheme + uri[len(scheme) :]


def _check_uri_fully(uri: str, where: str) -> tuple[str, str | None]:
    if not uri:
        raise RecordSyntaxError("empty URI in the rua list", where=where, rule=_RULE)
    if len(uri) > MAX_URI_LENGTH:
        raise RecordSyntaxError(
            f"URI is {len(uri)} characters long, more than {MAX_URI_LENGTH}",
            where=where,
            rule=_RULE,
        )
    match = _URI.fullmatch(uri)
    if match is None:
        raise RecordSyntaxError(
            f"{excerpt(uri)!r} is not a URI, or holds an unencoded ',', '!' or ';'",
            where=where,
            rule="RFC 8460 §3, RFC 3986 §3",
        )
    scheme = match["scheme"].lower()
    if scheme == "mailto":
        reason = _mailto_problem(match)
    elif scheme == "https":
        reason = _https_problem(match)
    else:
        reason = f"scheme {scheme!r} is not mailto or https ({_RULE})"
    return scheme + uri[len(scheme) :], reason


def _mailto_problem(match: re.Match[str]) -> str | None:
    """Why a ``mailto:`` URI cannot receive reports, or ``None`` (RFC 6068 §2)."""
    if match["host"] is not None or match["fragment"] is not None:
        return f"a mailto URI has neither '//' nor '#' ({_MAILTO_RULE})"
    to = match["path"] or ""
    query = match["query"]
    if query is not None:
        for hfield in query.split("&"):
            name, eq, value = hfield.partition("=")
            if not eq or not _HFIELD.fullmatch(name) or not _HFIELD.fullmatch(value):
                return f"header field {excerpt(hfield)!r} is not name=value ({_MAILTO_RULE})"
    try:
        address = unquote(to, errors="strict")
    except UnicodeDecodeError:
        return f"the address is not UTF-8 once percent-decoded ({_MAILTO_RULE})"
    if not address:
        return f"a mailto URI must name the address reports go to ({_MAILTO_RULE})"
    local, at, domain = address.rpartition("@")
    if not at:
        return f"{excerpt(address)!r} is not an address: no '@' ({_MAILTO_RULE})"
    if not (_DOT_ATOM.fullmatch(local) or _QUOTED.fullmatch(local)):
        return (
            f"local part {excerpt(local)!r} is not a dot-atom or quoted-string"
            f" ({_MAILTO_RULE}, RFC 5322 §3.4.1); one address only"
        )
    try:
        normalize_host(domain)
    except NameSyntaxError as exc:
        return f"address domain {excerpt(domain)!r}: {exc.message} ({exc.rule})"
    return None


def _https_problem(match: re.Match[str]) -> str | None:
    """Why an ``https:`` URI cannot receive reports, or ``None`` (RFC 9110 §4.2)."""
    host = match["host"]
    if host is None:
        return f"an https URI must have an authority ('//host') ({_HTTPS_RULE})"
    if match["userinfo"] is not None:
        return f"an https URI must not carry user information ({_RULE}, RFC 9110 §4.2.4)"
    port = match["port"]
    if port and (len(port) > 5 or not 0 < int(port) <= 65535):
        return f"port {excerpt(port)} is not 1-65535 ({_HTTPS_RULE})"
    try:
        name = unquote(host, errors="strict")
    except UnicodeDecodeError:
        return f"the host is not UTF-8 once percent-decoded ({_HTTPS_RULE})"
    if not name:
        return f"an https URI must have a host ({_HTTPS_RULE})"
    try:
        normalize_host(name)
    except NameSyntaxError as exc:
        return f"host {excerpt(name)!r}: {exc.message} ({exc.rule})"
    return None
