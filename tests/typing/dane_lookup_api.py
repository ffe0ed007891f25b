"""Pins the types of the DANE lookup planner and the facade loop around it (never run)."""

from __future__ import annotations

from mtasecure.client import MtaSecure, MxDane
from mtasecure.dane import (
    MAX_DANE_LOOKUPS,
    DaneLookup,
    DanePolicy,
    DaneStep,
    plan_dane_lookup,
)
from mtasecure.dnssec import DnsAnswer, Security
from mtasecure.mx import MxSet


async def pins(client: MtaSecure, mx_set: MxSet) -> None:
    answers: list[DnsAnswer] = []
    step: DaneStep = plan_dane_lookup("mx.example.com", answers, mx_set=mx_set, port=25)
    while step.policy is None:
        lookups: tuple[DaneLookup, ...] = step.lookups
        for lookup in lookups:
            answers.append(await client.resolver.resolve(lookup.name, lookup.rdtype))
        step = plan_dane_lookup("mx.example.com", answers, mx_set=mx_set, next_hop="example.com")
    policy: DanePolicy = step.policy
    relay: bool = step.relay
    counted: Security = step.mx_security
    a: DnsAnswer | None = step.a
    bound: int = MAX_DANE_LOOKUPS
    relayed: DaneStep = plan_dane_lookup("relay.example.net")  # mx_set=None: a configured relay
    dane: MxDane = await client.resolve_dane("example.com", "mx.example.com")
    security: Security = dane.mx_security
    del policy, relay, counted, a, bound, relayed, security
