"""REQUIRETLS: the SMTP option, the ``TLS-Required`` header field, flagging and the bounce (RFC 8689).

Rules kept here, each with the text it comes from:

* ``REQUIRETLS`` is an EHLO keyword without parameters and a MAIL FROM
  parameter without a value (RFC 8689 §2 items 2 and 4, the ABNF in item 8).
  EHLO keywords and ESMTP parameter keywords are case-insensitive (RFC 5321
  §2.4, §4.1.1.1).
* ``TLS-Required: No`` is ``"TLS-Required:" [FWS] "No" CRLF`` (RFC 8689 §3);
  ABNF literals are case-insensitive (RFC 5234 §2.3), so ``no`` and ``NO`` are
  the same value. The grammar has no comments (it is ``[FWS]``, not
  ``[CFWS]``), so ``No (reason)`` is not the field. Trailing white space is
  tolerated: it carries no meaning and unfolding may leave it. More than one
  instance MUST NOT appear (§3): two instances are a syntax error, and a
  message whose field cannot be read keeps the recipient's policies
  (:func:`flag_message` fails safe).
* A message is REQUIRETLS when it arrived with the MAIL FROM parameter
  (§4.1), when one of its recipients carries the ``+requiretls`` local-part tag
  (this library's convention, stripped before delivery), or when the caller's
  own content filter says so (§4.3 leaves the decision to the implementation).
  One flag covers every copy of the message (§4.1, "all instances ... MUST be
  tagged in the same manner").
* With REQUIRETLS set, ``TLS-Required`` is ignored (§4.1). Without it,
  ``TLS-Required: No`` makes recipient-side policies (MTA-STS and DANE)
  advisory: delivery still tries STARTTLS but does not fail on them (§3,
  §4.2.2, §8.4).
* Per hop, a REQUIRETLS message with a non-empty return path needs, in this
  order (§4.2.1 steps 2-5): an MX name that came from a DNSSEC-secure lookup or
  matches the domain's MTA-STS policy (RFC 8461 §4.1); a TLS session; a
  certificate authenticated by a trusted chain for the MX name or by DANE;
  ``REQUIRETLS`` in the EHLO reply after STARTTLS. :class:`RequireTlsFailure`
  names the first step that failed, and its ``status`` is the enhanced status
  code of the bounce.
* A message with an empty return path (a bounce) that carries REQUIRETLS is
  outside §4.2.1 ("for which the MAIL FROM return-path is not empty") and
  "SHOULD NOT ... be discarded even if the next-hop relay does not advertise
  REQUIRETLS" (§5): it is sent with the parameter where the next hop offers
  it, and under the recipient's ordinary policy otherwise.
* The bounce is a DSN (RFC 3464 §2) returning only the header of the original
  (§5: behave as if ``RET=HDRS``; ``RET=FULL`` is disregarded), addressed to the
  original return path with an empty envelope sender (RFC 3461 §6.1), and —
  because §5 says so — itself carrying REQUIRETLS.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from email.message import EmailMessage, Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.parser import BytesParser
from email.policy import SMTP
from email.utils import format_datetime
from enum import StrEnum
from typing import Final, TypeAlias

from pydantic import BaseModel, ConfigDict, field_validator

from mtasecure import _smtpwire
from mtasecure._names import normalize_host
from mtasecure.errors import MessageSyntaxError, ParseError, UsageError, excerpt

__all__ = [  # noqa: RUF022 -- plain sorted(), as tests/test_exported_members.py checks
    "ADDRESS_TAG",
    "Dsn",
    "EHLO_KEYWORD",
    "FlagSource",
    "FlaggedMessage",
    "HEADER_FIELD",
    "MAIL_PARAMETER",
    "MAX_RETURNED_HEADER_OCTETS",
    "MessageFlags",
    "ReceiptCheck",
    "RecipientFailure",
    "RequireTlsFailure",
    "RequireTlsSettings",
    "STATUS_ENCRYPTION_NEEDED",
    "STATUS_REQUIRETLS_REQUIRED",
    "TAG_DELIMITER",
    "TlsRequired",
    "check_ehlo_requiretls",
    "check_requiretls_hop",
    "check_requiretls_receipt",
    "choose_bounce_failure",
    "flag_message",
    "parse_ehlo_line",
    "parse_mail_parameters",
    "parse_requiretls_parameter",
    "parse_tls_required",
    "parse_tls_required_field",
    "render_ehlo_keyword",
    "render_failure_dsn",
    "render_mail_from",
    "render_tls_required",
    "split_requiretls_tag",
]

EHLO_KEYWORD: Final = _smtpwire.REQUIRETLS_KEYWORD
"""The EHLO keyword (RFC 8689 §2 item 2)."""
MAIL_PARAMETER: Final = "REQUIRETLS"
"""The MAIL FROM parameter, which takes no value (RFC 8689 §2 items 4 and 8)."""
HEADER_FIELD: Final = "TLS-Required"
"""The header field name (RFC 8689 §3); compared case-insensitively (RFC 5322 §1.2.2)."""
ADDRESS_TAG: Final = "requiretls"
"""The local-part tag that flags a message, compared case-insensitively: ``alice+requiretls@``."""
TAG_DELIMITER: Final = "+"
"""What separates the tag from the rest of the local part."""
STATUS_REQUIRETLS_REQUIRED: Final = "5.7.30"
"""``REQUIRETLS support required`` (RFC 8689 §4.2.1, §7)."""
STATUS_ENCRYPTION_NEEDED: Final = "5.7.10"
"""``Encryption needed`` (RFC 8689 §4.2.1, RFC 5248)."""
MAX_RETURNED_HEADER_OCTETS: Final = 64 * 1024
"""Most octets of the original header a bounce returns; whole fields only (RFC 3461 §6.2)."""

_RULE_PARAM = "RFC 8689 §2"
_RULE_FIELD = "RFC 8689 §3"
_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*", re.ASCII)
_ESMTP_VALUE = re.compile(r"[\x21-\x3c\x3e-\x7e]+", re.ASCII)
_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+", re.ASCII)
_WSP = " \t"
# "No" after optional folding white space, with trailing white space tolerated.
_TLS_REQUIRED_NO = re.compile(r"[ \t]*(?:\r?\n[ \t]+)*no[ \t]*(?:\r?\n)?", re.ASCII | re.IGNORECASE)
_ATEXT = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+", re.ASCII)
_HEADER_END = re.compile(rb"\r?\n\r?\n")
# Header lines end in CRLF (RFC 5322 §2.1); a bare LF is tolerated. Not str.splitlines(),
# which would also break at NEL, VT, FF, U+2028 and the like inside a field.
_LINE_END = re.compile(r"\r?\n")
_CRLF = "\r\n"

HeaderSource: TypeAlias = bytes | str | Message | Iterable[tuple[str, str]]
"""A message header: raw bytes or text (the body, if any, is ignored), an
:class:`email.message.Message`, or ``(name, value)`` pairs."""


class TlsRequired(StrEnum):
    """The values of the ``TLS-Required`` header field (RFC 8689 §3): only ``No``."""

    NO = "No"
    """Recipient-side policies (MTA-STS, DANE) do not stop delivery (RFC 8689 §4.2.2)."""


class FlagSource(StrEnum):
    """Why a message was flagged (RFC 8689 §4.1, §4.3)."""

    MAIL_PARAMETER = "mail-parameter"
    """It arrived with ``MAIL FROM:<...> REQUIRETLS`` (§4.1)."""
    ADDRESS_TAG = "address-tag"
    """A recipient was ``local+requiretls@domain``."""
    CONTENT_FILTER = "content-filter"
    """The caller's own filter asked for it (§4.3: "a ruleset or other policy")."""
    HEADER = "header"
    """``TLS-Required: No`` was present and honoured (§4.1)."""


