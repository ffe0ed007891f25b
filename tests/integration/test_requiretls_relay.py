"""examples/requiretls_relay.py, run for real: mail in over STARTTLS, out to loopback next hops.

Next hops (aiosmtpd sinks with STARTTLS, certificates minted at test time):

* ``mx.capable.test`` offers REQUIRETLS; its domain's MX is validated by an
  MTA-STS ``enforce`` policy (the MX answer is insecure);
* ``mx.plain.test`` does not offer REQUIRETLS; its MX answer is DNSSEC-secure;
* ``mx.rogue.test`` offers REQUIRETLS but presents a certificate from an
  untrusted CA; its MX answer is secure; ``rogue-sts.test`` points at the same
  server under an MTA-STS ``enforce`` policy;
* ``unvalidated.test`` has an insecure MX answer and no MTA-STS policy;
* ``mx.sender.test`` offers REQUIRETLS and receives the bounces for ``sender.test``.
"""

from __future__ import annotations

import os
import smtplib
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest

from mtasecure.certs import TrustStore
from mtasecure.decision import MxCandidate, StsState
from mtasecure.dnssec import Security
from mtasecure.requiretls import render_tls_required
from mtasecure.sts import PolicyMode

from .servers import free_port, stop_process, wait_for_port
from .test_requiretls_e2e import EXAMPLE, Ca, load_example

pytestmark = pytest.mark.integration

SINKS = {
    "mx.capable.test": True,
    "mx.plain.test": False,
    "mx.rogue.test": True,
    "mx.unvalidated.test": True,
    "mx.sender.test": True,
}


class World:
    def __init__(self, spool: Path) -> None:
        self.example = load_example()
        self.ca = Ca()
        rogue = Ca("rogue CA")
        self.spool = spool
        self.sinks: dict[str, Any] = {}
        self.ports: dict[str, int] = {}
        self.controllers: list[Any] = []
        for name, advertise in SINKS.items():
            sink = self.example.Sink(advertise=advertise)
            context = (rogue if name == "mx.rogue.test" else self.ca).server_context(name)
            controller, port = self.example.start_server(sink, hostname=name, tls_context=context)
            self.controllers.append(controller)
            self.sinks[name] = sink
            self.ports[name] = port

        def route(mx: str, security: Security, sts: StsState | None = None) -> Any:
            return self.example.Route(
                mx_security=security,
                mx=(MxCandidate(host=mx, preference=10),),
                addresses={mx: ("127.0.0.1", self.ports[mx])},
                sts=sts or StsState(),
            )

        routes = {
            "capable.test": route(
                "mx.capable.test",
                Security.INSECURE,
                StsState(mode=PolicyMode.ENFORCE, mx=("*.capable.test",)),
            ),
            "plain.test": route("mx.plain.test", Security.SECURE),
            "rogue.test": route("mx.rogue.test", Security.SECURE),
            "rogue-sts.test": route(
                "mx.rogue.test",
                Security.INSECURE,
                StsState(mode=PolicyMode.ENFORCE, mx=("mx.rogue.test",)),
            ),
            "unvalidated.test": route("mx.unvalidated.test", Security.INSECURE),
            "sender.test": route("mx.sender.test", Security.SECURE),
        }
        self.relay = self.example.Relay(
            hostname="relay.test",
            routes=routes,
            trust=TrustStore.from_pem(self.ca.pem),
            spool=spool,
            content_filter=lambda content: b"\nX-Confidential: yes" in content,
        )
        controller, self.relay_port = self.example.start_server(
            self.relay, hostname="relay.test", tls_context=self.ca.server_context("relay.test")
        )
        self.controllers.append(controller)

    def stop(self) -> None:
        for controller in self.controllers:
            controller.stop()

    def received(self, sink: str, rcpt: str) -> list[Any]:
        return [m for m in self.sinks[sink].received if rcpt in m.rcpt_tos]

    def bounces_to(self, address: str) -> list[Any]:
        return [m for m in self.sinks["mx.sender.test"].received if address in m.rcpt_tos]

    def spooled(self, kind: str) -> list[bytes]:
        folder = self.spool / kind
        return [p.read_bytes() for p in sorted(folder.glob("*.eml"))] if folder.exists() else []


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    found = World(tmp_path_factory.mktemp("spool"))
    yield found
    found.stop()


class Client(smtplib.SMTP):
    def connect(self, host: str = "localhost", port: int = 0, source_address: Any = None) -> Any:
        self._host = host
        return super().connect(host, port, source_address)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return socket.create_connection(("127.0.0.1", port), timeout)


