"""Certificates minted at test time for the certificate and DANE tests (never committed PEM).

One small builder on top of ``cryptography``: a CA → intermediate → leaf chain
whose every field a vector can change (names, dates, key usages, EKUs,
criticality). EC P-256 keys keep minting fast; keys are cached per role so a
test run mints each key once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH


@lru_cache(maxsize=64)
def key(role: str) -> ec.EllipticCurvePrivateKey:
    """A private key per role name, minted once per run."""
    return ec.generate_private_key(ec.SECP256R1())


@dataclass(frozen=True)
class Issued:
    """A certificate and the key that signs with it."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey = field(repr=False)


def mint(
    cn: str,
    issuer: Issued | None = None,
    *,
    ca: bool = False,
    sans: tuple[str, ...] | None = ("mx.example.com",),
    not_before: dt.datetime = NOW - 30 * DAY,
    not_after: dt.datetime = NOW + 30 * DAY,
    eku: tuple[x509.ObjectIdentifier, ...] | None = (SERVER_AUTH,),
    path_length: int | None = None,
    key_role: str | None = None,
    san_critical: bool = False,
    key_cert_sign: bool = True,
    ca_eku: tuple[x509.ObjectIdentifier, ...] | None = None,
    extensions: tuple[tuple[x509.ExtensionType, bool], ...] = (),
) -> Issued:
    """Mint one certificate; self-signed when ``issuer`` is ``None``."""
    own = key(key_role or cn)
    signer = issuer.key if issuer else own
    issuer_name = issuer.cert.subject if issuer else _name(cn)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer_name)
        .public_key(own.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(own.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
            critical=False,
        )
        .add_extension(_key_usage(ca=ca, key_cert_sign=key_cert_sign), critical=True)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    if ca and ca_eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(ca_eku)), critical=False)
    if not ca:
        if sans:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]),
                critical=san_critical,
            )
        if eku:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    return Issued(builder.sign(signer, hashes.SHA256()), own)


@dataclass(frozen=True)
class Pki:
    """A root, an intermediate, and a leaf for ``mx.example.com`` issued under them."""

    root: Issued
    inter: Issued
    leaf: Issued

    @property
    def chain(self) -> list[x509.Certificate]:
        """What a well-configured server sends: leaf, then intermediate."""
        return [self.leaf.cert, self.inter.cert]

    def issue(self, cn: str = "leaf", **kwargs: object) -> list[x509.Certificate]:
        """A fresh leaf under the intermediate, as a presented chain."""
        leaf = mint(cn, self.inter, **kwargs)  # type: ignore[arg-type]
        return [leaf.cert, self.inter.cert]


def pki(prefix: str = "test") -> Pki:
    """A fresh three-level PKI."""
    root = mint(f"{prefix} root", ca=True)
    inter = mint(f"{prefix} intermediate", root, ca=True)
    leaf = mint("mx.example.com", inter, key_role=f"{prefix} leaf")
    return Pki(root, inter, leaf)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_usage(*, ca: bool, key_cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca and key_cert_sign,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )
