"""mtasecure: secure mail transport decisions for MTAs.

MTA-STS (RFC 8461), DANE for SMTP (RFC 7672), DNSSEC-validated resolution,
REQUIRETLS (RFC 8689) and TLS-RPT (RFC 8460), as typed pure functions plus a
pluggable async transport. See ``ARCHITECTURE.md`` for the core/shell split.
"""

from __future__ import annotations

from mtasecure.errors import (
    DnsError,
    HttpError,
    MessageSyntaxError,
    MtaSecureError,
    NameSyntaxError,
    ParseError,
    PolicySyntaxError,
    RecordSyntaxError,
    ReportSyntaxError,
    SmtpError,
    StoreError,
    TlsaSyntaxError,
    TransportError,
    TransportTimeout,
    UsageError,
)
from mtasecure.results import CheckResult, FailureReason

__version__ = "0.1.0.dev0"

__all__ = [
    "CheckResult",
    "DnsError",
    "FailureReason",
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
    "__version__",
]
