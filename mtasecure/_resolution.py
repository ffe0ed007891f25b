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

import re
from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.rcode
import dns.rdatatype

from mtasecure._wire import FLAG_AD, NameKey, Reply, WireRecord, encode_query, name_key
from mtasecure.dnssec import (
    MAX_CNAME_CHAIN,
    DnsAnswer,
    Security,
    answer_name,
    combine_security,
)
from mtasecure.errors import DnsError, UsageError

__all__ = [
    "EDNS_PAYLOAD",
    "MAX_CNAME_CHAIN",
    "SUPPORTED_TYPES",
    "Question",
    "Resolution",
    "combine_security",
    "query_name",
    "query_type",
]

EDNS_PAYLOAD = 1232
"""The UDP payload size advertised in EDNS (RFC 6891 §6.2.5; DNS flag day 2020)."""

SUPPORTED_TYPES = frozenset({"A", "AAAA", "CNAME", "MX", "TXT", "TLSA"})
"""Record types the resolvers look up."""

_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?", re.ASCII)


def query_name(name: str) -> dns.name.Name:
    """The absolute DNS name for ``name`` (A-labels, RFC 5890 §2.3.2.1; ``_`` labels allowed, RFC 8552 §1.1).

    Raises:
        UsageError: ``name`` is not a DNS name (empty labels, over-long,
            not ASCII: pass IDNs through :func:`mtasecure._names.normalize_host`).
    """
    if not isinstance(name, str) or not name or not name.isascii():
        raise UsageError(f"not an ASCII DNS name: {name!r} (RFC 1035 §2.3.1)")
    try:
        if _PLAIN_NAME.fullmatch(name):  # the common case, without the escape parser
            return dns.name.Name([*(label.encode() for label in name.rstrip(".").split(".")), b""])
        return dns.name.from_text(name)
    except dns.exception.DNSException as exc:
        raise UsageError(f"not a DNS name: {name!r}: {exc} (RFC 1035 §2.3.4)") from exc


def query_type(rdtype: str) -> dns.rdatatype.RdataType:
    """The record type for ``rdtype`` (one of :data:`SUPPORTED_TYPES`, any case; RFC 1035 §3.2.2).

    Raises:
        UsageError: the type is not one the resolvers look up.
    """
    text = rdtype.upper() if isinstance(rdtype, str) else ""
    if text not in SUPPORTED_TYPES:
        raise UsageError(f"unsupported record type {rdtype!r}: one of {sorted(SUPPORTED_TYPES)}")
    return dns.rdatatype.from_text(text)


@dataclass(frozen=True)
class Question:
    """A query to send: the name, the type, and whether to set CD (RFC 4035 §3.2.2)."""

    qname: dns.name.Name
    rdtype: int
    checking_disabled: bool = False
    key: NameKey = field(init=False, repr=False, compare=False)
    wire_name: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        labels = self.qname.labels  # absolute: ends with the root's empty label
        object.__setattr__(self, "key", tuple(label.lower() for label in labels[:-1]))
        object.__setattr__(self, "wire_name", b"".join(bytes((len(x),)) + x for x in labels))

    def to_wire(self, qid: int) -> bytes:
        """The query with ID ``qid``: RD, AD and DO set, CD if asked, :data:`EDNS_PAYLOAD`."""
        return encode_query(
            self.wire_name,
            self.rdtype,
            qid,
            payload=EDNS_PAYLOAD,
            checking_disabled=self.checking_disabled,
        )


_CLASS_IN = 1
_UNTRUSTED = (
    "answered by a nameserver that is not trusted: its AD bit is ignored, "
    "the data is not authenticated (RFC 4035 §4.9.3)"
)


