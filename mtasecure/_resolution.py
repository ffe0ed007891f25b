"""One lookup, planned and read without I/O: queries out, replies in, a ``DnsAnswer`` out.

The shell (:mod:`mtasecure.transport`) only sends the query this object asks
for and feeds back the reply; every rule about what a reply *means* lives here,
the way dnspython's ``_Resolution`` drives its resolvers.

Rules applied (trusted-validator mode):

* Queries set RD, DO (RFC 3225, ask for DNSSEC records) and AD (RFC 6840 §5.7,
  ask the validator to report its verdict); the EDNS payload advertised is
  :data:`EDNS_PAYLOAD` (DNS flag day 2020).
* The AD bit is believed only from a nameserver the caller trusts (RFC 4035
  §4.9.3, RFC 7672 §2.1.1): AD set → ``secure``; AD clear → ``insecure`` (a
  validating resolver that answers without AD could not build a chain of trust
  to the data); any answer from an untrusted server → ``indeterminate``.
* A SERVFAIL from a trusted validator is asked again with CD set (RFC 4035
  §3.2.2, checking disabled). If the server then answers, the data exists but
  failed validation → ``bogus``; if it fails again the server itself is broken
  → ``indeterminate``. Either way the answer is ``failed``: never "no record".
* CNAME chains are followed through the answer section, and re-queried when a
  reply stops at an alias (RFC 1034 §3.6.2, §4.3.2), up to
  :data:`MAX_CNAME_CHAIN` links; a name seen twice is a loop → failed.
  The RCODE of a reply describes the last name of its chain (RFC 6604 §3).
* NXDOMAIN and NODATA are answers (RFC 7672 §2.2); their TTL is the SOA's
  negative TTL, ``min(SOA TTL, SOA MINIMUM)`` (RFC 2308 §5).
* The status of a chain is its weakest link: bogus < indeterminate < insecure
  < secure.
"""

from __future__ import annotations

from collections.abc import Iterable

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from mtasecure.dnssec import DnsAnswer, Security
from mtasecure.errors import UsageError

__all__ = [
    "EDNS_PAYLOAD",
    "MAX_CNAME_CHAIN",
    "SUPPORTED_TYPES",
    "Resolution",
    "combine_security",
    "make_query",
    "query_name",
    "query_type",
]

MAX_CNAME_CHAIN = 8
"""Most CNAME links followed from the name asked for; one more is a failure."""

EDNS_PAYLOAD = 1232
"""The UDP payload size advertised in EDNS (RFC 6891 §6.2.5; DNS flag day 2020)."""

SUPPORTED_TYPES = frozenset({"A", "AAAA", "CNAME", "MX", "TXT", "TLSA"})
"""Record types the resolvers look up."""

_RANK = {
    Security.BOGUS: 0,
    Security.INDETERMINATE: 1,
    Security.INSECURE: 2,
    Security.SECURE: 3,
}


def combine_security(statuses: Iterable[Security]) -> Security:
    """The status of answers that depend on each other: the weakest one.

    An answer reached through a CNAME is only as trustworthy as every link
    (RFC 4035 §5: each RRset is validated on its own). No status at all gives
    ``indeterminate``.
    """
    worst: Security | None = None
    for status in statuses:
        if worst is None or _RANK[status] < _RANK[worst]:
            worst = status
    return worst if worst is not None else Security.INDETERMINATE


def query_name(name: str) -> dns.name.Name:
    """The absolute DNS name for ``name`` (A-labels; ``_`` labels allowed).

    Raises:
        UsageError: ``name`` is not a DNS name (empty labels, over-long,
            not ASCII: pass IDNs through :func:`mtasecure._names.normalize_host`).
    """
    if not isinstance(name, str) or not name or not name.isascii():
        raise UsageError(f"not an ASCII DNS name: {name!r} (RFC 1035 §2.3.1)")
    try:
        return dns.name.from_text(name)
    except dns.exception.DNSException as exc:
        raise UsageError(f"not a DNS name: {name!r}: {exc} (RFC 1035 §2.3.4)") from exc


def query_type(rdtype: str) -> dns.rdatatype.RdataType:
    """The record type for ``rdtype`` (one of :data:`SUPPORTED_TYPES`, any case).

    Raises:
        UsageError: the type is not one the resolvers look up.
    """
    text = rdtype.upper() if isinstance(rdtype, str) else ""
    if text not in SUPPORTED_TYPES:
        raise UsageError(f"unsupported record type {rdtype!r}: one of {sorted(SUPPORTED_TYPES)}")
    return dns.rdatatype.from_text(text)


def make_query(
    qname: dns.name.Name, rdtype: dns.rdatatype.RdataType, *, checking_disabled: bool = False
) -> dns.message.QueryMessage:
    """A recursive query with DO and AD set (and CD when asked); random ID."""
    query = dns.message.make_query(
        qname, rdtype, want_dnssec=True, use_edns=0, payload=EDNS_PAYLOAD
    )
    query.flags |= dns.flags.AD
    if checking_disabled:
        query.flags |= dns.flags.CD
    return query


def _text(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True).lower() or "."


