"""TLSA records: presentation format, usability and association data (RFC 6698 §2, §4.1; RFC 7218)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from mtasecure.dane import (
    MAX_TLSA_DATA_LENGTH,
    CertUsage,
    MatchingType,
    Selector,
    TlsaRecord,
    association_data,
    parse_tlsa,
    render_tlsa,
    spki_der,
)
from mtasecure.dnssec import DnsAnswer, Security
from mtasecure.errors import TlsaSyntaxError
from tests.pki import DAY, NOW, pki

PKI = pki("tlsa")
LEAF = PKI.leaf.cert
SPKI = LEAF.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
)
DER = LEAF.public_bytes(serialization.Encoding.DER)
H32 = "ab" * 32
H64 = "cd" * 64

# (text, (usage, selector, mtype, data), rule)
PARSED = [
    (f"3 1 1 {H32}", (3, 1, 1, bytes.fromhex(H32)), "RFC 6698 §2.2"),
    (f"2 0 2 {H64}", (2, 0, 2, bytes.fromhex(H64)), "RFC 6698 §2.2"),
    (f"3 1 1 {H32.upper()}", (3, 1, 1, bytes.fromhex(H32)), "RFC 6698 §2.2: hex in any case"),
    (f"3 1 1 {H32[:10]} {H32[10:]}", (3, 1, 1, bytes.fromhex(H32)), "RFC 6698 §2.2: whitespace in the hex"),
    (f"3 1 1 ( {H32[:32]}\n\t{H32[32:]} )", (3, 1, 1, bytes.fromhex(H32)), "RFC 1035 §5.1: parentheses"),
    (f"  3\t1  1 {H32}  ", (3, 1, 1, bytes.fromhex(H32)), "RFC 1035 §5.1"),
    (f"DANE-EE SPKI SHA2-256 {H32}", (3, 1, 1, bytes.fromhex(H32)), "RFC 7218 §2"),
    (f"dane-ta cert sha2-512 {H64}", (2, 0, 2, bytes.fromhex(H64)), "RFC 7218 §2: any case"),
    (f"PKIX-TA Cert Full {H32}", (0, 0, 0, bytes.fromhex(H32)), "RFC 7218 §2.1"),
    (f"PKIX-EE SPKI Full {H32}", (1, 1, 0, bytes.fromhex(H32)), "RFC 7218 §2.1"),
    ("PrivCert PrivSel PrivMatch 00", (255, 255, 255, b"\x00"), "RFC 7218 §2"),
    ("255 255 255 00", (255, 255, 255, b"\x00"), "RFC 6698 §2.1: 8-bit fields"),
    ("4 2 3 0102", (4, 2, 3, b"\x01\x02"), "RFC 6698 §7: unassigned values still parse"),
]  # fmt: skip

# (text, message fragment, rule)
REJECTED = [
    ("", "got 0 field", "RFC 6698 §2.2"),
    ("3 1 1", "got 3 field", "RFC 6698 §2.2"),
    (f"256 1 1 {H32}", "usage", "RFC 6698 §2.2: 8-bit unsigned"),
    (f"-1 1 1 {H32}", "usage", "RFC 6698 §2.2"),
    (f"3 x 1 {H32}", "selector", "RFC 6698 §2.2"),
    (f"3 1 1000 {H32}", "matching type", "RFC 6698 §2.2"),
    (f"DANE_EE 1 1 {H32}", "usage", "RFC 7218 §2: acronyms use a hyphen"),
    ("3 1 1 abc", "odd number", "RFC 6698 §2.2"),
    ("3 1 1 zz", "not hexadecimal", "RFC 6698 §2.2"),
    ("3 1 1 0x12", "not hexadecimal", "RFC 6698 §2.2"),
    ("3 1 1 ab" + "ab" * MAX_TLSA_DATA_LENGTH, "longer than", "RFC 1035 §3.2.1"),
    ("3 1 1 ١٢", "not hexadecimal", "RFC 6698 §2.2: ASCII digits only"),
]


@pytest.mark.parametrize(
    ("text", "fields", "rule"), PARSED, ids=[p[2] + " " + p[0][:16] for p in PARSED]
)
def test_parse(text: str, fields: tuple[int, int, int, bytes], rule: str) -> None:
    record = parse_tlsa(text)
    assert (record.usage, record.selector, record.mtype, record.data) == fields, rule
    assert TlsaRecord.from_text(text) == record


@pytest.mark.parametrize(
    ("text", "fragment", "rule"), REJECTED, ids=[r[2] + " " + r[0][:12] for r in REJECTED]
)
def test_reject(text: str, fragment: str, rule: str) -> None:
    with pytest.raises(TlsaSyntaxError, match=fragment) as info:
        parse_tlsa(text)
    assert info.value.rule, rule


def test_non_string_is_a_syntax_error() -> None:
    with pytest.raises(TlsaSyntaxError):
        parse_tlsa(b"3 1 1 00")  # type: ignore[arg-type]


def test_data_at_the_length_limit_parses() -> None:
    record = parse_tlsa("3 1 0 " + "00" * MAX_TLSA_DATA_LENGTH)
    assert len(record.data) == MAX_TLSA_DATA_LENGTH


@given(st.text(max_size=200))
def test_parse_raises_only_tlsa_syntax_error(text: str) -> None:
    try:
        record = parse_tlsa(text)
    except TlsaSyntaxError:
        return
    assert 0 <= record.usage <= 255
    assert record.data


@given(
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.binary(min_size=1, max_size=128),
)
def test_render_parse_round_trip(usage: int, selector: int, mtype: int, data: bytes) -> None:
    record = TlsaRecord(usage=usage, selector=selector, mtype=mtype, data=data)
    assert parse_tlsa(render_tlsa(record)) == record
    assert str(record) == render_tlsa(record)


@st.composite
def _wire_valid(draw: st.DrawFn) -> tuple[int, int, int, bytes]:
    # dnspython (2.9) refuses SHA-256/512 data of the wrong length; mtasecure reads
    # such records and calls them unusable instead (RFC 6698 §4.1).
    mtype = draw(st.integers(0, 255))
    size = {1: 32, 2: 64}.get(mtype)
    data = draw(st.binary(min_size=size or 1, max_size=size or 64))
    return draw(st.integers(0, 255)), draw(st.integers(0, 255)), mtype, data


@given(_wire_valid())
def test_dnspython_rdata_agrees(fields: tuple[int, int, int, bytes]) -> None:
    usage, selector, mtype, data = fields
    text = f"{usage} {selector} {mtype} {data.hex()}"
    rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TLSA, text)
    assert TlsaRecord.from_rdata(rdata) == parse_tlsa(text)
    assert parse_tlsa(rdata.to_text()) == parse_tlsa(text)


def test_from_rdata_rejects_other_types() -> None:
    rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.A, "192.0.2.1")
    with pytest.raises(TlsaSyntaxError):
        TlsaRecord.from_rdata(rdata)


# (record, usable?, rule)
USABILITY = [
    (TlsaRecord(usage=3, selector=1, mtype=1, data=b"\x00" * 32), True, "RFC 7672 §3.1.1"),
    (TlsaRecord(usage=2, selector=0, mtype=2, data=b"\x00" * 64), True, "RFC 7672 §3.1.2"),
    (TlsaRecord(usage=3, selector=1, mtype=0, data=SPKI), True, "RFC 6698 §2.1.3 Full"),
    (TlsaRecord(usage=2, selector=0, mtype=0, data=DER), True, "RFC 7671 §5.2.2 '2 0 0'"),
    (TlsaRecord(usage=0, selector=0, mtype=1, data=b"\x00" * 32), False, "RFC 7672 §3.1.3 PKIX-TA"),
    (TlsaRecord(usage=1, selector=1, mtype=1, data=b"\x00" * 32), False, "RFC 7672 §3.1.3 PKIX-EE"),
    (TlsaRecord(usage=4, selector=1, mtype=1, data=b"\x00" * 32), False, "RFC 6698 §4.1 unknown usage"),
    (TlsaRecord(usage=255, selector=1, mtype=1, data=b"\x00" * 32), False, "RFC 6698 §4.1 private usage"),
    (TlsaRecord(usage=3, selector=2, mtype=1, data=b"\x00" * 32), False, "RFC 6698 §4.1 unknown selector"),
    (TlsaRecord(usage=3, selector=1, mtype=3, data=b"\x00" * 32), False, "RFC 6698 §4.1 unknown matching type"),
    (TlsaRecord(usage=3, selector=1, mtype=1, data=b"\x00" * 31), False, "RFC 7671 §9 short SHA-256"),
    (TlsaRecord(usage=3, selector=1, mtype=1, data=b"\x00" * 33), False, "RFC 7671 §9 long SHA-256"),
    (TlsaRecord(usage=3, selector=1, mtype=2, data=b"\x00" * 32), False, "RFC 7671 §9 SHA-512 of 32 octets"),
    (TlsaRecord(usage=3, selector=1, mtype=0, data=b"\x30\x00"), False, "RFC 6698 §4.1 malformed SPKI"),
    (TlsaRecord(usage=2, selector=0, mtype=0, data=b"\x30\x03\x02\x01\x00"), False, "RFC 6698 §4.1 malformed certificate"),
]  # fmt: skip


@pytest.mark.parametrize(("record", "usable", "rule"), USABILITY, ids=[u[2] for u in USABILITY])
def test_usability(record: TlsaRecord, usable: bool, rule: str) -> None:
    assert record.usable is usable, rule
    assert (record.unusable_reason is None) is usable
    if not usable:
        assert "RFC" in (record.unusable_reason or "")


def test_field_ranges_are_enforced() -> None:
    with pytest.raises(ValueError, match="usage"):
        TlsaRecord(usage=256, selector=1, mtype=1, data=b"\x00")


@pytest.mark.parametrize(
    ("selector", "mtype", "expected"),
    [
        (Selector.CERT, MatchingType.FULL, DER),
        (Selector.SPKI, MatchingType.FULL, SPKI),
        (Selector.CERT, MatchingType.SHA2_256, hashlib.sha256(DER).digest()),
        (Selector.SPKI, MatchingType.SHA2_256, hashlib.sha256(SPKI).digest()),
        (Selector.CERT, MatchingType.SHA2_512, hashlib.sha512(DER).digest()),
        (Selector.SPKI, MatchingType.SHA2_512, hashlib.sha512(SPKI).digest()),
        (2, MatchingType.FULL, None),
        (Selector.SPKI, 3, None),
    ],
)
def test_association_data(selector: int, mtype: int, expected: bytes | None) -> None:
    """RFC 6698 §2.1.2 (selectors) and §2.1.3 (matching types)."""
    assert association_data(LEAF, selector, mtype) == expected


def test_for_certificate_defaults_to_3_1_1() -> None:
    record = TlsaRecord.for_certificate(LEAF)
    assert (record.usage, record.selector, record.mtype) == (3, 1, 1)
    assert record.data == hashlib.sha256(SPKI).digest()
    assert (
        TlsaRecord.for_certificate(LEAF, usage=CertUsage.DANE_TA, selector=0, mtype=0).data == DER
    )
    with pytest.raises(TlsaSyntaxError):
        TlsaRecord.for_certificate(LEAF, selector=7)


def test_enums_follow_the_iana_registries() -> None:
    """RFC 7218 §2.1–§2.3."""
    assert [int(u) for u in CertUsage] == [0, 1, 2, 3, 255]
    assert [int(s) for s in Selector] == [0, 1, 255]
    assert [int(m) for m in MatchingType] == [0, 1, 2, 255]


def _self_signed(private_key: object) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "key test")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())  # type: ignore[attr-defined]
        .serial_number(1)
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + DAY)
    )
    digest = None if isinstance(private_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(private_key, digest)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "make_key",
    [
        lambda: ec.generate_private_key(ec.SECP256R1()),
        lambda: ec.generate_private_key(ec.SECP384R1()),
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ed25519.Ed25519PrivateKey.generate,
    ],
    ids=["P-256", "P-384", "RSA-2048", "Ed25519"],
)
def test_spki_is_cut_from_the_certificate_as_encoded(make_key: Callable[[], object]) -> None:
    """RFC 6698 §2.1.2: selector 1 is the certificate's own DER SubjectPublicKeyInfo."""
    cert = _self_signed(make_key())
    reencoded = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert spki_der(cert) == reencoded
    assert reencoded in cert.public_bytes(serialization.Encoding.DER)


def test_from_answer() -> None:
    """Records as a resolver hands them over (dnspython chunks long hex with spaces)."""
    long_record = TlsaRecord.for_certificate(LEAF, selector=0, mtype=0)
    rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TLSA, render_tlsa(long_record))
    answer = DnsAnswer(
        name="_25._tcp.mx.example.com",
        rdtype="TLSA",
        records=(f"3 1 1 {H32.upper()}", rdata.to_text()),
        security=Security.SECURE,
    )
    assert " " in rdata.to_text()[6:]
    assert TlsaRecord.from_answer(answer) == (parse_tlsa(f"3 1 1 {H32}"), long_record)
    with pytest.raises(TlsaSyntaxError):
        TlsaRecord.from_answer(answer.model_copy(update={"records": ("3 1 1 zz",)}))
    with pytest.raises(TlsaSyntaxError):
        TlsaRecord.from_answer(answer.model_copy(update={"rdtype": "MX"}))
