"""Matching a presented chain against TLSA records (RFC 6698 §2.1, RFC 7671 §5 and §9, RFC 7672 §3).

Rules, in the order they are applied:

1. Discard unusable records: PKIX-TA(0)/PKIX-EE(1), unknown usages, selectors
   and matching types, malformed data (RFC 7672 §3.1.3, RFC 6698 §4.1).
2. Digest agility: for each (usage, selector), keep the Full(0) records and the
   records of the strongest digest present; weaker digests are ignored even if
   they would match (RFC 7671 §9).
3. DANE-EE(3): the leaf matches the record. Nothing else is checked: no names
   (RFC 7672 §3.2.1), no validity dates (RFC 7672 §3.1.1), no chain.
4. DANE-TA(2): a trust anchor is found, then the path from the leaf to it is
   validated (RFC 6698 §2.1.1 usage 2: "MUST pass PKIX certification path
   validation"), then the leaf's names are checked against the reference
   identifiers (RFC 7672 §3.2.2, §3.2.3). The anchor is

   * a certificate of the presented chain *above the leaf* that matches a
     record, by certificate or by key (RFC 7671 §5.2.2); the leaf is never its
     own trust anchor (that is what DANE-EE(3) is for);
   * the certificate of a ``2 0 0`` record, even if not presented (RFC 7671
     §5.2.2: the only form for which the client MUST cope with an absent TA);
   * the key of a ``2 1 0`` record, when it signed the top-most presented
     certificate (RFC 7671 §5.2.3, RECOMMENDED).

   Validity periods *are* checked for DANE-TA chains, for every certificate
   from the leaf up to and including a trust-anchor certificate: RFC 6698's
   usage 2 requires PKIX path validation, and RFC 7671 §5.1 reminds DANE-TA
   operators to "replace certificates prior to their expiration dates" —
   unlike DANE-EE(3), whose binding lives only as long as the DNSSEC signature.
   A bare ``2 1 0`` key has no dates. Name checks accept DNS-IDs, and the CN
   only when there is no DNS-ID (RFC 7672 §3.2.3); wildcards match one
   left-most label, through :mod:`mtasecure._names`.

Failure reasons (RFC 8460 §4.3): no usable record is ``tlsa-invalid`` (§4.3.2.1:
"none of the records in the RRset were found to be valid"); a DANE-TA chain
that validates but names no reference identifier is
``certificate-host-mismatch``; a certificate on a DANE-TA path outside its
validity period is ``certificate-expired``; everything else — no record
matches, or a DANE-TA path that does not validate — is ``validation-failure``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

from mtasecure.certs import TrustStore, _chain_problem, _utc, match_host, validate_path
from mtasecure.dane._record import CertUsage, MatchingType, Selector, TlsaRecord, association_data
from mtasecure.errors import UsageError
from mtasecure.results import CheckResult, FailureReason

__all__ = [
    "DIGEST_PREFERENCE",
    "MAX_TLSA_RECORDS",
    "match_tlsa",
    "select_tlsa",
]

DIGEST_PREFERENCE: tuple[int, ...] = (MatchingType.SHA2_512, MatchingType.SHA2_256)
"""Digest matching types from strongest to weakest (RFC 7671 §9: "a default order
of digest algorithms by strength"); pass another order to :func:`select_tlsa` or
:func:`match_tlsa` to change it. A digest type missing from the order is weaker
than every listed one."""

MAX_TLSA_RECORDS = 100
"""Most usable records :func:`match_tlsa` tries, in RRset order; the rest are
ignored. A DNS message holds at most a few hundred small TLSA records, and each
DANE-TA record can cost a path validation, so this bounds the work a
(DNSSEC-signed) RRset can demand. Real RRsets hold one to four records."""

_PRIORITY = (
    FailureReason.CERTIFICATE_HOST_MISMATCH,
    FailureReason.CERTIFICATE_EXPIRED,
    FailureReason.VALIDATION_FAILURE,
)


def select_tlsa(
    records: Iterable[TlsaRecord], *, digest_preference: Sequence[int] = DIGEST_PREFERENCE
) -> tuple[TlsaRecord, ...]:
    """The records a client uses: the usable ones, after digest agility (RFC 7671 §9).

    Unusable records are dropped first (RFC 7671 §9: "after first discarding any
    unusable or malformed records"); then, per (usage, selector), the Full(0)
    records and those of the strongest digest present are kept. Order is kept.
    """
    usable = [r for r in records if r.usable]
    rank = {mtype: index for index, mtype in enumerate(digest_preference)}
    strongest: dict[tuple[int, int], int] = {}
    for record in usable:
        if record.mtype == MatchingType.FULL:
            continue
        key = (record.usage, record.selector)
        best = strongest.get(key)
        if best is None or rank.get(record.mtype, len(rank)) < rank.get(best, len(rank)):
            strongest[key] = record.mtype
    return tuple(
        r
        for r in usable
        if r.mtype == MatchingType.FULL or strongest[(r.usage, r.selector)] == r.mtype
    )


def match_tlsa(
    records: Iterable[TlsaRecord],
    chain: Sequence[x509.Certificate],
    *,
    now: datetime,
    reference_names: Iterable[str],
    digest_preference: Sequence[int] = DIGEST_PREFERENCE,
) -> CheckResult:
    """Whether the presented chain is authenticated by the TLSA records (RFC 7672 §3).

    Use it only with records from a "secure" TLSA RRset (see
    :func:`~mtasecure.dane.plan_dane`). When DANE applies it takes precedence
    over MTA-STS (RFC 8461 §2): a failure here is final for this MX.

    Args:
        records: the TLSA RRset (unusable records may be included; they are
            ignored).
        chain: the certificates the server presented, leaf first.
        now: the time of the check (timezone-aware); used for DANE-TA only.
        reference_names: the names a DANE-TA(2) leaf must carry: the TLSA base
            domain first, then the next-hop domains when the MX lookup was
            secure (RFC 7672 §3.2.2; :attr:`DanePolicy.reference_names`).
        digest_preference: digest matching types, strongest first.

    Returns:
        A passing result saying which record matched, or a failing one with
        ``tlsa-invalid``, ``certificate-host-mismatch``, ``certificate-expired``
        or ``validation-failure`` (RFC 8460 §4.3).

    Raises:
        UsageError: ``now`` is naive, or DANE-TA(2) records must be checked and
            ``reference_names`` is empty.
    """
    when = _utc(now)
    records = tuple(records)
    selected = select_tlsa(records, digest_preference=digest_preference)
    if not selected:
        reasons = "; ".join(sorted({r.unusable_reason or "" for r in records} - {""}))
        return CheckResult.failed(
            FailureReason.TLSA_INVALID,
            f"none of the {len(records)} TLSA records is usable"
            + (f": {reasons}" if reasons else "")
            + " (RFC 6698 §4.1, RFC 7672 §3.1)",
        )
    problem = _chain_problem(chain)
    if problem is not None:
        return problem
    skipped = max(0, len(selected) - MAX_TLSA_RECORDS)
    selected = selected[:MAX_TLSA_RECORDS]
    digests = _Digests()
    leaf = chain[0]
    for record in selected:
        if record.usage == CertUsage.DANE_EE and digests.of(leaf, record) == record.data:
            return CheckResult.passed(
                f"DANE-EE(3) record '{_params(record)}' matches the leaf certificate; "
                "names and dates are not checked (RFC 7672 §3.1.1, §3.2.1)"
            )
    trust_anchors = [r for r in selected if r.usage == CertUsage.DANE_TA]
    if not trust_anchors:
        return CheckResult.failed(
            FailureReason.VALIDATION_FAILURE,
            "no DANE-EE(3) record matches the leaf certificate (RFC 7672 §3.1.1)"
            + (f" ({skipped} records past MAX_TLSA_RECORDS were not tried)" if skipped else ""),
        )
    references = tuple(reference_names)
    if not references:
        raise UsageError("DANE-TA(2) name checks need reference names (RFC 7672 §3.2.2)")
    failures: list[CheckResult] = []
    for anchor, how in _anchors(trust_anchors, chain, digests):
        failure = validate_path(chain, anchors=TrustStore([anchor]), now=when, profile="dane")
        if failure is not None:
            failures.append(failure.model_copy(update={"detail": f"{how}: {failure.detail}"}))
            continue
        names = match_host(leaf, references, cn_fallback=True)
        if names.ok:
            return CheckResult.passed(f"{how}; {names.detail} (RFC 7672 §3.1.2, §3.2.2)")
        failures.append(names.model_copy(update={"detail": f"{how}: {names.detail}"}))
    note = f" ({skipped} records past MAX_TLSA_RECORDS were not tried)" if skipped else ""
    if failures:
        worst = min(failures, key=lambda f: _PRIORITY.index(f.reason or _PRIORITY[-1]))
        return worst.model_copy(update={"detail": worst.detail + note})
    return CheckResult.failed(
        FailureReason.VALIDATION_FAILURE,
        "no TLSA record matches the leaf or any certificate of the presented chain "
        "(RFC 6698 §2.1.1, RFC 7671 §5.2.2)" + note,
    )


class _Digests:
    """Association data per (certificate, selector, matching type), computed once."""

    def __init__(self) -> None:
        self._memo: dict[tuple[int, int, int], bytes | None] = {}

    def of(self, cert: x509.Certificate, record: TlsaRecord) -> bytes | None:
        key = (id(cert), record.selector, record.mtype)
        if key not in self._memo:
            self._memo[key] = association_data(cert, record.selector, record.mtype)
        return self._memo[key]


def _anchors(
    records: Sequence[TlsaRecord], chain: Sequence[x509.Certificate], digests: _Digests
) -> list[tuple[x509.Certificate, str]]:
    found: list[tuple[x509.Certificate, str]] = []
    seen: set[bytes] = set()

    def add(cert: x509.Certificate, how: str) -> None:
        der = cert.public_bytes(serialization.Encoding.DER)
        if der not in seen:
            seen.add(der)
            found.append((cert, how))

    for depth, cert in enumerate(chain[1:], start=1):
        for record in records:
            if digests.of(cert, record) == record.data:
                add(cert, f"DANE-TA(2) record '{_params(record)}' matches certificate {depth}")
                break
    for record in records:
        if record.mtype != MatchingType.FULL:
            continue
        if record.selector == Selector.CERT:
            add(
                x509.load_der_x509_certificate(record.data),
                "DANE-TA(2) record '2 0 0' supplies the trust anchor certificate",
            )
        elif _signed_by(chain[-1], serialization.load_der_public_key(record.data)):
            add(
                chain[-1],
                "DANE-TA(2) record '2 1 0' key signed the top-most certificate (RFC 7671 §5.2.3)",
            )
    return found


def _signed_by(cert: x509.Certificate, key: object) -> bool:
    """Whether ``key`` made the signature on ``cert`` (RFC 5280 §6.1.3 (a)(1))."""
    params = cert.signature_algorithm_parameters
    digest = cert.signature_hash_algorithm
    signature, tbs = cert.signature, cert.tbs_certificate_bytes
    try:
        if isinstance(key, rsa.RSAPublicKey):
            if not isinstance(params, padding.PKCS1v15 | padding.PSS) or not isinstance(
                digest, hashes.HashAlgorithm
            ):
                return False
            key.verify(signature, tbs, params, digest)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if not isinstance(params, ec.ECDSA):
                return False
            key.verify(signature, tbs, params)
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, tbs)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


def _params(record: TlsaRecord) -> str:
    return f"{record.usage} {record.selector} {record.mtype}"
