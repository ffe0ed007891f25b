"""The hand-written wire reader agrees with dnspython and rejects what RFC 1035 §4.1 forbids."""

from __future__ import annotations

import contextlib
import struct

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtasecure._resolution import EDNS_PAYLOAD, Question, query_name, query_type
from mtasecure._wire import MAX_NAME_WIRE, name_key, parse_reply
from mtasecure.errors import DnsError

HEADER = struct.Struct("!HHHHHH")


def test_query_round_trips_through_dnspython() -> None:
    question = Question(query_name("_25._tcp.MX.example"), query_type("TLSA"), True)
    message = dns.message.from_wire(question.to_wire(0xBEEF))
    assert message.id == 0xBEEF
    assert message.payload == EDNS_PAYLOAD
    assert message.edns == 0
    assert message.ednsflags & dns.flags.DO
    assert message.flags & (dns.flags.RD | dns.flags.AD | dns.flags.CD) == (
        dns.flags.RD | dns.flags.AD | dns.flags.CD
    )
    reply = parse_reply(dns.message.make_response(message).to_wire())
    assert reply.answers(0xBEEF, question.key, question.rdtype)
    assert not reply.answers(0xBEEE, question.key, question.rdtype)
    assert not reply.answers(0xBEEF, name_key(query_name("other.example")), question.rdtype)
    assert not reply.answers(0xBEEF, question.key, query_type("A"))


def test_a_query_is_not_a_reply() -> None:
    question = Question(query_name("example"), query_type("A"))
    parsed = parse_reply(question.to_wire(1))
    assert not parsed.answers(1, question.key, question.rdtype)


_owners = st.sampled_from(["a.example.", "B.Example.", "c.d.example.", "xn--bcher-kva.example."])
_rdatas = st.one_of(
    st.tuples(st.just("A"), st.ip_addresses(v=4).map(str)),
    st.tuples(st.just("AAAA"), st.ip_addresses(v=6).map(str)),
    st.tuples(
        st.just("MX"),
        st.builds(lambda p, n: f"{p} {n}", st.integers(0, 65535), _owners),
    ),
    st.tuples(st.just("CNAME"), _owners),
    st.tuples(
        st.just("TXT"),
        st.lists(st.binary(max_size=40), min_size=1, max_size=3).map(
            lambda parts: " ".join('"' + "".join(f"\\{b:03d}" for b in p) + '"' for p in parts)
        ),
    ),
    st.tuples(
        st.just("TLSA"),
        st.builds(
            lambda u, s, md: f"{u} {s} {md[0]} {md[1].hex()}",
            st.integers(0, 3),
            st.integers(0, 1),
            st.one_of(
                st.tuples(st.just(0), st.binary(min_size=1, max_size=80)),
                st.tuples(st.just(1), st.binary(min_size=32, max_size=32)),
                st.tuples(st.just(2), st.binary(min_size=64, max_size=64)),
            ),
        ),
    ),
)


@settings(max_examples=100)
@given(
    records=st.lists(st.tuples(_owners, st.integers(0, 2**31 - 1), _rdatas), max_size=8),
    rcode=st.sampled_from([0, 2, 3, 5]),
    ad=st.booleans(),
    with_soa=st.booleans(),
)
def test_reader_agrees_with_dnspython(
    records: list[tuple[str, int, tuple[str, str]]], rcode: int, ad: bool, with_soa: bool
) -> None:
    query = dns.message.make_query("a.example", "A", want_dnssec=True)
    message = dns.message.make_response(query)
    message.set_rcode(rcode)
    if ad:
        message.flags |= dns.flags.AD
    for owner, ttl, (rdtype, data) in records:
        rrset = message.find_rrset(
            message.answer,
            dns.name.from_text(owner),
            1,
            dns.rdatatype.from_text(rdtype),
            create=True,
        )
        rrset.add(dns.rdata.from_text(1, dns.rdatatype.from_text(rdtype), data), ttl)
    if with_soa:
        message.authority.append(
            dns.rrset.from_text("example.", 3600, "IN", "SOA", "ns.example. h.example. 1 2 3 4 55")
        )
    wire = message.to_wire(max_size=65535)
    ours = parse_reply(wire)
    theirs = dns.message.from_wire(wire)
    assert ours.rcode == theirs.rcode()
    assert ours.flags == theirs.flags
    assert ours.id == theirs.id
    want = sorted(
        (name_key(rrset.name), rrset.rdtype, rdata.to_text())
        for rrset in theirs.answer
        for rdata in rrset
    )
    got = sorted((r.owner, r.rdtype, ours.text(r)) for r in ours.answer)
    assert got == want
    for record in ours.answer:
        if record.rdtype == dns.rdatatype.CNAME:
            assert any(
                ours.target(record) == rdata.target
                for rrset in theirs.answer
                if rrset.rdtype == dns.rdatatype.CNAME
                for rdata in rrset
            )
    if with_soa:
        assert ours.soa_minimum(ours.authority[0]) == 55


