"""The security status of DNS answers, and local DNSSEC validation (RFC 4033 §5).

Every :class:`DnsAnswer` carries a :class:`Security` status. A resolver reaches
``secure`` in one of two ways: by trusting the AD bit from a validating
resolver the caller declared trusted, or by validating the chain locally from a
trust anchor. ``bogus`` is never treated as ``insecure`` (RFC 7672 §2.1).

Local validation is planned here and performed without I/O:
:class:`ChainValidator` asks for the records it needs (``next_query``), takes
the responses (``feed``) and gives a :class:`ChainResult`. It starts from a
:class:`TrustAnchor` — :data:`ROOT_TRUST_ANCHOR` or one read with
:func:`parse_trust_anchor` — and checks signatures with ``dns.dnssec``. The
shell that sends the queries is
:class:`mtasecure.transport.validating.ValidatingResolver`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
from collections import OrderedDict
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum, StrEnum
from typing import cast

import dns.dnssec
import dns.dnssectypes
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.CNAME import CNAME
from dns.rdtypes.ANY.DNAME import DNAME
from dns.rdtypes.ANY.DNSKEY import DNSKEY
from dns.rdtypes.ANY.DS import DS
from dns.rdtypes.ANY.NSEC import NSEC
from dns.rdtypes.ANY.NSEC3 import NSEC3
from dns.rdtypes.ANY.RRSIG import RRSIG
from dns.rdtypes.ANY.SOA import SOA
from pydantic import BaseModel, ConfigDict

from mtasecure.errors import DnsError, ParseError, UsageError

__all__ = [
    "MAX_CNAME_CHAIN",
    "MAX_DELEGATION_DEPTH",
    "MAX_KEYS_PER_DNSKEY_SET",
    "MAX_NSEC3_ITERATIONS",
    "MAX_QUERIES",
    "MAX_RRSIGS_PER_RRSET",
    "MAX_SIGNATURE_CHECKS",
    "MAX_TRUST_CACHE_ENTRIES",
    "MAX_TRUST_CACHE_TTL",
    "ROOT_TRUST_ANCHOR",
    "SUPPORTED_ALGORITHMS",
    "SUPPORTED_DIGESTS",
    "ChainResult",
    "ChainValidator",
    "DnsAnswer",
    "Query",
    "Security",
    "TrustAnchor",
    "TrustCache",
    "combine_security",
    "parse_trust_anchor",
]


class Security(StrEnum):
    """The four security states of RFC 4033 §5."""

    SECURE = "secure"
    """A chain of signed DNSKEY and DS records leads from a trust anchor to the answer."""
    INSECURE = "insecure"
    """Validation proved, with signed data, that no chain of trust reaches the answer."""
    BOGUS = "bogus"
    """A chain of trust should exist but validation failed (bad, expired or missing signatures)."""
    INDETERMINATE = "indeterminate"
    """No trust anchor covers the name, or no answer could be had to decide."""


_STRENGTH = {Security.BOGUS: 0, Security.INDETERMINATE: 1, Security.INSECURE: 2, Security.SECURE: 3}


def combine_security(
    statuses: Iterable[Security], *, default: Security = Security.INDETERMINATE
) -> Security:
    """The status of answers that depend on each other: the weakest one (RFC 4035 §5).

    An answer is only as trustworthy as every RRset it rests on (each CNAME
    link, the A and the AAAA of one host, each step of a chain): bogus <
    indeterminate < insecure < secure. The one ordering of the library; the
    stub resolution, the local validator and the MX checks all use it.

    Args:
        statuses: the statuses to combine.
        default: the answer when there are none; ``indeterminate`` unless the
            caller has proven something (RFC 4033 §5).
    """
    return min(statuses, key=_STRENGTH.__getitem__, default=default)


class DnsAnswer(BaseModel):
    """One DNS answer as mtasecure's core consumes it.

    A user's own :class:`~mtasecure.transport.Resolver` builds these; it never
    has to build a dnspython object.

    Attributes:
        name: the name asked for, normalised (lower case, no trailing dot).
        rdtype: the record type asked for (``"MX"``, ``"TXT"``, ``"TLSA"``, ...).
        records: the answer's records in presentation (zone-file) format, e.g.
            ``"10 mx.example.com."`` or ``'"v=STSv1; " "id=1"'``; empty for
            NXDOMAIN, NODATA and failures.
        security: how far the answer can be trusted (RFC 4033 §5).
        ttl: the answer's TTL in seconds (the negative TTL for denials).
        nxdomain: the name does not exist (RFC 7672 §2.2 treats this
            differently from NODATA).
        cname_chain: the CNAME owners followed from ``name`` to the answer,
            in order, normalised.
        failed: no usable answer could be had (SERVFAIL, timeout, or a
            validation failure); ``records`` is then empty and must not be read
            as "no record".
        why: a human-readable reason for ``bogus``, ``indeterminate`` or
            ``failed``.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    rdtype: str
    records: tuple[str, ...] = ()
    security: Security = Security.INDETERMINATE
    ttl: int = 0
    nxdomain: bool = False
    cname_chain: tuple[str, ...] = ()
    failed: bool = False
    why: str = ""

    @property
    def final_name(self) -> str:
        """The owner name of the records: the last CNAME target, or ``name``."""
        return self.cname_chain[-1] if self.cname_chain else self.name

    @property
    def nodata(self) -> bool:
        """The name exists but has no record of this type."""
        return not self.records and not self.nxdomain and not self.failed

    def rdatas(self) -> tuple[dns.rdata.Rdata, ...]:
        """The records parsed into dnspython rdata objects.

        Raises:
            DnsError: a record is not valid presentation format for ``rdtype``.
        """
        try:
            rdtype = dns.rdatatype.from_text(self.rdtype)
            return tuple(
                dns.rdata.from_text(dns.rdataclass.IN, rdtype, text) for text in self.records
            )
        except (dns.exception.DNSException, ValueError) as exc:
            raise DnsError(f"unreadable {self.rdtype} record for {self.name}: {exc}") from exc

    def txt_strings(self) -> tuple[str, ...]:
        """For TXT answers: each record's character-strings joined (RFC 7208 §3.3 style).

        Bytes that are not UTF-8 are replaced, so a record parser sees them as
        invalid characters rather than crashing.

        Raises:
            DnsError: a record is not valid TXT presentation format.
        """
        texts = []
        for text in self.records:
            plain = _plain_txt(text)
            if plain is None:  # escapes, unquoted strings, odd spacing: the full parser
                try:
                    rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, text)
                except (dns.exception.DNSException, ValueError) as exc:
                    raise DnsError(f"unreadable TXT record for {self.name}: {exc}") from exc
                plain = b"".join(rdata.strings).decode("utf-8", errors="replace")  # type: ignore[attr-defined]
            texts.append(plain)
        return tuple(texts)


_MAX_TXT_STRING = 255
"""Longest character-string (RFC 1035 §3.3: one length octet)."""


