"""Signed zones built at test time and an in-memory server answering from them.

The server answers the way a recursive resolver with the CD bit set (or an
authoritative server hosting every zone) does: positive answers with their
RRSIGs, CNAME chains followed across zones, referrals' DS queries answered
by the parent, and NSEC or NSEC3 proofs for NXDOMAIN, NODATA and wildcards.
No sockets: unit tests and benchmarks feed its messages to the planner.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from dns.rdtypes.ANY.DNSKEY import DNSKEY
from dns.rdtypes.ANY.NSEC import NSEC
from dns.rdtypes.ANY.NSEC3 import NSEC3
from dns.rdtypes.ANY.RRSIG import RRSIG
from dns.rdtypes.util import Bitmap

from mtasecure.dnssec import ChainResult, ChainValidator, TrustAnchor

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
IN = dns.rdataclass.IN
T = dns.rdatatype


def name(text: str) -> dns.name.Name:
    return dns.name.from_text(text)


@dataclass
class Key:
    """A zone's signing key: private half and DNSKEY (flags 257: a CSK)."""

    private: Any
    dnskey: DNSKEY

    @classmethod
    def generate(cls, algorithm: str = "ECDSAP256SHA256", flags: int = 257) -> Key:
        private: Any
        if algorithm == "ED25519":
            private = ed25519.Ed25519PrivateKey.generate()
        elif algorithm == "RSASHA256":
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            private = ec.generate_private_key(ec.SECP256R1())
        dnskey = dns.dnssec.make_dnskey(private.public_key(), algorithm, flags=flags)
        return cls(private, cast(DNSKEY, dnskey))

    @property
    def tag(self) -> int:
        return dns.dnssec.key_id(self.dnskey)


@dataclass
class Zone:
    """One zone: its records, its signatures and its denial chain."""

    origin: dns.name.Name
    rrsets: dict[tuple[dns.name.Name, int], dns.rrset.RRset] = field(default_factory=dict)
    sigs: dict[tuple[dns.name.Name, int], dns.rrset.RRset] = field(default_factory=dict)
    nsec3: bool = False
    signed: bool = True
    nsec_owners: list[dns.name.Name] = field(default_factory=list)
    nsec3_chain: list[tuple[bytes, dns.name.Name]] = field(default_factory=list)
    nsec3_param: tuple[int, bytes] = (0, b"")

    def ds(self, digest: str = "SHA256") -> dns.rdata.Rdata:
        key = self.rrsets[(self.origin, T.DNSKEY)][0]
        return dns.dnssec.make_ds(self.origin, key, digest)

    def delegations(self) -> set[dns.name.Name]:
        return {n for (n, t) in self.rrsets if t == T.NS and n != self.origin}

    def below_cut(self, owner: dns.name.Name) -> bool:
        return any(owner.is_subdomain(d) and owner != d for d in self.delegations())

    def names(self) -> set[dns.name.Name]:
        """Owner names with data, plus empty non-terminals, above or at cuts."""
        found: set[dns.name.Name] = set()
        for owner, rdtype in self.rrsets:
            if rdtype == T.NSEC3 or self.below_cut(owner):
                continue
            walk = owner
            while walk != self.origin:
                found.add(walk)
                walk = walk.parent()
        found.add(self.origin)
        return found

    def exists(self, qname: dns.name.Name) -> bool:
        return qname in self.names()

    def hash3(self, owner: dns.name.Name) -> bytes:
        iterations, salt = self.nsec3_param
        text = dns.dnssec.nsec3_hash(owner, salt, iterations, 1)
        return base64.b32hexdecode(text)