class RequireTlsFailure(StrEnum):
    """The first step of RFC 8689 §4.2.1 that a hop failed, in step order.

    ``status`` is the enhanced status code of the bounce. RFC 8689 §4.2.1 names
    two: 5.7.30 when the server does not offer REQUIRETLS and 5.7.10 when a
    TLS-protected session could not be had. An unvalidated MX name (step 2) and
    an unauthenticated certificate (step 4) both mean the session would not be
    the protected session §2 defines ("This option MUST only be specified in
    the context of an SMTP session meeting the security requirements"), so
    they take 5.7.10; the diagnostic text says which step failed.
    """

    MX_NOT_VALIDATED = "mx-not-validated"
    """Step 2: the MX lookup was not DNSSEC-secure and the MTA-STS policy did not list the MX."""
    TLS_NOT_ESTABLISHED = "tls-not-established"
    """Step 4: STARTTLS was not offered or the handshake failed."""
    CERTIFICATE_NOT_AUTHENTICATED = "certificate-not-authenticated"
    """Step 4: neither a trusted chain for the MX name nor DANE authenticated the certificate."""
    REQUIRETLS_NOT_ADVERTISED = "requiretls-not-advertised"
    """Step 5: the EHLO reply after STARTTLS did not list REQUIRETLS."""

    @property
    def step(self) -> int:
        """The step number of RFC 8689 §4.2.1."""
        return _STEPS[self]

    @property
    def status(self) -> str:
        """The enhanced status code for the bounce (RFC 8689 §4.2.1)."""
        if self is RequireTlsFailure.REQUIRETLS_NOT_ADVERTISED:
            return STATUS_REQUIRETLS_REQUIRED
        return STATUS_ENCRYPTION_NEEDED

    @property
    def text(self) -> str:
        """The diagnostic text for the bounce."""
        return _TEXTS[self]


