"""DNS messages on the wire, read and written without building whole dnspython messages.

The resolvers send one kind of query and need a few facts from each reply, so
this module writes the query by hand and reads only what a lookup uses: the
header, the question, the owner, type, class and TTL of each record, and the
OPT record's extended RCODE. The data of answer records is handed to
``dns.rdata.from_wire`` when (and only when) a caller asks for its text, so
dnspython still decides what a record *says*. Reading a whole reply with
``dns.message.from_wire`` costs several times more; in bulk mode that cost is
the bottleneck.

Rules applied (RFC 1035 §4.1): a 12-octet header; names of labels of at most
63 octets, 255 octets in all; compression pointers may only point backwards
(so a name always ends); every section holds exactly the records the header
counts, and no octet may follow the last one. Anything else raises
:class:`~mtasecure.errors.DnsError`, never a dependency's exception.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from mtasecure.errors import DnsError

__all__ = [
    "FLAG_AD",
    "FLAG_CD",
    "FLAG_QR",
    "FLAG_RD",
    "FLAG_TC",
    "MAX_NAME_WIRE",
    "NameKey",
    "Reply",
    "WireRecord",
    "encode_query",
    "name_key",
    "parse_reply",
]

FLAG_QR = 0x8000
FLAG_TC = 0x0200
FLAG_RD = 0x0100
FLAG_AD = 0x0020
FLAG_CD = 0x0010
_OPCODE_MASK = 0x7800
_TYPE_OPT = 41
_CLASS_IN = 1
_DO = 0x8000
MAX_NAME_WIRE = 255
"""Longest name on the wire, in octets (RFC 1035 §3.1)."""

NameKey = tuple[bytes, ...]
"""A name as lower-cased labels without the root: equal keys are equal names."""

_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
_TYPE_CLASS = struct.Struct("!HH")


def name_key(name: dns.name.Name) -> NameKey:
    """The :data:`NameKey` of an absolute dnspython name."""
    return tuple(label.lower() for label in name.labels if label)


def encode_query(
    qname_wire: bytes, rdtype: int, qid: int, *, payload: int, checking_disabled: bool
) -> bytes:
    """A recursive query: RD, AD (RFC 6840 §5.7), CD if asked; EDNS0 with DO (RFC 3225).

    ``qname_wire`` is the uncompressed wire form of the name
    (``dns.name.Name.to_wire()``).
    """
    flags = FLAG_RD | FLAG_AD | (FLAG_CD if checking_disabled else 0)
    return b"".join(
        (
            _HEADER.pack(qid, flags, 1, 0, 0, 1),
            qname_wire,
            _TYPE_CLASS.pack(rdtype, _CLASS_IN),
            b"\x00",  # OPT owner: the root
            _RR.pack(_TYPE_OPT, payload, _DO, 0),
        )
    )


@dataclass(frozen=True, slots=True)
class WireRecord:
    """One resource record of a reply, its data left on the wire until asked for (RFC 1035 §4.1.3)."""

    owner: NameKey
    rdtype: int
    rdclass: int
    ttl: int
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class Reply:
    """What a lookup reads from one reply.

    Attributes:
        id: the message ID.
        flags: the header flags (QR, AA, TC, RD, RA, AD, CD; opcode bits included).
        rcode: the full RCODE, extended by the OPT record's upper bits (RFC 6891 §6.1.3).
        question: ``(name, type, class)`` of the one question, or ``None``
            when the question section is empty.
        answer: the answer section's records.
        authority: the authority section's records.
        wire: the message, for reading record data.
    """

    id: int
    flags: int
    rcode: int
    question: tuple[NameKey, int, int] | None
    answer: tuple[WireRecord, ...]
    authority: tuple[WireRecord, ...]
    wire: bytes

    def answers(self, qid: int, qname: NameKey, rdtype: int) -> bool:
        """Whether this is a reply to query ``qid`` for ``qname``/``rdtype`` (RFC 5452 §9.1).

        An empty question section is accepted only with an error RCODE, as
        some servers send for FORMERR, SERVFAIL, NOTIMP and REFUSED.
        """
        if self.id != qid or not self.flags & FLAG_QR or self.flags & _OPCODE_MASK:
            return False
        if self.question is None:
            return self.rcode in (1, 2, 4, 5)
        return self.question == (qname, rdtype, _CLASS_IN)

    def text(self, record: WireRecord) -> str:
        """The record's data in presentation format, as dnspython prints it.

        A, MX, CNAME and TXT take a short path written here (the property tests
        hold it to dnspython's output); every other type is decoded by
        ``dns.rdata.from_wire``.

        Raises:
            DnsError: the data is not valid for its type.
        """
        fast = _FAST_TEXT.get(record.rdtype)
        if fast is not None and record.length and record.rdclass == _CLASS_IN:
            return fast(self.wire, record.offset, record.offset + record.length)
        try:
            rdata = dns.rdata.from_wire(
                dns.rdataclass.RdataClass.make(record.rdclass),
                dns.rdatatype.RdataType.make(record.rdtype),
                self.wire,
                record.offset,
                record.length,
            )
            return rdata.to_text()
        except (dns.exception.DNSException, ValueError, IndexError, struct.error) as exc:
            kind = dns.rdatatype.to_text(record.rdtype)  # type: ignore[arg-type]
            raise DnsError(f"malformed {kind} record: {exc}") from exc

    def target(self, record: WireRecord) -> dns.name.Name:
        """The name a CNAME record points to.

        Raises:
            DnsError: the data is not one name filling the record.
        """
        labels, end = _read_name(self.wire, record.offset)
        if end != record.offset + record.length:
            raise DnsError("malformed CNAME record: data after the target name")
        return dns.name.Name([*labels, b""])

    def soa_minimum(self, record: WireRecord) -> int:
        """The MINIMUM field of an SOA record (RFC 2308 §4).

        Raises:
            DnsError: the data is not an SOA record's.
        """
        _, end = _read_name(self.wire, record.offset)
        _, end = _read_name(self.wire, end)
        if end + 20 != record.offset + record.length:
            raise DnsError("malformed SOA record")
        return int.from_bytes(self.wire[end + 16 : end + 20], "big")


_PLAIN_LABEL = re.compile(rb"[A-Za-z0-9_-]+")


def _name_text(labels: list[bytes]) -> str:
    if all(_PLAIN_LABEL.fullmatch(label) for label in labels):
        return "".join(label.decode("ascii") + "." for label in labels) or "."
    return dns.name.Name([*labels, b""]).to_text()


def _a_text(wire: bytes, start: int, end: int) -> str:
    if end - start != 4:
        raise DnsError("malformed A record: not 4 octets")
    return "%d.%d.%d.%d" % tuple(wire[start:end])  # noqa: UP031


def _name_rdata_text(wire: bytes, start: int, end: int) -> str:
    labels, stop = _read_name(wire, start)
    if stop != end:
        raise DnsError("malformed record: data after the name")
    return _name_text(labels)


def _mx_text(wire: bytes, start: int, end: int) -> str:
    if end - start < 3:
        raise DnsError("malformed MX record: too short")
    return (
        f"{int.from_bytes(wire[start : start + 2], 'big')} {_name_rdata_text(wire, start + 2, end)}"
    )


def _txt_text(wire: bytes, start: int, end: int) -> str:
    parts = []
    while start < end:
        length = wire[start]
        chunk = wire[start + 1 : start + 1 + length]
        start += 1 + length
        if start > end:
            raise DnsError("malformed TXT record: string runs past the record")
        parts.append('"' + _quote(chunk) + '"')
    return " ".join(parts)


def _quote(chunk: bytes) -> str:
    if _PLAIN_TEXT.fullmatch(chunk):
        return chunk.decode("ascii")
    out = []
    for c in chunk:
        if c in (0x22, 0x5C):
            out.append("\\" + chr(c))
        elif 0x20 <= c < 0x7F:
            out.append(chr(c))
        else:
            out.append(f"\\{c:03d}")
    return "".join(out)


_PLAIN_TEXT = re.compile(rb"[\x20\x21\x23-\x5b\x5d-\x7e]*")
_FAST_TEXT = {1: _a_text, 15: _mx_text, 5: _name_rdata_text, 16: _txt_text}


def _read_name(wire: bytes, offset: int) -> tuple[list[bytes], int]:
    """Read a possibly compressed name at ``offset``; return its labels and where it ends."""
    labels: list[bytes] = []
    total = 1
    end = -1
    position = offset
    limit = len(wire)
    while True:
        if position >= limit:
            raise DnsError("malformed reply: name runs past the end")
        length = wire[position]
        if length == 0:
            position += 1
            break
        kind = length & 0xC0
        if kind == 0xC0:
            if position + 1 >= limit:
                raise DnsError("malformed reply: cut compression pointer")
            pointer = ((length & 0x3F) << 8) | wire[position + 1]
            if end < 0:
                end = position + 2
            if pointer >= position:
                raise DnsError("malformed reply: compression pointer does not point back")
            position = pointer
            continue
        if kind:
            raise DnsError("malformed reply: unknown label type (RFC 6891 §5)")
        total += length + 1
        if total > MAX_NAME_WIRE:
            raise DnsError("malformed reply: name longer than 255 octets")
        label = wire[position + 1 : position + 1 + length]
        if len(label) != length:
            raise DnsError("malformed reply: label runs past the end")
        labels.append(label)
        position += 1 + length
    return labels, (end if end >= 0 else position)


def _read_records(wire: bytes, offset: int, count: int) -> tuple[list[WireRecord], int]:
    records = []
    for _ in range(count):
        labels, offset = _read_name(wire, offset)
        if offset + 10 > len(wire):
            raise DnsError("malformed reply: record header runs past the end")
        rdtype, rdclass, ttl, length = _RR.unpack_from(wire, offset)
        offset += 10
        if offset + length > len(wire):
            raise DnsError("malformed reply: record data runs past the end")
        owner = tuple(label.lower() for label in labels)
        records.append(WireRecord(owner, rdtype, rdclass, ttl, offset, length))
        offset += length
    return records, offset


def parse_reply(wire: bytes) -> Reply:
    """Read the parts of a reply a lookup uses (RFC 1035 §4.1; module docstring for the rules).

    Raises:
        DnsError: the message is malformed.
    """
    if len(wire) < _HEADER.size:
        raise DnsError("malformed reply: shorter than a DNS header")
    qid, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(wire)
    if qdcount > 1:
        raise DnsError("malformed reply: more than one question")
    offset = _HEADER.size
    question = None
    if qdcount:
        labels, offset = _read_name(wire, offset)
        if offset + 4 > len(wire):
            raise DnsError("malformed reply: question runs past the end")
        qtype, qclass = _TYPE_CLASS.unpack_from(wire, offset)
        offset += 4
        question = (tuple(label.lower() for label in labels), qtype, qclass)
    answer, offset = _read_records(wire, offset, ancount)
    authority, offset = _read_records(wire, offset, nscount)
    additional, offset = _read_records(wire, offset, arcount)
    if offset != len(wire):
        raise DnsError("malformed reply: octets after the last record")
    rcode = flags & 0x000F
    opts = [r for r in additional if r.rdtype == _TYPE_OPT]
    if len(opts) > 1:
        raise DnsError("malformed reply: more than one OPT record (RFC 6891 §6.1.1)")
    if opts:
        rcode |= (opts[0].ttl >> 24) << 4
    return Reply(qid, flags, rcode, question, tuple(answer), tuple(authority), wire)
