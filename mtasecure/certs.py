"""WebPKI certificate checks for MX hosts and MTA-STS policy hosts (RFC 8461 §4.2, RFC 6125).

:func:`check_certificate` answers "may this presented chain be trusted for this
host, now?" and returns a :class:`~mtasecure.results.CheckResult` whose reason is
one of RFC 8460 §4.3.1's negotiation failures, never an exception.

Design: path validation and name matching are two separate steps.

* **Path validation** (signatures, validity periods, basicConstraints, path
  length, name constraints, key usage, signature algorithms) is done by
  :mod:`cryptography.x509.verification`. Its *server* verifier always matches
  the subject name itself, with its own matcher, so mtasecure uses its *client*
  verifier, which validates the path and matches no name, with extension
  policies that restore the server-side rule: an extendedKeyUsage, if present,
  must allow ``id-kp-serverAuth`` (RFC 5280 §4.2.1.12). A test cross-checks the
  verdicts against cryptography's server verifier on every vector whose names
  agree.
* **Name matching** goes through :mod:`mtasecure._names` only, the same
  wildcard matcher as MTA-STS ``mx`` patterns: DNS-IDs from the
  subjectAltName, ``*`` only as the whole left-most label covering exactly one
  label, IDNs compared as A-labels (RFC 8461 §4.1, RFC 6125 §6.4). MTA-STS
  requires a DNS-ID (RFC 8461 §4.2), so the CN-ID is never consulted here;
  DANE-TA name checks may fall back to it (RFC 7672 §3.2.3) through
  :func:`match_host`'s ``cn_fallback``.

Reasons are reported in this order: an unreadable or over-long chain
(``validation-failure``), a leaf outside its validity period
(``certificate-expired``), a path that does not validate
(``certificate-expired`` when a certificate on it is outside its validity
period, ``certificate-not-trusted`` otherwise), then the name
(``certificate-host-mismatch``). A name means nothing until the certificate
carrying it is authenticated (RFC 6125 §6.1), hence the order.

The trust store is a value: :meth:`TrustStore.from_pem` builds it from bytes;
the shell's :func:`mtasecure.transport.trust.load_system_trust_store` reads the
system bundle. This module reads no file and no environment.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Literal

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mtasecure._names import match_wildcard, normalize_host, normalize_pattern
from mtasecure.errors import NameSyntaxError, UsageError
from mtasecure.results import CheckResult, FailureReason

__all__ = [
    "MAX_CHAIN_LENGTH",
    "MAX_SAN_NAMES",
    "TrustStore",
    "certificate_names",
    "check_certificate",
    "match_host",
]

MAX_CHAIN_LENGTH = 10
"""Most certificates read from a presented chain (leaf included); a longer chain
is a ``validation-failure``. Real chains carry 2–4; this also bounds the work an
MX can make a sender do."""
MAX_SAN_NAMES = 500
"""Most subjectAltName DNS-IDs considered per certificate; names past this many
are ignored (a mismatch says so). Public CAs issue at most a few hundred."""

Profile = Literal["webpki", "dane"]

_EXPIRED_HINT = "not valid at validation time"
_NO_PATH_HINT = "no interior errors"
_ANY_EKU = x509.ObjectIdentifier("2.5.29.37.0")


class TrustStore:
    """A set of trust-anchor certificates (RFC 5280 §6.1.1 (d)), as an immutable value.

    Build it with :meth:`from_pem` (a CA bundle's bytes) or
    :meth:`from_certificates`; the shell's
    :func:`~mtasecure.transport.trust.load_system_trust_store` builds the system
    default. One store can be shared by any number of concurrent checks.
    """

    __slots__ = ("_certificates", "_store")

    def __init__(self, certificates: Iterable[x509.Certificate]) -> None:
        certs = tuple(certificates)
        if not certs:
            raise UsageError("a trust store needs at least one certificate")
        if not all(isinstance(c, x509.Certificate) for c in certs):
            raise UsageError("a trust store holds cryptography.x509.Certificate objects only")
        self._certificates = certs
        self._store = verification.Store(list(certs))

    @classmethod
    def from_pem(cls, data: bytes) -> TrustStore:
        """Build a store from PEM text holding one or more ``CERTIFICATE`` blocks.

        Raises:
            UsageError: ``data`` holds no certificate, or a block cannot be read.
        """
        try:
            with warnings.catch_warnings():
                # Old roots with non-positive serials still anchor real chains.
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                certs = x509.load_pem_x509_certificates(data)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"unreadable PEM trust bundle: {exc}") from exc
        return cls(certs)

    @classmethod
    def from_certificates(cls, certificates: Iterable[x509.Certificate]) -> TrustStore:
        """Build a store from certificates already loaded."""
        return cls(certificates)

    @property
    def certificates(self) -> tuple[x509.Certificate, ...]:
        """The trust anchors, in the order given."""
        return self._certificates

    @property
    def store(self) -> verification.Store:
        """The :class:`cryptography.x509.verification.Store` for the same anchors."""
        return self._store

    def __len__(self) -> int:
        return len(self._certificates)

    def __contains__(self, cert: object) -> bool:
        return cert in self._certificates

    def __repr__(self) -> str:
        return f"TrustStore(<{len(self._certificates)} certificates>)"


def check_certificate(
    chain: Sequence[x509.Certificate],
    host: str,
    *,
    now: datetime,
    trust: TrustStore,
) -> CheckResult:
    """Whether a presented chain is valid WebPKI for ``host`` at ``now`` (RFC 8461 §4.2).

    The certificate "MUST not be expired and MUST chain to a root CA that is
    trusted by the Sending MTA" and "MUST have a subject alternative name with a
    DNS-ID matching the hostname" (RFC 8461 §4.2); matching follows RFC 6125
    with ``*`` only as the whole left-most label (RFC 8461 §4.1).

    Args:
        chain: the certificates the server presented, leaf first, in the order
            sent (intermediates need not be in order; extra ones are ignored).
        host: the reference identifier: the MX host name, or the policy host
            ``mta-sts.<domain>``; U-labels are compared as A-labels.
        now: the time of the check (timezone-aware).
        trust: the trust anchors.

    Returns:
        A passing result, or a failing one whose reason is
        ``certificate-expired``, ``certificate-not-trusted``,
        ``certificate-host-mismatch`` or ``validation-failure`` (RFC 8460 §4.3.1),
        with cryptography's own words in ``detail`` where it had them.

    Raises:
        NameSyntaxError: ``host`` is not a host name.
        UsageError: ``now`` is naive.
    """
    reference = normalize_host(host)
    when = _utc(now)
    problem = _chain_problem(chain)
    if problem is not None:
        return problem
    failure = validate_path(chain, anchors=trust, now=when, profile="webpki")
    if failure is not None:
        return failure
    return match_host(chain[0], (reference,))


def certificate_names(cert: x509.Certificate, *, cn_fallback: bool = False) -> tuple[str, ...]:
    """The presented DNS identifiers of ``cert``, normalised (RFC 6125 §6.4).

    Returns the subjectAltName dNSName entries (at most :data:`MAX_SAN_NAMES`),
    each normalised by :func:`mtasecure._names.normalize_pattern`; entries that
    are not host names or legal wildcards are dropped. With ``cn_fallback`` and
    no DNS-ID at all, the subject's common names are used instead (RFC 7672
    §3.2.3; never for MTA-STS, RFC 8461 §4.2). IP addresses, URIs and other
    identifier types are never DNS-IDs.
    """
    raw: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        raw = san.get_values_for_type(x509.DNSName)[:MAX_SAN_NAMES]
    except x509.ExtensionNotFound:
        pass
    except ValueError:  # a malformed extension: no usable identifier in it
        raw = []
    if not raw and cn_fallback:
        try:
            raw = [
                str(attr.value) for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            ]
        except ValueError:
            raw = []
    names: list[str] = []
    for entry in raw:
        try:
            names.append(normalize_pattern(entry))
        except NameSyntaxError:
            continue
    return tuple(names)


def match_host(
    cert: x509.Certificate, reference_names: Iterable[str], *, cn_fallback: bool = False
) -> CheckResult:
    """Whether one presented identifier of ``cert`` matches one reference identifier.

    Matching is :func:`mtasecure._names.match_wildcard` on A-labels (RFC 6125
    §6.4, RFC 8461 §4.1, RFC 7672 §3.2.3).

    Args:
        cert: the leaf certificate.
        reference_names: the names the client expects (an MX host; for DANE-TA
            the TLSA base domain and next-hop domains). Names that are not
            host names are skipped.
        cn_fallback: consult the subject CN when the certificate has no DNS-ID
            (DANE-TA only, RFC 7672 §3.2.3).

    Returns:
        A passing result naming the identifier that matched, or
        ``certificate-host-mismatch``.
    """
    references = []
    for name in reference_names:
        try:
            references.append(normalize_host(name))
        except NameSyntaxError:
            continue
    presented = certificate_names(cert, cn_fallback=cn_fallback)
    for pattern in presented:
        for reference in references:
            if match_wildcard(pattern, reference):
                return CheckResult.passed(f"certificate name {pattern!r} matches {reference!r}")
    shown = ", ".join(presented[:5]) + (", ..." if len(presented) > 5 else "")
    if not presented:
        what = "the certificate has no DNS-ID" + (" and no CN" if cn_fallback else "")
    else:
        what = f"certificate names [{shown}]"
        if len(presented) >= MAX_SAN_NAMES:
            what += f" (only the first {MAX_SAN_NAMES} DNS-IDs are considered)"
    return CheckResult.failed(
        FailureReason.CERTIFICATE_HOST_MISMATCH,
        f"{what}; none matches {', '.join(references) or 'a reference name'} "
        + ("(RFC 7672 §3.2.3)" if cn_fallback else "(RFC 6125 §6.4, RFC 8461 §4.1)"),
    )


# -- shared with mtasecure.dane (DANE-TA path validation) -------------------------


def validate_path(
    chain: Sequence[x509.Certificate],
    *,
    anchors: TrustStore,
    now: datetime,
    profile: Profile,
) -> CheckResult | None:
    """Validate the path from ``chain[0]`` to one of ``anchors``; ``None`` when it holds.

    ``profile`` is ``"webpki"`` (cryptography's CA/B Forum profile, for MTA-STS)
    or ``"dane"`` (RFC 5280 essentials only, for private DANE-TA(2) CAs, whose
    certificates need not follow the CA/B Forum profile). Both require a
    CA certificate to assert basicConstraints cA and enforce path length, name
    constraints and validity at ``now``. The failure reasons are those of
    :func:`check_certificate` (``certificate-not-trusted`` becomes
    ``validation-failure`` with the ``"dane"`` profile, as RFC 8460 §4.3 has no
    DANE-specific trust failure).
    """
    leaf = chain[0]
    expired = _validity_problem(leaf, now)
    if expired is not None:
        return expired
    try:
        verifier = _verifier(anchors.store, now, profile)
        verifier.verify(leaf, list(chain[1:]))
    except verification.VerificationError as exc:
        return _classify(str(exc), chain, anchors, now, profile)
    except (ValueError, TypeError) as exc:
        return CheckResult.failed(
            FailureReason.VALIDATION_FAILURE, f"certificate chain could not be processed: {exc}"
        )
    return None


def _chain_problem(chain: Sequence[x509.Certificate]) -> CheckResult | None:
    if not chain:
        return CheckResult.failed(
            FailureReason.VALIDATION_FAILURE, "the server presented no certificate"
        )
    if len(chain) > MAX_CHAIN_LENGTH:
        return CheckResult.failed(
            FailureReason.VALIDATION_FAILURE,
            f"the server presented {len(chain)} certificates, more than {MAX_CHAIN_LENGTH}",
        )
    if not all(isinstance(c, x509.Certificate) for c in chain):
        raise UsageError("chain must hold cryptography.x509.Certificate objects, leaf first")
    return None


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise UsageError("now must be timezone-aware (UTC)")
    return now.astimezone(UTC)


def _validity_problem(cert: x509.Certificate, now: datetime) -> CheckResult | None:
    if now < cert.not_valid_before_utc:
        return CheckResult.failed(
            FailureReason.CERTIFICATE_EXPIRED,
            f"certificate {cert.subject.rfc4514_string()!r} is not valid before "
            f"{cert.not_valid_before_utc.isoformat()} (RFC 5280 §4.1.2.5)",
        )
    if now > cert.not_valid_after_utc:
        return CheckResult.failed(
            FailureReason.CERTIFICATE_EXPIRED,
            f"certificate {cert.subject.rfc4514_string()!r} expired at "
            f"{cert.not_valid_after_utc.isoformat()} (RFC 5280 §4.1.2.5)",
        )
    return None


def _classify(
    message: str,
    chain: Sequence[x509.Certificate],
    anchors: TrustStore,
    now: datetime,
    profile: Profile,
) -> CheckResult:
    # cryptography's messages are not a stable API; each branch below is pinned
    # by a test vector, and the validity scan is the version-proof fallback.
    untrusted = (
        FailureReason.CERTIFICATE_NOT_TRUSTED
        if profile == "webpki"
        else FailureReason.VALIDATION_FAILURE
    )
    detail = message.split(" (encountered processing", 1)[0]
    if _EXPIRED_HINT in message:
        return CheckResult.failed(
            FailureReason.CERTIFICATE_EXPIRED,
            f"a certificate on the path is outside its validity period: {detail}",
        )
    for cert in chain[1:]:
        problem = _validity_problem(cert, now)
        if problem is not None:
            return problem
    leaf = chain[0]
    if leaf.issuer == leaf.subject and leaf not in anchors:
        return CheckResult.failed(untrusted, f"self-signed certificate not trusted: {detail}")
    if _NO_PATH_HINT in message:
        return CheckResult.failed(untrusted, f"no path to a trust anchor: {detail}")
    return CheckResult.failed(untrusted, detail)


def _server_auth_allowed(
    policy: verification.Policy, cert: x509.Certificate, eku: x509.ExtendedKeyUsage | None
) -> None:
    # RFC 5280 §4.2.1.12: an EKU, when present, restricts the key to its purposes.
    if eku is not None and ExtendedKeyUsageOID.SERVER_AUTH not in eku and _ANY_EKU not in eku:
        raise ValueError("extendedKeyUsage does not allow id-kp-serverAuth")


def _san_profile(
    policy: verification.Policy, cert: x509.Certificate, san: x509.SubjectAlternativeName | None
) -> None:
    # RFC 5280 §4.2.1.6 and the CA/B Forum profile, as cryptography's own EE policy
    # has it: the subjectAltName is critical only when the subject is empty.
    if san is None or len(cert.subject) == 0:
        return
    if cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical:
        raise ValueError("subjectAltName must not be critical when the subject is not empty")


def _key_cert_sign(
    policy: verification.Policy, cert: x509.Certificate, usage: x509.KeyUsage | None
) -> None:
    # RFC 5280 §4.2.1.3: a CA key that signs certificates asserts keyCertSign.
    if usage is not None and not usage.key_cert_sign:
        raise ValueError("keyUsage of a CA certificate lacks keyCertSign")


def _verifier(
    store: verification.Store, now: datetime, profile: Profile
) -> verification.ClientVerifier:
    agnostic = verification.Criticality.AGNOSTIC
    if profile == "webpki":
        ee = (
            verification.ExtensionPolicy.webpki_defaults_ee()
            .may_be_present(x509.SubjectAlternativeName, agnostic, _san_profile)
            .may_be_present(
                x509.ExtendedKeyUsage,
                verification.Criticality.NON_CRITICAL,
                _server_auth_allowed,
            )
        )
        ca = verification.ExtensionPolicy.webpki_defaults_ca().may_be_present(
            x509.ExtendedKeyUsage, agnostic, _server_auth_allowed
        )
    else:
        ee = verification.ExtensionPolicy.permit_all().may_be_present(
            x509.ExtendedKeyUsage, agnostic, _server_auth_allowed
        )
        ca = (
            verification.ExtensionPolicy.permit_all()
            .require_present(x509.BasicConstraints, agnostic, None)
            .may_be_present(x509.ExtendedKeyUsage, agnostic, _server_auth_allowed)
            .may_be_present(x509.KeyUsage, agnostic, _key_cert_sign)
        )
    return (
        verification.PolicyBuilder()
        .store(store)
        .time(now)
        .extension_policies(ca_policy=ca, ee_policy=ee)
        .build_client_verifier()
    )