_STEPS = {
    RequireTlsFailure.MX_NOT_VALIDATED: 2,
    RequireTlsFailure.TLS_NOT_ESTABLISHED: 4,
    RequireTlsFailure.CERTIFICATE_NOT_AUTHENTICATED: 4,
    RequireTlsFailure.REQUIRETLS_NOT_ADVERTISED: 5,
}
_TEXTS = {
    RequireTlsFailure.MX_NOT_VALIDATED: (
        "Encryption needed: the MX host name was validated neither by DNSSEC nor by "
        "the domain's MTA-STS policy (RFC 8689 section 4.2.1 step 2)"
    ),
    RequireTlsFailure.TLS_NOT_ESTABLISHED: (
        "Encryption needed: no TLS session could be established (RFC 8689 section 4.2.1 step 4)"
    ),
    RequireTlsFailure.CERTIFICATE_NOT_AUTHENTICATED: (
        "Encryption needed: the server certificate was authenticated neither by a "
        "trusted chain for the MX host name nor by DANE (RFC 8689 section 4.2.1 step 4)"
    ),
    RequireTlsFailure.REQUIRETLS_NOT_ADVERTISED: (
        "REQUIRETLS support required: the server did not offer REQUIRETLS after "
        "STARTTLS (RFC 8689 section 4.2.1 step 5)"
    ),
}


# --- EHLO keyword -----------------------------------------------------------


def render_ehlo_keyword() -> str:
    """The ehlo-line a server adds to its EHLO reply after STARTTLS (RFC 8689 §2 item 2)."""
    return EHLO_KEYWORD


def parse_ehlo_line(line: str) -> tuple[str, tuple[str, ...]]:
    """Split one ehlo-line into its keyword (upper-cased) and parameters (RFC 5321 §4.1.1.1).

    The library's one ehlo-line grammar (the SMTP probe reads replies with it too).

    Args:
        line: the text after ``250-`` or ``250 `` of one line of an EHLO reply,
            other than the first (which carries the server's domain).

    Raises:
        MessageSyntaxError: the line is not ``ehlo-keyword *(SP ehlo-param)``.
    """
    return _smtpwire.parse_ehlo_line(line)


def check_ehlo_requiretls(ehlo_lines: Iterable[str]) -> bool:
    """Whether an EHLO reply offers REQUIRETLS (RFC 8689 §2, §4.2.1 step 5).

    The keyword is matched case-insensitively (RFC 5321 §4.1.1.1). It has no
    parameters (RFC 8689 §2 item 2 defines none); a ``REQUIRETLS`` line that
    carries some is not the extension this library knows and does not count,
    so that a REQUIRETLS message is bounced rather than handed to a server
    whose promise is unclear. The SMTP probe's ``requiretls_offered`` applies
    the same rule (one function decides both). Lines that are not ehlo-lines
    are skipped.

    Args:
        ehlo_lines: the ehlo-lines of the reply to the EHLO sent *after* STARTTLS
            (without the ``250-`` prefixes and without the greeting line).
    """
    keywords = []
    for line in ehlo_lines:
        try:
            keywords.append(_smtpwire.parse_ehlo_line(line))
        except ParseError:
            continue
    return _smtpwire.offers_requiretls(keywords)


# --- MAIL FROM parameter ------------------------------------------------------


def parse_mail_parameters(parameters: str | Iterable[str]) -> tuple[tuple[str, str | None], ...]:
    """Split Mail-parameters into ``(KEYWORD, value-or-None)`` pairs (RFC 5321 §4.1.2).

    Args:
        parameters: the text after the reverse-path of a MAIL command
            (``"REQUIRETLS SIZE=100"``), or its already-split words.

    Raises:
        MessageSyntaxError: a word is not ``esmtp-keyword ["=" esmtp-value]``.
    """
    words = parameters.split(" ") if isinstance(parameters, str) else list(parameters)
    pairs = []
    for index, word in enumerate(words):
        if word == "" and isinstance(parameters, str) and index in (0, len(words) - 1):
            continue  # one leading or trailing space around the parameter list
        keyword, eq, value = word.partition("=")
        if not _KEYWORD.fullmatch(keyword):
            raise MessageSyntaxError(
                f"{excerpt(word)!r} is not an ESMTP parameter",
                where=f"MAIL parameter {index + 1}",
                rule="RFC 5321 §4.1.2",
            )
        if eq and not _ESMTP_VALUE.fullmatch(value):
            raise MessageSyntaxError(
                f"{excerpt(value)!r} is not an ESMTP parameter value",
                where=f"MAIL parameter {keyword}",
                rule="RFC 5321 §4.1.2",
            )
        pairs.append((keyword.upper(), value if eq else None))
    return tuple(pairs)


