"""TLSA records: the value type, the presentation-format parser, usability (RFC 6698, RFC 7672).

Presentation format (RFC 6698 §2.2), with RFC 7218's acronyms accepted in any
case for the three numeric fields::

    tlsa   = usage 1*WSP selector 1*WSP mtype 1*WSP hexdata
    usage  = uint8 / "PKIX-TA" / "PKIX-EE" / "DANE-TA" / "DANE-EE" / "PrivCert"
    selector = uint8 / "Cert" / "SPKI" / "PrivSel"
    mtype  = uint8 / "Full" / "SHA2-256" / "SHA2-512" / "PrivMatch"
    hexdata = 1*(HEXDIG / WSP)     ; whitespace inside is allowed (RFC 1035 §5.1)

A zone file may wrap the record in parentheses; these are accepted and dropped.
The numeric fields are kept as integers so that records with values this
library does not know still round-trip; :attr:`TlsaRecord.usable` says whether
one can be used for SMTP.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from enum import IntEnum
from functools import cached_property

import dns.rdata
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from pydantic import BaseModel, ConfigDict, Field

from mtasecure.dnssec import DnsAnswer
from mtasecure.errors import TlsaSyntaxError

__all__ = [  # noqa: RUF022 -- plain sorted(), as tests/test_exported_members.py checks
    "CertUsage",
    "MAX_TLSA_DATA_LENGTH",
    "MatchingType",
    "Selector",
    "TlsaRecord",
    "association_data",
    "parse_tlsa",
    "render_tlsa",
    "spki_der",
]

MAX_TLSA_DATA_LENGTH = 65535 - 3
"""Longest certificate association data, in octets: an RDATA is at most 65535
octets (RFC 1035 §3.2.1) and three go to the numeric fields (RFC 6698 §2.1)."""

_RULE = "RFC 6698 §2.2"
_HEX = re.compile(r"[0-9A-Fa-f]+", re.ASCII)
_UINT8 = re.compile(r"[0-9]{1,3}", re.ASCII)


class CertUsage(IntEnum):
    """The certificate usage field (RFC 6698 §2.1.1, acronyms from RFC 7218 §2.1)."""

    PKIX_TA = 0
    """CA constraint; unusable for SMTP (RFC 7672 §3.1.3)."""
    PKIX_EE = 1
    """Service certificate constraint; unusable for SMTP (RFC 7672 §3.1.3)."""
    DANE_TA = 2
    """Trust anchor assertion (RFC 7672 §3.1.2)."""
    DANE_EE = 3
    """Domain-issued certificate (RFC 7672 §3.1.1)."""
    PRIV_CERT = 255
    """Reserved for private use; unusable here."""


class Selector(IntEnum):
    """The selector field (RFC 6698 §2.1.2, RFC 7218 §2.2)."""

    CERT = 0
    """The whole DER certificate."""
    SPKI = 1
    """The DER SubjectPublicKeyInfo."""
    PRIV_SEL = 255
    """Reserved for private use; unusable here."""


class MatchingType(IntEnum):
    """The matching type field (RFC 6698 §2.1.3, RFC 7218 §2.3)."""

    FULL = 0
    """The selected content itself."""
    SHA2_256 = 1
    """SHA-256 of the selected content (32 octets)."""
    SHA2_512 = 2
    """SHA-512 of the selected content (64 octets)."""
    PRIV_MATCH = 255
    """Reserved for private use; unusable here."""


_ACRONYMS: dict[str, dict[str, int]] = {
    "usage": {
        "pkix-ta": 0,
        "pkix-ee": 1,
        "dane-ta": 2,
        "dane-ee": 3,
        "privcert": 255,
    },
    "selector": {"cert": 0, "spki": 1, "privsel": 255},
    "matching type": {"full": 0, "sha2-256": 1, "sha2-512": 2, "privmatch": 255},
}
_DIGEST_LENGTH = {MatchingType.SHA2_256: 32, MatchingType.SHA2_512: 64}


class TlsaRecord(BaseModel):
    """One TLSA record (RFC 6698 §2.1).

    Attributes:
        usage: the certificate usage, 0–255 (:class:`CertUsage` for the known ones).
        selector: the selector, 0–255 (:class:`Selector`).
        mtype: the matching type, 0–255 (:class:`MatchingType`).
        data: the certificate association data.
    """

    model_config = ConfigDict(frozen=True)

    usage: int = Field(ge=0, le=255)
    selector: int = Field(ge=0, le=255)
    mtype: int = Field(ge=0, le=255)
    data: bytes = Field(max_length=MAX_TLSA_DATA_LENGTH)

    @classmethod
    def from_text(cls, text: str) -> TlsaRecord:
        """Same as :func:`parse_tlsa`."""
        return parse_tlsa(text)

    @classmethod
    def from_rdata(cls, rdata: dns.rdata.Rdata) -> TlsaRecord:
        """Build from a dnspython ``TLSA`` rdata.

        Raises:
            TlsaSyntaxError: ``rdata`` is not a TLSA rdata.
        """
        try:
            return cls(
                usage=rdata.usage,  # type: ignore[attr-defined]
                selector=rdata.selector,  # type: ignore[attr-defined]
                mtype=rdata.mtype,  # type: ignore[attr-defined]
                data=bytes(rdata.cert),  # type: ignore[attr-defined]
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise TlsaSyntaxError(f"not a TLSA rdata: {type(rdata).__name__}", rule=_RULE) from exc

    @classmethod
    def from_answer(cls, answer: DnsAnswer) -> tuple[TlsaRecord, ...]:
        """The records of a TLSA :class:`~mtasecure.dnssec.DnsAnswer`, parsed.

        This says nothing of the answer's DNSSEC status; :func:`~mtasecure.dane.plan_dane`
        reads both, and counts a record that does not parse as unusable
        (RFC 6698 §4.1) instead of raising.

        Raises:
            TlsaSyntaxError: the answer is not for TLSA, or a record does not parse.
        """
        if answer.rdtype.upper() != "TLSA":
            raise TlsaSyntaxError(f"not a TLSA answer: {answer.rdtype}", where=answer.name)
        return tuple(parse_tlsa(text) for text in answer.records)

    @classmethod
    def for_certificate(
        cls,
        cert: x509.Certificate,
        *,
        usage: int = CertUsage.DANE_EE,
        selector: int = Selector.SPKI,
        mtype: int = MatchingType.SHA2_256,
    ) -> TlsaRecord:
        """The record that associates ``cert`` (defaults: ``3 1 1``, RFC 7672 §3.1.1).

        Raises:
            TlsaSyntaxError: the selector or matching type is not one defined by
                RFC 6698, so no data can be computed.
        """
        data = association_data(cert, selector, mtype)
        if data is None:
            raise TlsaSyntaxError(
                f"no association data for selector {selector}, matching type {mtype}",
                rule="RFC 6698 §2.1.2, §2.1.3",
            )
        return cls(usage=usage, selector=selector, mtype=mtype, data=data)

    @property
    def usable(self) -> bool:
        """Whether a sending MTA can use this record (RFC 7672 §3.1, RFC 6698 §4.1)."""
        return self.unusable_reason is None

    @cached_property
    def unusable_reason(self) -> str | None:
        """Why the record cannot be used for SMTP, or ``None`` if it can.

        Unusable: PKIX-TA(0) and PKIX-EE(1) (RFC 7672 §3.1.3), any usage,
        selector or matching type not defined by RFC 6698 (RFC 6698 §4.1), and
        malformed data — a digest of the wrong length, or a full certificate or
        key that does not parse (RFC 6698 §4.1, RFC 7671 §9).
        """
        if self.usage in (CertUsage.PKIX_TA, CertUsage.PKIX_EE):
            return f"usage {self.usage} (PKIX) is not used for SMTP (RFC 7672 §3.1.3)"
        if self.usage not in (CertUsage.DANE_TA, CertUsage.DANE_EE):
            return f"unknown certificate usage {self.usage} (RFC 6698 §4.1)"
        if self.selector not in (Selector.CERT, Selector.SPKI):
            return f"unknown selector {self.selector} (RFC 6698 §4.1)"
        if self.mtype not in (MatchingType.FULL, MatchingType.SHA2_256, MatchingType.SHA2_512):
            return f"unknown matching type {self.mtype} (RFC 6698 §4.1)"
        if self.mtype != MatchingType.FULL:
            want = _DIGEST_LENGTH[MatchingType(self.mtype)]
            if len(self.data) != want:
                return (
                    f"matching type {self.mtype} needs {want} octets of digest, "
                    f"got {len(self.data)} (RFC 6698 §4.1, RFC 7671 §9)"
                )
            return None
        try:
            if self.selector == Selector.CERT:
                x509.load_der_x509_certificate(self.data)
            else:
                serialization.load_der_public_key(self.data)
        except (ValueError, TypeError) as exc:
            what = "certificate" if self.selector == Selector.CERT else "SubjectPublicKeyInfo"
            return f"full {what} does not parse: {exc} (RFC 6698 §4.1)"
        except UnsupportedAlgorithm as exc:
            return f"full key of an unsupported algorithm: {exc} (RFC 6698 §4.1)"
        return None

    def __str__(self) -> str:
        return render_tlsa(self)


def parse_tlsa(text: str) -> TlsaRecord:
    """Parse one TLSA record's RDATA in presentation format (RFC 6698 §2.2).

    Accepts ``"3 1 1 <hex>"``, RFC 7218 acronyms in any case
    (``"DANE-EE SPKI SHA2-256 <hex>"``), whitespace inside the hex data and
    zone-file parentheses.

    Raises:
        TlsaSyntaxError: a field is missing, not an 8-bit unsigned integer or a
            known acronym, or the data is empty, not hexadecimal, of odd length
            or longer than :data:`MAX_TLSA_DATA_LENGTH` octets.
    """
    if not isinstance(text, str):
        raise TlsaSyntaxError(f"expected a str, got {type(text).__name__}", rule=_RULE)
    if len(text) > 4 * MAX_TLSA_DATA_LENGTH:
        raise TlsaSyntaxError(f"record is {len(text)} characters long", rule="RFC 1035 §3.2.1")
    fields = text.replace("(", " ").replace(")", " ").split()
    if len(fields) < 4:
        raise TlsaSyntaxError(
            f"expected usage, selector, matching type and data; got {len(fields)} field(s)",
            rule=_RULE,
        )
    usage = _number(fields[0], "usage")
    selector = _number(fields[1], "selector")
    mtype = _number(fields[2], "matching type")
    hexdata = "".join(fields[3:])
    if not _HEX.fullmatch(hexdata):
        raise TlsaSyntaxError(
            "certificate association data is not hexadecimal", where="field 4", rule=_RULE
        )
    if len(hexdata) % 2:
        raise TlsaSyntaxError(
            f"certificate association data has an odd number ({len(hexdata)}) of hex digits",
            where="field 4",
            rule=_RULE,
        )
    if len(hexdata) // 2 > MAX_TLSA_DATA_LENGTH:
        raise TlsaSyntaxError(
            f"certificate association data is longer than {MAX_TLSA_DATA_LENGTH} octets",
            where="field 4",
            rule="RFC 1035 §3.2.1",
        )
    return TlsaRecord(usage=usage, selector=selector, mtype=mtype, data=binascii.unhexlify(hexdata))


def render_tlsa(record: TlsaRecord) -> str:
    """The record in presentation format: ``"3 1 1 <lower-case hex>"`` (RFC 6698 §2.2)."""
    return f"{record.usage} {record.selector} {record.mtype} {record.data.hex()}"


def association_data(cert: x509.Certificate, selector: int, mtype: int) -> bytes | None:
    """The bytes of ``cert`` that a TLSA record with this selector and matching type holds.

    Selector 0 takes the whole DER certificate, 1 its DER SubjectPublicKeyInfo
    (RFC 6698 §2.1.2); matching type 0 keeps them, 1 and 2 take their SHA-256 and
    SHA-512 digests (RFC 6698 §2.1.3). ``None`` for values RFC 6698 does not define.
    """
    if selector == Selector.CERT:
        content = cert.public_bytes(serialization.Encoding.DER)
    elif selector == Selector.SPKI:
        content = spki_der(cert)
    else:
        return None
    if mtype == MatchingType.FULL:
        return content
    if mtype == MatchingType.SHA2_256:
        return hashlib.sha256(content).digest()
    if mtype == MatchingType.SHA2_512:
        return hashlib.sha512(content).digest()
    return None


def spki_der(cert: x509.Certificate) -> bytes:
    """The certificate's SubjectPublicKeyInfo exactly as encoded in it (RFC 5280 §4.1).

    The bytes are cut out of the TBSCertificate rather than re-encoded from the
    parsed key, so a key that cryptography cannot load, or one whose encoding it
    would normalise, still yields the bytes the TLSA publisher hashed.
    """
    tbs = cert.tbs_certificate_bytes
    _, offset, _ = _der_header(tbs, 0)  # TBSCertificate ::= SEQUENCE {
    fields = 0
    while True:
        tag, _, end = _der_header(tbs, offset)
        if fields == 0 and tag == 0xA0:  # [0] EXPLICIT version, optional
            offset = end
            continue
        if fields == 5:  # serial, signature, issuer, validity, subject, then the SPKI
            return tbs[offset:end]
        fields += 1
        offset = end


def _der_header(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, start of contents, end of element) of the DER element at ``offset``."""
    tag, first = data[offset], data[offset + 1]
    if first < 0x80:
        return tag, offset + 2, offset + 2 + first
    count = first & 0x7F
    length = int.from_bytes(data[offset + 2 : offset + 2 + count], "big")
    start = offset + 2 + count
    return tag, start, start + length


def _number(token: str, field: str) -> int:
    known = _ACRONYMS[field].get(token.lower())
    if known is not None:
        return known
    if not _UINT8.fullmatch(token) or int(token) > 255:
        raise TlsaSyntaxError(
            f"{field} {token[:20]!r} is not an 8-bit unsigned integer or a known acronym",
            where=field,
            rule=f"{_RULE}, RFC 7218 §2",
        )
    return int(token)
