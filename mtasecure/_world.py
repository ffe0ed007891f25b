"""A "world": one text file that drives every fake (re-exported by :mod:`mtasecure.testing`).

A world describes, in TOML, what the network would answer: DNS records with
their DNSSEC status, MTA-STS policy files (or how fetching them fails), SMTP
hosts (STARTTLS offered or not, which certificate, which EHLO keywords) and
the time. :class:`World` reads it and builds a
:class:`~mtasecure.testing.FakeResolver`, a
:class:`~mtasecure.testing.FakeHttpClient`, a :class:`~mtasecure.testing.FakeSmtp`
and a :class:`~mtasecure.testing.FrozenClock` wired together, plus the
:class:`~mtasecure.certs.TrustStore` of a certificate authority minted for the
world when it is loaded. ``world.client()`` is an
:class:`~mtasecure.client.MtaSecure` over them. No socket is ever opened.

The format (every section optional)::

    now = "2026-03-01T12:00:00Z"     # the clock (default 2026-01-01T00:00:00Z)

    [domains]                         # the domains the world is about, in order
    "dane.example" = "DANE-secure"    # name = a one-line description

    [dns]
    zone = '''
    $SECURITY secure                  ; FakeResolver's zone text (testing.py)
    dane.example.    MX 10 mx.dane.example.
    mx.dane.example. A  192.0.2.10
    '''

    [policy."sts.example"]            # served at https://mta-sts.sts.example/...
    body = "version: STSv1\\nmode: enforce\\nmx: mx.sts.example\\nmax_age: 86400\\n"
    status = 200                      # default 200
    content_type = "text/plain"       # default text/plain; "" sends none
    # failure = "refused" | "timeout" | "certificate"  (instead of a response)

    [smtp."mx.dane.example"]          # one SMTP server, the same on every address
    starttls = true                   # default true
    certificate = "good"              # good | wrong-name | expired | self-signed
    keywords = ["REQUIRETLS"]         # extra EHLO keywords after STARTTLS
    tlsa = ["3 1 1"]                  # TLSA records made from the minted certificate
    tlsa_security = "secure"          # their DNSSEC status (default secure)
    port = 25                         # default 25
    outcome = "ok"                    # or any ProbeOutcome that needs no stage

``tlsa`` entries are ``usage selector matching-type``; the association data is
computed from the minted certificate (selector 0) or its key (selector 1), and
the records are added at ``_<port>._tcp.<host>``. A host with ``certificate``
``good`` gets a certificate for its name from the world's CA; ``wrong-name``
one for ``wrong-name.invalid``; ``expired`` one that ended a day before
``now``; ``self-signed`` one for its name that no CA issued.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mtasecure._fakesmtp import DEFAULT_KEYWORDS, DEFAULT_TLS_KEYWORDS, FakeSmtp
from mtasecure._names import normalize_host
from mtasecure._smtpwire import ProbeOutcome
from mtasecure.certs import TrustStore
from mtasecure.dnssec import Security
from mtasecure.errors import HttpError, ParseError, TransportTimeout, UsageError
from mtasecure.transport._fakehttp import FakeHttpClient

if TYPE_CHECKING:
    from mtasecure.client import MtaSecure
    from mtasecure.testing import FakeResolver, FrozenClock

__all__ = ["DEFAULT_WORLD_TIME", "MAX_WORLD_BYTES", "CertificateKind", "World"]

DEFAULT_WORLD_TIME = datetime(2026, 1, 1, tzinfo=UTC)
"""The clock of a world that names no ``now``."""
MAX_WORLD_BYTES = 1024 * 1024
"""Largest world file read (a world is a hand-written description, not a data set)."""
CERTIFICATE_LIFETIME = timedelta(days=90)
"""How long minted certificates are valid around the world's ``now``."""

_TOP_KEYS = {"now", "domains", "dns", "policy", "smtp"}
_POLICY_KEYS = {"body", "status", "content_type", "failure"}
_SMTP_KEYS = {"starttls", "certificate", "keywords", "tlsa", "tlsa_security", "port", "outcome"}
_FAILURES = {"refused", "timeout", "certificate"}


class CertificateKind(StrEnum):
    """Which certificate a world's SMTP host presents."""

    GOOD = "good"
    """Issued by the world's CA for the host name, valid at ``now``."""
    WRONG_NAME = "wrong-name"
    """Issued by the world's CA, valid, for ``wrong-name.invalid``."""
    EXPIRED = "expired"
    """Issued by the world's CA for the host name; ended a day before ``now``."""
    SELF_SIGNED = "self-signed"
    """For the host name, valid, but signed by its own key (no CA)."""