def parse_requiretls_parameter(parameters: str | Iterable[str]) -> bool:
    """Whether the MAIL FROM parameters carry ``REQUIRETLS`` (RFC 8689 §2).

    Raises:
        MessageSyntaxError: the parameters are malformed, ``REQUIRETLS`` carries
            a value (``REQUIRETLS=YES``; "No value is associated with this
            parameter", §2 item 4), or it appears twice.
    """
    found = 0
    for keyword, value in parse_mail_parameters(parameters):
        if keyword != MAIL_PARAMETER:
            continue
        if value is not None:
            raise MessageSyntaxError(
                "REQUIRETLS takes no value", where=f"REQUIRETLS={excerpt(value)}", rule=_RULE_PARAM
            )
        found += 1
    if found > 1:
        raise MessageSyntaxError("REQUIRETLS given more than once", rule=_RULE_PARAM)
    return found == 1


def render_mail_from(reverse_path: str, *, requiretls: bool, parameters: Sequence[str] = ()) -> str:
    """The MAIL command line, without CRLF: ``MAIL FROM:<a@example.org> REQUIRETLS``.

    Args:
        reverse_path: the return path, ``""`` for the null path ``<>``.
        requiretls: add the REQUIRETLS parameter (RFC 8689 §4.2.1, last paragraph).
        parameters: other ``esmtp-param`` words, already rendered.

    Raises:
        UsageError: the path contains ``<``, ``>``, white space or control
            characters, or a parameter is not an esmtp-param.
    """
    if any(c in reverse_path for c in "<> \t\r\n") or not reverse_path.isprintable():
        raise UsageError(f"{excerpt(reverse_path)!r} cannot stand in a reverse-path")
    words = [f"FROM:<{reverse_path}>"]
    try:
        extra = parse_mail_parameters(parameters)
    except ParseError as exc:
        raise UsageError(str(exc)) from exc
    if any(keyword == MAIL_PARAMETER for keyword, _ in extra):
        raise UsageError("pass requiretls=True instead of a REQUIRETLS word")
    words += list(parameters)
    if requiretls:
        words.append(MAIL_PARAMETER)
    return "MAIL " + " ".join(words)


class ReceiptCheck(BaseModel):
    """What a server does with the REQUIRETLS parameter of one MAIL command (RFC 8689 §4.1).

    Attributes:
        requiretls: the message is to be flagged REQUIRETLS.
        reply: ``None`` to accept the command, otherwise the SMTP reply line
            to send instead (code, enhanced code, text).
    """

    model_config = ConfigDict(frozen=True)

    requiretls: bool = False
    reply: str | None = None


def check_requiretls_receipt(
    parameters: str | Iterable[str], *, tls_active: bool, settings: RequireTlsSettings
) -> ReceiptCheck:
    """Decide what a receiving server does with a MAIL command's REQUIRETLS parameter.

    * Malformed parameters or ``REQUIRETLS=value``: ``501 5.5.4`` (RFC 5321
      §4.1.2, RFC 8689 §2 item 4).
    * REQUIRETLS handling switched off: the keyword was never offered, so the
      parameter is unknown: ``555 5.5.4`` (RFC 5321 §4.1.1.11).
    * Outside a TLS session: the server only offers REQUIRETLS after
      STARTTLS, and the client "MUST only" use it in a TLS session (§2):
      ``530 5.7.10``.
    * Otherwise the message is flagged (§4.1 "MUST tag that message").
    """
    try:
        present = parse_requiretls_parameter(parameters)
    except ParseError as exc:
        return ReceiptCheck(reply=f"501 5.5.4 {exc}")
    if not present:
        return ReceiptCheck()
    if not settings.enabled:
        return ReceiptCheck(reply="555 5.5.4 REQUIRETLS parameter not supported")
    if not tls_active:
        return ReceiptCheck(reply="530 5.7.10 REQUIRETLS needs a TLS session (RFC 8689 section 2)")
    return ReceiptCheck(requiretls=True)


# --- TLS-Required header field ----------------------------------------------


def render_tls_required() -> str:
    """The header field, without CRLF: ``TLS-Required: No`` (RFC 8689 §3)."""
    return f"{HEADER_FIELD}: {TlsRequired.NO.value}"


def parse_tls_required(value: str) -> TlsRequired:
    """Read the value of one ``TLS-Required`` field (RFC 8689 §3).

    Accepted: ``[FWS] "No"`` in any case, followed by optional white space.
    Rejected: comments, other words, an empty value.

    Raises:
        MessageSyntaxError: the value is not ``No``.
    """
    if not _TLS_REQUIRED_NO.fullmatch(value):
        raise MessageSyntaxError(
            f"value {excerpt(value.strip())!r} is not 'No'", where=HEADER_FIELD, rule=_RULE_FIELD
        )
    return TlsRequired.NO