def _plain_txt(text: str) -> str | None:
    """The joined strings of a TXT record written as ``"a" "b"`` with no escapes, or ``None``.

    The common form (dnspython writes every printable-ASCII string this way)
    needs no tokenizer: without a backslash no string can hold a quote, so
    the strings are exactly the pieces between the ``" "`` separators. Any
    other form returns ``None`` for the full presentation-format parser.
    """
    if len(text) < 2 or text[0] != '"' or text[-1] != '"' or "\\" in text:
        return None
    if not (text.isascii() and text.isprintable()):
        return None
    parts = text[1:-1].split('" "')
    if any('"' in part or len(part) > _MAX_TXT_STRING for part in parts):
        return None
    return "".join(parts)


# ---------------------------------------------------------------------------
# Local validation from a trust anchor (RFC 4033 §5, RFC 4035 §5, RFC 5155 §8,
# RFC 6840 §4-§5).
#
# The rules this planner applies, in the order it meets them:
#
# * The trust anchor's DS (or DNSKEY) set authenticates the anchor zone's
#   DNSKEY RRset, which must be signed by a key the anchor names (§5.2).
# * Walking down one label at a time, a DS query at each name below the
#   deepest secure zone tells what the name is: a signed DS RRset is a secure
#   cut (then the child's DNSKEY RRset must be signed by a key matching a DS);
#   a signed denial with NS and no SOA in the bitmap is an insecure delegation;
#   a signed denial without NS says the name is no cut (§5.2, RFC 5155 §8.6).
#   A DS set whose every algorithm or digest type is unsupported makes the
#   child insecure (§5.2, RFC 6840 §5.2); SHA-1 DS records are ignored when a
#   stronger digest is present (RFC 4509 §3).
# * One valid RRSIG from the zone's keys suffices (RFC 6840 §5.3, §5.4); its
#   validity window is checked against ``now`` (§5.3.1).
# * A wildcard-expanded answer needs proof that the query name itself does not
#   exist (§5.3.4, RFC 5155 §8.8).
# * NXDOMAIN needs proof that the name and the source of synthesis do not exist;
#   NODATA needs a matching NSEC/NSEC3 without the type and without CNAME
#   (§5.4, RFC 5155 §8.4-§8.7). A parent-side NSEC at a delegation (NS without
#   SOA) cannot deny anything but DS, nor names below it (RFC 6840 §4.1).
# * A DS RRset is authenticated with the parent's keys; a zone's own apex
#   NSEC/NSEC3 cannot deny its DS (RFC 4035 §3.1.4.1, §5.2).
# * A CNAME synthesized from a DNAME is unsigned: the DNAME is validated and
#   the CNAME must be exactly its substitution (RFC 6672 §5.3.3).
# * NSEC3 opt-out spans make the covered names insecure (RFC 5155 §8.6, §9.2);
#   NSEC3 records with more iterations than MAX_NSEC3_ITERATIONS are treated as
#   insecure (RFC 9276 §3.2).
# ---------------------------------------------------------------------------

MAX_DELEGATION_DEPTH = 16
"""Secure zone cuts a chain may pass through below the trust anchor."""
MAX_QUERIES = 64
"""Queries one validation may ask for, all steps together."""
MAX_CNAME_CHAIN = 8
"""CNAME records followed from the query name; one more fails the answer.

The one limit for every resolver: the local validator here and the stub
resolution in :mod:`mtasecure._resolution` (RFC 1034 §3.6.2 leaves it open).
"""
MAX_RRSIGS_PER_RRSET = 8
"""RRSIG records tried per RRset; the rest are ignored (KeyTrap, CVE-2023-50387)."""
MAX_KEYS_PER_DNSKEY_SET = 16
"""DNSKEY records accepted in one zone's key set; a larger set is bogus."""
MAX_SIGNATURE_CHECKS = 64
"""Public-key operations one validation may spend before it gives up as bogus."""
MAX_NSEC3_ITERATIONS = 150
"""NSEC3 records with more iterations make a denial insecure (RFC 9276 §3.2)."""

SUPPORTED_ALGORITHMS: frozenset[int] = frozenset({5, 7, 8, 10, 13, 14, 15, 16})
"""DNSKEY algorithms this validator verifies (RFC 8624 §3.1: MUST/RECOMMENDED to validate)."""
SUPPORTED_DIGESTS: frozenset[int] = frozenset({1, 2, 4})
"""DS digest types this validator checks: SHA-1, SHA-256, SHA-384 (RFC 8624 §3.3)."""

_NSEC3_SHA1 = 1
_NOT_ASKABLE = frozenset({dns.rdatatype.RRSIG, dns.rdatatype.NONE})
_NSEC3_OPT_OUT = 0x01
_DS_SHA1 = 1


class TrustAnchor(BaseModel):
    """Where a chain of trust starts: a zone and its DS or DNSKEY records (RFC 4033 §5).

    Attributes:
        zone: the anchor's owner name, normalised (``"."`` for the root).
        ds: DS records in presentation format (``"20326 8 2 E06D..."``).
        dnskeys: DNSKEY records in presentation format, for anchors given
            as keys rather than digests.

    Build one with :func:`parse_trust_anchor` from zone-file lines.
    """

    model_config = ConfigDict(frozen=True)

    zone: str
    ds: tuple[str, ...] = ()
    dnskeys: tuple[str, ...] = ()


ROOT_TRUST_ANCHOR = TrustAnchor(
    zone=".",
    ds=(
        "20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D",
        "38696 8 2 683D2D0ACB8C9B712A1948B27F741219298D0A450D612C483AF444A4C0FB2B16",
    ),
)
"""The IANA root zone trust anchors: KSK-2017 (key tag 20326) and KSK-2024 (38696)."""


def parse_trust_anchor(text: str) -> TrustAnchor:
    """Read a trust anchor from zone-file lines (``root.key``/``root.ds`` style).

    Each non-empty line not starting with ``;`` is ``owner [ttl] [IN] DS|DNSKEY
    rdata``; all lines must share one owner.

    Raises:
        ParseError: a line is not a DS or DNSKEY record, the owners differ, or
            nothing was given (RFC 4034 §2.2, §5.3).
    """
    zone: dns.name.Name | None = None
    ds: list[str] = []
    keys: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        where = f"trust anchor line {number}"
        try:
            rrset = dns.rrset.from_text(*_split_anchor_line(line))
        except (dns.exception.DNSException, ValueError, IndexError) as exc:
            raise ParseError(f"not a DS or DNSKEY record: {exc}", where=where) from exc
        if rrset.rdtype not in (dns.rdatatype.DS, dns.rdatatype.DNSKEY):
            raise ParseError("only DS and DNSKEY records can be trust anchors", where=where)
        if zone is not None and rrset.name != zone:
            raise ParseError(f"owner {rrset.name} differs from {zone}", where=where)
        zone = rrset.name
        (ds if rrset.rdtype == dns.rdatatype.DS else keys).extend(r.to_text() for r in rrset)
    if zone is None:
        raise ParseError("no DS or DNSKEY record given", rule="RFC 4033 §5")
    return TrustAnchor(zone=answer_name(zone), ds=tuple(ds), dnskeys=tuple(keys))


