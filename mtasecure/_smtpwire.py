"""SMTP replies, EHLO keywords and the value a STARTTLS probe returns (pure).

This module reads what an SMTP server sends; it never touches a socket. The
shell (:mod:`mtasecure.transport.smtp`) reads one line at a time from the
network, hands each to a :class:`ReplyReader`, and records what it saw in a
:class:`ProbeResult`.

Rules applied (RFC 5321):

* §4.2: ``Reply-line = *( Reply-code "-" [ textstring ] CRLF ) Reply-code
  [ SP textstring ] CRLF`` and ``Reply-code = %x32-35 %x30-35 %x30-39``. A
  first digit outside 2-5 is an error (§4.2: "SHOULD normally treat them as
  fatal errors").
* §4.2: "any text, including no text at all, MUST be acceptable" — the text
  after the code is kept as sent (decoded as UTF-8, undecodable octets
  replaced), and a bare code with or without a trailing space is accepted.
* §4.2.1: every line of a multi-line reply carries the same code.
* §4.1.1.1: ``ehlo-line = ehlo-keyword *( SP ehlo-param )``, ``ehlo-keyword =
  (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")``, ``ehlo-param = 1*(%d33-126)``.
  Keywords are compared case-insensitively and kept upper-cased; runs of SP
  between words are tolerated. The legacy
  ``AUTH=PLAIN LOGIN`` form (a ``=`` after the keyword) is read as keyword
  ``AUTH`` with its parameters, because servers still send it.
* §4.5.3.1.5: a reply line is at most 512 octets. Clients "MUST be able to
  receive" that much and §4.5.3.1 asks for as few limits as possible, so the
  reader accepts up to :data:`MAX_REPLY_LINE_OCTETS` (eight times the minimum;
  banners and EHLO lines longer than 512 octets are seen in practice) and caps
  a whole reply at :data:`MAX_REPLY_LINES` lines and :data:`MAX_REPLY_OCTETS`
  octets, so a hostile server cannot make a probe buffer without end.

Lines may end in CRLF or a bare LF (the shell splits on LF); a CR anywhere
else, or a NUL, is an error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import NamedTuple, Protocol

from cryptography import x509
from pydantic import BaseModel, ConfigDict

from mtasecure.errors import MessageSyntaxError, ParseError, excerpt

__all__ = [
    "MAX_REPLY_LINES",
    "MAX_REPLY_LINE_OCTETS",
    "MAX_REPLY_OCTETS",
    "REQUIRETLS_KEYWORD",
    "EhloKeyword",
    "EhloResponse",
    "ProbeOutcome",
    "ProbeResult",
    "ProbeStage",
    "ReplyReader",
    "SmtpReply",
    "StepTiming",
    "offers_requiretls",
    "parse_ehlo",
    "parse_ehlo_line",
    "parse_reply",
]

MAX_REPLY_LINE_OCTETS = 4096
"""Longest reply line accepted, CRLF included (RFC 5321 §4.5.3.1.5 minimum: 512)."""

MAX_REPLY_LINES = 100
"""Most lines accepted in one multi-line reply (an EHLO reply rarely passes 20)."""

MAX_REPLY_OCTETS = 16384
"""Most octets accepted in one whole reply, all lines together."""

_RULE_REPLY = "RFC 5321 §4.2"
_RULE_CODES = "RFC 5321 §4.2.1"
_RULE_EHLO = "RFC 5321 §4.1.1.1"
_RULE_LIMIT = "RFC 5321 §4.5.3.1.5"

REQUIRETLS_KEYWORD = "REQUIRETLS"
"""The EHLO keyword of the REQUIRETLS extension (RFC 8689 §2 item 2)."""

_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*\Z")
_PARAM = re.compile(r"[\x21-\x7e]+\Z")


class SmtpReply(BaseModel):
    """One complete SMTP reply (RFC 5321 §4.2).

    Attributes:
        code: the three-digit reply code shared by every line.
        lines: the text of each line, after the code and its separator.
    """

    model_config = ConfigDict(frozen=True)

    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        """All lines joined by newlines, as a human would read the reply."""
        return "\n".join(self.lines)

    @property
    def positive(self) -> bool:
        """A 2yz reply: the command was accepted (RFC 5321 §4.2.1)."""
        return 200 <= self.code < 300

    def __str__(self) -> str:
        return f"{self.code} {self.text}".rstrip()


class ReplyReader:
    """Assembles one reply from lines fed one at a time (RFC 5321 §4.2).

    Pure and incremental: the shell reads a line from the network, calls
    :meth:`feed`, and stops when it returns a reply. Use one reader per reply.
    """

    def __init__(self) -> None:
        self._code: int | None = None
        self._lines: list[str] = []
        self._octets = 0

    def feed(self, line: bytes) -> SmtpReply | None:
        """Take one line (with or without its line ending).

        Returns:
            The complete reply once its last line (code then space or end of
            line) has been fed, otherwise ``None``.

        Raises:
            MessageSyntaxError: the line is malformed, its code differs from
                the reply's first line, or a limit was passed.
        """
        index = len(self._lines) + 1
        where = f"reply line {index}"
        if index > MAX_REPLY_LINES:
            raise MessageSyntaxError(
                f"reply has more than {MAX_REPLY_LINES} lines", where=where, rule=_RULE_LIMIT
            )
        self._octets += len(line)
        if self._octets > MAX_REPLY_OCTETS:
            raise MessageSyntaxError(
                f"reply is longer than {MAX_REPLY_OCTETS} octets", where=where, rule=_RULE_LIMIT
            )
        code, last, text = _parse_line(line, where)
        if self._code is None:
            self._code = code
        elif code != self._code:
            raise MessageSyntaxError(
                f"code {code} differs from the first line's {self._code}",
                where=where,
                rule=_RULE_CODES,
            )
        self._lines.append(text)
        if last:
            # Built from checked parts: skip pydantic's validation (hot path).
            return SmtpReply.model_construct(code=code, lines=tuple(self._lines))
        return None


def _parse_line(line: bytes, where: str) -> tuple[int, bool, str]:
    if len(line) > MAX_REPLY_LINE_OCTETS:
        raise MessageSyntaxError(
            f"line is longer than {MAX_REPLY_LINE_OCTETS} octets", where=where, rule=_RULE_LIMIT
        )
    body = line[:-1] if line.endswith(b"\n") else line
    if body.endswith(b"\r"):
        body = body[:-1]
    if b"\r" in body or b"\n" in body or b"\x00" in body:
        raise MessageSyntaxError(
            "line contains CR, LF or NUL before its end", where=where, rule=_RULE_REPLY
        )
    head = body[:3]
    if not (
        len(head) == 3
        and 0x32 <= head[0] <= 0x35
        and 0x30 <= head[1] <= 0x35
        and 0x30 <= head[2] <= 0x39
    ):
        shown = body[:12].decode("ascii", "backslashreplace")
        raise MessageSyntaxError(
            f"{shown!r} does not start with a reply code 200-559", where=where, rule=_RULE_REPLY
        )
    separator = body[3:4]
    if separator not in (b"", b" ", b"-"):
        raise MessageSyntaxError(
            f"reply code is followed by {separator!r}, not SP or '-'",
            where=where,
            rule=_RULE_REPLY,
        )
    text = body[4:].decode("utf-8", "replace")
    return int(head), separator != b"-", text


def parse_reply(data: bytes) -> SmtpReply:
    """Parse exactly one complete reply (RFC 5321 §4.2).

    Args:
        data: the reply's lines, each ending in CRLF (or LF).

    Raises:
        MessageSyntaxError: the data is not exactly one well-formed reply.
    """
    reader = ReplyReader()
    pieces = data.split(b"\n")
    lines = [piece + b"\n" for piece in pieces[:-1]]
    if pieces[-1]:
        lines.append(pieces[-1])
    for number, line in enumerate(lines, start=1):
        reply = reader.feed(line)
        if reply is not None:
            if number != len(lines):
                raise MessageSyntaxError(
                    "data continues after the reply's last line",
                    where=f"reply line {number + 1}",
                    rule=_RULE_REPLY,
                )
            return reply
    raise MessageSyntaxError(
        "reply ends without a last line (code then SP)", where="end of data", rule=_RULE_REPLY
    )


class EhloKeyword(NamedTuple):
    """One service extension a server offers in its EHLO reply (RFC 5321 §4.1.1.1).

    A named tuple rather than a model: an EHLO reply carries a dozen of them
    and the probe builds them on its hot path.

    Attributes:
        name: the keyword, upper-cased (``"STARTTLS"``, ``"REQUIRETLS"``).
        params: its parameters as sent (``("10240000",)`` for ``SIZE``).
    """

    name: str
    params: tuple[str, ...] = ()


class EhloResponse(BaseModel):
    """A positive EHLO reply, read (RFC 5321 §4.1.1.1).

    Attributes:
        domain: the server's name (or address literal) on the first line.
        greeting: the rest of the first line.
        keywords: the extensions offered, in the order sent.
    """

    model_config = ConfigDict(frozen=True)

    domain: str
    greeting: str = ""
    keywords: tuple[EhloKeyword, ...] = ()

    def offers(self, keyword: str) -> bool:
        """Whether ``keyword`` (any case) is offered."""
        wanted = keyword.upper()
        return any(k.name == wanted for k in self.keywords)

    def params(self, keyword: str) -> tuple[str, ...] | None:
        """The parameters of ``keyword`` (any case), or ``None`` when not offered."""
        wanted = keyword.upper()
        for k in self.keywords:
            if k.name == wanted:
                return k.params
        return None

    @property
    def names(self) -> tuple[str, ...]:
        """The keywords offered, upper-cased, in the order sent."""
        return tuple(k.name for k in self.keywords)


def parse_ehlo(reply: SmtpReply) -> EhloResponse:
    """Read the keywords of a positive EHLO reply (RFC 5321 §4.1.1.1).

    Raises:
        MessageSyntaxError: the reply is not a 250, or a line breaks the
            ``ehlo-line`` grammar.
    """
    if reply.code != 250:
        raise MessageSyntaxError(
            f"EHLO reply code is {reply.code}, not 250", where="EHLO reply", rule=_RULE_EHLO
        )
    first = reply.lines[0].split(" ", 1)
    domain = first[0]
    if not domain or not _PARAM.match(domain):
        raise MessageSyntaxError(
            "first line does not start with the server's domain",
            where="EHLO reply line 1",
            rule=_RULE_EHLO,
        )
    greeting = first[1] if len(first) > 1 else ""
    keywords: list[EhloKeyword] = []
    for number, line in enumerate(reply.lines[1:], start=2):
        keywords.append(_parse_ehlo_line(line, f"EHLO reply line {number}"))
    return EhloResponse.model_construct(domain=domain, greeting=greeting, keywords=tuple(keywords))


def parse_ehlo_line(line: str, *, where: str = "EHLO reply") -> EhloKeyword:
    """Read one ehlo-line, strictly, into its keyword and parameters (RFC 5321 §4.1.1.1).

    The one ``ehlo-line`` grammar of the library: :func:`parse_ehlo` and
    :func:`mtasecure.requiretls.parse_ehlo_line` both use it.

    Args:
        line: the text after ``250-`` or ``250 `` of one line of an EHLO reply,
            other than the first (which carries the server's domain); a
            trailing CRLF or LF is ignored.
        where: where the line came from, for the error message.

    Raises:
        MessageSyntaxError: the line is not ``ehlo-keyword *(SP ehlo-param)``.
    """
    keyword, *params = line.rstrip("\r\n").split(" ")
    if not _KEYWORD.match(keyword):
        raise MessageSyntaxError(
            f"{excerpt(keyword)!r} is not an ehlo-keyword", where=where, rule=_RULE_EHLO
        )
    for param in params:
        if not _PARAM.match(param):
            raise MessageSyntaxError(
                f"{excerpt(param)!r} is not an ehlo-param (printable US-ASCII, no SP)",
                where=where,
                rule=_RULE_EHLO,
            )
    return EhloKeyword(keyword.upper(), tuple(params))


def _parse_ehlo_line(line: str, where: str) -> EhloKeyword:
    # Runs of SP and trailing SP break the grammar but carry no meaning;
    # tolerating them costs nothing and avoids failing a probe on cosmetics.
    words = [word for word in line.split(" ") if word]
    if words and "=" in words[0]:
        # Legacy "AUTH=LOGIN PLAIN": '=' stood where SP belongs.
        keyword, _, extra = words[0].partition("=")
        words = [keyword, extra, *words[1:]] if extra else [keyword, *words[1:]]
    return parse_ehlo_line(" ".join(words), where=where)


class _KeywordLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def params(self) -> Sequence[str]: ...


def offers_requiretls(keywords: Iterable[_KeywordLike]) -> bool:
    """Whether EHLO keywords offer the REQUIRETLS extension (RFC 8689 §2 item 2).

    The one place this rule lives: :attr:`ProbeResult.requiretls_offered`,
    :func:`mtasecure.requiretls.check_ehlo_requiretls` and
    :meth:`mtasecure.decision.SessionObservation.from_probe` all ask it.
    The keyword is ``REQUIRETLS`` (upper-cased by the parser, RFC 5321
    §4.1.1.1) and has no parameters: RFC 8689 §2 defines none, so a
    ``REQUIRETLS`` line that carries some is not the extension RFC 8689
    describes, and a REQUIRETLS message is bounced rather than handed to a
    server whose promise is unclear.

    Args:
        keywords: the keywords of the EHLO reply sent *after* STARTTLS.
    """
    return any(k.name == REQUIRETLS_KEYWORD and not k.params for k in keywords)


class ProbeStage(StrEnum):
    """The steps of a STARTTLS probe, in order (RFC 5321 §3.1, RFC 3207 §4)."""

    CONNECT = "connect"
    BANNER = "banner"
    EHLO = "ehlo"
    STARTTLS = "starttls"
    TLS_HANDSHAKE = "tls-handshake"
    EHLO_AFTER_TLS = "ehlo-after-tls"
    QUIT = "quit"


class ProbeOutcome(StrEnum):
    """How a STARTTLS probe ended (RFC 3207 §4); with :class:`ProbeStage`, where it ended.

    Only :attr:`OK` means a TLS session was established and EHLO answered
    inside it. Whether the presented chain is acceptable is not judged here:
    that is the job of :mod:`mtasecure.certs` and :mod:`mtasecure.dane`.
    """

    OK = "ok"
    """TLS established and the EHLO after TLS answered 250 (RFC 3207 §4.2)."""
    CONNECT_FAILED = "connect-failed"
    """The TCP connection was refused or the address unreachable."""
    BANNER_REJECTED = "banner-rejected"
    """The greeting was not 220 (e.g. 554 or 421, RFC 5321 §3.1)."""
    EHLO_FAILED = "ehlo-failed"
    """EHLO, before or after TLS, was answered with something other than 250."""
    STARTTLS_NOT_OFFERED = "starttls-not-offered"
    """The EHLO reply does not list STARTTLS (RFC 3207 §4)."""
    STARTTLS_REFUSED = "starttls-refused"
    """STARTTLS was offered, then answered with something other than 220 (e.g. 454)."""
    TLS_HANDSHAKE_FAILED = "tls-handshake-failed"
    """The server said 220 to STARTTLS but no TLS session could be established."""
    DROPPED = "dropped"
    """The server closed the connection in the middle of the session."""
    TIMEOUT = "timeout"
    """A step's time limit ran out."""
    PROTOCOL_ERROR = "protocol-error"
    """The server sent a malformed or oversized reply (RFC 5321 §4.2, §4.5.3.1)."""


class StepTiming(NamedTuple):
    """How long one probe step took, in seconds of a monotonic clock."""

    stage: ProbeStage
    seconds: float


class ProbeResult(BaseModel):
    """What a sending MTA would see at one MX address (RFC 5321, RFC 3207).

    Attributes:
        host: the MX host name the probe was for (A-label form).
        address: the IP address connected to.
        port: the TCP port (25 for MX delivery).
        outcome: how the probe ended.
        stage: the step the probe was on when it ended (``QUIT`` on success).
        banner: the greeting reply, when one was read.
        ehlo: the EHLO reply before TLS, when it was positive.
        starttls_reply: the reply to STARTTLS, when the command was sent.
        ehlo_tls: the EHLO reply inside TLS, when it was positive.
        sni: the server name sent in the TLS ClientHello.
        tls_version: the negotiated protocol (``"TLSv1.3"``).
        tls_cipher: the negotiated cipher suite name.
        chain: the certificates the server presented, DER, leaf first, as
            sent (not a validated path).
        chain_complete: ``True`` when ``chain`` is everything the server sent;
            ``False`` when the platform gave only the leaf.
        timings: the duration of each step taken, in order.
        detail: what went wrong, in words (empty on success).
    """

    model_config = ConfigDict(frozen=True)

    host: str
    address: str
    port: int = 25
    outcome: ProbeOutcome
    stage: ProbeStage
    banner: SmtpReply | None = None
    ehlo: EhloResponse | None = None
    starttls_reply: SmtpReply | None = None
    ehlo_tls: EhloResponse | None = None
    sni: str | None = None
    tls_version: str | None = None
    tls_cipher: str | None = None
    chain: tuple[bytes, ...] = ()
    chain_complete: bool = False
    timings: tuple[StepTiming, ...] = ()
    detail: str = ""

    @property
    def ok(self) -> bool:
        """TLS was established and EHLO answered inside it."""
        return self.outcome is ProbeOutcome.OK

    @property
    def tls_established(self) -> bool:
        """A TLS handshake completed (even if a later step failed)."""
        return self.tls_version is not None

    @property
    def starttls_offered(self) -> bool:
        """STARTTLS was in the EHLO reply before TLS (RFC 3207 §4)."""
        return self.ehlo is not None and self.ehlo.offers("STARTTLS")

    @property
    def requiretls_offered(self) -> bool:
        """REQUIRETLS was in the EHLO reply *after* STARTTLS (RFC 8689 §2).

        The server MUST advertise it in the EHLO reply that follows STARTTLS
        (RFC 8689 §2), and a sender checks exactly that reply (§4.2.1 step
        5); an offer in the clear does not count.
        """
        return self.ehlo_tls is not None and offers_requiretls(self.ehlo_tls.keywords)

    def seconds(self, stage: ProbeStage) -> float | None:
        """How long ``stage`` took, or ``None`` when it was not reached."""
        for timing in self.timings:
            if timing.stage is stage:
                return timing.seconds
        return None

    def certificates(self) -> tuple[x509.Certificate, ...]:
        """The presented chain as ``cryptography`` certificates, leaf first.

        Raises:
            ParseError: a certificate is not DER X.509 (RFC 5280 §4.1).
        """
        loaded = []
        for index, der in enumerate(self.chain):
            try:
                loaded.append(x509.load_der_x509_certificate(der))
            except ValueError as exc:
                raise ParseError(
                    f"not a DER X.509 certificate: {exc}",
                    where=f"presented chain position {index}",
                    rule="RFC 5280 §4.1",
                ) from exc
        return tuple(loaded)
