"""A resolver that validates DNSSEC itself, from a trust anchor (RFC 4033 §5, RFC 4035 §5).

:class:`ValidatingResolver` asks any server — a non-validating recursive
resolver, or an authoritative server that hosts every zone of a private tree
— with the DO and CD bits set (RFC 4035 §3.2.1, §3.2.2), and lets the pure
:class:`~mtasecure.dnssec.ChainValidator` decide what to fetch next and what
the answer is worth. It never believes an AD bit. All RFC rules live in the
planner; this module moves bytes and keeps a small cache of the DS and DNSKEY
responses the chain needs, so that a second lookup under the same zones costs
one query (signatures are still checked every time).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

import dns.exception
import dns.message
import dns.name
import dns.rdatatype

from mtasecure._resolution import Question
from mtasecure.dnssec import (
    ROOT_TRUST_ANCHOR,
    ChainValidator,
    DnsAnswer,
    TrustAnchor,
    TrustCache,
)
from mtasecure.errors import DnsError
from mtasecure.transport._clock import SystemClock
from mtasecure.transport._protocols import Clock
from mtasecure.transport.resolver import (
    DEFAULT_LIFETIME,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    DnsResolver,
    Nameserver,
)

__all__ = ["ValidatingResolver"]


class ValidatingResolver(DnsResolver):
    """A :class:`~mtasecure.transport.Resolver` that validates locally from a trust anchor.

    Args:
        nameservers: servers to ask (``"address[:port]"`` or
            :class:`~mtasecure.transport.Nameserver`); any server will do,
            validating or not, since the AD bit is never read.
        anchor: where trust starts; the IANA root KSKs by default. Use
            :func:`~mtasecure.dnssec.parse_trust_anchor` for a private tree.
        clock: where ``now`` comes from for signature validity windows.
        cache: zone proofs shared between lookups (a new
            :class:`~mtasecure.dnssec.TrustCache` by default; pass one to
            share it between resolvers).
        timeout: seconds per try.
        retries: extra rounds over the nameservers.
        lifetime: seconds one validated lookup may take in all, chain included.

    Example::

        async with ValidatingResolver(["127.0.0.1:5300"], anchor=anchor) as resolver:
            answer = await resolver.resolve("example.com", "MX")
    """

    def __init__(
        self,
        nameservers: Sequence[str | Nameserver] | None = None,
        *,
        anchor: TrustAnchor = ROOT_TRUST_ANCHOR,
        clock: Clock | None = None,
        cache: TrustCache | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        lifetime: float = DEFAULT_LIFETIME,
    ) -> None:
        super().__init__(nameservers, timeout=timeout, retries=retries, lifetime=lifetime)
        self.anchor = anchor
        self.clock: Clock = clock or SystemClock()
        self.cache = cache if cache is not None else TrustCache()

    async def resolve(self, name: str, rdtype: str) -> DnsAnswer:
        """Look up ``rdtype`` at ``name`` and validate the answer from the trust anchor.

        Returns:
            The answer with its security; failed fetches give ``indeterminate``
            and ``failed=True``, validation failures ``bogus`` and ``failed=True``.

        Raises:
            UsageError: ``name`` or ``rdtype`` cannot be read.
            DnsError: the resolver was closed.
        """
        if self._closed:
            raise DnsError("the resolver is closed")
        now = self.clock.now()
        validator = ChainValidator(self.anchor, name, rdtype, now=now, cache=self.cache)
        deadline = asyncio.get_running_loop().time() + self.lifetime
        while (query := validator.next_query()) is not None:
            try:
                reply = await self._fetch(*query, deadline=deadline)
            except DnsError as exc:  # TransportTimeout and the lifetime included
                validator.feed_failure(str(exc))
                continue
            validator.feed(reply)
        return validator.result().answer(name, rdtype)

    async def resolve_many(self, queries: Iterable[tuple[str, str]]) -> list[DnsAnswer]:
        """Resolve many ``(name, rdtype)`` pairs concurrently; answers in the same order."""
        return list(await asyncio.gather(*(self.resolve(n, t) for n, t in queries)))

    async def _fetch(
        self, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType, *, deadline: float
    ) -> dns.message.Message:
        # DO is always set; CD too (RFC 4035 §3.2.2): we validate, the server must not
        wire, _ = await self._ask(Question(qname, int(rdtype), checking_disabled=True), deadline)
        try:
            return dns.message.from_wire(wire.wire)
        except (dns.exception.DNSException, ValueError, IndexError, UnicodeError) as exc:
            raise DnsError(f"malformed reply for {qname} {rdtype.name}: {exc}") from exc