@lru_cache(maxsize=256)
def _key(role: str) -> ec.EllipticCurvePrivateKey:
    # P-256 keys mint in microseconds; one per role and process keeps loading fast.
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _mint(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    not_before: datetime,
    not_after: datetime,
    ca: bool = False,
    dns_name: str | None = None,
) -> x509.Certificate:
    issuer_name, signer = issuer if issuer is not None else (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
            critical=False,
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if dns_name is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _tlsa_data(cert: x509.Certificate, selector: int, matching: int) -> str:
    if selector == 0:
        data = cert.public_bytes(Encoding.DER)
    elif selector == 1:
        data = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    else:
        raise UsageError(f"TLSA selector {selector} is not 0 or 1 (RFC 6698 §2.1.2)")
    if matching == 0:
        return data.hex()
    if matching == 1:
        return hashlib.sha256(data).hexdigest()
    if matching == 2:
        return hashlib.sha512(data).hexdigest()
    raise UsageError(f"TLSA matching type {matching} is not 0, 1 or 2 (RFC 6698 §2.1.3)")


def _table(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise UsageError(f"world: {where} must be a table")
    return value


def _unknown(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise UsageError(f"world: {where}: unknown key(s) {', '.join(extra)}")


@contextmanager
def _section(where: str) -> Iterator[None]:
    # Whatever a section holds, what escapes is a UsageError naming the section.
    try:
        yield
    except UsageError:
        raise
    except (ParseError, ValueError, TypeError, AttributeError) as exc:
        raise UsageError(f"world: {where}: {exc}") from exc


class World:
    """Fakes for every transport, built from one world description (module docstring).

    Build one with :meth:`load` (a file), :meth:`from_text` or :meth:`default`
    (the world ``mtasecure demo`` runs on).

    Attributes:
        resolver: the DNS answers.
        http: the policy files.
        smtp: the SMTP servers.
        clock: frozen at the world's ``now``.
        trust: the world CA's trust store; pass it wherever WebPKI is checked.
        ca: the world CA's certificate.
        domains: ``{domain: description}`` from ``[domains]``, in file order.
        certificates: the certificate each SMTP host presents, by host name.

    Raises:
        UsageError: the description cannot be read (its message names the
            section and the key).
    """

    def __init__(self, text: str, *, name: str = "<world>") -> None:
        from mtasecure.testing import FakeResolver, FrozenClock  # noqa: PLC0415 - testing imports us

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"{name}: not TOML: {exc}") from exc
        _unknown(data, _TOP_KEYS, name)
        self.name = name
        self.clock: FrozenClock = FrozenClock(data.get("now", DEFAULT_WORLD_TIME))
        now = self.clock.now()
        self.domains: dict[str, str] = {}
        for domain, description in _table(data.get("domains", {}), "[domains]").items():
            with _section(f"[domains] {domain!r}"):
                self.domains[normalize_host(domain)] = str(description)
        dns = _table(data.get("dns", {}), "[dns]")
        _unknown(dns, {"zone"}, "[dns]")
        self.resolver: FakeResolver = FakeResolver(zone=str(dns.get("zone", "")))
        self.http = FakeHttpClient()
        for domain, entry in _table(data.get("policy", {}), "[policy]").items():
            with _section(f"[policy.{domain!r}]"):
                self._add_policy(domain, _table(entry, f"[policy.{domain!r}]"))
        ca_key = _key("world ca")
        self.ca = _mint(
            "mtasecure world CA",
            ca_key,
            issuer=None,
            ca=True,
            not_before=now - 10 * CERTIFICATE_LIFETIME,
            not_after=now + 10 * CERTIFICATE_LIFETIME,
        )
        self.trust = TrustStore([self.ca])
        self.smtp = FakeSmtp()
        self.certificates: dict[str, x509.Certificate] = {}
        for host, entry in _table(data.get("smtp", {}), "[smtp]").items():
            with _section(f"[smtp.{host!r}]"):
                self._add_smtp(host, _table(entry, f"[smtp.{host!r}]"), (self.ca.subject, ca_key))

    @classmethod
    def from_text(cls, text: str, *, name: str = "<world>") -> World:
        """The world described by ``text``."""
        return cls(text, name=name)

    @classmethod
    def load(cls, path: str | Path) -> World:
        """The world described by the file at ``path``.

        Raises:
            UsageError: the file cannot be read, is larger than
                :data:`MAX_WORLD_BYTES`, or is not a world.
        """
        file = Path(path)
        try:
            with file.open("rb") as handle:
                data = handle.read(MAX_WORLD_BYTES + 1)
        except OSError as exc:
            raise UsageError(f"{file}: cannot read the world: {exc.strerror or exc}") from exc
        if len(data) > MAX_WORLD_BYTES:
            raise UsageError(f"{file}: larger than {MAX_WORLD_BYTES} octets")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UsageError(f"{file}: not UTF-8: {exc}") from exc
        return cls(text, name=str(file))

    @classmethod
    def default(cls) -> World:
        """The world bundled with the package, that ``mtasecure demo`` runs on."""
        from importlib import resources  # noqa: PLC0415

        text = (resources.files("mtasecure._demo") / "world.toml").read_text(encoding="utf-8")
        return cls(text, name="mtasecure/_demo/world.toml")

    def client(self, **overrides: Any) -> MtaSecure:
        """An :class:`~mtasecure.client.MtaSecure` on this world's fakes.

        Keyword arguments replace a transport or add settings (``sts=``,
        ``cache=``, ``store=``).
        """
        from mtasecure.client import MtaSecure  # noqa: PLC0415 - the facade is optional here

        transports: dict[str, Any] = {
            "resolver": self.resolver,
            "http": self.http,
            "smtp": self.smtp,
            "clock": self.clock,
        }
        transports.update(overrides)
        return MtaSecure(**transports)

    # --- sections -----------------------------------------------------------

    def _add_policy(self, domain: str, entry: Mapping[str, Any]) -> None:
        where = f"[policy.{domain!r}]"
        _unknown(entry, _POLICY_KEYS, where)
        url = self.http.add_policy(domain, b"")
        failure = entry.get("failure")
        if failure is not None:
            if failure not in _FAILURES:
                raise UsageError(f"world: {where}: failure must be one of {sorted(_FAILURES)}")
            if failure == "refused":
                self.http.remove(url)
            elif failure == "timeout":
                self.http.fail(url, TransportTimeout(f"{url}: timed out (world)"))
            else:
                self.http.fail(
                    url,
                    HttpError(
                        f"{url}: certificate verify failed: not valid for mta-sts.{domain} (world)",
                        certificate=True,
                    ),
                )
            return
        content_type = entry.get("content_type", "text/plain")
        status = entry.get("status", 200)
        body = entry.get("body", "")
        if not isinstance(status, int) or not isinstance(body, str):
            raise UsageError(f"world: {where}: status is a number and body a string")
        self.http.add(url, body, status=status, content_type=content_type or None)

    def _add_smtp(
        self,
        host: str,
        entry: Mapping[str, Any],
        issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey],
    ) -> None:
        where = f"[smtp.{host!r}]"
        _unknown(entry, _SMTP_KEYS, where)
        try:
            name = normalize_host(host)
            kind = CertificateKind(entry.get("certificate", "good"))
            outcome = ProbeOutcome(entry.get("outcome", "ok"))
            tlsa_security = Security(entry.get("tlsa_security", "secure"))
        except (ParseError, ValueError) as exc:
            raise UsageError(f"world: {where}: {exc}") from exc
        port = entry.get("port", 25)
        now = self.clock.now()
        cert = self._certificate(name, kind, issuer, now)
        self.certificates[name] = cert
        starttls = entry.get("starttls", True)
        keywords = entry.get("keywords", [])
        tlsa = entry.get("tlsa", [])
        if not isinstance(starttls, bool) or not isinstance(port, int):
            raise UsageError(f"world: {where}: starttls is true or false and port a number")
        if not isinstance(keywords, list) or not isinstance(tlsa, list):
            raise UsageError(f"world: {where}: keywords and tlsa are lists of strings")
        if not starttls and outcome is ProbeOutcome.OK:
            outcome = ProbeOutcome.STARTTLS_NOT_OFFERED
        extra = [str(k) for k in keywords]
        try:
            self.smtp.script(
                name,
                port=port,
                outcome=outcome,
                chain=[cert],
                keywords=DEFAULT_KEYWORDS,
                tls_keywords=(*DEFAULT_TLS_KEYWORDS, *extra),
            )
        except UsageError as exc:
            raise UsageError(f"world: {where}: {exc}") from exc
        for spec in tlsa:
            try:
                usage, selector, matching = (int(f) for f in str(spec).split())
            except ValueError as exc:
                raise UsageError(
                    f"world: {where}: tlsa entry {spec!r} is not 'usage selector matching'"
                ) from exc
            data = _tlsa_data(cert, selector, matching)
            self.resolver.add(
                f"_{port}._tcp.{name}",
                "TLSA",
                [f"{usage} {selector} {matching} {data}"],
                security=tlsa_security,
            )

    @staticmethod
    def _certificate(
        host: str,
        kind: CertificateKind,
        issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey],
        now: datetime,
    ) -> x509.Certificate:
        key = _key(f"leaf {host}")
        start, end = now - CERTIFICATE_LIFETIME, now + CERTIFICATE_LIFETIME
        if kind is CertificateKind.EXPIRED:
            start, end = now - 2 * CERTIFICATE_LIFETIME, now - timedelta(days=1)
        if kind is CertificateKind.SELF_SIGNED:
            return _mint(host, key, issuer=None, not_before=start, not_after=end, dns_name=host)
        dns_name = "wrong-name.invalid" if kind is CertificateKind.WRONG_NAME else host
        return _mint(
            dns_name, key, issuer=issuer, not_before=start, not_after=end, dns_name=dns_name
        )
