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
from mtasecure.dane import plan_dane
from mtasecure.dnssec import DnsAnswer, Security
from mtasecure.mx import MxSet, parse_mx
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

    async def check_mx(
        self,
        domain: str,
        mx: str,
        *,
        port: int = SMTP_PORT,
        trust: TrustStore | None = None,
    ) -> MxCheck:
        """Look up, probe and judge one MX host of ``domain`` (RFC 7672, RFC 8461 §4).

        Steps: the domain's MX answer (its DNSSEC status, and whether ``mx`` is
        in it, decide the DANE-TA reference names, RFC 7672 §3.2.2); the A and
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
        mx_secure = mx_set.security is Security.SECURE and any(h.host == host for h in mx_set.hosts)
        policy = plan_address_dane(host, (a, aaaa), port=port)
        if policy is None:
            tlsa = await self.resolver.resolve(f"_{port}._tcp.{host}", "TLSA")
            policy = plan_dane(tlsa, mx_secure, next_hop=name)
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
        probes = await asyncio.gather(
            *(self.smtp.probe(host, address, port=port) for address in addresses)
        )
        now = self.clock.now()
        anchors = trust if trust is not None else self._system_trust()
        checks = tuple(check_session(p, policy, now=now, trust=anchors) for p in probes)
        return MxCheck(checks=checks, **common)

    def _system_trust(self) -> TrustStore:
        if self._trust is None:
            self._trust = load_system_trust_store()
        return self._trust
