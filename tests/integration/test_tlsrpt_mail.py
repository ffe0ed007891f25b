"""Report mails (RFC 8460 §5.3) submitted to a real Postfix on loopback and relayed on.

The path is the one a sending MTA's report job takes: :class:`SmtpSubmitter`
submits the DKIM-signed message to Postfix over STARTTLS (certificate from a
trustme CA); Postfix queues it and relays it to the "receiving domain", an
aiosmtpd server on another loopback port, which keeps what it got. The test
then checks the delivered bytes: the DKIM signature still verifies with
dkimpy in strict RFC 8460 mode, parsedmarc reads the report with the same
totals, and Postfix's own Received line shows it went through the MTA.

Postfix runs from a private configuration (a full enough ``master.cf`` for
queueing and relaying) in a temporary directory, started the same way as
``tests/integration/postfixworld.py`` does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mtasecure.results import FailureReason
from mtasecure.tlsrpt import DkimKey, ReportOptions, ReportWindow, TlsRptCollector, build_reports
from mtasecure.tlsrpt._submit import RetryPolicy
from mtasecure.transport.report_submit import SmtpSubmitter, submit_report
from tests._tlsrpt_support import assert_same_totals, parsedmarc
from tests.integration.postfixworld import MAIL_OWNER, postfix_master
from tests.integration.servers import LOOPBACK, free_port, wait_for_port

pytestmark = pytest.mark.integration

# The queue directories a relaying Postfix uses (postfix-script would make them).
QUEUES = (
    "private",
    "public",
    "incoming",
    "active",
    "deferred",
    "bounce",
    "defer",
    "trace",
    "flush",
    "hold",
    "corrupt",
    "saved",
    "maildrop",
)

MASTER_CF = """\
{address}:{port} inet n - n - - smtpd
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = {owner}
myhostname = relay.mail.sender.example
mydomain = mail.sender.example
myorigin = $mydomain
mydestination =
mynetworks = 127.0.0.0/8
inet_interfaces = {address}
inet_protocols = ipv4
maillog_file = /dev/stdout
local_recipient_maps =
alias_maps =
alias_database =
relayhost = [{address}]:{sink}
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_tls_security_level = may
smtpd_tls_chain_files = {root}/conf/chain.pem
smtp_tls_security_level = none
queue_run_delay = 1s
minimal_backoff_time = 1s
maximum_backoff_time = 2s
"""


@dataclass
class Sink:
    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)


@dataclass
class Relay:
    port: int
    ca: trustme.CA
    sink: Sink
    log: Path


@pytest.fixture(scope="module")
def relay() -> Iterator[Relay]:
    master = postfix_master()
    from aiosmtpd.controller import Controller

    sink = Sink()

    class Handler:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            sink.messages.append(
                (envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)  # type: ignore[attr-defined]
            )
            return "250 OK kept"

    sink_port = free_port()
    controller = Controller(Handler(), hostname=LOOPBACK, port=sink_port)
    controller.start()
    root = Path(tempfile.mkdtemp(prefix="mtasecure-tlsrpt-postfix-"))
    root.chmod(0o711)
    for sub in ("conf", "queue/pid", "data", *(f"queue/{q}" for q in QUEUES)):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for sub in ("data", *(f"queue/{q}" for q in QUEUES)):
        shutil.chown(root / sub, user=MAIL_OWNER)
        (root / sub).chmod(0o700)
    ca = trustme.CA()
    cert = ca.issue_cert("relay.mail.sender.example", LOOPBACK)
    chain = root / "conf" / "chain.pem"
    chain.write_bytes(cert.private_key_pem.bytes() + cert.cert_chain_pems[0].bytes())
    chain.chmod(0o600)
    port = free_port()
    (root / "conf" / "main.cf").write_text(
        MAIN_CF.format(root=root, owner=MAIL_OWNER, address=LOOPBACK, sink=sink_port)
    )
    (root / "conf" / "master.cf").write_text(MASTER_CF.format(address=LOOPBACK, port=port))
    past = time.time() - 10
    for written in (root / "conf").iterdir():
        os.utime(written, (past, past))
    log = root / "maillog"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(master), "-d", "-c", str(root / "conf")],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_port(port, process=process, log=log)
        yield Relay(port=port, ca=ca, sink=sink, log=log)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        controller.stop()
        shutil.rmtree(root, ignore_errors=True)


def _key() -> tuple[DkimKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    dkim_key = DkimKey(selector="rpt", domain="mail.sender.example", private_key=pem)
    return dkim_key, base64.b64encode(der).decode()


async def test_report_mail_goes_through_postfix_and_still_verifies(relay: Relay) -> None:
    import ssl

    import dkim

    c = TlsRptCollector()
    for _ in range(12):
        c.record("example.net", None, None)
    c.record("example.net", None, FailureReason.STARTTLS_NOT_SUPPORTED, sending_ip="192.0.2.7")
    batch = c.drain(ReportWindow.containing(datetime(2026, 3, 1, tzinfo=UTC)))
    assert batch is not None
    options = ReportOptions(organization_name="Sender", contact_info="tlsrpt@mail.sender.example")
    report = build_reports(batch, options)[0]
    key, public = _key()
    context = ssl.create_default_context()
    relay.ca.configure_trust(context)
    submitter = SmtpSubmitter(LOOPBACK, relay.port, starttls=True, tls_context=context, timeout=30)
    (outcome,) = await submit_report(
        report,
        ["mailto:tlsrpt@example.net"],
        mail=submitter,
        sender="tlsrpt@mail.sender.example",
        dkim=key,
        retry=RetryPolicy(max_attempts=1, attempt_timeout=30),
    )
    assert outcome.delivered, outcome.detail
    deadline = time.monotonic() + 30
    while not relay.sink.messages and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert relay.sink.messages, relay.log.read_text(errors="replace")[-3000:]
    mail_from, rcpts, data = relay.sink.messages[-1]
    assert mail_from == "tlsrpt@mail.sender.example"
    assert rcpts == ["tlsrpt@example.net"]
    assert b"by relay.mail.sender.example (Postfix)" in data
    assert b"TLS-Required: No" in data
    assert b"TLS-Report-Domain: example.net" in data
    # Postfix's Received line records that the submission used STARTTLS.
    assert b"(Postfix) with ESMTPS id" in data  # ESMTPS: RFC 3848, STARTTLS was used

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        if name.rstrip(b".") == b"rpt._domainkey.mail.sender.example":
            return f"v=DKIM1; k=rsa; s=tlsrpt; p={public}".encode()
        return None

    assert dkim.verify(data, dnsfunc=lookup, tlsrpt="strict")
    parsed = parsedmarc().parse_report_email(data)
    assert parsed["report_type"] == "smtp_tls"
    assert_same_totals(parsed["report"], report.report)
