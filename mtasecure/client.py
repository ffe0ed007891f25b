"""The async facade: one object that holds the transports and asks the core.

``MtaSecure(resolver=None, http=None, smtp=None, cache=None, store=None,
clock=None)``: each ``None`` builds the default. So far the resolver and the
clock are used; the HTTP client, SMTP connector, policy cache and report store
are accepted and kept for the features that need them.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any, Self

from mtasecure._names import normalize_host
from mtasecure.dane import plan_dane
from mtasecure.decision import DeliveryPlan, MxCandidate, StsState, TlsaState, plan
from mtasecure.dnssec import DnsAnswer, Security
from mtasecure.mx import MxSet, parse_mx
from mtasecure.requiretls import MessageFlags
from mtasecure.sts import StsPolicy
from mtasecure.transport import Clock, DnsResolver, Resolver, SystemClock

__all__ = ["MtaSecure"]


class MtaSecure:
    """Secure mail transport decisions, over pluggable transports.

    Args:
        resolver: a :class:`~mtasecure.transport.Resolver`; ``None`` builds a
            :class:`~mtasecure.transport.DnsResolver` on the system's
            nameservers (only loopback ones trusted for DNSSEC).
        http: an :class:`~mtasecure.transport.HttpClient` (kept for MTA-STS).
        smtp: an SMTP connector (kept for the SMTP probe).
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
        smtp: Any = None,
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
        self.smtp = smtp
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