def send(
    world: World,
    *,
    mail_from: str,
    rcpt: str,
    body: bytes,
    requiretls: bool = False,
    starttls: bool = True,
) -> tuple[int, bytes]:
    """Submit one message to the relay; returns the reply to MAIL (or to DATA)."""
    client = Client(local_hostname="client.test", timeout=30)
    client.connect("relay.test", world.relay_port)
    try:
        client.ehlo()
        if starttls:
            context = ssl.create_default_context(cadata=world.ca.pem.decode())
            client.starttls(context=context)
            client.ehlo()
        options = ["REQUIRETLS"] if requiretls else []
        code, reply = client.mail(mail_from, options)
        if code != 250:
            return code, reply
        assert client.rcpt(rcpt)[0] == 250
        code, reply = client.data(body)
        client.quit()
        return code, reply
    finally:
        client.close()


def message(subject: str, *extra: str) -> bytes:
    head = ["From: alice@sender.test", f"Subject: {subject}", *extra]
    return ("\r\n".join(head) + "\r\n\r\nTHE BODY OF " + subject + "\r\n").encode()


def test_relay_offers_requiretls_only_after_starttls(world: World) -> None:
    client = Client(local_hostname="client.test", timeout=30)
    client.connect("relay.test", world.relay_port)
    try:
        client.ehlo()
        assert not client.has_extn("requiretls")
        client.starttls(context=ssl.create_default_context(cadata=world.ca.pem.decode()))
        client.ehlo()
        assert client.has_extn("requiretls")
    finally:
        client.close()


def test_parameter_in_cleartext_is_refused(world: World) -> None:
    code, reply = send(
        world,
        mail_from="alice@sender.test",
        rcpt="clear@capable.test",
        body=message("clear"),
        requiretls=True,
        starttls=False,
    )
    assert code == 530
    assert b"5.7.10" in reply


def test_requiretls_message_is_delivered_to_the_capable_hop(world: World) -> None:
    code, _ = send(
        world,
        mail_from="alice@sender.test",
        rcpt="bob@capable.test",
        body=message("to capable"),
        requiretls=True,
    )
    assert code == 250
    (got,) = world.received("mx.capable.test", "bob@capable.test")
    assert got.requiretls  # RFC 8689 §4.2.1: MAIL FROM carried REQUIRETLS onward
    assert got.tls
    assert got.mail_from == "alice@sender.test"
    assert world.bounces_to("alice@sender.test") == []


def test_tagged_address_to_a_hop_without_requiretls_bounces_5_7_30(world: World) -> None:
    code, _ = send(
        world,
        mail_from="tag@sender.test",
        rcpt="bob+requiretls@plain.test",
        body=message("tagged to plain"),
    )
    assert code == 250
    assert world.received("mx.plain.test", "bob@plain.test") == []
    assert world.received("mx.plain.test", "bob+requiretls@plain.test") == []
    (bounce,) = world.bounces_to("tag@sender.test")
    assert bounce.mail_from == ""  # RFC 3461 §6.1
    assert bounce.requiretls  # RFC 8689 §5: the bounce also specifies REQUIRETLS
    dsn = message_from_bytes(bounce.content)
    assert dsn.get_content_type() == "multipart/report"
    text = bounce.content.decode()
    assert "Status: 5.7.30" in text
    assert "Final-Recipient: rfc822; bob+requiretls@plain.test" in text
    assert "Remote-MTA: dns; mx.plain.test" in text
    assert "Subject: tagged to plain" in text
    assert "THE BODY OF" not in text  # RFC 8689 §5: headers only


def test_ordinary_message_goes_to_the_hop_without_requiretls(world: World) -> None:
    code, _ = send(
        world, mail_from="plain@sender.test", rcpt="carol@plain.test", body=message("ordinary")
    )
    assert code == 250
    (got,) = world.received("mx.plain.test", "carol@plain.test")
    assert not got.requiretls
    assert got.tls  # opportunistic TLS still used


def test_untrusted_certificate_bounces_5_7_10(world: World) -> None:
    send(
        world,
        mail_from="rogue@sender.test",
        rcpt="dave@rogue.test",
        body=message("to rogue"),
        requiretls=True,
    )
    assert world.received("mx.rogue.test", "dave@rogue.test") == []
    (bounce,) = world.bounces_to("rogue@sender.test")
    text = bounce.content.decode()
    assert "Status: 5.7.10" in text
    assert "certificate" in text


