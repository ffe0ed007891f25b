"""Judging one MX: addresses, DANE state and what each probe saw (pure).

The shell (:meth:`mtasecure.client.MtaSecure.check_mx`) looks up the MX host's
addresses and TLSA records and probes each address; this module decides, from
what was fetched, whether the TLSA lookup is due (RFC 7672 §2.2.2), what DANE
requires (:func:`mtasecure.dane.plan_dane`), and judges each session with the
certificate checks (WebPKI, :func:`mtasecure.certs.check_certificate`) and the
DANE checks (:func:`mtasecure.dane.check_dane`).

The MTA-STS side (RFC 8461 §4, "is this MX allowed, and must its certificate
be WebPKI-valid?") is decided by the policy work and plugs in next to
``dane``; DANE, when it applies, takes precedence (RFC 8461 §2).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from mtasecure._smtpwire import ProbeResult
from mtasecure.certs import TrustStore, check_certificate
from mtasecure.dane import DanePolicy, DaneState, check_dane
from mtasecure.dnssec import DnsAnswer, Security
from mtasecure.errors import ParseError
from mtasecure.results import CheckResult, FailureReason

__all__ = [
    "MxAddressCheck",
    "MxCheck",
    "check_session",
    "plan_address_dane",
    "weakest_security",
]


class MxAddressCheck(BaseModel):
    """One address of an MX: what the probe saw and how it was judged.

    Attributes:
        address: the IP address probed.
        probe: what the session showed.
        webpki: the WebPKI verdict on the presented chain for the MX name
            (RFC 8461 §4.2); ``None`` when no TLS session was made.
        dane: the DANE verdict (RFC 7672 §2.2, §3); a pass when DANE does
            not apply.
    """

    model_config = ConfigDict(frozen=True)

    address: str
    probe: ProbeResult
    webpki: CheckResult | None = None
    dane: CheckResult


class MxCheck(BaseModel):
    """Everything known about one MX host of a domain, judged.

    Attributes:
        domain: the next-hop (recipient) domain.
        mx: the MX host name.
        port: the SMTP port.
        mx_security: the DNSSEC status of the domain's MX answer.
        address_security: the DNSSEC status of the host's address answers
            (the weakest of A and AAAA).
        addresses: the addresses found, A first, then AAAA.
        dane_policy: what DANE requires of this MX.
        checks: one per address probed; empty when the MX must not be used.
        detail: why nothing was probed, when nothing was.
    """

    model_config = ConfigDict(frozen=True)

    domain: str
    mx: str
    port: int = 25
    mx_security: Security
    address_security: Security
    addresses: tuple[str, ...] = ()
    dane_policy: DanePolicy
    checks: tuple[MxAddressCheck, ...] = ()
    detail: str = ""

    @property
    def dane_ok(self) -> bool:
        """DANE allowed the MX and every probed address passed its DANE check."""
        return (
            self.dane_policy.may_connect
            and bool(self.checks)
            and all(c.dane.ok for c in self.checks)
        )


_ORDER = (Security.SECURE, Security.INSECURE, Security.INDETERMINATE, Security.BOGUS)


def weakest_security(answers: tuple[DnsAnswer, ...]) -> Security:
    """The least trustworthy status among ``answers`` (bogus < indeterminate < insecure < secure)."""
    return max((a.security for a in answers), key=_ORDER.index, default=Security.INDETERMINATE)


def plan_address_dane(
    mx: str, addresses: tuple[DnsAnswer, ...], *, port: int = 25
) -> DanePolicy | None:
    """Decide DANE from the address lookups alone, or ``None`` if TLSA must be looked up.

    RFC 7672 §2.2.2: the address records come first; "insecure" address
    records mean no TLSA lookup (DANE does not apply); a bogus or failed
    lookup means the MX must not be used (RFC 7672 §2.1.1); no address at all
    means the MX is unreachable.

    Args:
        mx: the MX host name (normalised).
        addresses: the A and AAAA answers for ``mx``.
        port: the SMTP port (the TLSA base is ``_<port>._tcp.<mx>``).
    """
    common = {"base_domain": mx, "port": port, "reference_names": (mx,)}
    security = weakest_security(addresses)
    if any(a.failed for a in addresses) or security in (Security.BOGUS, Security.INDETERMINATE):
        why = "; ".join(a.why for a in addresses if a.why) or str(security)
        return DanePolicy(
            state=DaneState.FAILED,
            reason=FailureReason.DNSSEC_INVALID,
            detail=f"address lookup for {mx} is {security}: {why}; "
            "the MX must not be used (RFC 7672 §2.1.1)",
            **common,
        )
    if security is Security.INSECURE:
        return DanePolicy(
            state=DaneState.INSECURE,
            detail=f"address records of {mx} are insecure: no TLSA lookup, DANE does not "
            "apply (RFC 7672 §2.2.2)",
            **common,
        )
    return None


def check_session(
    probe: ProbeResult,
    dane_policy: DanePolicy,
    *,
    host: str | None = None,
    now: datetime,
    trust: TrustStore,
) -> MxAddressCheck:
    """Judge one probe with the WebPKI and DANE checks (RFC 8461 §4.2, RFC 7672 §3).

    Args:
        probe: what the session showed.
        dane_policy: what DANE requires of the MX.
        host: the MX host name the WebPKI check matches (RFC 8461 §4.2);
            defaults to the name the probe was for.
        now: the time of the check.
        trust: the WebPKI trust anchors.

    A chain that cannot be read is a ``validation-failure`` for both checks,
    not an exception.
    """
    if not probe.tls_established:
        return MxAddressCheck(
            address=probe.address,
            probe=probe,
            dane=check_dane(dane_policy, None, now=now),
        )
    try:
        chain = probe.certificates()
        problem = "" if chain else "the server presented no certificate"
    except ParseError as exc:
        chain, problem = (), str(exc)
    if problem:
        bad = CheckResult.failed(FailureReason.VALIDATION_FAILURE, problem)
        dane = bad if dane_policy.requires_authentication else check_dane(dane_policy, (), now=now)
        return MxAddressCheck(address=probe.address, probe=probe, webpki=bad, dane=dane)
    return MxAddressCheck(
        address=probe.address,
        probe=probe,
        webpki=check_certificate(chain, host or probe.host, now=now, trust=trust),
        dane=check_dane(dane_policy, chain, now=now),
    )
