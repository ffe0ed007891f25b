"""The async facade: one object that holds the transports and asks the core.

``MtaSecure(resolver=None, http=None, smtp=None, cache=None, store=None,
clock=None)``: each ``None`` builds the default. So far the resolver, the
SMTP connector (:meth:`MtaSecure.check_mx`) and the clock are used; the HTTP
client, policy cache and report store are accepted and kept for the features
that need them.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any, Self

from mtasecure._mxcheck import (
    MxAddressCheck,
    MxCheck,
    check_session,
    plan_address_dane,
    weakest_security,
)
from mtasecure._names import normalize_host
from mtasecure.certs import TrustStore
from mtasecure.dane import DanePolicy, DaneState, plan_dane
from mtasecure.decision import DeliveryPlan, MxCandidate, StsState, TlsaState, plan
from mtasecure.dnssec import DnsAnswer, Security
from mtasecure.mx import MxSet, parse_mx
from mtasecure.requiretls import MessageFlags
from mtasecure.results import FailureReason
from mtasecure.sts import StsPolicy
from mtasecure.transport import Clock, DnsResolver, Resolver, SmtpConnector, SystemClock
from mtasecure.transport.smtp import SMTP_PORT, AsyncioSmtpConnector
from mtasecure.transport.trust import load_system_trust_store

__all__ = ["MtaSecure", "MxAddressCheck", "MxCheck"]


class MtaSecure:
    """Secure mail transport decisions, over pluggable transports.

    Args:
        resolver: a :class:`~mtasecure.transport.Resolver`; ``None`` builds a
            :class:`~mtasecure.transport.DnsResolver` on the system's
            nameservers (only loopback ones trusted for DNSSEC).
        http: an :class:`~mtasecure.transport.HttpClient` (kept for MTA-STS).
        smtp: an :class:`~mtasecure.transport.SmtpConnector`; ``None`` builds
            an :class:`~mtasecure.transport.smtp.AsyncioSmtpConnector`.
        cache: a policy cache (kept for MTA-STS).
        store: a report store (kept for TLS-RPT).
        clock: a :class:`~mtasecure.transport.Clock`; ``None`` reads the system time.

    Use as an async context manager: on exit it closes what it built itself,
    never what it was given.
    """

    def __init__(
        self,
        *,
        resolver: Resolver | None = None,
        http: Any = None,
        smtp: SmtpConnector | None = None,
        cache: Any = None,
        store: Any = None,
        clock: Clock | None = None,
    ) -> None:
        self._owned: list[Any] = []
        if resolver is None:
            resolver = DnsResolver()
            self._owned.append(resolver)
        self.resolver: Resolver = resolver
        self.http = http
        self.smtp: SmtpConnector = smtp if smtp is not None else AsyncioSmtpConnector()
        self._trust: TrustStore | None = None
        self.cache = cache
        self.store = store
        self.clock: Clock = clock if clock is not None else SystemClock()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the transports this object built (not those it was given)."""
        owned, self._owned = self._owned, []
        for transport in reversed(owned):
            await transport.aclose()

    async def resolve(self, name: str, rdtype: str) -> DnsAnswer:
        """Look up ``rdtype`` at ``name`` through the resolver (status included)."""
        return await self.resolver.resolve(name, rdtype)

    async def resolve_mx(self, domain: str) -> MxSet:
        """The mail exchangers of ``domain`` in preference order (RFC 5321 §5.1).

        ``domain`` may be a U-label IDN; it is looked up in A-labels.

        Raises:
            NameSyntaxError: ``domain`` is not a host name.
            ParseError: the resolver returned MX records that cannot be read.
        """
        return parse_mx(await self.resolver.resolve(normalize_host(domain), "MX"))

    async def plan_delivery(
        self,
        domain: str,
        message_flags: MessageFlags | None = None,
        *,
        sts: StsState | StsPolicy | None = None,
        port: int = 25,
    ) -> DeliveryPlan:
        """What each MX session for a message to ``domain`` must prove (``mtasecure.decision``).

        Looks up the MX set and, for the hosts of a DNSSEC-``secure`` MX set,
        their addresses and then their TLSA records (RFC 7672 §2.2.2: address
        records first; an ``insecure`` address answer means no TLSA lookup; a
        failed or ``bogus`` one makes the host unusable, §2.1.2), and hands it
        all to :func:`mtasecure.decision.plan`.

        Args:
            domain: the recipient domain.
            message_flags: from :func:`mtasecure.requiretls.flag_message`.
            sts: the domain's MTA-STS state (or its policy). MTA-STS discovery
                and fetching are not part of this facade yet, so the caller
                supplies it; ``None`` means no policy.
            port: the SMTP port, for the ``_<port>._tcp`` TLSA name.

        Raises:
            NameSyntaxError: ``domain`` is not a host name.
            ParseError: the resolver returned MX records that cannot be read.
        """
        name = normalize_host(domain)
        state = StsState.of(sts) if isinstance(sts, StsPolicy) else sts
        mx_set = await self.resolve_mx(name)
        if mx_set.failed:
            return plan(
                name,
                mx_security=mx_set.security,
                mx=(),
                sts=state,
                flags=message_flags,
                mx_lookup_failed=True,
            )
        candidates = await asyncio.gather(
            *(self._mx_candidate(name, h.host, h.preference, mx_set, port) for h in mx_set.hosts)
        )
        return plan(
            name, mx_security=mx_set.security, mx=candidates, sts=state, flags=message_flags
        )

    async def _mx_candidate(
        self, domain: str, host: str, preference: int, mx_set: MxSet, port: int
    ) -> MxCandidate:
        base = MxCandidate(host=host, preference=preference, implicit=mx_set.implicit)
        if mx_set.security is not Security.SECURE:
            return base  # DANE only for a secure MX set (mtasecure.decision, RFC 7672 §2.2.1)
        address = await self.resolver.resolve(host, "A")
        if not address.failed and not address.records and address.security is Security.SECURE:
            address = await self.resolver.resolve(host, "AAAA")
        if address.failed or address.security in (Security.BOGUS, Security.INDETERMINATE):
            return base.model_copy(update={"tlsa": TlsaState.FAILED})
        if address.security is not Security.SECURE or not address.records:
            return base
        tlsa = await self.resolver.resolve(f"_{port}._tcp.{host}", "TLSA")
        return MxCandidate.from_dane(
            host, preference, plan_dane(tlsa, True, next_hop=domain), implicit=mx_set.implicit
        )

    async def check_mx(
        self,
        domain: str,
        mx: str,
        *,
        port: int = SMTP_PORT,
        trust: TrustStore | None = None,
    ) -> MxCheck:
        """Look up, probe and judge one MX host of ``domain`` (RFC 7672, RFC 8461 §4).

        Steps: the domain's MX answer (a bogus or failed one means the MX must
        not be used, an insecure one that lists ``mx`` means DANE does not
        apply, RFC 7672 §2.2.1; a secure one that lists it adds the domain to
        the DANE-TA reference names, §3.2.2; an ``mx`` not listed is checked
        as a configured relay, §2.2.2); the A and
        AAAA records of ``mx``; the TLSA records at ``_<port>._tcp.<mx>`` when
        the address records are secure (RFC 7672 §2.2.2); then a STARTTLS
        probe of every address, each judged by the WebPKI and DANE checks.
        Nothing is probed when DANE says the MX must not be used (a bogus or
        failed lookup, RFC 7672 §2.1.1). The MTA-STS decision (RFC 8461 §4)
        joins here with the policy work; DANE, when it applies, comes first.

        Args:
            domain: the next-hop (recipient) domain.
            mx: the MX host to check.
            port: the SMTP port (25 unless testing).
            trust: the WebPKI trust anchors; ``None`` loads the system store
                once per client.

        Raises:
            NameSyntaxError: ``domain`` or ``mx`` is not a host name.
        """
        name = normalize_host(domain)
        host = normalize_host(mx)
        mx_set, a, aaaa = await asyncio.gather(
            self.resolve_mx(name),
            self.resolver.resolve(host, "A"),
            self.resolver.resolve(host, "AAAA"),
        )
        listed = any(h.host == host for h in mx_set.hosts)
        policy = _plan_mx_set_dane(mx_set, host, listed, port) or plan_address_dane(
            host, (a, aaaa), port=port
        )
        if policy is None:
            mx_secure = listed and mx_set.security is Security.SECURE
            policy = await self._plan_tlsa(host, (a, aaaa), mx_secure, name, port)
        addresses = (*a.records, *aaaa.records)
        common: dict[str, Any] = {
            "domain": name,
            "mx": host,
            "port": port,
            "mx_security": mx_set.security,
            "address_security": weakest_security((a, aaaa)),
            "addresses": addresses,
            "dane_policy": policy,
        }
        if not policy.may_connect:
            return MxCheck(detail=policy.detail, **common)
        if not addresses:
            return MxCheck(detail=f"{host} has no address record", **common)
        # Under DANE the SNI is the TLSA base domain (RFC 7672 §8.1); it differs
        # from the MX name only when a secure CNAME was followed (§2.2.3).
        sni = policy.base_domain if policy.requires_tls else host
        probes = await asyncio.gather(
            *(self.smtp.probe(sni, address, port=port) for address in addresses)
        )
        now = self.clock.now()
        anchors = trust if trust is not None else self._system_trust()
        checks = tuple(check_session(p, policy, host=host, now=now, trust=anchors) for p in probes)
        return MxCheck(checks=checks, **common)

    async def _plan_tlsa(
        self,
        host: str,
        addresses: tuple[DnsAnswer, ...],
        mx_secure: bool,
        next_hop: str,
        port: int,
    ) -> DanePolicy:
        """Try the candidate TLSA base domains in order (RFC 7672 §2.2.3).

        When the host is an alias with a secure expansion, the expanded name
        comes first, then the host name; the first to give a secure TLSA
        RRset (usable or not), or a failed lookup, decides.
        """
        expanded = {a.final_name for a in addresses if a.records}
        candidates = [*sorted(expanded - {host}), host] if len(expanded) == 1 else [host]
        policy: DanePolicy | None = None
        for base in candidates:
            tlsa = await self.resolver.resolve(f"_{port}._tcp.{base}", "TLSA")
            policy = plan_dane(tlsa, mx_secure, next_hop=next_hop)
            if policy.state not in (DaneState.NO_TLSA, DaneState.INSECURE):
                return policy
        assert policy is not None  # candidates always holds the host itself
        return policy

    def _system_trust(self) -> TrustStore:
        if self._trust is None:
            self._trust = load_system_trust_store()
        return self._trust


def _plan_mx_set_dane(mx_set: MxSet, host: str, listed: bool, port: int) -> DanePolicy | None:
    """What the domain's MX answer alone says about DANE for ``host`` (RFC 7672 §2.2.1)."""
    common: dict[str, Any] = {"base_domain": host, "port": port, "reference_names": (host,)}
    if mx_set.failed or mx_set.security in (Security.BOGUS, Security.INDETERMINATE):
        return DanePolicy(
            state=DaneState.FAILED,
            reason=FailureReason.DNSSEC_INVALID,
            detail=f"MX lookup for {mx_set.domain} is {mx_set.security}"
            f"{': ' + mx_set.why if mx_set.why else ''}; the MX must not be used "
            "(RFC 7672 §2.2.1)",
            **common,
        )
    if listed and mx_set.security is Security.INSECURE:
        return DanePolicy(
            state=DaneState.INSECURE,
            detail=f"the MX RRset of {mx_set.domain} is insecure: DANE does not apply "
            "(RFC 7672 §2.2.1)",
            **common,
        )
    return None