def _split_anchor_line(line: str) -> tuple[str, int, str, str, str]:
    fields = line.split()
    owner, rest = fields[0], fields[1:]
    ttl = 0
    if rest and rest[0].isdigit():
        ttl, rest = int(rest[0]), rest[1:]
    if rest and rest[0].upper() == "IN":
        rest = rest[1:]
    return owner, ttl, "IN", rest[0], " ".join(rest[1:])


def answer_name(name: dns.name.Name) -> str:
    """A name as :class:`DnsAnswer` spells it: lower case, no trailing dot, ``.`` for the root.

    DNS names compare case-insensitively (RFC 4343 §2); the stub resolution
    and the local validator both spell their answers' names with this.
    Not in ``__all__``: a helper for the package's resolvers.
    """
    text = name.to_text(omit_final_dot=True).lower()
    return text or "."


class ChainResult(BaseModel):
    """What local validation concluded about one query (RFC 4033 §5).

    Attributes:
        security: the status of the whole answer: the worst of every step
            (a CNAME through an insecure zone makes the answer insecure).
        why: the reason for anything short of ``secure``.
        records: the answer's records in presentation format; empty for
            denials, failures and ``bogus``.
        ttl: the answer's TTL, capped by the signatures' original TTL and
            expiry (RFC 4035 §5.3.3); the negative TTL for denials.
        nxdomain: the final name does not exist.
        cname_chain: CNAME targets followed, normalised.
        failed: no usable answer (bogus data, a failed fetch, a CNAME loop).
        queries: how many queries the validation asked for.
    """

    model_config = ConfigDict(frozen=True)

    security: Security
    why: str = ""
    records: tuple[str, ...] = ()
    ttl: int = 0
    nxdomain: bool = False
    cname_chain: tuple[str, ...] = ()
    failed: bool = False
    queries: int = 0

    def answer(self, name: str, rdtype: str) -> DnsAnswer:
        """This result as the :class:`DnsAnswer` a resolver returns for ``name``/``rdtype``."""
        return DnsAnswer(
            name=name,
            rdtype=rdtype,
            records=self.records,
            security=self.security,
            ttl=self.ttl,
            nxdomain=self.nxdomain,
            cname_chain=self.cname_chain,
            failed=self.failed,
            why=self.why,
        )


Query = tuple[dns.name.Name, dns.rdatatype.RdataType]
"""A question the planner wants answered: (owner name, record type)."""


class _Bogus(Exception):
    """Internal: validation failed; unwinds the planner to a ``bogus`` result."""


class _Stop(Exception):
    """Internal: the answer cannot be had (a server error, a CNAME loop)."""


@dataclass(frozen=True)
class _Zone:
    """A zone whose DNSKEY RRset has been authenticated."""

    name: dns.name.Name
    keys: tuple[tuple[int, DNSKEY, dns.rdataset.Rdataset], ...]  # (key tag, key, {key})
    depth: int
    ttl: int = 0  # seconds the DS and DNSKEY proofs stay good (TTLs, signature expiry)


@dataclass(frozen=True)
class _Unproven:
    """The chain ends above the name: an insecure cut, or no anchor covers it."""

    security: Security
    why: str


class _Denial(Enum):
    NODATA = "nodata"  # also: the name is no zone cut
    DELEGATION = "delegation"  # NODATA at a cut: NS without SOA (DS queries only)
    NXDOMAIN = "nxdomain"
    INSECURE = "insecure"  # opt-out span or too many NSEC3 iterations


_Planner = Generator[Query, dns.message.Message, None]

MAX_TRUST_CACHE_ENTRIES = 10_000
"""Zone proofs a :class:`TrustCache` keeps (least recently used dropped first)."""
MAX_TRUST_CACHE_TTL = 86_400
"""Seconds a proof is kept at most, whatever its TTL."""


