"""The DANE state of one MX host, from its TLSA lookup (RFC 7672 §2.1, §2.2).

The four outcomes of RFC 7672 §2.2, plus the "no records" case it folds into
the third::

    TLSA answer                              state        the MX may be used ...
    ---------------------------------------  -----------  ---------------------------------
    lookup error, bogus, indeterminate       FAILED       never (RFC 7672 §2.1.2); the
                                                          result is ``dnssec-invalid``
    secure or insecure NXDOMAIN / NODATA     NO_TLSA      as without DANE (§2.2)
    insecure records                         INSECURE     as without DANE (§2.2)
    secure, all records unusable             UNUSABLE     only over TLS, unauthenticated
    secure, at least one usable record       USABLE       only over TLS authenticated by
                                                          the records (mandatory DANE)

"Indeterminate" is read in the RFC 4035 sense, a transient failure that MUST
be treated as bogus (RFC 7672 §2.1.1). When DANE applies (UNUSABLE, USABLE,
FAILED) it takes precedence over MTA-STS (RFC 8461 §2); combining the two is
the decision engine's job, not this module's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from cryptography import x509
from pydantic import BaseModel, ConfigDict

from mtasecure._names import normalize_host
from mtasecure.dane._match import DIGEST_PREFERENCE, match_tlsa, select_tlsa
from mtasecure.dane._record import TlsaRecord, parse_tlsa
from mtasecure.dnssec import DnsAnswer, Security
from mtasecure.errors import NameSyntaxError, TlsaSyntaxError, UsageError
from mtasecure.results import CheckResult, FailureReason

__all__ = [
    "DanePolicy",
    "DaneState",
    "check_dane",
    "plan_dane",
    "reference_names",
]

_PREFIX = re.compile(r"_([0-9]{1,5})\._tcp\.(.+)", re.ASCII)


class DaneState(StrEnum):
    """What the TLSA lookup of one MX means for delivery (RFC 7672 §2.2)."""

    NO_TLSA = "no-tlsa"
    """Secure or insecure denial of existence: DANE does not apply."""
    INSECURE = "insecure"
    """TLSA records exist but are not DNSSEC-secure: DANE does not apply (RFC 6698 §4.1)."""
    USABLE = "usable"
    """Secure, with at least one usable record: TLS is mandatory and only a chain
    that the records authenticate may be used."""
    UNUSABLE = "unusable"
    """Secure, but no record is usable: TLS is mandatory, authentication is not
    possible (RFC 7672 §2.2, RFC 7671 §10.3)."""
    FAILED = "failed"
    """The lookup failed, or was bogus or indeterminate: the MX MUST NOT be used
    (RFC 7672 §2.1.2)."""

    @property
    def applies(self) -> bool:
        """Whether DANE governs the MX, and so takes precedence over MTA-STS (RFC 8461 §2).

        Every state but ``no-tlsa`` and ``insecure`` (RFC 7672 §2.2, RFC 6698 §4.1).
        """
        return self not in (DaneState.NO_TLSA, DaneState.INSECURE)


class DanePolicy(BaseModel):
    """The DANE requirement for one MX host (RFC 7672 §2.2, §3.2.2).

    Attributes:
        state: what the TLSA lookup means (:class:`DaneState`).
        base_domain: the TLSA base domain: the MX host name, or its secure
            CNAME expansion when that had the TLSA records; CNAMEs at the
            ``_25._tcp`` name do not change it (RFC 7672 §2.2.3).
        port: the port of the TLSA query name.
        records: the usable records, after digest agility (RFC 7671 §9).
        unusable: why each of the other secure records is unusable.
        reference_names: the names a DANE-TA(2) certificate must carry: the
            base domain, then the next-hop domains when the MX lookup was
            secure (RFC 7672 §3.2.2).
        reason: for ``FAILED``, ``dnssec-invalid`` (RFC 8460 §4.3.2.1).
        detail: a human-readable explanation.
    """

    model_config = ConfigDict(frozen=True)

    state: DaneState
    base_domain: str
    port: int = 25
    records: tuple[TlsaRecord, ...] = ()
    unusable: tuple[str, ...] = ()
    reference_names: tuple[str, ...] = ()
    reason: FailureReason | None = None
    detail: str = ""

    @property
    def applies(self) -> bool:
        """Whether DANE governs this MX, and so takes precedence over MTA-STS (RFC 8461 §2)."""
        return self.state.applies

    @property
    def may_connect(self) -> bool:
        """Whether the MX may be used at all (not after a failed lookup, RFC 7672 §2.1.2)."""
        return self.state is not DaneState.FAILED

    @property
    def requires_tls(self) -> bool:
        """Whether only a TLS session may carry mail to this MX (RFC 7672 §2.2)."""
        return self.state in (DaneState.USABLE, DaneState.UNUSABLE)

    @property
    def requires_authentication(self) -> bool:
        """Whether the TLS peer must match the TLSA records (RFC 7672 §3.2)."""
        return self.state is DaneState.USABLE

    def server_name(self, mx_host: str) -> str:
        """The SNI to send to this MX (RFC 7672 §8.1).

        Under DANE (TLS required) it is the TLSA base domain, which differs
        from the MX host name only after a secure CNAME (RFC 7672 §2.2.3);
        otherwise the MX host name itself.
        """
        return self.base_domain if self.requires_tls else mx_host


def reference_names(
    base_domain: str,
    *,
    mx_secure: bool,
    next_hop: str | None = None,
    next_hop_expanded: str | None = None,
) -> tuple[str, ...]:
    """The reference identifiers for DANE-TA(2) name checks (RFC 7672 §3.2.2).

    The TLSA base domain always comes first. When the MX host was found by a
    "secure" MX lookup, the original next-hop domain is added, then its
    CNAME-expanded form if different; after an "insecure" MX lookup the MX
    host name is the only reference identifier. Names are normalised and
    duplicates dropped.

    Raises:
        NameSyntaxError: a name is not a host name.
    """
    names = [normalize_host(base_domain)]
    if mx_secure:
        for extra in (next_hop, next_hop_expanded):
            if extra is not None:
                names.append(normalize_host(extra))
    return tuple(dict.fromkeys(names))


def plan_dane(
    tlsa_answer: DnsAnswer,
    mx_secure: bool,
    *,
    next_hop: str | None = None,
    next_hop_expanded: str | None = None,
    digest_preference: Sequence[int] = DIGEST_PREFERENCE,
) -> DanePolicy:
    """Classify the TLSA answer for one MX host (RFC 7672 §2.2).

    Args:
        tlsa_answer: the answer to ``_<port>._tcp.<mx-host> IN TLSA`` (the
            resolver follows CNAMEs; the base domain stays the MX host,
            RFC 7672 §2.2.3).
        mx_secure: whether the MX RRset (and any CNAME to it) was "secure";
            it decides whether the next-hop domain is a reference identifier
            (RFC 7672 §3.2.2).
        next_hop: the original next-hop (recipient) domain.
        next_hop_expanded: its CNAME-expanded form, if different.
        digest_preference: digest matching types, strongest first (RFC 7671 §9).

    Returns:
        The :class:`DanePolicy` for this MX. DANE, when it applies, takes
        precedence over MTA-STS (RFC 8461 §2).

    Raises:
        UsageError: the answer is not for a TLSA query name ``_<port>._tcp.<host>``.
    """
    if tlsa_answer.rdtype.upper() != "TLSA":
        raise UsageError(f"expected a TLSA answer, got {tlsa_answer.rdtype}")
    match = _PREFIX.fullmatch(tlsa_answer.name.lower().rstrip("."))
    if match is None:
        raise UsageError(f"{tlsa_answer.name!r} is not a TLSA query name _<port>._tcp.<host>")
    port = int(match.group(1))
    try:
        names = reference_names(
            match.group(2),
            mx_secure=mx_secure,
            next_hop=next_hop,
            next_hop_expanded=next_hop_expanded,
        )
    except NameSyntaxError as exc:
        raise UsageError(f"TLSA query name or next hop is not a host name: {exc}") from exc
    base = names[0]
    common: dict[str, Any] = {"base_domain": base, "port": port, "reference_names": names}
    security = tlsa_answer.security
    if tlsa_answer.failed or security in (Security.BOGUS, Security.INDETERMINATE):
        why = tlsa_answer.why or ("lookup failed" if tlsa_answer.failed else str(security))
        return DanePolicy(
            state=DaneState.FAILED,
            reason=FailureReason.DNSSEC_INVALID,
            detail=f"TLSA lookup for {tlsa_answer.name} is {security}: {why}; "
            "the MX must not be used (RFC 7672 §2.1.2)",
            **common,
        )
    if not tlsa_answer.records:
        denial = "NXDOMAIN" if tlsa_answer.nxdomain else "NODATA"
        return DanePolicy(
            state=DaneState.NO_TLSA,
            detail=f"{security} {denial} for {tlsa_answer.name}: DANE does not apply "
            "(RFC 7672 §2.2)",
            **common,
        )
    if security is not Security.SECURE:
        return DanePolicy(
            state=DaneState.INSECURE,
            detail=f"insecure TLSA records for {tlsa_answer.name}: DANE does not apply "
            "(RFC 6698 §4.1, RFC 7672 §2.2)",
            **common,
        )
    parsed: list[TlsaRecord] = []
    unusable: list[str] = []
    for text in tlsa_answer.records:
        try:
            record = parse_tlsa(text)
        except TlsaSyntaxError as exc:
            unusable.append(f"{text[:40]!r}: {exc}")
            continue
        parsed.append(record)
        if not record.usable:
            unusable.append(f"'{record}': {record.unusable_reason}")
    usable = select_tlsa(parsed, digest_preference=digest_preference)
    if not usable:
        return DanePolicy(
            state=DaneState.UNUSABLE,
            unusable=tuple(unusable),
            detail=f"all {len(tlsa_answer.records)} secure TLSA records are unusable: "
            "TLS is required, authentication is not possible (RFC 7672 §2.2)",
            **common,
        )
    return DanePolicy(
        state=DaneState.USABLE,
        records=usable,
        unusable=tuple(unusable),
        detail=f"{len(usable)} usable secure TLSA record(s): the MX must present a "
        "matching chain (RFC 7672 §2.2, §3.2)",
        **common,
    )


def check_dane(
    policy: DanePolicy, chain: Sequence[x509.Certificate] | None, *, now: datetime
) -> CheckResult:
    """Judge one TLS session (or its absence) against a :class:`DanePolicy`.

    Args:
        policy: from :func:`plan_dane`.
        chain: the certificates presented after STARTTLS, leaf first; ``None``
            when no TLS session was established.
        now: the time of the session (timezone-aware).

    Returns:
        ``dnssec-invalid`` after a failed lookup; ``starttls-not-supported``
        when TLS is required and did not happen; for ``USABLE``, the verdict of
        :func:`match_tlsa`; a pass otherwise (RFC 7672 §2.2).
    """
    if policy.state is DaneState.FAILED:
        return CheckResult.failed(FailureReason.DNSSEC_INVALID, policy.detail)
    if not policy.requires_tls:
        return CheckResult.passed(policy.detail)
    if chain is None:
        return CheckResult.failed(
            FailureReason.STARTTLS_NOT_SUPPORTED,
            "secure TLSA records require TLS, and no TLS session was made (RFC 7672 §2.2)",
        )
    if policy.state is DaneState.UNUSABLE:
        return CheckResult.passed("TLS was used; unusable TLSA records require no authentication")
    return match_tlsa(policy.records, chain, now=now, reference_names=policy.reference_names)