class Resolution:
    """The state of one lookup: what to ask next, and what the replies add up to.

    Use: ``while (q := r.next_query()) is not None: r.feed(send(q), trusted=...)``;
    on a transport failure call :meth:`give_up`; then read :meth:`answer`.

    Args:
        name: the name asked for (ASCII, ``_`` labels allowed).
        rdtype: one of :data:`SUPPORTED_TYPES`.
        max_chain: most CNAME links to follow.

    Raises:
        UsageError: a bad name or type.
    """

    def __init__(self, name: str, rdtype: str, *, max_chain: int = MAX_CNAME_CHAIN) -> None:
        self.qname = query_name(name)
        self.rdtype = query_type(rdtype)
        self.max_chain = max_chain
        self._current = self.qname
        self._chain: list[dns.name.Name] = []
        self._statuses: list[Security] = []
        self._ttls: list[int] = []
        self._checking = False
        self._done: DnsAnswer | None = None

    @property
    def done(self) -> bool:
        """Whether the answer is known."""
        return self._done is not None

    def next_query(self) -> dns.message.QueryMessage | None:
        """The next query to send, or ``None`` when the answer is known."""
        if self._done is not None:
            return None
        return make_query(self._current, self.rdtype, checking_disabled=self._checking)

    def give_up(self, why: str) -> None:
        """No reply could be had (timeouts, malformed replies, refused): a failure."""
        if self._done is None:
            self._finish_failed(Security.INDETERMINATE, why)

    def answer(self) -> DnsAnswer:
        """The answer; only once :attr:`done` (or after :meth:`give_up`)."""
        if self._done is None:
            raise UsageError("the lookup is not finished")
        return self._done

    def feed(self, reply: dns.message.Message, *, trusted: bool) -> None:
        """Read the reply to the last query from a server (``trusted`` or not)."""
        if self._done is not None:
            return
        rcode = reply.rcode()
        if self._checking:
            self._after_checking_disabled(rcode)
            return
        if rcode == dns.rcode.SERVFAIL:
            if trusted:
                self._checking = True  # ask again with CD: bogus or broken?
            else:
                self._finish_failed(
                    Security.INDETERMINATE, "SERVFAIL from a nameserver that is not trusted"
                )
            return
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            self._finish_failed(Security.INDETERMINATE, f"{dns.rcode.to_text(rcode)} reply")
            return
        if not trusted:
            status = Security.INDETERMINATE
        elif reply.flags & dns.flags.AD:
            status = Security.SECURE
        else:
            status = Security.INSECURE
        self._statuses.append(status)
        self._read_answer(reply, rcode)

    def _after_checking_disabled(self, rcode: int) -> None:
        if rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            self._finish_failed(
                Security.BOGUS,
                "the validator answered SERVFAIL, and answered with checking disabled: "
                "the data failed DNSSEC validation (RFC 4035 §5.5)",
            )
        else:
            self._finish_failed(
                Security.INDETERMINATE,
                "SERVFAIL, also with checking disabled: the nameserver could not resolve the name",
            )

    def _read_answer(self, reply: dns.message.Message, rcode: int) -> None:
        rrsets: dict[tuple[dns.name.Name, int], dns.rrset.RRset] = {}
        for rrset in reply.answer:
            if rrset.rdclass == dns.rdataclass.IN:
                rrsets.setdefault((rrset.name, rrset.rdtype), rrset)
        grew = False
        while self.rdtype != dns.rdatatype.CNAME:
            alias = rrsets.get((self._current, dns.rdatatype.CNAME))
            if alias is None:
                break
            if len(alias) != 1:
                self._finish_failed(
                    Security.INDETERMINATE,
                    f"{_text(self._current)} has {len(alias)} CNAME records (RFC 2181 §10.1)",
                )
                return
            target = alias[0].target
            self._ttls.append(alias.ttl)
            if target == self.qname or target in self._chain:
                self._finish_failed(
                    Security.INDETERMINATE,
                    f"CNAME loop: {_text(self._current)} points back to {_text(target)}",
                )
                return
            self._chain.append(target)
            if len(self._chain) > self.max_chain:
                self._finish_failed(
                    Security.INDETERMINATE,
                    f"CNAME chain longer than {self.max_chain} links (MAX_CNAME_CHAIN)",
                )
                return
            self._current = target
            grew = True
        found = rrsets.get((self._current, self.rdtype))
        if found is not None:
            self._ttls.append(found.ttl)
            self._finish(records=tuple(r.to_text() for r in found))
            return
        soa = next((r for r in reply.authority if r.rdtype == dns.rdatatype.SOA), None)
        if grew and rcode == dns.rcode.NOERROR and soa is None:
            return  # the reply stops at an alias: ask for the target
        if soa is not None:
            self._ttls.append(min(soa.ttl, soa[0].minimum))
        self._finish(records=(), nxdomain=rcode == dns.rcode.NXDOMAIN)

    def _finish(self, *, records: tuple[str, ...], nxdomain: bool = False) -> None:
        self._done = DnsAnswer(
            name=_text(self.qname),
            rdtype=dns.rdatatype.to_text(self.rdtype),
            records=records,
            security=combine_security(self._statuses),
            ttl=min(self._ttls) if self._ttls else 0,
            nxdomain=nxdomain,
            cname_chain=tuple(_text(n) for n in self._chain),
        )

    def _finish_failed(self, security: Security, why: str) -> None:
        self._done = DnsAnswer(
            name=_text(self.qname),
            rdtype=dns.rdatatype.to_text(self.rdtype),
            security=combine_security([*self._statuses, security]),
            cname_chain=tuple(_text(n) for n in self._chain),
            failed=True,
            why=why,
        )
