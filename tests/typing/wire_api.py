"""Pins the types of the wired facade: DNSSEC mode, plan_delivery, check_mx (never run)."""

from __future__ import annotations

from mtasecure.client import MtaSecure, MxCheck, MxDane, StsLookup
from mtasecure.decision import DeliveryPlan, SessionOutcome, StsState, TransportRequirement
from mtasecure.dnssec import TrustAnchor, parse_trust_anchor
from mtasecure.requiretls import MessageFlags
from mtasecure.results import FailureReason
from mtasecure.testing import FrozenClock
from mtasecure.transport import (
    DnsResolver,
    DnssecMode,
    DnsSettings,
    Resolver,
    ValidatingResolver,
    resolver_from_settings,
)


async def pins() -> None:
    anchor: TrustAnchor = parse_trust_anchor(". IN DS 1 13 2 " + "00" * 32)
    settings = DnsSettings(
        dnssec=DnssecMode.LOCAL, nameservers=("127.0.0.1:5300",), trust_anchor=anchor
    )
    built: DnsResolver = resolver_from_settings(settings, clock=FrozenClock())
    local: Resolver = ValidatingResolver(["127.0.0.1:5300"], anchor=anchor)
    async with MtaSecure(dns=settings) as client:
        lookup: StsLookup = await client.sts_lookup("example.com")
        state: StsState = lookup.state
        plan: DeliveryPlan = await client.plan_delivery("example.com", MessageFlags())
        forced: DeliveryPlan = await client.plan_delivery("example.com", sts=state)
        failure: FailureReason | None = plan.sts_failure
        dane: MxDane = await client.resolve_dane("example.com", "mx.example.com")
        check: MxCheck = await client.check_mx("example.com", "mx.example.com")
        requirement: TransportRequirement | None = check.requirement
        outcome: SessionOutcome | None = check.checks[0].outcome
        deliver: bool = check.deliver
        reasons: tuple[FailureReason, ...] = check.reasons
    del built, local, forced, failure, dane, requirement, outcome, deliver, reasons
