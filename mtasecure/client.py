"""The async facade: one object that holds the transports and asks the core.

``MtaSecure(resolver=None, http=None, smtp=None, cache=None, store=None,
clock=None)``: each ``None`` builds the default. So far the resolver and the
clock are used; the HTTP client, SMTP connector, policy cache and report store
are accepted and kept for the features that need them.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

from mtasecure._names import normalize_host
from mtasecure.dnssec import DnsAnswer
from mtasecure.mx import MxSet, parse_mx
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
