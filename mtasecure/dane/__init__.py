"""DANE for SMTP: TLSA records, the DANE state of an MX, and chain matching.

RFC 6698 defines TLSA records, RFC 7671 updates them (DANE-TA chains, digest
agility), RFC 7672 applies them to SMTP. The flow for one MX host:

1. :func:`plan_dane_lookup` names the lookups, in order: the host's A and
   AAAA records, then ``_25._tcp.<base> IN TLSA`` for each candidate base
   domain (a secure alias's expansion, then the host; RFC 7672 §2.2.2,
   §2.2.3); the shell makes them, with DNSSEC status, and feeds them back;
2. :func:`plan_dane` (which the planner calls) turns a TLSA answer into a
   :class:`DanePolicy` (no TLSA / insecure / usable / unusable / failed,
   RFC 7672 §2.2);
3. after STARTTLS, :func:`check_dane` (or :func:`match_tlsa` directly) judges
   the presented chain.

When DANE applies to an MX it takes precedence over MTA-STS (RFC 8461 §2).
Everything here is pure: no I/O, time is an argument.
"""

from __future__ import annotations

from mtasecure.dane._lookup import (
    MAX_DANE_LOOKUPS,
    MAX_TLSA_CANDIDATES,
    DaneLookup,
    DaneStep,
    plan_dane_lookup,
)
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
    "DaneLookup",
    "DanePolicy",
    "DaneState",
    "DaneStep",
    "MAX_DANE_LOOKUPS",
    "MAX_TLSA_CANDIDATES",
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
    "plan_dane_lookup",
    "reference_names",
    "render_tlsa",
    "select_tlsa",
    "spki_der",
]
