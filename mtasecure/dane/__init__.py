"""DANE for SMTP: TLSA records, the DANE state of an MX, and chain matching.

RFC 6698 defines TLSA records, RFC 7671 updates them (DANE-TA chains, digest
agility), RFC 7672 applies them to SMTP. The flow for one MX host:

1. the shell looks up ``_25._tcp.<mx-host> IN TLSA`` with DNSSEC status;
2. :func:`plan_dane` turns the answer into a :class:`DanePolicy`
   (no TLSA / insecure / usable / unusable / failed, RFC 7672 §2.2);
3. after STARTTLS, :func:`check_dane` (or :func:`match_tlsa` directly) judges
   the presented chain.

When DANE applies to an MX it takes precedence over MTA-STS (RFC 8461 §2).
Everything here is pure: no I/O, time is an argument.
"""

from __future__ import annotations

from mtasecure.dane._match import DIGEST_PREFERENCE, MAX_TLSA_RECORDS, match_tlsa, select_tlsa
from mtasecure.dane._record import (
    MAX_TLSA_DATA_LENGTH,
    CertUsage,
    MatchingType,
    Selector,
    TlsaRecord,
    association_data,
    parse_tlsa,
    render_tlsa,
    spki_der,
)
from mtasecure.dane._state import DanePolicy, DaneState, check_dane, plan_dane, reference_names

__all__ = [  # noqa: RUF022 -- plain sorted(), as tests/test_exported_members.py checks
    "CertUsage",
    "DIGEST_PREFERENCE",
    "DanePolicy",
    "DaneState",
    "MAX_TLSA_DATA_LENGTH",
    "MAX_TLSA_RECORDS",
    "MatchingType",
    "Selector",
    "TlsaRecord",
    "association_data",
    "check_dane",
    "match_tlsa",
    "parse_tlsa",
    "plan_dane",
    "reference_names",
    "render_tlsa",
    "select_tlsa",
    "spki_der",
]