def build_zone(
    origin: str,
    records: Iterable[str],
    *,
    key: Key | None = None,
    signing_key: Key | None = None,
    nsec3: bool = False,
    opt_out: bool = False,
    iterations: int = 0,
    salt: bytes = b"",
    inception: datetime = NOW - timedelta(days=1),
    expiration: datetime = NOW + timedelta(days=7),
    signed: bool = True,
) -> tuple[Zone, Key]:
    """A zone from ``"owner ttl TYPE rdata"`` lines (owners relative to ``origin``)."""
    key = key or Key.generate()
    signer_key = signing_key or key
    zone = Zone(name(origin), nsec3=nsec3, signed=signed, nsec3_param=(iterations, salt))
    lines = [
        "@ 3600 SOA ns.invalid. hostmaster.invalid. 1 3600 600 86400 300",
        "@ 3600 NS ns.invalid.",
        *records,
    ]
    for line in lines:
        owner, ttl, rdtype, rdata = line.split(None, 3)
        owner_name = dns.name.from_text(owner, zone.origin)
        rd = dns.rdata.from_text(IN, rdtype, rdata, origin=zone.origin, relativize=False)
        rrset = zone.rrsets.setdefault(
            (owner_name, rd.rdtype), dns.rrset.RRset(owner_name, IN, rd.rdtype)
        )
        rrset.add(rd, int(ttl))
    if not signed:
        return zone, key
    dnskeys = dns.rrset.RRset(zone.origin, IN, T.DNSKEY)
    dnskeys.add(key.dnskey, 3600)
    zone.rrsets[(zone.origin, T.DNSKEY)] = dnskeys
    cuts = zone.delegations()
    if nsec3:
        _add_nsec3(zone, cuts, opt_out, iterations, salt)
    else:
        _add_nsec(zone, cuts)
    for (owner, rdtype), rrset in list(zone.rrsets.items()):
        if zone.below_cut(owner) or (owner in cuts and rdtype not in (T.DS, T.NSEC)):
            continue
        sig = dns.dnssec.sign(
            rrset,
            signer_key.private,
            zone.origin,
            signer_key.dnskey,
            inception=inception,
            expiration=expiration,
        )
        zone.sigs[(owner, rdtype)] = dns.rrset.from_rdata(owner, rrset.ttl, sig)
    return zone, key


def _types_at(zone: Zone, owner: dns.name.Name, extra: Iterable[int]) -> Bitmap:
    types = {t for (n, t) in zone.rrsets if n == owner}
    if owner in zone.delegations():
        types &= {T.NS, T.DS}
    return Bitmap.from_rdtypes(sorted(types | set(extra)))  # type: ignore[arg-type]


def _add_nsec(zone: Zone, cuts: set[dns.name.Name]) -> None:
    with_data = {n for n, _ in zone.rrsets}
    owners = sorted(n for n in zone.names() if n in with_data)
    zone.nsec_owners = owners
    for i, owner in enumerate(owners):
        nxt = owners[(i + 1) % len(owners)]
        windows = _types_at(zone, owner, (T.NSEC, T.RRSIG)).windows
        rd = NSEC(IN, T.NSEC, nxt, windows)
        zone.rrsets[(owner, T.NSEC)] = dns.rrset.from_rdata(owner, 300, rd)


def _add_nsec3(
    zone: Zone, cuts: set[dns.name.Name], opt_out: bool, iterations: int, salt: bytes
) -> None:
    owners = sorted(zone.names())
    if opt_out:
        owners = [o for o in owners if o not in cuts or (o, T.DS) in zone.rrsets]
    hashed = sorted((zone.hash3(o), o) for o in owners)
    zone.nsec3_chain = hashed
    for i, (digest, owner) in enumerate(hashed):
        nxt = hashed[(i + 1) % len(hashed)][0]
        has_data = any(n == owner for n, _ in zone.rrsets)
        signed_here = has_data and (owner not in cuts or (owner, T.DS) in zone.rrsets)
        extra = (T.RRSIG,) if signed_here else ()
        windows = _types_at(zone, owner, extra).windows
        rd = NSEC3(IN, T.NSEC3, 1, 1 if opt_out else 0, iterations, salt, nxt, windows)
        hname = dns.name.Name((base64.b32hexencode(digest).lower(), *zone.origin.labels))
        zone.rrsets[(hname, T.NSEC3)] = dns.rrset.from_rdata(hname, 300, rd)


