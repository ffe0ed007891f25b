"""REQUIRETLS against real SMTP servers on loopback: one that offers it, one that does not.

The servers are aiosmtpd with STARTTLS, extended as ``examples/requiretls_relay.py`` does. The client side is
smtplib plus the library: the EHLO keyword is read by
:func:`check_ehlo_requiretls`, the certificate judged by
:func:`mtasecure.certs.check_certificate`, the session by
:func:`mtasecure.decision.judge`, and the MAIL command rendered by
:func:`render_mail_from`.

Certificates are minted at test time with ``cryptography``: trustme marks the
subjectAltName critical next to a non-empty subject, which the WebPKI profile
of ``cryptography.x509.verification`` (and so ``mtasecure.certs``) rejects
(RFC 5280 §4.2.1.6).
"""

from __future__ import annotations

import importlib.util
import smtplib
import socket
import ssl
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mtasecure.certs import TrustStore, check_certificate
from mtasecure.decision import MxCandidate, SessionObservation, judge, plan
from mtasecure.dnssec import Security
from mtasecure.requiretls import (
    MessageFlags,
    RequireTlsFailure,
    check_ehlo_requiretls,
    render_mail_from,
)

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "requiretls_relay.py"


def load_example() -> ModuleType:
    """Import examples/requiretls_relay.py (not a package) once."""
    name = "requiretls_relay_example"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Ca:
    """A test CA that issues server certificates valid for a day either side of now."""

    def __init__(self, name: str = "mtasecure test CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.now(UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_usage(ca=True), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def issue_files(self, name: str, directory: Path) -> tuple[Path, Path]:
        """Write a fresh certificate for ``name`` and its key as PEM files; returns their paths."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(ca=False), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        cert_file, key_file = directory / f"{name}.pem", directory / f"{name}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cert_file, key_file

    def server_context(self, name: str) -> ssl.SSLContext:
        """A server-side TLS context presenting a fresh certificate for ``name``."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        with tempfile.TemporaryDirectory() as tmp:
            context.load_cert_chain(*self.issue_files(name, Path(tmp)))
        return context


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


class Servers:
    def __init__(self, ca: Ca) -> None:
        self.ca = ca
        self.trust = TrustStore.from_pem(ca.pem)
        self.ports: dict[str, int] = {}
        self.sinks: dict[str, Any] = {}
        self._controllers: list[Any] = []

    def start(self, name: str, *, advertise: bool, ca: Ca | None = None) -> None:
        relay = load_example()
        context = (ca or self.ca).server_context(name)
        sink = relay.Sink(advertise=advertise)
        controller, port = relay.start_server(sink, hostname=name, tls_context=context)
        self._controllers.append(controller)
        self.ports[name] = port
        self.sinks[name] = sink

    def stop(self) -> None:
        for controller in self._controllers:
            controller.stop()


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    found = Servers(Ca())
    found.start("mx.capable.test", advertise=True)
    found.start("mx.plain.test", advertise=False)
    yield found
    found.stop()


class Client(smtplib.SMTP):
    """smtplib connecting to loopback while naming the MX host (for SNI)."""

    def connect(self, host: str = "localhost", port: int = 0, source_address: Any = None) -> Any:
        self._host = host  # the name STARTTLS sends as SNI (smtplib sets it only in __init__)
        return super().connect(host, port, source_address)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return socket.create_connection(("127.0.0.1", port), timeout)


def connect(servers: Servers, name: str) -> Client:
    client = Client(local_hostname="client.test", timeout=10)
    client.connect(name, servers.ports[name])
    return client


def mail_from(client: smtplib.SMTP, path: str, *, requiretls: bool) -> tuple[int, bytes]:
    command, argument = render_mail_from(path, requiretls=requiretls).split(" ", 1)
    return client.docmd(command, argument)


def ehlo_lines(client: smtplib.SMTP) -> list[str]:
    code, reply = client.ehlo()
    assert code == 250
    return reply.decode().splitlines()[1:]


def observe(servers: Servers, client: smtplib.SMTP, name: str) -> SessionObservation:
    """EHLO, STARTTLS, EHLO, and the library's reading of it."""
    offered = client.has_extn("starttls") or "STARTTLS" in ehlo_lines(client)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    client.starttls(context=context)
    sock = client.sock
    assert isinstance(sock, ssl.SSLSocket)
    der = sock.getpeercert(binary_form=True)
    assert der is not None
    webpki = check_certificate(
        [x509.load_der_x509_certificate(der)], name, now=datetime.now(UTC), trust=servers.trust
    )
    return SessionObservation(
        host=name,
        starttls_offered=offered,
        tls_established=True,
        webpki=webpki,
        requiretls_advertised=check_ehlo_requiretls(ehlo_lines(client)),
    )


@pytest.mark.parametrize(("name", "offers"), [("mx.capable.test", True), ("mx.plain.test", False)])
def test_keyword_is_offered_only_after_starttls(servers: Servers, name: str, offers: bool) -> None:
    client = connect(servers, name)
    try:
        before = ehlo_lines(client)
        assert "STARTTLS" in before
        assert not check_ehlo_requiretls(before)  # RFC 8689 §2: in the EHLO after STARTTLS
        observation = observe(servers, client, name)
        assert observation.webpki is not None
        assert observation.webpki.ok, observation.webpki.detail
        assert observation.requiretls_advertised is offers
    finally:
        client.close()


def test_parameter_outside_tls_is_refused(servers: Servers) -> None:
    client = connect(servers, "mx.capable.test")
    try:
        ehlo_lines(client)
        code, reply = mail_from(client, "a@sender.test", requiretls=True)
        assert code == 530, reply
        assert b"5.7.10" in reply
    finally:
        client.close()


def test_parameter_with_a_value_is_a_syntax_error(servers: Servers) -> None:
    client = connect(servers, "mx.capable.test")
    try:
        observe(servers, client, "mx.capable.test")
        code, _ = client.docmd("MAIL", "FROM:<a@sender.test> REQUIRETLS=YES")
        assert code == 501
    finally:
        client.close()


def _requirement(name: str) -> Any:
    # The MX came from a DNSSEC-secure lookup: RFC 8689 §4.2.1 step 2 holds.
    delivery_plan = plan(
        name.split(".", 1)[1],
        mx_security=Security.SECURE,
        mx=[MxCandidate(host=name)],
        flags=MessageFlags(requiretls=True),
    )
    return delivery_plan.requirements[0]


def test_requiretls_message_goes_to_the_capable_server(servers: Servers) -> None:
    name = "mx.capable.test"
    client = connect(servers, name)
    try:
        outcome = judge(_requirement(name), observe(servers, client, name))
        assert outcome.deliver
        assert outcome.use_requiretls_parameter
        code, reply = mail_from(client, "alice@sender.test", requiretls=True)
        assert code == 250, reply
        assert client.rcpt("e2e-capable@capable.test")[0] == 250
        assert client.data(b"Subject: e2e\r\n\r\nhello\r\n")[0] == 250
        client.quit()
    finally:
        client.close()
    (got,) = [m for m in servers.sinks[name].received if "e2e-capable@capable.test" in m.rcpt_tos]
    assert got.requiretls  # RFC 8689 §4.1: the server tagged the message
    assert got.tls


def test_requiretls_message_is_refused_by_the_plan_for_the_plain_server(servers: Servers) -> None:
    name = "mx.plain.test"
    client = connect(servers, name)
    try:
        outcome = judge(_requirement(name), observe(servers, client, name))
        assert not outcome.deliver
        assert outcome.requiretls_failure is RequireTlsFailure.REQUIRETLS_NOT_ADVERTISED
        assert outcome.requiretls_failure.status == "5.7.30"
        # And the plain server indeed does not know the parameter (RFC 5321 §4.1.1.11).
        code, _ = client.docmd("MAIL", "FROM:<alice@sender.test> REQUIRETLS")
        assert code == 555
        client.quit()
    finally:
        client.close()
    assert servers.sinks[name].received == []


def test_untrusted_certificate_fails_step_4() -> None:
    other_ca = Ca("rogue CA")
    found = Servers(Ca())
    found.start("mx.rogue.test", advertise=True, ca=other_ca)
    try:
        client = connect(found, "mx.rogue.test")
        try:
            observation = observe(found, client, "mx.rogue.test")
            outcome = judge(_requirement("mx.rogue.test"), observation)
        finally:
            client.close()
    finally:
        found.stop()
    assert observation.requiretls_advertised
    assert not outcome.deliver
    assert outcome.requiretls_failure is RequireTlsFailure.CERTIFICATE_NOT_AUTHENTICATED