def test_extended_rcode_comes_from_the_opt_record() -> None:
    query = dns.message.make_query("a.example", "A", use_edns=0)
    message = dns.message.make_response(query)
    message.set_rcode(dns.rcode.BADVERS)  # 16: needs the OPT record's upper bits
    assert parse_reply(message.to_wire()).rcode == 16


def _header(qd: int = 0, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return HEADER.pack(1, 0x8180, qd, an, ns, ar)


@pytest.mark.parametrize(
    ("wire", "why"),
    [
        (b"\x00" * 11, "shorter than a DNS header"),
        (_header(qd=2) + b"\x00\x00\x01\x00\x01" * 2, "more than one question"),
        (_header(qd=1) + b"\x01a\x00\x00\x01", "question runs past"),
        (_header(qd=1) + b"\x05ab", "label runs past"),
        (_header(qd=1) + b"\x01a", "name runs past"),
        (_header(qd=1) + b"\xc0\x0c\x00\x01\x00\x01", "does not point back"),
        (_header(qd=1) + b"\xc0\x20\x00\x01\x00\x01", "does not point back"),
        (_header(qd=1) + b"\xc0", "cut compression pointer"),
        (_header(qd=1) + b"\x41a\x00\x00\x01\x00\x01", "unknown label type"),
        (_header(qd=1) + b"\x00\x00\x01\x00\x01" + b"junk", "octets after the last record"),
        (_header(an=1) + b"\x00\x00\x01\x00\x01\x00\x00", "record header runs past"),
        (_header(an=1) + b"\x00" + struct.pack("!HHIH", 1, 1, 60, 4) + b"\x7f", "data runs past"),
        (
            _header(ar=2) + (b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)) * 2,
            "more than one OPT",
        ),
    ],
)
def test_malformed_messages_are_rejected(wire: bytes, why: str) -> None:
    with pytest.raises(DnsError, match=why):
        parse_reply(wire)


def test_names_longer_than_255_octets_are_rejected() -> None:
    label = b"\x3f" + b"a" * 63
    name = label * 4 + b"\x00"  # 4 * 64 + 1 = 257 octets
    assert len(name) > MAX_NAME_WIRE
    with pytest.raises(DnsError, match="longer than 255"):
        parse_reply(_header(qd=1) + name + b"\x00\x01\x00\x01")


def test_compression_loop_through_labels_ends() -> None:
    # A label followed by a pointer back to it: a loop that only the 255-octet cap stops.
    wire = _header(qd=1) + b"\x01a\xc0\x0c" + b"\x00\x01\x00\x01"
    with pytest.raises(DnsError, match="longer than 255"):
        parse_reply(wire)


def test_record_data_errors_are_dns_errors() -> None:
    query = dns.message.make_query("a.example", "A")
    message = dns.message.make_response(query)
    good = message.to_wire()
    # One A record with 3 octets of data instead of 4.
    rr = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 3) + b"\x7f\x00\x00"
    wire = good[:6] + b"\x00\x01" + good[8:] + rr
    reply = parse_reply(wire)
    with pytest.raises(DnsError, match="malformed A record"):
        reply.text(reply.answer[0])
    cname = b"\xc0\x0c" + struct.pack("!HHIH", 5, 1, 60, 3) + b"\x00\x00\x00"
    reply = parse_reply(good[:6] + b"\x00\x01" + good[8:] + cname)
    with pytest.raises(DnsError, match="CNAME"):
        reply.target(reply.answer[0])
    soa = b"\xc0\x0c" + struct.pack("!HHIH", 6, 1, 60, 3) + b"\x00\x00\x00"
    reply = parse_reply(good[:6] + b"\x00\x01" + good[8:] + soa)
    with pytest.raises(DnsError, match="SOA"):
        reply.soa_minimum(reply.answer[0])


@given(st.binary(max_size=512))
def test_random_bytes_only_raise_dns_error(data: bytes) -> None:
    try:
        reply = parse_reply(data)
    except DnsError:
        return
    for record in (*reply.answer, *reply.authority):
        for read in (reply.text, reply.target, reply.soa_minimum):
            with contextlib.suppress(DnsError):
                read(record)


@given(st.binary(min_size=12, max_size=200))
def test_random_bytes_after_a_valid_header_only_raise_dns_error(data: bytes) -> None:
    counts = HEADER.pack(7, 0x8180, 1, 2, 1, 1)
    with contextlib.suppress(DnsError):
        parse_reply(counts + data)