class World:
    """An in-memory server over several zones; :meth:`query` returns a response message."""

    def __init__(self, *zones: Zone) -> None:
        self.zones = {z.origin: z for z in zones}
        self.asked: list[tuple[dns.name.Name, int]] = []
        self.mutate: Callable[[dns.message.Message], dns.message.Message] | None = None

    def zone_for(self, qname: dns.name.Name, rdtype: int) -> Zone | None:
        candidates = [z for o, z in self.zones.items() if qname.is_subdomain(o)]
        if rdtype == T.DS and len(candidates) > 1:
            candidates = [z for z in candidates if z.origin != qname]
        return max(candidates, key=lambda z: len(z.origin), default=None)

    def query(self, qname: dns.name.Name, rdtype: int) -> dns.message.Message:
        self.asked.append((qname, rdtype))
        request = dns.message.make_query(qname, rdtype, want_dnssec=True)
        response = dns.message.make_response(request)
        response.flags |= dns.flags.AA
        self._answer(response, qname, rdtype, 0)
        if self.mutate is not None:
            return self.mutate(response)
        return response

    def _add(
        self, section: list[dns.rrset.RRset], zone: Zone, owner: dns.name.Name, rdtype: int
    ) -> None:
        rrset = zone.rrsets.get((owner, rdtype))
        if rrset is None:
            return
        if rrset not in section:
            section.append(rrset)
        sig = zone.sigs.get((owner, rdtype))
        if sig is not None and sig not in section:
            section.append(sig)

    def _answer(
        self, response: dns.message.Message, qname: dns.name.Name, rdtype: int, depth: int
    ) -> None:
        zone = self.zone_for(qname, rdtype)
        if depth > 12:
            return
        if zone is None:
            response.set_rcode(dns.rcode.REFUSED)
            return
        ancestor = qname.parent() if qname != zone.origin else qname
        while ancestor != zone.origin and ancestor.is_subdomain(zone.origin):
            if (ancestor, T.DNAME) in zone.rrsets and rdtype != T.DNAME:
                self._add(response.answer, zone, ancestor, T.DNAME)
                dname_target = zone.rrsets[(ancestor, T.DNAME)][0].target  # type: ignore[attr-defined]
                target = qname.relativize(ancestor).derelativize(dname_target)
                response.answer.append(
                    dns.rrset.from_text(qname, 300, "IN", "CNAME", target.to_text())
                )
                self._answer(response, target, rdtype, depth + 1)
                return
            ancestor = ancestor.parent()
        if (qname, rdtype) in zone.rrsets and not zone.below_cut(qname):
            self._add(response.answer, zone, qname, rdtype)
            return
        if (qname, T.CNAME) in zone.rrsets and rdtype != T.CNAME:
            self._add(response.answer, zone, qname, T.CNAME)
            target = zone.rrsets[(qname, T.CNAME)][0].target  # type: ignore[attr-defined]
            self._answer(response, target, rdtype, depth + 1)
            return
        if zone.exists(qname):
            self._negative(response, zone, qname, nodata=True)
            return
        encloser = qname.parent()
        while not zone.exists(encloser):
            encloser = encloser.parent()
        wildcard = dns.name.Name((b"*", *encloser.labels))
        source = zone.rrsets.get((wildcard, rdtype))
        if source is not None:
            response.answer.append(dns.rrset.from_rdata_list(qname, source.ttl, list(source)))
            sig = zone.sigs.get((wildcard, rdtype))
            if sig is not None:
                response.answer.append(dns.rrset.from_rdata_list(qname, sig.ttl, list(sig)))
            self._deny_name(response, zone, qname, encloser)
            return
        if zone.exists(wildcard):
            self._deny_name(response, zone, qname, encloser)
            self._negative(response, zone, wildcard, nodata=True)
            return
        response.set_rcode(dns.rcode.NXDOMAIN)
        self._negative(response, zone, qname, nodata=False, encloser=encloser)

    def _negative(
        self,
        response: dns.message.Message,
        zone: Zone,
        qname: dns.name.Name,
        *,
        nodata: bool,
        encloser: dns.name.Name | None = None,
    ) -> None:
        self._add(response.authority, zone, zone.origin, T.SOA)
        if not zone.signed:
            return
        if nodata:
            if zone.nsec3:
                self._nsec3(response, zone, qname, cover=False)
                if zone.hash3(qname) not in dict(zone.nsec3_chain):
                    # opt-out: closest encloser proof for an unsigned delegation
                    self._deny_name(response, zone, qname, qname.parent())
            elif qname in zone.nsec_owners:
                self._add(response.authority, zone, qname, T.NSEC)
            else:
                self._nsec_cover(response, zone, qname)
            return
        assert encloser is not None
        self._deny_name(response, zone, qname, encloser)
        wildcard = dns.name.Name((b"*", *encloser.labels))
        if zone.nsec3:
            self._nsec3(response, zone, wildcard, cover=True)
        else:
            self._nsec_cover(response, zone, wildcard)

    def _deny_name(
        self,
        response: dns.message.Message,
        zone: Zone,
        qname: dns.name.Name,
        encloser: dns.name.Name,
    ) -> None:
        if zone.nsec3:
            self._nsec3(response, zone, encloser, cover=False)
            next_closer = qname.split(len(encloser) + 1)[1]
            self._nsec3(response, zone, next_closer, cover=True)
        else:
            self._nsec_cover(response, zone, qname)

    def _nsec_cover(self, response: dns.message.Message, zone: Zone, qname: dns.name.Name) -> None:
        before = [o for o in zone.nsec_owners if o < qname]
        owner = before[-1] if before else zone.nsec_owners[-1]
        self._add(response.authority, zone, owner, T.NSEC)

    def _nsec3(
        self, response: dns.message.Message, zone: Zone, qname: dns.name.Name, *, cover: bool
    ) -> None:
        digest = zone.hash3(qname)
        chain = zone.nsec3_chain
        if cover:
            before = [d for d, _ in chain if d < digest]
            target = before[-1] if before else chain[-1][0]
        else:
            if digest not in dict(chain):
                return
            target = digest
        hname = dns.name.Name((base64.b32hexencode(target).lower(), *zone.origin.labels))
        self._add(response.authority, zone, hname, T.NSEC3)