class Resolution:
    """The state of one lookup: what to ask next, and what the replies add up to (RFC 1034 §5.3.3).

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
        plain = _PLAIN_NAME.fullmatch(name) is not None
        self._name_text = name.lower().rstrip(".") if plain else answer_name(self.qname)
        self.rdtype = query_type(rdtype)
        self._rdtype_text = rdtype.upper()
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

    def next_query(self) -> Question | None:
        """The next query to send, or ``None`` when the answer is known."""
        if self._done is not None:
            return None
        return Question(self._current, self.rdtype, self._checking)

    def give_up(self, why: str) -> None:
        """No reply could be had (timeouts, malformed replies, refused): a failure."""
        if self._done is None:
            self._finish_failed(Security.INDETERMINATE, why)

    def answer(self) -> DnsAnswer:
        """The answer; only once :attr:`done` (or after :meth:`give_up`)."""
        if self._done is None:
            raise UsageError("the lookup is not finished")
        return self._done

    def feed(self, reply: Reply, *, trusted: bool) -> None:
        """Read the reply to the last query from a server (``trusted`` or not).

        A record whose data cannot be read makes the lookup fail.
        """
        if self._done is not None:
            return
        try:
            self._feed(reply, trusted=trusted)
        except DnsError as exc:
            self._finish_failed(Security.INDETERMINATE, str(exc))

    def _feed(self, reply: Reply, *, trusted: bool) -> None:
        rcode = reply.rcode
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
            text = dns.rcode.to_text(rcode)  # type: ignore[arg-type]
            self._finish_failed(Security.INDETERMINATE, f"{text} reply")
            return
        if not trusted:
            status = Security.INDETERMINATE
        elif reply.flags & FLAG_AD:
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

    def _read_answer(self, reply: Reply, rcode: int) -> None:
        rrsets: dict[tuple[NameKey, int], list[WireRecord]] = {}
        for record in reply.answer:
            if record.rdclass == _CLASS_IN:
                rrsets.setdefault((record.owner, record.rdtype), []).append(record)
        grew = False
        while self.rdtype != dns.rdatatype.CNAME:
            alias = rrsets.get((name_key(self._current), dns.rdatatype.CNAME))
            if alias is None:
                break
            if len(alias) != 1:
                self._finish_failed(
                    Security.INDETERMINATE,
                    f"{answer_name(self._current)} has {len(alias)} CNAME records (RFC 2181 §10.1)",
                )
                return
            target = reply.target(alias[0])
            self._ttls.append(alias[0].ttl)
            if target == self.qname or target in self._chain:
                self._finish_failed(
                    Security.INDETERMINATE,
                    f"CNAME loop: {answer_name(self._current)} points back to {answer_name(target)}",
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
        found = rrsets.get((name_key(self._current), self.rdtype))
        if found:
            self._ttls.append(min(r.ttl for r in found))
            texts = dict.fromkeys(reply.text(r) for r in found)  # RFC 2181 §5: a set
            self._finish(records=tuple(texts))
            return
        soa = next((r for r in reply.authority if r.rdtype == dns.rdatatype.SOA), None)
        if grew and rcode == dns.rcode.NOERROR and soa is None:
            return  # the reply stops at an alias: ask for the target
        if soa is not None:
            self._ttls.append(min(soa.ttl, reply.soa_minimum(soa)))
        self._finish(records=(), nxdomain=rcode == dns.rcode.NXDOMAIN)

    def _finish(self, *, records: tuple[str, ...], nxdomain: bool = False) -> None:
        security = combine_security(self._statuses)
        why = _UNTRUSTED if security is Security.INDETERMINATE else ""
        # Built from checked values: skip the model's validation (bulk-mode hot path).
        self._done = DnsAnswer.model_construct(
            name=self._name_text,
            rdtype=self._rdtype_text,
            records=records,
            security=security,
            ttl=min(self._ttls) if self._ttls else 0,
            nxdomain=nxdomain,
            cname_chain=tuple(answer_name(n) for n in self._chain),
            failed=False,
            why=why,
        )

    def _finish_failed(self, security: Security, why: str) -> None:
        self._done = DnsAnswer(
            name=self._name_text,
            rdtype=self._rdtype_text,
            security=combine_security([*self._statuses, security]),
            cname_chain=tuple(answer_name(n) for n in self._chain),
            failed=True,
            why=why,
        )