def parse_tls_required_field(headers: HeaderSource) -> TlsRequired | None:
    """Find and read the ``TLS-Required`` field of a message header (RFC 8689 §3).

    The field name is matched case-insensitively (RFC 5322 §1.2.2), also in
    the obsolete form with white space before the colon (RFC 5322 §4.5).

    Args:
        headers: see :data:`HeaderSource`.

    Returns:
        ``TlsRequired.NO``, or ``None`` when the field is absent.

    Raises:
        MessageSyntaxError: the field appears more than once ("MUST NOT",
            §3) or its value is not ``No``.
    """
    values = [value for name, value in _fields(headers) if name.lower() == HEADER_FIELD.lower()]
    if not values:
        return None
    if len(values) > 1:
        raise MessageSyntaxError(
            f"the field appears {len(values)} times", where=HEADER_FIELD, rule=_RULE_FIELD
        )
    return parse_tls_required(values[0])


def _fields(headers: HeaderSource) -> Iterable[tuple[str, str]]:
    if isinstance(headers, Message):
        return [(str(name), str(value)) for name, value in headers.items()]
    if isinstance(headers, bytes):
        return _split_header(headers.decode("latin-1"))
    if isinstance(headers, str):
        return _split_header(headers)
    return [(str(name), str(value)) for name, value in headers]


def _split_header(text: str) -> list[tuple[str, str]]:
    """Unfold a header section into fields (RFC 5322 §2.2, §2.2.3), up to the first empty line.

    Lines that are neither fields nor continuations are skipped, as a reader
    of a damaged header would.
    """
    fields: list[tuple[str, str]] = []
    for line in _LINE_END.split(text):
        if line == "":
            break
        if line[0] in _WSP:
            if fields:
                name, value = fields[-1]
                fields[-1] = (name, value + "\r\n" + line)
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip(_WSP)
        if colon and _FIELD_NAME.fullmatch(name):
            fields.append((name, value))
        else:
            fields.append(("", ""))  # not a field: continuations must not join the last one
    return [(name, value) for name, value in fields if name]


# --- flagging -------------------------------------------------------------


class RequireTlsSettings(BaseModel):
    """The operator's switches for RFC 8689.

    Attributes:
        enabled: REQUIRETLS handling as a whole. When off, no message is
            treated as REQUIRETLS, whatever its parameter, tag or filter says,
            and a server should not offer the EHLO keyword.
        honor_tls_required_no: obey ``TLS-Required: No`` (RFC 8689 §4.1 "MUST
            tag"). Turning it off keeps recipient policies binding for every
            message, which is stricter than the RFC asks.
        address_tag: recognise ``local+requiretls@domain`` recipients.
    """

    model_config = ConfigDict(frozen=True)

    enabled: bool = True
    honor_tls_required_no: bool = True
    address_tag: bool = True


class MessageFlags(BaseModel):
    """How one message is to be sent (RFC 8689 §4.1).

    Attributes:
        requiretls: the message requires TLS (§4.2.1).
        tls_required_no: the message carries an honoured ``TLS-Required: No``.
            Ignored when ``requiretls`` is set (§4.1): read
            :attr:`tls_optional` for the effective value.
        null_reverse_path: the return path is empty (a bounce). §4.2.1 does
            not bind such a message, and §5 says it should not be discarded
            for want of REQUIRETLS at the next hop.
        sources: why the flags were set, for logs.
    """

    model_config = ConfigDict(frozen=True)

    requiretls: bool = False
    tls_required_no: bool = False
    null_reverse_path: bool = False
    sources: tuple[FlagSource, ...] = ()

    @property
    def tls_optional(self) -> bool:
        """``TLS-Required: No`` is in force: it is set and REQUIRETLS is not (§4.1)."""
        return self.tls_required_no and not self.requiretls

    @property
    def requiretls_enforced(self) -> bool:
        """The per-hop rules of §4.2.1 bind this message (REQUIRETLS and a non-empty return path)."""
        return self.requiretls and not self.null_reverse_path


class FlaggedMessage(BaseModel):
    """The result of :func:`flag_message`.

    Attributes:
        flags: the message's flags.
        recipients: the delivery addresses, in order, with the ``+requiretls``
            tag removed.
        received_recipients: the addresses as received (for a DSN's
            ``Final-Recipient``, RFC 3464 §2.3.2).
        tls_required_error: why a ``TLS-Required`` field was not honoured
            (malformed or repeated), or ``""``.
    """

    model_config = ConfigDict(frozen=True)

    flags: MessageFlags
    recipients: tuple[str, ...]
    received_recipients: tuple[str, ...]
    tls_required_error: str = ""


def split_requiretls_tag(address: str) -> tuple[str, bool]:
    """Remove a trailing ``+requiretls`` tag from an address's local part (RFC 5233 subaddress form).

    The tag is the last ``+``-separated part of a dot-atom local part,
    compared case-insensitively: ``a+RequireTLS@x`` and ``a+b+requiretls@x``
    are tagged (giving ``a@x`` and ``a+b@x``); ``a+requiretls+b@x``,
    ``+requiretls@x`` (nothing would remain) and quoted local parts are not.

    Returns:
        The address to deliver to and whether the tag was present.
    """
    local, at, domain = address.rpartition("@")
    if not at or not _ATEXT.fullmatch(local):
        return address, False
    base, delimiter, tag = local.rpartition(TAG_DELIMITER)
    if not delimiter or not base or tag.lower() != ADDRESS_TAG:
        return address, False
    return f"{base}@{domain}", True