def anchor_for(zone: Zone) -> TrustAnchor:
    return TrustAnchor(zone=zone.origin.to_text(), ds=(zone.ds().to_text(),))


def run(
    world: World,
    anchor: TrustAnchor,
    qname: str,
    rdtype: str,
    *,
    now: datetime = NOW,
) -> ChainResult:
    """Drive the planner against ``world`` until it has a verdict."""
    validator = ChainValidator(anchor, qname, rdtype, now=now)
    while (query := validator.next_query()) is not None:
        validator.feed(world.query(*query))
    return validator.result()


def sig_of(message: dns.message.Message) -> list[RRSIG]:
    return [cast(RRSIG, r) for rrset in message.answer if rrset.rdtype == T.RRSIG for r in rrset]


def standard_world(
    *, nsec3: bool = False, algorithm: str = "ECDSAP256SHA256"
) -> tuple[World, TrustAnchor, dict[str, Zone]]:
    """root → test → {example.test signed, insecure.test unsigned, other.test signed}."""
    example, _ = build_zone(
        "example.test.",
        [
            "@ 300 MX 10 mx.example.test.",
            '@ 300 TXT "v=spf1 -all"',
            "mx 300 A 192.0.2.25",
            "_25._tcp.mx 300 TLSA 3 1 1 " + "ab" * 32,
            "www 300 CNAME mx.other.test.",
            "alias 300 CNAME mx",
            '*.wild 300 TXT "wildcard"',
            "b.wild 300 A 192.0.2.8",
            "deep.sub 300 A 192.0.2.7",
            "dn 300 DNAME other.test.",
        ],
        nsec3=nsec3,
        key=Key.generate(algorithm),
    )
    other, _ = build_zone(
        "other.test.",
        ["mx 300 A 192.0.2.26", "loop 300 CNAME loop2", "loop2 300 CNAME loop"],
        nsec3=nsec3,
        key=Key.generate(algorithm),
    )
    insecure, _ = build_zone(
        "insecure.test.", ["@ 300 MX 10 mx.insecure.test.", "mx 300 A 192.0.2.99"], signed=False
    )
    tld, _ = build_zone(
        "test.",
        [
            "example 3600 NS ns.example.test.",
            f"example 3600 DS {example.ds().to_text()}",
            "other 3600 NS ns.other.test.",
            f"other 3600 DS {other.ds().to_text()}",
            "insecure 3600 NS ns.insecure.test.",
        ],
        nsec3=nsec3,
        key=Key.generate(algorithm),
    )
    root, _ = build_zone(
        ".",
        ["test. 3600 NS ns.test.", f"test. 3600 DS {tld.ds().to_text()}"],
        nsec3=nsec3,
        key=Key.generate(algorithm),
    )
    zones = {"root": root, "test": tld, "example": example, "other": other, "insecure": insecure}
    return World(*zones.values()), anchor_for(root), zones
