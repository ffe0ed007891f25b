"""Why mail to a domain is or is not protected: the whole decision, step by step (shell).

:func:`explain_domain` walks the data flow of ARCHITECTURE.md for one domain
through an :class:`~mtasecure.client.MtaSecure` — MX lookup with its DNSSEC
status, addresses and TLSA per MX (RFC 7672 §2.2), MTA-STS discovery (RFC
8461 §3–§5), :func:`mtasecure.decision.plan` for an ordinary and a REQUIRETLS
message, and optionally a STARTTLS probe of every address judged by
:func:`mtasecure.decision.judge` — and keeps every intermediate value, so the
command line can show them (``mtasecure demo``, ``mtasecure check``). The rules
are the core's; this module only gathers and records.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import datetime

from mtasecure._mxcheck import MxAddressCheck, check_session
from mtasecure._smtpwire import ProbeOutcome, ProbeResult
from mtasecure.certs import TrustStore
from mtasecure.client import MtaSecure, StsLookup
from mtasecure.dane import DanePolicy, DaneState
from mtasecure.decision import (
    Conclusion,
    DeliveryPlan,
    MxCandidate,
    RequirementKind,
    SessionObservation,
    SessionOutcome,
    StsState,
    TransportRequirement,
    Verdict,
    conclude,
    judge,
    plan,
)
from mtasecure.dnssec import DnsAnswer, Security
from mtasecure.errors import DnsError, TransportError
from mtasecure.mx import MxSet
from mtasecure.requiretls import (
    Dsn,
    FlaggedMessage,
    RecipientFailure,
    flag_message,
    render_failure_dsn,
)
from mtasecure.sts import StsRecord, record_name, select_record
from mtasecure.transport.trust import load_system_trust_store

__all__ = [
    "AddressResult",
    "DomainExplanation",
    "MxExplanation",
    "explain_domain",
    "record_explanation",
]

DEMO_SENDER = "alice@sender.example"
"""The return path of the sample messages (RFC 5321 reverse-path)."""
DEMO_REPORTING_MTA = "mta.sender.example"
"""The sending MTA's name in a bounce (``Reporting-MTA``, RFC 3464 §2.2.2)."""
DEMO_SENDING_IP = "198.51.100.25"
"""The demo MTA's own address (``sending-mta-ip``), from a documentation range (RFC 5737)."""


@dataclass(frozen=True)
class AddressResult:
    """One address of one MX: the probe and its judgement, or why it was not probed.

    Attributes:
        address: the IP address.
        skipped: why no session was judged (a non-public address under the
            guard, or the connection failed).
        check: the probe with its WebPKI and DANE verdicts.
        outcome: :func:`~mtasecure.decision.judge` for an ordinary message.
        outcome_requiretls: the same for a REQUIRETLS message.
    """

    address: str
    skipped: str = ""
    check: MxAddressCheck | None = None
    outcome: SessionOutcome | None = None
    outcome_requiretls: SessionOutcome | None = None

    @property
    def probe(self) -> ProbeResult | None:
        """The probe, when one was made."""
        return self.check.probe if self.check is not None else None


@dataclass(frozen=True)
class MxExplanation:
    """One MX host: addresses, DANE state, requirements and probes.

    Attributes:
        host: the MX host name.
        preference: its MX preference.
        a: the A answer (``None`` if not looked up).
        aaaa: the AAAA answer.
        dane: the DANE state; ``None`` when DANE is not used because the MX
            set is not ``secure`` (RFC 7672 §2.2.1).
        requirement: the ordinary message's requirement.
        requirement_requiretls: the REQUIRETLS message's requirement.
        addresses: one entry per address (probed or not), when probing.
    """

    host: str
    preference: int
    a: DnsAnswer | None
    aaaa: DnsAnswer | None
    dane: DanePolicy | None
    requirement: TransportRequirement
    requirement_requiretls: TransportRequirement
    addresses: tuple[AddressResult, ...] = ()

    @property
    def address_list(self) -> tuple[str, ...]:
        """The addresses found, A first."""
        found: list[str] = []
        for answer in (self.a, self.aaaa):
            if answer is not None and not answer.failed:
                found.extend(answer.records)
        return tuple(found)