def flag_message(
    *,
    reverse_path: str,
    recipients: Sequence[str],
    mail_parameters: str | Iterable[str] = (),
    headers: HeaderSource | None = None,
    content_filter: bool = False,
    settings: RequireTlsSettings | None = None,
) -> FlaggedMessage:
    """Work out a received message's REQUIRETLS flags (RFC 8689 §4.1).

    Args:
        reverse_path: the MAIL FROM path, ``""`` for ``<>``.
        recipients: the RCPT TO addresses as received.
        mail_parameters: the MAIL FROM parameters (already accepted by the
            server, e.g. with :func:`check_requiretls_receipt`).
        headers: the message header, to look for ``TLS-Required``.
        content_filter: the caller's own rules require TLS for this message.
        settings: the operator's switches; defaults to everything on.

    Raises:
        MessageSyntaxError: ``mail_parameters`` are malformed (a server has
            rejected them before accepting the message).
    """
    settings = settings or RequireTlsSettings()
    sources: list[FlagSource] = []
    delivered: list[str] = []
    tagged = False
    for address in recipients:
        stripped, has_tag = (
            split_requiretls_tag(address) if settings.address_tag else (address, False)
        )
        delivered.append(stripped)
        tagged = tagged or has_tag
    if parse_requiretls_parameter(mail_parameters):
        sources.append(FlagSource.MAIL_PARAMETER)
    if tagged:
        sources.append(FlagSource.ADDRESS_TAG)
    if content_filter:
        sources.append(FlagSource.CONTENT_FILTER)
    requiretls = settings.enabled and bool(sources)
    if not settings.enabled:
        sources = []

    tls_required_no = False
    error = ""
    if headers is not None and settings.honor_tls_required_no and not requiretls:
        try:
            tls_required_no = parse_tls_required_field(headers) is TlsRequired.NO
        except ParseError as exc:
            error = str(exc)
        if tls_required_no:
            sources.append(FlagSource.HEADER)
    return FlaggedMessage(
        flags=MessageFlags(
            requiretls=requiretls,
            tls_required_no=tls_required_no,
            null_reverse_path=reverse_path in ("", "<>"),
            sources=tuple(sources),
        ),
        recipients=tuple(delivered),
        received_recipients=tuple(recipients),
        tls_required_error=error,
    )


# --- per-hop rules --------------------------------------------------------


def check_requiretls_hop(
    *,
    mx_validated: bool,
    tls_established: bool,
    certificate_authenticated: bool,
    requiretls_advertised: bool,
) -> RequireTlsFailure | None:
    """Check one hop against RFC 8689 §4.2.1 steps 2-5, in order.

    Args:
        mx_validated: the MX came from a DNSSEC-secure lookup, or matched the
            MTA-STS policy (RFC 8461 §4.1), or no MX lookup was involved.
        tls_established: STARTTLS was negotiated.
        certificate_authenticated: a trusted chain for the MX host name, or
            DANE, authenticated the server's certificate (step 4).
        requiretls_advertised: the EHLO reply after STARTTLS listed REQUIRETLS.

    Returns:
        ``None`` when the message may be sent over this hop (with the
        REQUIRETLS parameter), otherwise the first failed step.
    """
    if not mx_validated:
        return RequireTlsFailure.MX_NOT_VALIDATED
    if not tls_established:
        return RequireTlsFailure.TLS_NOT_ESTABLISHED
    if not certificate_authenticated:
        return RequireTlsFailure.CERTIFICATE_NOT_AUTHENTICATED
    if not requiretls_advertised:
        return RequireTlsFailure.REQUIRETLS_NOT_ADVERTISED
    return None


def choose_bounce_failure(failures: Iterable[RequireTlsFailure]) -> RequireTlsFailure:
    """The failure a bounce reports when every MX failed: the one that got furthest.

    If some MX failed only for want of REQUIRETLS, a protected path existed
    and the bounce says 5.7.30 ("none of the SMTP servers ... provide this
    support", RFC 8689 §7); otherwise 5.7.10. Ties keep the first MX's reason.

    Raises:
        UsageError: ``failures`` is empty.
    """
    chosen: RequireTlsFailure | None = None
    for failure in failures:
        if chosen is None or failure.step > chosen.step:
            chosen = failure
    if chosen is None:
        raise UsageError("no failures to choose from")
    return chosen


# --- the bounce ------------------------------------------------------------