class TrustCache:
    """What earlier validations proved about zones, for later ones to reuse.

    Holds authenticated DNSKEY sets and the outcome of each DS step (secure
    cut, insecure delegation, no cut), each until the smallest TTL or
    signature expiry of the records that proved it (RFC 4035 §4.5, capped at
    :data:`MAX_TRUST_CACHE_TTL`). Only proven outcomes enter it; a failed
    validation leaves nothing behind. It reads no clock: each validation's
    ``now`` decides what has expired. Entries are keyed by trust anchor too,
    so validators with different anchors may share one cache.

    Args:
        max_entries: most proofs kept (:data:`MAX_TRUST_CACHE_ENTRIES`).
    """

    def __init__(self, max_entries: int = MAX_TRUST_CACHE_ENTRIES) -> None:
        if max_entries < 1:
            raise UsageError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._entries: OrderedDict[
            tuple[object, dns.name.Name], tuple[_Zone | _Unproven | _Denial, float, float]
        ] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget everything (e.g. after a trust anchor changed)."""
        self._entries.clear()

    def get(
        self, key: tuple[object, dns.name.Name], now: float
    ) -> _Zone | _Unproven | _Denial | None:
        """The proof stored under ``key`` if it holds at ``now``."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, start, end = entry
        if not start <= now < end:
            if now >= end:
                del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(
        self,
        key: tuple[object, dns.name.Name],
        value: _Zone | _Unproven | _Denial,
        now: float,
        ttl: int,
    ) -> None:
        """Keep ``value`` from ``now`` for ``ttl`` seconds (at most :data:`MAX_TRUST_CACHE_TTL`)."""
        ttl = min(ttl, MAX_TRUST_CACHE_TTL)
        if ttl <= 0:
            return
        self._entries[key] = (value, now, now + ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


class ChainValidator:
    """Plans and checks local DNSSEC validation of one query; does no I/O.

    Drive it like dnspython's ``_Resolution``: ask :meth:`next_query` what to
    fetch, send the query with the DO and CD bits set, hand the response to
    :meth:`feed` (or report a failed fetch with :meth:`feed_failure`), and
    repeat until :meth:`next_query` returns ``None``; then read
    :meth:`result`::

        validator = ChainValidator(ROOT_TRUST_ANCHOR, "example.com", "MX", now=now)
        while (query := validator.next_query()) is not None:
            validator.feed(send(*query))
        result = validator.result()

    Args:
        anchor: where trust starts (the shell defaults to the root).
        qname: the name asked for.
        rdtype: the record type asked for (``"MX"``, ``"TLSA"``, ...).
        now: the time signatures must be valid at (RFC 4035 §5.3.1).
        cache: a :class:`TrustCache` shared between validations, so that
            zones authenticated earlier are not fetched and checked again.

    Raises:
        UsageError: ``qname``, ``rdtype`` or the anchor cannot be read.
    """

    def __init__(
        self,
        anchor: TrustAnchor,
        qname: str,
        rdtype: str,
        *,
        now: datetime,
        cache: TrustCache | None = None,
    ) -> None:
        try:
            self._qname = dns.name.from_text(qname)
            self._rdtype = dns.rdatatype.from_text(rdtype)
            self._anchor_name, ds, keys = _read_anchor(anchor.zone, anchor.ds, anchor.dnskeys)
            self._anchor_ds, self._anchor_keys = list(ds), list(keys)
        except (dns.exception.DNSException, ValueError) as exc:
            raise UsageError(f"cannot validate {qname!r} {rdtype!r}: {exc}") from exc
        if dns.rdatatype.is_metatype(self._rdtype) or self._rdtype in _NOT_ASKABLE:
            raise UsageError(f"{rdtype!r} is a meta-type or DNSSEC record; it cannot be validated")
        if now.tzinfo is None:
            raise UsageError("now must be timezone-aware (a naive time is ambiguous)")
        self._now = now.timestamp()
        self._cache = cache
        self._anchor_id = (anchor.zone, anchor.ds, anchor.dnskeys)
        self._zones: dict[dns.name.Name, _Zone | _Unproven | _Denial] = {}
        self._cname_ttls: list[int] = []
        self._checks = 0
        self._queries = 0
        self._statuses: list[tuple[Security, str]] = []
        self._records: tuple[str, ...] = ()
        self._ttl = 0
        self._nxdomain = False
        self._chain: list[str] = []
        self._result: ChainResult | None = None
        self._pending: Query | None = None
        self._planner = self._plan()
        self._advance(None)

    # -- the driving interface ------------------------------------------------

    def next_query(self) -> Query | None:
        """The next (name, type) to fetch, or ``None`` when :meth:`result` is ready."""
        return self._pending

    def feed(self, response: dns.message.Message) -> None:
        """Hand over the response to :meth:`next_query`'s question.

        Raises:
            UsageError: no query is pending.
        """
        if self._pending is None:
            raise UsageError("feed() called with no query pending")
        self._advance(response)

    def feed_failure(self, why: str) -> None:
        """Report that the pending query could not be answered (timeout, no server).

        The result is ``indeterminate`` and failed: nothing can be decided.

        Raises:
            UsageError: no query is pending.
        """
        if self._pending is None:
            raise UsageError("feed_failure() called with no query pending")
        name, rdtype = self._pending
        self._finish_failed(Security.INDETERMINATE, f"{answer_name(name)} {rdtype.name}: {why}")

    def result(self) -> ChainResult:
        """The verdict, once :meth:`next_query` has returned ``None``.

        Raises:
            UsageError: queries are still pending.
        """
        if self._result is None:
            raise UsageError("result() called before validation finished")
        return self._result

    # -- plumbing ---------------------------------------------------------------

    def _advance(self, response: dns.message.Message | None) -> None:
        try:
            query = next(self._planner) if response is None else self._planner.send(response)
        except StopIteration:
            self._pending = None
            self._finish()
            return
        except _Bogus as exc:
            self._finish_failed(Security.BOGUS, str(exc))
            return
        except _Stop as exc:
            self._finish_failed(Security.INDETERMINATE, str(exc))
            return
        except (dns.exception.DNSException, ValueError, IndexError) as exc:
            # a response dnspython parsed but that breaks a name or record rule
            # further on (e.g. a wildcard name over 255 octets): fail closed
            self._finish_failed(Security.BOGUS, f"unusable response: {exc!r}")
            return
        self._queries += 1
        if self._queries > MAX_QUERIES:
            self._finish_failed(Security.BOGUS, f"more than MAX_QUERIES={MAX_QUERIES} queries")
            return
        self._pending = query

    def _finish(self) -> None:
        worst = combine_security((s for s, _ in self._statuses), default=Security.SECURE)
        why = "; ".join(w for s, w in self._statuses if s is not Security.SECURE and w)
        self._result = ChainResult(
            security=worst,
            why=why,
            records=self._records,
            ttl=self._ttl,
            nxdomain=self._nxdomain,
            cname_chain=tuple(self._chain),
            queries=self._queries,
        )

    def _finish_failed(self, security: Security, why: str) -> None:
        self._pending = None
        self._planner.close()
        self._result = ChainResult(
            security=security,
            why=why,
            failed=True,
            cname_chain=tuple(self._chain),
            queries=self._queries,
        )

    def _note(self, security: Security, why: str = "") -> None:
        self._statuses.append((security, why))

    # -- the plan ---------------------------------------------------------------

    def _plan(self) -> _Planner:
        current = self._qname
        seen = {current}
        response = yield (current, self._rdtype)
        asked = current
        while True:
            rcode = response.rcode()
            if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                raise _Stop(
                    f"{answer_name(asked)} {self._rdtype.name}: server answered {rcode.name}"
                )
            rrset, sigs = _find(response.answer, current, self._rdtype)
            if rrset is not None:
                yield from self._check_rrset(rrset, sigs, response)
                self._records = tuple(r.to_text() for r in rrset)
                self._ttl = min([self._ttl_cap(rrset, sigs), *self._cname_ttls])
                return
            target = yield from self._redirect(response, current)
            if target is not None:
                self._chain.append(answer_name(target))
                if target in seen:
                    raise _Stop(f"CNAME loop at {answer_name(target)}")
                if len(self._chain) > MAX_CNAME_CHAIN:
                    raise _Stop(f"more than MAX_CNAME_CHAIN={MAX_CNAME_CHAIN} CNAMEs")
                seen.add(target)
                current = target
                continue
            if current != asked:
                response = yield (current, self._rdtype)
                asked = current
                continue
            _refuse_referral(response, current, self._rdtype)
            yield from self._check_denial(response, current, rcode == dns.rcode.NXDOMAIN)
            self._ttl = min([_negative_ttl(response), *self._cname_ttls])
            return

    def _redirect(
        self, response: dns.message.Message, current: dns.name.Name
    ) -> Generator[Query, dns.message.Message, dns.name.Name | None]:
        """Where a validated CNAME, or a CNAME synthesized from a DNAME, sends ``current``.

        A CNAME synthesized from a DNAME is unsigned (RFC 6672 §5.3.3): the
        DNAME is validated instead, and the CNAME must be what it implies.
        """
        if self._rdtype in (dns.rdatatype.CNAME, dns.rdatatype.DNAME):
            return None
        cname, csigs = _find(response.answer, current, dns.rdatatype.CNAME)
        dname, dsigs = _find_dname(response.answer, current)
        if dname is not None and (cname is None or csigs is None):
            yield from self._check_rrset(dname, dsigs, response)
            try:
                target = current.relativize(dname.name).derelativize(cast(DNAME, dname[0]).target)
            except dns.name.NameTooLong as exc:
                raise _Stop(
                    f"{answer_name(current)}: DNAME substitution too long (RFC 6672 §2.2)"
                ) from exc
            if cname is not None and cast(CNAME, cname[0]).target != target:
                raise _Bogus(
                    f"{answer_name(current)}: CNAME does not follow from the DNAME (RFC 6672 §5.3.3)"
                )
            self._cname_ttls.append(self._ttl_cap(dname, dsigs))
            return target
        if cname is None:
            return None
        yield from self._check_rrset(cname, csigs, response)
        self._cname_ttls.append(self._ttl_cap(cname, csigs))
        return cast(CNAME, cname[0]).target

    def _ttl_cap(self, rrset: dns.rrset.RRset, sigs: dns.rrset.RRset | None) -> int:
        ttl = rrset.ttl
        for sig in cast(Iterable[RRSIG], sigs or ()):
            if sig.type_covered == rrset.rdtype:
                ttl = min(ttl, sig.original_ttl, max(0, int(sig.expiration - self._now)))
        return ttl

    # -- positive data --------------------------------------------------------

    def _check_rrset(
        self,
        rrset: dns.rrset.RRset,
        sigs: dns.rrset.RRset | None,
        response: dns.message.Message,
    ) -> _Planner:
        """RFC 4035 §5.3: authenticate one answer RRset, or prove it need not be."""
        owner = rrset.name
        signers = [
            s.signer
            for s in cast(Iterable[RRSIG], sigs or ())
            if s.type_covered == rrset.rdtype
            and owner.is_subdomain(s.signer)
            # a DS RRset belongs to the parent side of the cut (RFC 4034 §5)
            and not (rrset.rdtype == dns.rdatatype.DS and s.signer == owner)
        ]
        if not signers:
            zone = yield from self._walk(owner)
            if isinstance(zone, _Unproven):
                self._note(zone.security, zone.why)
                return
            raise _Bogus(
                f"{answer_name(owner)} {rrset.rdtype.name} has no RRSIG but zone "
                f"{answer_name(zone.name)} is signed (RFC 4035 §5.3)"
            )
        signer = max(signers, key=len)
        zone = yield from self._walk(signer)
        if isinstance(zone, _Unproven):
            self._note(zone.security, zone.why)
            return
        if zone.name != signer:
            raise _Bogus(
                f"{answer_name(owner)} {rrset.rdtype.name} is signed by {answer_name(signer)}, "
                f"which is no zone under {answer_name(zone.name)} (RFC 4035 §5.3.1)"
            )
        sig = self._verify(rrset, sigs, zone)
        if sig.labels < _label_count(owner):
            self._check_wildcard(response, zone, owner, sig.labels)
        self._note(Security.SECURE)

    def _verify(self, rrset: dns.rrset.RRset, sigs: dns.rrset.RRset | None, zone: _Zone) -> RRSIG:
        """RFC 4035 §5.3.1-§5.3.3: one RRSIG by one of ``zone``'s keys must verify."""
        what = f"{answer_name(rrset.name)} {rrset.rdtype.name}"
        usable = [
            s
            for s in cast(Iterable[RRSIG], sigs or ())
            if s.type_covered == rrset.rdtype
            and s.signer == zone.name
            and s.algorithm in SUPPORTED_ALGORITHMS
            and s.labels <= _label_count(rrset.name)
        ][:MAX_RRSIGS_PER_RRSET]
        if not usable:
            raise _Bogus(f"{what}: no usable RRSIG by {answer_name(zone.name)} (RFC 4035 §5.3.1)")
        failures: list[str] = []
        for sig in usable:
            for tag, key, single in zone.keys:
                if tag != sig.key_tag or key.algorithm != sig.algorithm:
                    continue
                self._checks += 1
                if self._checks > MAX_SIGNATURE_CHECKS:
                    raise _Bogus(f"more than MAX_SIGNATURE_CHECKS={MAX_SIGNATURE_CHECKS}")
                try:
                    dns.dnssec.validate_rrsig(rrset, sig, {zone.name: single}, now=self._now)
                except Exception as exc:  # any failure to verify is a failed check
                    failures.append(f"key {tag}: {exc or type(exc).__name__}")
                    continue
                return sig
            if not any(t == sig.key_tag for t, _, _ in zone.keys):
                failures.append(f"key {sig.key_tag}: not in {answer_name(zone.name)} DNSKEY")
        raise _Bogus(f"{what}: {', '.join(failures)} (RFC 4035 §5.3)")

    def _check_wildcard(
        self, response: dns.message.Message, zone: _Zone, qname: dns.name.Name, labels: int
    ) -> None:
        """RFC 4035 §5.3.4, RFC 5155 §8.8: an expanded wildcard needs qname's non-existence."""
        source_parent = qname.split(labels + 1)[1]
        nsecs, nsec3s = self._denial_records(response, zone)
        if any(
            _nsec_covers(owner, nsec, qname) and _nsec_encloser(owner, nsec, qname) == source_parent
            for owner, nsec in nsecs
        ):
            return
        next_closer = qname.split(labels + 2)[1]
        if (
            nsec3s
            and next_closer.is_subdomain(source_parent)
            and _nsec3_find(nsec3s, next_closer, cover=True) is not None
        ):
            return
        raise _Bogus(
            f"{answer_name(qname)}: wildcard answer without proof that the name does not exist "
            "(RFC 4035 §5.3.4, RFC 5155 §8.8)"
        )

    # -- denial -----------------------------------------------------------------

    def _check_denial(
        self, response: dns.message.Message, qname: dns.name.Name, nxdomain: bool
    ) -> _Planner:
        """RFC 4035 §5.4, RFC 5155 §8.4-§8.7: authenticate an NXDOMAIN or NODATA answer."""
        self._nxdomain = nxdomain
        signers = [
            sig.signer
            for rrset in response.authority
            if rrset.rdtype == dns.rdatatype.RRSIG
            for sig in cast(Iterable[RRSIG], rrset)
            if sig.type_covered in (dns.rdatatype.NSEC, dns.rdatatype.NSEC3, dns.rdatatype.SOA)
            and qname.is_subdomain(sig.signer)
        ]
        zone = yield from self._walk(max(signers, key=len) if signers else qname)
        if isinstance(zone, _Unproven):
            self._note(zone.security, zone.why)
            return
        if not signers:
            raise _Bogus(
                f"{answer_name(qname)} {self._rdtype.name}: unsigned denial in signed zone "
                f"{answer_name(zone.name)} (RFC 4035 §5.4)"
            )
        if zone.name != max(signers, key=len):
            raise _Bogus(f"{answer_name(qname)}: denial signed by a name that is no zone cut")
        denial, why = self._prove(response, zone, qname, self._rdtype)
        if denial is _Denial.INSECURE:
            self._note(Security.INSECURE, why)
        elif (denial is _Denial.NXDOMAIN) != nxdomain:
            raise _Bogus(
                f"{answer_name(qname)} {self._rdtype.name}: rcode "
                f"{'NXDOMAIN' if nxdomain else 'NOERROR'} but the proof shows "
                f"{denial.value} (RFC 4035 §5.4)"
            )
        elif denial is _Denial.DELEGATION and self._rdtype != dns.rdatatype.DS:
            raise _Bogus(
                f"{answer_name(qname)}: a delegation's NSEC cannot deny {self._rdtype.name}"
            )
        else:
            self._check_soa(response, zone)
            self._note(Security.SECURE)

    def _check_soa(self, response: dns.message.Message, zone: _Zone) -> None:
        """The SOA of a denial, whose MINIMUM sets the negative TTL, must verify too."""
        soa, sigs = _find(response.authority, zone.name, dns.rdatatype.SOA)
        if soa is not None:
            self._verify(soa, sigs, zone)

    def _denial_records(
        self, response: dns.message.Message, zone: _Zone
    ) -> tuple[list[tuple[dns.name.Name, NSEC]], list[tuple[bytes, NSEC3]]]:
        """The NSEC and NSEC3 records in the authority section that ``zone`` signed."""
        nsecs: list[tuple[dns.name.Name, NSEC]] = []
        nsec3s: list[tuple[bytes, NSEC3]] = []
        for rrset in response.authority:
            if rrset.rdtype not in (dns.rdatatype.NSEC, dns.rdatatype.NSEC3):
                continue
            _, sigs = _find(response.authority, rrset.name, rrset.rdtype)
            if not rrset.name.is_subdomain(zone.name) or not any(
                s.signer == zone.name for s in cast(Iterable[RRSIG], sigs or ())
            ):
                continue  # another zone's records prove nothing here
            self._verify(rrset, sigs, zone)
            if rrset.rdtype == dns.rdatatype.NSEC:
                nsecs.extend((rrset.name, cast(NSEC, r)) for r in rrset)
                continue
            if rrset.name.parent() != zone.name:
                continue
            try:
                digest = base64.b32hexdecode(rrset.name[0].upper())
            except (binascii.Error, ValueError):
                continue
            nsec3s.extend((digest, cast(NSEC3, r)) for r in rrset)
        return nsecs, nsec3s

    def _prove(
        self,
        response: dns.message.Message,
        zone: _Zone,
        qname: dns.name.Name,
        rdtype: dns.rdatatype.RdataType,
    ) -> tuple[_Denial, str]:
        """Which denial the signed NSEC/NSEC3 records prove for (qname, rdtype)."""
        nsecs, nsec3s = self._denial_records(response, zone)
        where = f"{answer_name(qname)} {rdtype.name}"
        if nsecs:
            denial = _prove_nsec(nsecs, zone.name, qname, rdtype)
            if denial is not None:
                return denial, ""
        if nsec3s:
            usable = [
                (d, r)
                for d, r in nsec3s
                if r.algorithm == _NSEC3_SHA1 and r.flags & ~_NSEC3_OPT_OUT == 0
            ]
            if any(r.iterations > MAX_NSEC3_ITERATIONS for _, r in usable):
                return _Denial.INSECURE, (
                    f"{where}: NSEC3 iterations above MAX_NSEC3_ITERATIONS="
                    f"{MAX_NSEC3_ITERATIONS} (RFC 9276 §3.2)"
                )
            denial3 = _prove_nsec3(usable, zone.name, qname, rdtype)
            if denial3 is not None:
                return denial3, f"{where}: covered by an NSEC3 opt-out span (RFC 5155 §9.2)"
        raise _Bogus(f"{where}: no signed NSEC or NSEC3 proves the denial (RFC 4035 §5.4)")

    # -- the chain ---------------------------------------------------------------

    def _walk(
        self, target: dns.name.Name
    ) -> Generator[Query, dns.message.Message, _Zone | _Unproven]:
        """Authenticate zones from the anchor down towards ``target``.

        Returns the deepest secure zone at or above ``target`` on the way, or
        :class:`_Unproven` when an insecure cut (or no anchor) lies above it.
        """
        if not target.is_subdomain(self._anchor_name):
            return _Unproven(
                Security.INDETERMINATE,
                f"no trust anchor covers {answer_name(target)} (RFC 4033 §5)",
            )
        zone = yield from self._anchor_zone()
        cursor = self._anchor_name
        while cursor != target:
            child = target.split(len(cursor) + 1)[1]
            if child not in self._zones:
                cached = (
                    self._cache.get((self._anchor_id, child), self._now) if self._cache else None
                )
                if cached is None:
                    outcome, ttl = yield from self._cut(zone, child)
                    if self._cache is not None:
                        self._cache.put((self._anchor_id, child), outcome, self._now, ttl)
                    cached = outcome
                self._zones[child] = cached
            step = self._zones[child]
            if isinstance(step, _Unproven):
                return step
            if step is _Denial.NXDOMAIN:
                return zone
            if isinstance(step, _Zone):
                zone = step
            cursor = child
        return zone

    def _anchor_zone(self) -> Generator[Query, dns.message.Message, _Zone]:
        cached = self._zones.get(self._anchor_name)
        if isinstance(cached, _Zone):
            return cached
        key = (self._anchor_id, self._anchor_name)
        shared = self._cache.get(key, self._now) if self._cache is not None else None
        if isinstance(shared, _Zone):
            zone = shared
        else:
            zone = yield from self._keys(
                self._anchor_name, self._anchor_ds, self._anchor_keys, 0, ds_ttl=None
            )
            if self._cache is not None:
                self._cache.put(key, zone, self._now, zone.ttl)
        self._zones[self._anchor_name] = zone
        return zone

    def _cut(
        self, zone: _Zone, child: dns.name.Name
    ) -> Generator[Query, dns.message.Message, tuple[_Zone | _Unproven | _Denial, int]]:
        """RFC 4035 §5.2: what a DS query at ``child`` (inside ``zone``) proves, and for how long."""
        response = yield (child, dns.rdatatype.DS)
        rcode = response.rcode()
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            raise _Bogus(f"{answer_name(child)} DS: server answered {rcode.name}")
        ds, sigs = _find(response.answer, child, dns.rdatatype.DS)
        if ds is not None and rcode == dns.rcode.NOERROR:
            self._verify(ds, sigs, zone)
            usable = _usable_ds([cast(DS, r) for r in ds])
            ds_ttl = self._ttl_cap(ds, sigs)
            if not usable:
                unusable = _Unproven(
                    Security.INSECURE,
                    f"{answer_name(child)}: DS uses no supported algorithm or digest "
                    "(RFC 4035 §5.2, RFC 6840 §5.2)",
                )
                return unusable, ds_ttl
            if zone.depth + 1 > MAX_DELEGATION_DEPTH:
                raise _Bogus(f"more than MAX_DELEGATION_DEPTH={MAX_DELEGATION_DEPTH} zone cuts")
            child_zone = yield from self._keys(child, usable, [], zone.depth + 1, ds_ttl=ds_ttl)
            return child_zone, child_zone.ttl
        cname, csigs = _find(response.answer, child, dns.rdatatype.CNAME)
        if cname is not None:
            self._verify(cname, csigs, zone)
            return _Denial.NODATA, self._ttl_cap(cname, csigs)  # no cut (RFC 2181 §10.1)
        denial, why = self._prove(response, zone, child, dns.rdatatype.DS)
        ttl = min(
            [
                self._ttl_cap(r, _find(response.authority, r.name, r.rdtype)[1])
                for r in response.authority
                if r.rdtype in (dns.rdatatype.NSEC, dns.rdatatype.NSEC3)
            ]
            or [0]
        )
        if denial is _Denial.INSECURE:
            return _Unproven(Security.INSECURE, why), ttl
        if denial is _Denial.DELEGATION:
            insecure = _Unproven(
                Security.INSECURE,
                f"{answer_name(child)}: signed delegation without DS (RFC 4035 §5.2)",
            )
            return insecure, ttl
        return denial, ttl

    def _keys(
        self,
        name: dns.name.Name,
        ds: list[DS],
        anchor_keys: list[DNSKEY],
        depth: int,
        *,
        ds_ttl: int | None,
    ) -> Generator[Query, dns.message.Message, _Zone]:
        """RFC 4035 §5.2: the DNSKEY RRset, signed by a key a DS (or anchor) names."""
        response = yield (name, dns.rdatatype.DNSKEY)
        rrset, sigs = _find(response.answer, name, dns.rdatatype.DNSKEY)
        if rrset is None:
            _refuse_referral(response, name, dns.rdatatype.DNSKEY)
            raise _Bogus(f"{answer_name(name)}: no DNSKEY RRset (RFC 4035 §5.2)")
        if len(rrset) > MAX_KEYS_PER_DNSKEY_SET:
            raise _Bogus(
                f"{answer_name(name)}: {len(rrset)} DNSKEYs, more than "
                f"MAX_KEYS_PER_DNSKEY_SET={MAX_KEYS_PER_DNSKEY_SET}"
            )
        keys = [
            cast(DNSKEY, k)
            for k in rrset
            if cast(DNSKEY, k).protocol == 3 and cast(DNSKEY, k).flags & 0x0100
        ]
        entries = tuple((_key_tag(k), k, _one(rrset.ttl, k)) for k in keys)
        trusted = tuple(
            entry
            for entry in entries
            if entry[1] in anchor_keys or any(_ds_matches(name, entry, d) for d in ds)
        )
        if not trusted:
            raise _Bogus(f"{answer_name(name)}: no DNSKEY matches the DS or anchor (RFC 4035 §5.2)")
        self._verify(rrset, sigs, _Zone(name, trusted, depth))
        ttl = self._ttl_cap(rrset, sigs)
        return _Zone(name, entries, depth, ttl if ds_ttl is None else min(ttl, ds_ttl))


def _refuse_referral(
    response: dns.message.Message, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> None:
    """A referral answers nothing: the server neither hosts the zone nor recurses.

    Local validation needs a recursive server or one that hosts every zone
    on the way; a referral is reported as a failed fetch, not judged.
    """
    if response.rcode() != dns.rcode.NOERROR or response.answer:
        return
    kinds = {r.rdtype for r in response.authority}
    if dns.rdatatype.NS in kinds and dns.rdatatype.SOA not in kinds:
        raise _Stop(
            f"{answer_name(qname)} {rdtype.name}: the server sent a referral; ask a recursive "
            "server or one that hosts every zone"
        )


def _one(ttl: int, key: DNSKEY) -> dns.rdataset.Rdataset:
    return dns.rdataset.from_rdata_list(ttl, [key])


def _usable_ds(ds: list[DS]) -> list[DS]:
    """RFC 4035 §5.2, RFC 6840 §5.2, RFC 4509 §3: the DS records a validator may use."""
    usable = [
        d for d in ds if d.algorithm in SUPPORTED_ALGORITHMS and d.digest_type in SUPPORTED_DIGESTS
    ]
    if any(d.digest_type != _DS_SHA1 for d in usable):
        usable = [d for d in usable if d.digest_type != _DS_SHA1]
    return usable


def _ds_matches(
    name: dns.name.Name, entry: tuple[int, DNSKEY, dns.rdataset.Rdataset], ds: DS
) -> bool:
    tag, key, _ = entry
    if tag != ds.key_tag or key.algorithm != ds.algorithm:
        return False
    made = _ds_digest(name, key, ds.digest_type)
    return made is not None and hmac.compare_digest(made, ds.digest)


# Memoised pure helpers: the same root and TLD keys come back in every
# validation, and their key tags and digests cost more than the rest of the
# bookkeeping (the caches hold public data only).


@functools.lru_cache(maxsize=64)
def _read_anchor(
    zone: str, ds: tuple[str, ...], dnskeys: tuple[str, ...]
) -> tuple[dns.name.Name, tuple[DS, ...], tuple[DNSKEY, ...]]:
    return (
        dns.name.from_text(zone),
        tuple(cast(DS, dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.DS, t)) for t in ds),
        tuple(
            cast(DNSKEY, dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.DNSKEY, t))
            for t in dnskeys
        ),
    )


