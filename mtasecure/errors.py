"""The exceptions mtasecure raises, and only these.

Security failures (a certificate that does not match, a policy that forbids an
MX, a TLSA mismatch) are *values* — a :class:`~mtasecure.results.CheckResult`
with a :class:`~mtasecure.results.FailureReason` — never exceptions. Exceptions
are for input that cannot be read, for misuse, and for I/O that did not
complete::

    MtaSecureError
    ├── ParseError                 the remote side sent something malformed
    │   ├── NameSyntaxError        not a host name (RFC 5890, RFC 1123)
    │   ├── RecordSyntaxError      a _mta-sts / _smtp._tls TXT record (RFC 8461 §3.1, RFC 8460 §3)
    │   ├── PolicySyntaxError      an MTA-STS policy file (RFC 8461 §3.2)
    │   ├── ReportSyntaxError      a TLS-RPT report (RFC 8460 §4)
    │   ├── TlsaSyntaxError        a TLSA record (RFC 6698 §2)
    │   └── MessageSyntaxError     an SMTP reply, parameter or header field (RFC 5321, RFC 8689)
    ├── UsageError                 the caller did something wrong (also a ValueError)
    └── TransportError             I/O that did not complete
        ├── DnsError               a lookup that gave no usable answer
        ├── HttpError              an HTTPS exchange that did not complete
        ├── SmtpError              an SMTP session that did not complete
        ├── StoreError             a cache or report store that failed
        └── TransportTimeout       a named time limit ran out (also a TimeoutError)

Exceptions of dependencies (``httpx``, ``dns``, ``pydantic``, ``idna``) never
escape: they are translated at the boundary with ``raise ... from exc``.
"""

from __future__ import annotations

__all__ = [
    "DnsError",
    "HttpError",
    "MessageSyntaxError",
    "MtaSecureError",
    "NameSyntaxError",
    "ParseError",
    "PolicySyntaxError",
    "RecordSyntaxError",
    "ReportSyntaxError",
    "SmtpError",
    "StoreError",
    "TlsaSyntaxError",
    "TransportError",
    "TransportTimeout",
    "UsageError",
]


class MtaSecureError(Exception):
    """Root of every exception mtasecure raises."""


class ParseError(MtaSecureError):
    """Input from the outside world is malformed.

    Args:
        message: what was wrong, in words.
        where: where it was found (``"line 3"``, ``"field 'id'"``, ``"offset 12"``).
        rule: the rule broken, as an RFC reference (``"RFC 8461 §3.2"``).

    The string form joins the three: ``line 3: mode 'enfore' is not one of
    enforce, testing, none (RFC 8461 §3.2)``.
    """

    def __init__(self, message: str, *, where: str | None = None, rule: str | None = None) -> None:
        self.message = message
        self.where = where
        self.rule = rule
        text = f"{where}: {message}" if where else message
        if rule:
            text = f"{text} ({rule})"
        super().__init__(text)


class NameSyntaxError(ParseError):
    """A string is not a usable DNS host name (RFC 1123 §2.1, RFC 5890, RFC 5891)."""


class RecordSyntaxError(ParseError):
    """A ``_mta-sts`` or ``_smtp._tls`` TXT record breaks its grammar (RFC 8461 §3.1, RFC 8460 §3)."""


class PolicySyntaxError(ParseError):
    """An MTA-STS policy file breaks its grammar (RFC 8461 §3.2)."""


class ReportSyntaxError(ParseError):
    """A TLS-RPT report is not the JSON that RFC 8460 §4 describes."""


class TlsaSyntaxError(ParseError):
    """A TLSA record cannot be read (RFC 6698 §2)."""


class MessageSyntaxError(ParseError):
    """An SMTP reply, ESMTP parameter or header field is malformed (RFC 5321, RFC 8689)."""


class UsageError(MtaSecureError, ValueError):
    """The caller asked for something that cannot be done (a bad argument, a bad configuration)."""


class TransportError(MtaSecureError):
    """I/O did not complete: a lookup, a fetch, a session or a store."""


class DnsError(TransportError):
    """A DNS lookup gave no usable answer (no server answered, or an answer could not be read)."""


class HttpError(TransportError):
    """An HTTPS exchange did not complete (connection, TLS handshake, or protocol failure).

    Attributes:
        certificate: the server's certificate was rejected (untrusted, expired,
            wrong name), so the core can report ``sts-webpki-invalid``
            (RFC 8460 §4.3.2.2) rather than a fetch error.
    """

    def __init__(self, *args: object, certificate: bool = False) -> None:
        super().__init__(*args)
        self.certificate = certificate


class SmtpError(TransportError):
    """An SMTP session did not complete (connection dropped, malformed or oversized reply)."""


class StoreError(TransportError):
    """A policy cache or report store failed to read or write."""


class TransportTimeout(TransportError, TimeoutError):
    """A named time limit ran out before the I/O completed."""


def excerpt(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters (ending in ``...``), for quoting input in a message.

    Every parser quotes the offending input in its :class:`ParseError` so a
    reader sees what was wrong; a hostile record or reply can be long, so the
    quote is bounded. Not in ``__all__``: a helper for this package's messages.
    """
    return text if len(text) <= limit else text[: limit - 3] + "..."