class RecipientFailure(BaseModel):
    """One recipient of a DSN (RFC 3464 §2.3).

    Attributes:
        recipient: the address as received (``Final-Recipient``, §2.3.2).
        status: the enhanced status code (§2.3.4), e.g. ``"5.7.30"``.
        diagnostic: the text for ``Diagnostic-Code: smtp; ...`` (§2.3.6).
        remote_mta: the MX host last talked to (``Remote-MTA``, §2.3.5), if any.
    """

    model_config = ConfigDict(frozen=True)

    recipient: str
    status: str
    diagnostic: str = ""
    remote_mta: str | None = None

    @field_validator("status")
    @classmethod
    def _status(cls, value: str) -> str:
        if not re.fullmatch(r"[245]\.(?:0|[1-9][0-9]{0,2})\.(?:0|[1-9][0-9]{0,2})", value):
            raise ValueError(f"{value!r} is not a status code (RFC 3464 §2.3.4)")
        return value

    @field_validator("recipient", "diagnostic", "remote_mta")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and any(c in value for c in "\r\n\0"):
            raise ValueError("CR, LF and NUL cannot stand in a DSN field (RFC 3464 §2.3.2)")
        return value

    @classmethod
    def for_failure(
        cls, recipient: str, failure: RequireTlsFailure, *, remote_mta: str | None = None
    ) -> RecipientFailure:
        """The entry for a REQUIRETLS failure, with its status and text (RFC 8689 §4.2.1)."""
        return cls(
            recipient=recipient,
            status=failure.status,
            diagnostic=f"550 {failure.status} {failure.text}",
            remote_mta=remote_mta,
        )


class Dsn(BaseModel):
    """A delivery status notification ready for the caller's MTA to send.

    Attributes:
        envelope_from: always ``""``: a DSN is sent with ``MAIL FROM:<>``
            (RFC 3461 §6.1, RFC 3464 §2).
        envelope_to: the original return path (RFC 3464 §2).
        flags: the DSN's own flags: REQUIRETLS when the original had it
            (RFC 8689 §5), with an empty return path, so it is sent with the
            parameter where offered and never discarded for want of it.
        content: the message, CRLF line endings, ready for DATA.
    """

    model_config = ConfigDict(frozen=True)

    envelope_from: str = ""
    envelope_to: str
    flags: MessageFlags
    content: bytes

    def message(self) -> EmailMessage:
        """The content parsed back into an :class:`email.message.EmailMessage`."""
        return BytesParser(_class=EmailMessage, policy=SMTP).parsebytes(self.content)


def render_failure_dsn(
    *,
    reverse_path: str,
    original: HeaderSource,
    failures: Sequence[RecipientFailure],
    reporting_mta: str,
    now: datetime,
    flags: MessageFlags,
    arrival_date: datetime | None = None,
    envelope_id: str | None = None,
    postmaster: str | None = None,
) -> Dsn:
    """Build the non-delivery notification for a message that could not be sent (RFC 3464).

    The DSN is ``multipart/report; report-type=delivery-status`` with a
    human-readable part, a ``message/delivery-status`` part and the original
    header as ``text/rfc822-headers`` (RFC 3464 §2, RFC 3461 §6.2). Only the
    header is returned, whatever ``RET`` asked (RFC 8689 §5 for REQUIRETLS
    messages; for others RFC 3461 §6.2 allows it), cut after whole fields at
    :data:`MAX_RETURNED_HEADER_OCTETS`.

    Args:
        reverse_path: the original return path; the DSN goes there.
        original: the original message or its header (see :data:`HeaderSource`).
        failures: one entry per failed recipient.
        reporting_mta: this MTA's host name (``Reporting-MTA: dns; ...``).
        now: the time of the last attempt and of the DSN, timezone-aware.
        flags: the original message's flags.
        arrival_date: when the original arrived (``Arrival-Date``), if known.
        envelope_id: the original ``ENVID`` (RFC 3461 §6.3 (a)), if one was given.
        postmaster: the DSN's ``From`` address; ``postmaster@<reporting_mta>``
            by default (RFC 3464 §2).

    Raises:
        UsageError: a bounce was asked for a message with an empty return path
            (RFC 3461 §6.1: DSNs are never sent about DSNs), no failures were
            given, ``now`` is naive, or a name cannot stand in a field.
    """
    if reverse_path in ("", "<>"):
        raise UsageError("a message with an empty return path is never bounced (RFC 5321 §4.5.5)")
    if not failures:
        raise UsageError("a DSN needs at least one recipient (RFC 3464 §2.1)")
    for moment in (now, arrival_date):
        if moment is not None and moment.utcoffset() is None:
            raise UsageError("dates in a DSN need a time zone (RFC 3464 §2.3.7)")
    try:
        mta = normalize_host(reporting_mta)
    except ParseError as exc:
        raise UsageError(f"reporting_mta: {exc}") from exc
    for text in (reverse_path, envelope_id or "", postmaster or ""):
        if any(c in text for c in "\r\n\0"):
            raise UsageError("CR, LF and NUL cannot stand in a DSN field")

    header_text = _returned_header(original)
    date = format_datetime(now)
    digest = hashlib.sha256(
        "\0".join([date, reverse_path, *(f.recipient for f in failures), header_text]).encode(
            "utf-8", "surrogateescape"
        )
    ).hexdigest()[:32]

    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = f"Mail Delivery System <{postmaster or 'postmaster@' + mta}>"
    report["To"] = _ascii_address(reverse_path)
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report["Date"] = date
    report["Message-ID"] = f"<{digest}@{mta}>"
    report["Auto-Submitted"] = "auto-replied"
    report.set_boundary(f"=_report_{digest}")

    lines = [
        f"This is the mail system at {mta}.",
        "",
        "Your message could not be delivered to the recipients below.",
    ]
    if flags.requiretls:
        lines += [
            "It was sent with REQUIRETLS, which asks that it travel only over",
            "authenticated, encrypted connections (RFC 8689), and no such",
            "connection could be made. It was not sent unencrypted.",
        ]
    lines.append("")
    for failure in failures:
        lines += [f"<{failure.recipient}>:", f"    {failure.diagnostic or failure.status}"]
    human = "\r\n".join(lines) + "\r\n"
    text_part = MIMEText(human, "plain", "us-ascii" if human.isascii() else "utf-8")
    report.attach(text_part)

    status = MIMEBase("message", "delivery-status")
    per_message = Message()
    if envelope_id is not None:
        per_message["Original-Envelope-Id"] = envelope_id
    per_message["Reporting-MTA"] = f"dns; {mta}"
    if arrival_date is not None:
        per_message["Arrival-Date"] = format_datetime(arrival_date)
    blocks = [per_message]
    for failure in failures:
        block = Message()
        block["Final-Recipient"] = _address_field(failure.recipient)
        block["Action"] = "failed"
        block["Status"] = failure.status
        if failure.remote_mta:
            block["Remote-MTA"] = f"dns; {_escape_unicode(failure.remote_mta)}"
        if failure.diagnostic:
            block["Diagnostic-Code"] = f"smtp; {_escape_unicode(failure.diagnostic)}"
        block["Last-Attempt-Date"] = date
        blocks.append(block)
    status.set_payload(blocks)  # type: ignore[arg-type]  # a list of field blocks (RFC 3464 §2.1)
    report.attach(status)

    returned = MIMEText(
        header_text, "rfc822-headers", "utf-8" if not header_text.isascii() else "us-ascii"
    )
    report.attach(returned)
    for part in (text_part, status, returned):
        del part["MIME-Version"]  # only the top level carries it (RFC 2045 §4)
    content = report.as_bytes(policy=SMTP)
    return Dsn(
        envelope_to=reverse_path,
        flags=MessageFlags(
            requiretls=flags.requiretls,
            null_reverse_path=True,
            sources=(FlagSource.MAIL_PARAMETER,) if flags.requiretls else (),
        ),
        content=content,
    )


def _escape_unicode(text: str) -> str:
    """Non-ASCII characters as ``\\x{HEX}`` (RFC 6533 §3 embedded-unicode-char), for 7-bit fields."""
    return "".join(c if c.isascii() else f"\\x{{{ord(c):X}}}" for c in text)


def _address_field(address: str) -> str:
    """A Final-Recipient value: ``rfc822`` for ASCII, else the ``utf-8`` type (RFC 6533 §3)."""
    if address.isascii():
        return f"rfc822; {address}"
    return f"utf-8; {_escape_unicode(address)}"


def _ascii_address(address: str) -> str:
    return address if address.isascii() else _escape_unicode(address)


def _returned_header(original: HeaderSource) -> str:
    """The original header, whole fields only, at most MAX_RETURNED_HEADER_OCTETS octets."""
    if isinstance(original, str):
        raw = original.encode("utf-8", "surrogateescape")
    elif isinstance(original, bytes):
        raw = original
    else:
        # A Message is read field by field: as_bytes() fails on non-ASCII text in compat32.
        pairs = original.items() if isinstance(original, Message) else original
        lines = (f"{name}: {_LINE_END.sub(_CRLF, str(value))}" for name, value in pairs)
        raw = "".join(line + _CRLF for line in lines).encode("utf-8", "surrogateescape")
    end = _HEADER_END.search(raw)
    raw = raw[: end.start()] if end else raw
    kept: list[str] = []
    size = 0
    field: list[str] = []
    for line in _LINE_END.split(raw.decode("utf-8", "replace")):
        if line[:1] in (" ", "\t") and field:
            field.append(line)
            continue
        size = _flush(kept, field, size)
        if size < 0:
            break
        field = [line]
    _flush(kept, field, size)
    return "".join(kept)


def _flush(kept: list[str], field: list[str], size: int) -> int:
    if size < 0 or not field:
        return size
    text = "\r\n".join(field) + "\r\n"
    octets = len(text.encode("utf-8"))
    if size + octets > MAX_RETURNED_HEADER_OCTETS:
        return -1
    kept.append(text)
    return size + octets
