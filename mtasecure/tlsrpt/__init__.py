"""TLS reporting (RFC 8460): the ``_smtp._tls`` record.

* :func:`parse_record` reads one ``_smtp._tls`` TXT record into a
  :class:`TlsRptRecord`; :func:`select_record` applies the "exactly one
  record" rule of RFC 8460 §3 to everything found at :func:`record_name`.
"""

from __future__ import annotations

from mtasecure.tlsrpt._record import (
    MAX_RECORD_LENGTH,
    MAX_RUA_URIS,
    MAX_URI_LENGTH,
    SkippedRua,
    TlsRptRecord,
    parse_record,
    record_name,
    select_record,
)

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
