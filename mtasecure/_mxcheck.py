"""Judging one MX: addresses, DANE state and what each probe saw (pure).

The shell (:meth:`mtasecure.client.MtaSecure.check_mx`) looks up the MX host's
addresses and TLSA records, as :func:`mtasecure.dane.plan_dane_lookup` plans
them (RFC 7672 §2.2; :func:`plan_mx_set_dane` and :func:`plan_address_dane`
are its first two rules, re-exported here), and probes each address; this
module judges each session with the certificate checks (WebPKI,
:func:`mtasecure.certs.check_certificate`) and the DANE checks
(:func:`mtasecure.dane.check_dane`).

The MTA-STS side (RFC 8461 §4, "is this MX allowed, and must its certificate
be WebPKI-valid?") joins through :func:`mtasecure.decision.plan`: the MX's
:class:`~mtasecure.decision.TransportRequirement` (DANE first, RFC 8461 §2)
is kept on the :class:`MxCheck`, and each session is held against it with
:func:`mtasecure.decision.judge` (:func:`judge_check`), which gives the
verdict (deliver or not) and the RFC 8460 result type to report.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from mtasecure._smtpwire import ProbeResult
from mtasecure.certs import TrustStore, check_certificate
from mtasecure.dane import DanePolicy, check_dane
from mtasecure.dane._lookup import plan_address_dane, plan_mx_set_dane
from mtasecure.decision import (
    SessionObservation,
    SessionOutcome,
    StsState,
    TransportRequirement,
    judge,
)
from mtasecure.dnssec import DnsAnswer, Security, combine_security
from mtasecure.errors import ParseError
from mtasecure.results import CheckResult, FailureReason

__all__ = [
    "MxAddressCheck",
    "MxCheck",
    "MxDane",
    "check_session",
    "judge_check",
    "plan_address_dane",
    "plan_mx_set_dane",
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
        outcome: the session held against the MX's requirement
            (:func:`mtasecure.decision.judge`): deliver or not, and the
            RFC 8460 result type to report; ``None`` when not judged.
    """

    model_config = ConfigDict(frozen=True)

    address: str
    probe: ProbeResult
    webpki: CheckResult | None = None
    dane: CheckResult
    outcome: SessionOutcome | None = None


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
        sts: the domain's MTA-STS state as the decision engine saw it
            (policy mode and patterns, and a discovery failure to report);
            ``None`` when not looked up.
        requirement: what a session to this MX must prove for an ordinary
            message (:func:`mtasecure.decision.plan`: DANE, then MTA-STS,
            RFC 8461 §2); ``None`` when not planned.
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
    sts: StsState | None = None
    requirement: TransportRequirement | None = None

    @property
    def dane_ok(self) -> bool:
        """DANE allowed the MX and every probed address passed its DANE check."""
        return (
            self.dane_policy.may_connect
            and bool(self.checks)
            and all(c.dane.ok for c in self.checks)
        )

    @property
    def deliver(self) -> bool:
        """A message may go to this MX: some probed address met the requirement."""
        return any(c.outcome is not None and c.outcome.deliver for c in self.checks)

    @property
    def reasons(self) -> tuple[FailureReason, ...]:
        """The RFC 8460 result types to report for this MX, without repeats.

        The MTA-STS discovery failure first (RFC 8460 §4.3.2.2), then the
        requirement's own (an MX that must not be used), then each judged
        session's.
        """
        found: list[FailureReason] = []
        if self.sts is not None and self.sts.failure is not None:
            found.append(self.sts.failure)
        if self.requirement is not None and self.requirement.reason is not None:
            found.append(self.requirement.reason)
        found.extend(c.outcome.reason for c in self.checks if c.outcome and c.outcome.reason)
        return tuple(dict.fromkeys(found))


class MxDane(BaseModel):
    """What DNS says about DANE for one MX host (RFC 7672 §2.2).

    Attributes:
        host: the MX host name.
        a: the A answer, when it was looked up.
        aaaa: the AAAA answer, when it was looked up.
        policy: what DANE requires of the host.
        relay: the host is a configured relay, not one the next hop's MX set
            lists (RFC 7672 §2.2.2).
        mx_security: the status that counts as the MX lookup's for the
            decision: the MX answer's for a listed host, the address
            answers' for a relay (:class:`mtasecure.dane.DaneStep`).
    """

    model_config = ConfigDict(frozen=True)

    host: str
    a: DnsAnswer | None = None
    aaaa: DnsAnswer | None = None
    policy: DanePolicy
    relay: bool = False
    mx_security: Security = Security.INDETERMINATE


def weakest_security(answers: tuple[DnsAnswer, ...]) -> Security:
    """The least trustworthy status among ``answers`` (RFC 4035 §4.3: bogus < indeterminate < insecure < secure)."""
    return combine_security(a.security for a in answers)


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


def judge_check(
    check: MxAddressCheck, requirement: TransportRequirement, *, host: str
) -> MxAddressCheck:
    """Hold one probed session against the MX's requirement (RFC 7672 §2.2, RFC 8461 §5).

    Which verdict counts (DANE or WebPKI) is the requirement's
    ``authentication``; the session is to ``host`` whatever name went in
    the SNI (RFC 7672 §8.1).

    Returns:
        ``check`` with :attr:`MxAddressCheck.outcome` set.
    """
    observation = SessionObservation.from_probe(
        check.probe, webpki=check.webpki, dane=check.dane
    ).model_copy(update={"host": host})
    return check.model_copy(update={"outcome": judge(requirement, observation)})