@dataclass(frozen=True)
class DomainExplanation:
    """Everything :func:`explain_domain` found for one domain.

    Attributes:
        domain: the recipient domain, normalised.
        now: the client's clock when the explanation began.
        mx: the MX set with its DNSSEC status.
        sts_txt: the ``_mta-sts`` TXT answer.
        sts_record: the record selected from it (RFC 8461 §3.1), or ``None``.
        sts: the discovery result (policy, cache entry, failure).
        sts_state: what the decision engine was given.
        plan: the ordinary message's plan.
        plan_requiretls: the REQUIRETLS message's plan.
        message: the REQUIRETLS sample message's flags and recipients.
        hosts: one entry per MX, in preference order.
        probed: whether the MX hosts were probed.
        conclusion: for a REQUIRETLS message no MX took, what to do.
        dsn: the bounce, when the conclusion is to bounce.
    """

    domain: str
    now: datetime
    mx: MxSet
    sts_txt: DnsAnswer | None
    sts_record: StsRecord | None
    sts: StsLookup
    sts_state: StsState
    plan: DeliveryPlan
    plan_requiretls: DeliveryPlan
    message: FlaggedMessage
    hosts: tuple[MxExplanation, ...]
    probed: bool = False
    conclusion: Conclusion | None = None
    dsn: Dsn | None = field(default=None, repr=False)

    @property
    def delivered(self) -> bool | None:
        """An ordinary message would be delivered (``None`` before probing)."""
        if not self.probed:
            return None
        return any(
            a.outcome is not None and a.outcome.deliver for h in self.hosts for a in h.addresses
        )

    @property
    def delivered_requiretls(self) -> bool | None:
        """A REQUIRETLS message would be delivered (``None`` before probing)."""
        if not self.probed:
            return None
        return any(
            a.outcome_requiretls is not None and a.outcome_requiretls.deliver
            for h in self.hosts
            for a in h.addresses
        )

    @property
    def protected(self) -> bool:
        """Mail to the domain is authenticated and encrypted on every MX that may be used.

        True when the MX lookup worked, at least one MX may be used, every
        usable MX requires TLS with DANE or WebPKI authentication (``dane``
        with usable records, or ``sts-enforce``), and, when probed, every
        session to those MX hosts met its requirement without a failure to
        report.
        """
        usable = self.plan.usable
        if self.mx.failed or not usable:
            return False
        if any(not _authenticated(r) for r in usable):
            return False
        if not self.probed:
            return True
        outcomes = [
            a.outcome for h in self.hosts if h.requirement.usable for a in h.addresses if a.check
        ]
        return bool(outcomes) and all(
            o is not None and o.deliver and o.reason is None for o in outcomes
        )


def _authenticated(requirement: TransportRequirement) -> bool:
    if requirement.kind is RequirementKind.STS_ENFORCE:
        return True
    return requirement.kind is RequirementKind.DANE and bool(requirement.tlsa_records)