def test_unvalidated_mx_bounces_without_connecting(world: World) -> None:
    before = len(world.relay.attempts)
    send(
        world,
        mail_from="unval@sender.test",
        rcpt="erin@unvalidated.test",
        body=message("to unvalidated"),
        requiretls=True,
    )
    assert world.sinks["mx.unvalidated.test"].received == []
    assert [a for a in world.relay.attempts[before:] if a.domain == "unvalidated.test"] == []
    (bounce,) = world.bounces_to("unval@sender.test")
    text = bounce.content.decode()
    assert "Status: 5.7.10" in text
    assert "validated neither by DNSSEC" in text


def test_content_filter_flags_the_message(world: World) -> None:
    send(
        world,
        mail_from="filter@sender.test",
        rcpt="frank@plain.test",
        body=message("filtered", "X-Confidential: yes"),
    )
    assert world.received("mx.plain.test", "frank@plain.test") == []
    (bounce,) = world.bounces_to("filter@sender.test")
    assert "Status: 5.7.30" in bounce.content.decode()


def test_tls_required_no_overrides_an_enforce_policy(world: World) -> None:
    # RFC 8689 §4.2.2: TLS-Required: No -> deliver despite the recipient's policy.
    send(
        world,
        mail_from="report@sender.test",
        rcpt="postmaster@rogue-sts.test",
        body=message("certificate problem?", render_tls_required()),
    )
    (got,) = world.received("mx.rogue.test", "postmaster@rogue-sts.test")
    assert not got.requiretls


def test_enforce_policy_defers_without_the_header(world: World) -> None:
    before = len(world.spooled("deferred"))
    send(
        world,
        mail_from="report@sender.test",
        rcpt="hostmaster@rogue-sts.test",
        body=message("no header"),
    )
    assert world.received("mx.rogue.test", "hostmaster@rogue-sts.test") == []
    deferred = world.spooled("deferred")
    assert len(deferred) == before + 1  # RFC 8461 §5: a transient failure, not a bounce
    assert world.bounces_to("report@sender.test") == []


def test_bounce_without_a_route_back_is_spooled(world: World) -> None:
    send(
        world,
        mail_from="someone@elsewhere.example",
        rcpt="gina+requiretls@plain.test",
        body=message("spooled bounce"),
    )
    spooled = [b for b in world.spooled("bounces") if b"spooled bounce" in b]
    assert len(spooled) == 1
    assert b"Status: 5.7.30" in spooled[0]
    assert b"To: someone@elsewhere.example" in spooled[0]


def test_the_example_runs_from_the_command_line(world: World, tmp_path: Path) -> None:
    """``python examples/requiretls_relay.py ...`` as a user would start it."""
    cert, key = world.ca.issue_files("relay-cli.test", tmp_path)
    trust = tmp_path / "ca.pem"
    trust.write_bytes(world.ca.pem)
    port = free_port()
    log = tmp_path / "relay.log"
    capable = world.ports["mx.capable.test"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                str(EXAMPLE),
                "--listen",
                f"127.0.0.1:{port}",
                "--hostname",
                "relay-cli.test",
                "--cert",
                str(cert),
                "--key",
                str(key),
                "--trust",
                str(trust),
                "--spool",
                str(tmp_path / "spool"),
                "--route",
                f"capable.test=mx.capable.test@127.0.0.1:{capable};secure",
                "--route",
                f"insecure.test=mx.capable.test@127.0.0.1:{capable}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=EXAMPLE.parent.parent,
            env={**os.environ, "PYTHONPATH": str(EXAMPLE.parent.parent)},
        )
    try:
        wait_for_port(port, process=process, log=log)
        for rcpt, requiretls in [("cli@capable.test", True), ("cli@insecure.test", True)]:
            client = Client(local_hostname="client.test", timeout=30)
            client.connect("relay-cli.test", port)
            try:
                client.ehlo()
                client.starttls(context=ssl.create_default_context(cadata=world.ca.pem.decode()))
                client.ehlo()
                assert client.has_extn("requiretls")
                assert (
                    client.mail("cli@sender.example", ["REQUIRETLS"] if requiretls else [])[0]
                    == 250
                )
                assert client.rcpt(rcpt)[0] == 250
                assert client.data(message("cli " + rcpt))[0] == 250
                client.quit()
            finally:
                client.close()
    finally:
        stop_process(process)
    # Secure MX answer: step 2 holds, the hop offers REQUIRETLS -> delivered with the parameter.
    (got,) = world.received("mx.capable.test", "cli@capable.test")
    assert got.requiretls
    # Insecure MX answer and no MTA-STS: step 2 fails -> bounced to the spool (no route back).
    assert world.received("mx.capable.test", "cli@insecure.test") == []
    bounces = list((tmp_path / "spool" / "bounces").glob("*.eml"))
    assert len(bounces) == 1
    assert b"Status: 5.7.10" in bounces[0].read_bytes()