@functools.lru_cache(maxsize=4096)
def _key_tag(key: DNSKEY) -> int:
    """RFC 4034 Appendix B."""
    return dns.dnssec.key_id(key)


@functools.lru_cache(maxsize=4096)
def _ds_digest(name: dns.name.Name, key: DNSKEY, digest_type: int) -> bytes | None:
    """RFC 4034 §5.1.4: the digest a DS of ``digest_type`` holds for ``key``."""
    try:
        digest = dns.dnssectypes.DSDigest(digest_type)
        return dns.dnssec.make_ds(name, key, digest, validating=True).digest
    except (dns.exception.DNSException, ValueError):
        return None


def _find(
    section: list[dns.rrset.RRset], name: dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> tuple[dns.rrset.RRset | None, dns.rrset.RRset | None]:
    """The RRset of ``rdtype`` at ``name`` in ``section``, and the RRSIGs covering it."""
    found = None
    sigs = None
    for rrset in section:
        if rrset.name != name or rrset.rdclass != dns.rdataclass.IN:
            continue
        if rrset.rdtype == rdtype and found is None:
            found = rrset
        elif rrset.rdtype == dns.rdatatype.RRSIG and rrset.covers == rdtype and sigs is None:
            sigs = rrset
    return found, sigs


def _find_dname(
    section: list[dns.rrset.RRset], name: dns.name.Name
) -> tuple[dns.rrset.RRset | None, dns.rrset.RRset | None]:
    """The deepest DNAME RRset in ``section`` owned by a proper ancestor of ``name``."""
    owners = [
        r.name
        for r in section
        if r.rdtype == dns.rdatatype.DNAME and name.is_subdomain(r.name) and name != r.name
    ]
    if not owners:
        return None, None
    return _find(section, max(owners, key=len), dns.rdatatype.DNAME)


def _label_count(name: dns.name.Name) -> int:
    """RFC 4034 §3.1.3: labels in ``name``, not counting the root or a leading ``*``."""
    count = len(name) - 1
    return count - 1 if name.is_wild() else count


def _negative_ttl(response: dns.message.Message) -> int:
    """RFC 2308 §5: the SOA's TTL capped by its MINIMUM field."""
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
            return min(rrset.ttl, cast(SOA, rrset[0]).minimum)
    return 0


def _has_type(windows: Iterable[tuple[int, bytes]], rdtype: int) -> bool:
    """RFC 4034 §4.1.2: is ``rdtype`` in an NSEC/NSEC3 type bitmap."""
    window, bit = divmod(rdtype, 256)
    for number, bitmap in windows:
        if number == window:
            octet, shift = divmod(bit, 8)
            return octet < len(bitmap) and bool(bitmap[octet] & (0x80 >> shift))
    return False


def _is_cut(windows: Iterable[tuple[int, bytes]]) -> bool:
    """The bitmap of a parent-side delegation point: NS without SOA (RFC 6840 §4.1)."""
    windows = list(windows)
    return _has_type(windows, dns.rdatatype.NS) and not _has_type(windows, dns.rdatatype.SOA)


def _nodata(
    windows: Iterable[tuple[int, bytes]], rdtype: dns.rdatatype.RdataType
) -> _Denial | None:
    """RFC 4035 §5.4: a matching NSEC/NSEC3 denies ``rdtype`` if neither it nor CNAME is set."""
    windows = list(windows)
    if _has_type(windows, rdtype):
        return None
    if rdtype != dns.rdatatype.CNAME and _has_type(windows, dns.rdatatype.CNAME):
        return None
    if _is_cut(windows):
        return _Denial.DELEGATION
    return _Denial.NODATA


def _child_apex_for_ds(
    windows: Iterable[tuple[int, bytes]], qname: dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> bool:
    """A zone's apex NSEC (SOA set) cannot deny its own DS: the parent holds it (RFC 4035 §3.1.4.1)."""
    return (
        rdtype == dns.rdatatype.DS
        and qname != dns.name.root
        and _has_type(windows, dns.rdatatype.SOA)
    )


def _nsec_covers(owner: dns.name.Name, nsec: NSEC, name: dns.name.Name) -> bool:
    """RFC 4034 §4.1.1: ``name`` falls strictly between owner and next (wrapping at the end).

    An NSEC at a delegation point or DNAME covers nothing below its owner
    (RFC 6840 §4.1).
    """
    if name.is_subdomain(owner) and name != owner:
        windows = list(nsec.windows)
        if _is_cut(windows) or _has_type(windows, dns.rdatatype.DNAME):
            return False
    nxt = nsec.next
    if owner < nxt:
        return bool(owner < name < nxt)
    return bool(name > owner or name < nxt)


def _nsec_encloser(owner: dns.name.Name, nsec: NSEC, qname: dns.name.Name) -> dns.name.Name:
    """RFC 4035 §5.4: the closest encloser a covering NSEC implies for ``qname``.

    The deepest ancestor of ``qname`` shared with the NSEC's owner or next name.
    """
    common = max(qname.fullcompare(owner)[2], qname.fullcompare(nsec.next)[2])
    return qname.split(common)[1]


def _prove_nsec(
    nsecs: list[tuple[dns.name.Name, NSEC]],
    zone: dns.name.Name,
    qname: dns.name.Name,
    rdtype: dns.rdatatype.RdataType,
) -> _Denial | None:
    """RFC 4035 §5.4 with NSEC: NODATA, wildcard NODATA, empty non-terminal, NXDOMAIN."""
    for owner, nsec in nsecs:
        if owner == qname:
            if _child_apex_for_ds(nsec.windows, qname, rdtype):
                return None
            return _nodata(nsec.windows, rdtype)
    cover = next(((o, n) for o, n in nsecs if _nsec_covers(o, n, qname)), None)
    if cover is None:
        return None
    owner, nsec = cover
    if nsec.next.is_subdomain(qname):
        return _Denial.NODATA  # an empty non-terminal (RFC 4035 §3.1.3.2)
    encloser = _nsec_encloser(owner, nsec, qname)
    if not encloser.is_subdomain(zone):
        return None
    wildcard = dns.name.Name((b"*", *encloser.labels))
    for owner, nsec in nsecs:
        if owner == wildcard:
            found = _nodata(nsec.windows, rdtype)
            return _Denial.NODATA if found is _Denial.NODATA else None
    if any(_nsec_covers(o, n, wildcard) for o, n in nsecs):
        return _Denial.NXDOMAIN
    return None


def _nsec3_digest(name: dns.name.Name, nsec3: NSEC3) -> bytes:
    return _nsec3_hash(name, nsec3.salt, nsec3.iterations)


@functools.lru_cache(maxsize=4096)
def _nsec3_hash(name: dns.name.Name, salt: bytes, iterations: int) -> bytes:
    """RFC 5155 §5, memoised: every NSEC3 record of a response shares the parameters,
    so one name is hashed once, not once per record (CVE-2023-50868)."""
    text = dns.dnssec.nsec3_hash(name, salt, iterations, _NSEC3_SHA1)
    return base64.b32hexdecode(text)


def _nsec3_find(
    nsec3s: list[tuple[bytes, NSEC3]], name: dns.name.Name, *, cover: bool
) -> NSEC3 | None:
    """The NSEC3 matching (or, with ``cover``, covering) ``name`` (RFC 5155 §8.3)."""
    for owner, nsec3 in nsec3s:
        digest = _nsec3_digest(name, nsec3)
        if not cover:
            if digest == owner:
                return nsec3
            continue
        nxt = nsec3.next
        if owner < nxt and owner < digest < nxt:
            return nsec3
        if owner >= nxt and (digest > owner or digest < nxt):
            return nsec3
    return None


def _prove_nsec3(
    nsec3s: list[tuple[bytes, NSEC3]],
    zone: dns.name.Name,
    qname: dns.name.Name,
    rdtype: dns.rdatatype.RdataType,
) -> _Denial | None:
    """RFC 5155 §8.4-§8.7: NODATA, the closest encloser proof, wildcard and opt-out."""
    match = _nsec3_find(nsec3s, qname, cover=False)
    if match is not None:
        if _child_apex_for_ds(match.windows, qname, rdtype):
            return None
        return _nodata(match.windows, rdtype)
    encloser = qname.parent()
    while True:
        found = _nsec3_find(nsec3s, encloser, cover=False)
        if found is not None:
            if encloser != zone and (
                _is_cut(found.windows) or _has_type(found.windows, dns.rdatatype.DNAME)
            ):
                return None  # the closest encloser cannot be a delegation (RFC 5155 §8.3)
            break
        if encloser == zone or not encloser.is_subdomain(zone):
            return None
        encloser = encloser.parent()
    next_closer = qname.split(len(encloser) + 1)[1]
    covering = _nsec3_find(nsec3s, next_closer, cover=True)
    if covering is None:
        return None
    if covering.flags & _NSEC3_OPT_OUT:
        return _Denial.INSECURE  # RFC 5155 §8.6 (DS), §9.2 (any type)
    wildcard = dns.name.Name((b"*", *encloser.labels))
    source = _nsec3_find(nsec3s, wildcard, cover=False)
    if source is not None:
        found_nodata = _nodata(source.windows, rdtype)
        return _Denial.NODATA if found_nodata is _Denial.NODATA else None
    if _nsec3_find(nsec3s, wildcard, cover=True) is not None:
        return _Denial.NXDOMAIN
    return None