def _public(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_global
    except ValueError:
        return False


async def explain_domain(
    client: MtaSecure,
    domain: str,
    *,
    probe: bool = False,
    port: int = 25,
    trust: TrustStore | None = None,
    public_only: bool = False,
) -> DomainExplanation:
    """Explain what protects mail to ``domain`` (module docstring).

    Args:
        client: the facade whose transports are used.
        domain: the recipient domain.
        probe: open a STARTTLS probe to every address of every MX that may
            be used, and judge each session.
        port: the SMTP port (also the ``_<port>._tcp`` TLSA name).
        trust: the WebPKI trust anchors for judging probes; ``None`` uses
            the system store.
        public_only: do not probe addresses that are not globally routable
            (loopback, private, link-local, documentation ranges).

    Raises:
        NameSyntaxError: ``domain`` is not a host name.
    """
    now = client.clock.now()
    mx_set = await client.resolve_mx(domain)
    name = mx_set.domain
    sts_lookup = await client.sts_lookup(name)
    sts_txt: DnsAnswer | None
    try:
        sts_txt = await client.resolver.resolve(record_name(name), "TXT")
        texts = sts_txt.txt_strings() if not sts_txt.failed else ()
    except (TransportError, DnsError):
        sts_txt, texts = None, ()
    sts_record = select_record(texts)
    # The same state plan_delivery gives the decision engine, so the operator's
    # view and the MTA's plan agree (cached policy kept on a failed fetch).
    sts_state = sts_lookup.state

    message = flag_message(reverse_path=DEMO_SENDER, recipients=[f"bob+requiretls@{name}"])
    secure = mx_set.security is Security.SECURE
    gathered: list[tuple[MxCandidate, DnsAnswer, DnsAnswer, DanePolicy | None]] = []
    for host in mx_set.hosts:
        a = await client.resolver.resolve(host.host, "A")
        aaaa = await client.resolver.resolve(host.host, "AAAA")
        dane: DanePolicy | None = None
        if secure:
            # The facade's own DANE walk (RFC 7672 §2.2.2, §2.2.3), so that check,
            # check_mx and plan_delivery agree.
            found = await client.resolve_dane(
                name, host.host, mx_set=mx_set, addresses=(a, aaaa), port=port
            )
            dane = found.policy
            candidate = MxCandidate.from_dane(
                host.host, host.preference, dane, implicit=mx_set.implicit
            )
        else:
            candidate = MxCandidate(
                host=host.host, preference=host.preference, implicit=mx_set.implicit
            )
        gathered.append((candidate, a, aaaa, dane))

    candidates = [g[0] for g in gathered]
    common = {"mx_security": mx_set.security, "mx": candidates, "sts": sts_state}
    ordinary = plan(name, mx_lookup_failed=mx_set.failed, **common)  # type: ignore[arg-type]
    with_rt = plan(name, mx_lookup_failed=mx_set.failed, flags=message.flags, **common)  # type: ignore[arg-type]

    hosts: list[MxExplanation] = []
    for (candidate, a, aaaa, dane), req, req_rt in zip(
        gathered, ordinary.requirements, with_rt.requirements, strict=True
    ):
        entry = MxExplanation(
            host=candidate.host,
            preference=candidate.preference,
            a=a,
            aaaa=aaaa,
            dane=dane,
            requirement=req,
            requirement_requiretls=req_rt,
        )
        if probe and req.kind is not RequirementKind.UNUSABLE:
            results = []
            for address in entry.address_list:
                if public_only and not _public(address):
                    results.append(
                        AddressResult(
                            address=address,
                            skipped="not a public address (use --allow-private to probe it)",
                        )
                    )
                    continue
                results.append(
                    await _probe(client, req, req_rt, dane, address, port=port, trust=trust)
                )
            entry = MxExplanation(**{**entry.__dict__, "addresses": tuple(results)})
        hosts.append(entry)

    explanation = DomainExplanation(
        domain=name,
        now=now,
        mx=mx_set,
        sts_txt=sts_txt,
        sts_record=sts_record,
        sts=sts_lookup,
        sts_state=sts_state,
        plan=ordinary,
        plan_requiretls=with_rt,
        message=message,
        hosts=tuple(hosts),
        probed=probe,
    )
    if probe and not explanation.delivered_requiretls:
        outcomes: dict[str, SessionOutcome | None] = {}
        for h in hosts:
            judged = [a.outcome_requiretls for a in h.addresses if a.outcome_requiretls]
            if judged:
                outcomes[h.host] = judged[0]
            elif h.requirement_requiretls.usable:
                outcomes[h.host] = None
        conclusion = conclude(with_rt, outcomes)
        dsn = None
        if conclusion.verdict is Verdict.BOUNCE and conclusion.requiretls_failure is not None:
            last = next((h.host for h in reversed(hosts) if h.addresses), None)
            dsn = render_failure_dsn(
                reverse_path=DEMO_SENDER,
                original=(
                    f"From: {DEMO_SENDER}\r\nTo: {message.received_recipients[0]}\r\n"
                    "Subject: REQUIRETLS sample\r\n\r\n"
                ),
                failures=[
                    RecipientFailure.for_failure(
                        message.received_recipients[0],
                        conclusion.requiretls_failure,
                        remote_mta=last,
                    )
                ],
                reporting_mta=DEMO_REPORTING_MTA,
                now=now,
                flags=with_rt.flags,
            )
        explanation = DomainExplanation(
            **{**explanation.__dict__, "conclusion": conclusion, "dsn": dsn}
        )
    return explanation


async def _probe(
    client: MtaSecure,
    requirement: TransportRequirement,
    requirement_rt: TransportRequirement,
    dane: DanePolicy | None,
    address: str,
    *,
    port: int,
    trust: TrustStore | None,
) -> AddressResult:
    host = requirement.host
    # Under DANE the SNI is the TLSA base domain (RFC 7672 §8.1), as check_mx sends it.
    sni = dane.server_name(host) if dane is not None else host
    result = await client.smtp.probe(sni, address, port=port)
    if result.outcome is ProbeOutcome.CONNECT_FAILED:
        # No session was had, so there is nothing to judge or report: the MX is
        # unreachable at this address, which defers rather than fails (RFC 5321 §4.5.4.1).
        return AddressResult(address=address, skipped=f"no connection: {result.detail}")
    policy = dane or DanePolicy(
        state=DaneState.NO_TLSA,
        base_domain=host,
        port=port,
        reference_names=(host,),
        detail="the MX set is not DNSSEC-secure: DANE is not used (RFC 7672 §2.2.1)",
    )
    anchors = trust if trust is not None else load_system_trust_store()
    check = check_session(result, policy, host=host, now=client.clock.now(), trust=anchors)
    observation = SessionObservation.from_probe(
        result, webpki=check.webpki, dane=check.dane if policy.applies else None
    ).model_copy(update={"host": host})  # the session was to this MX, whatever the SNI
    return AddressResult(
        address=address,
        check=check,
        outcome=judge(requirement, observation),
        outcome_requiretls=judge(requirement_rt, observation),
    )


def record_explanation(
    client: MtaSecure, explanation: DomainExplanation, *, sending_ip: str | None = None
) -> int:
    """Record every judged session of ``explanation`` for the TLS report (RFC 8460 §4.2–§4.4).

    Each probed address whose session was judged for an ordinary message
    counts once, through :meth:`~mtasecure.client.MtaSecure.record_session`,
    under the policy its requirement was planned from; an MTA-STS discovery
    failure of the plan goes with it. Addresses not probed (unusable MX,
    refused connection) had no session and are not counted.

    The ``failure-reason-code`` of a failed session is the detail of the
    certificate check that failed with the same result type, when there is one.

    Returns:
        The sessions counted.
    """
    counted = 0
    for host in explanation.hosts:
        for address in host.addresses:
            if address.outcome is None:
                continue
            counted += client.record_session(
                explanation.domain,
                host.requirement,
                address.outcome,
                sts_policy=explanation.sts.policy,
                sts_failure=explanation.plan.sts_failure,
                sending_ip=sending_ip,
                receiving_ip=address.address,
                failure_reason_code=_reason_code(address),
            )
    return counted


def _reason_code(address: AddressResult) -> str | None:
    """The detail of the check whose failure is the outcome's result type, if any."""
    outcome, check = address.outcome, address.check
    if outcome is None or outcome.reason is None or check is None:
        return None
    for result in (check.webpki, check.dane):
        if result is not None and result.reason is outcome.reason and result.detail:
            return result.detail
    return None
