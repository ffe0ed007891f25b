"""A small relay that honours REQUIRETLS (RFC 8689), built on mtasecure.

In: an aiosmtpd server with STARTTLS that offers ``REQUIRETLS`` after STARTTLS,
accepts ``MAIL FROM:<...> REQUIRETLS`` only inside TLS, and flags messages
sent to ``local+requiretls@domain`` (the tag is removed before delivery).

Out: for each recipient domain, :func:`mtasecure.decision.plan` says what each
MX session must prove; an :mod:`smtplib` client (in a worker thread) opens the
session, the library judges it (:func:`mtasecure.decision.judge`), and the
message goes only over a session that meets the plan. When no MX does,
:func:`mtasecure.decision.conclude` decides: a REQUIRETLS failure is bounced
with a DSN (:func:`mtasecure.requiretls.render_failure_dsn`), delivered back
to the sender's domain when a route is known, written to the spool otherwise;
anything else is deferred (written to ``spool/deferred``: this example has no
retry queue).

Where a domain's MX hosts, their DNSSEC and TLSA state and the MTA-STS policy
come from is the :class:`Route` table given to the relay. A production relay
fills it from DNS and HTTPS through ``mtasecure.client``; the table keeps the
example self-contained and lets its test point every MX at loopback.

Limits of the example: delivery happens before the reply to DATA (no queue);
one message goes to one domain's MXes in one session per MX; certificates are
checked with :func:`mtasecure.certs.check_certificate` against the trust
anchors given, from the leaf alone (no intermediates: Python's ``ssl`` gives
only the leaf; no DANE chain check); no cleartext retry after a failed TLS
handshake (RFC 7672 §2.2 allows one for opportunistic TLS).

Run it::

    python examples/requiretls_relay.py --listen 127.0.0.1:2525 \\
        --cert relay.pem --key relay.key --trust ca.pem --spool /tmp/spool \\
        --route "example.net=mx.example.net@127.0.0.1:2526;secure"
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import smtplib
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from cryptography import x509

from mtasecure.certs import TrustStore, check_certificate
from mtasecure.decision import (
    MxCandidate,
    SessionObservation,
    SessionOutcome,
    StsState,
    TransportRequirement,
    Verdict,
    conclude,
    judge,
    plan,
)
from mtasecure.dnssec import Security
from mtasecure.requiretls import (
    EHLO_KEYWORD,
    MAIL_PARAMETER,
    Dsn,
    MessageFlags,
    RecipientFailure,
    RequireTlsSettings,
    check_ehlo_requiretls,
    check_requiretls_receipt,
    flag_message,
    render_failure_dsn,
)
from mtasecure.results import CheckResult, FailureReason

log = logging.getLogger("requiretls_relay")

REQUIRETLS_MAIL_INCREMENT = 11
"""Octets the MAIL command may grow by: a space and ``REQUIRETLS`` (RFC 8689 §2 item 5)."""
SESSION_TIMEOUT = 30.0
"""Seconds for each outbound SMTP step."""

_MAIL_ARG = re.compile(r"(?is)(\s*FROM:\s*(?:<[^>]*>|\S+))(.*)")


# --- what the relay knows about destinations -----------------------------------


@dataclass(frozen=True)
class Route:
    """What was resolved for one recipient domain (normally by ``mtasecure.client``).

    Attributes:
        mx_security: the DNSSEC status of the MX answer.
        mx: the MX hosts with their TLSA state.
        sts: the MTA-STS state.
        addresses: where to connect for each MX host: ``(address, port)``.
    """

    mx_security: Security
    mx: tuple[MxCandidate, ...]
    addresses: Mapping[str, tuple[str, int]]
    sts: StsState = field(default_factory=StsState)


@dataclass
class Attempt:
    """One outbound session, for logs and tests."""

    domain: str
    host: str
    outcome: SessionOutcome | None
    delivered: bool = False
    error: str = ""


@dataclass
class Received:
    """One message as a server received it (for the sink and for tests)."""

    mail_from: str
    rcpt_tos: list[str]
    requiretls: bool
    tls: bool
    content: bytes


# --- the inbound server ------------------------------------------------------------


class RequireTlsSmtp(SMTP):
    """aiosmtpd's server with the REQUIRETLS MAIL parameter (RFC 8689 §2, §4.1).

    The EHLO keyword is added by :class:`RequireTlsHandler` after STARTTLS.
    The parameter is checked with :func:`check_requiretls_receipt`, removed
    from the command before aiosmtpd sees it (aiosmtpd refuses parameters it
    does not know), and recorded on the envelope as ``requiretls``.
    """

    def __init__(self, handler: RequireTlsHandler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        # A server that does not offer the keyword does not know the parameter either.
        self.requiretls_settings = (
            handler.settings if handler.advertise else RequireTlsSettings(enabled=False)
        )

    async def smtp_MAIL(self, arg: str | None) -> None:
        requiretls = False
        match = _MAIL_ARG.fullmatch(arg or "")
        if match and self.session is not None and self.session.extended_smtp:
            path, params = match.group(1), match.group(2).strip()
            check = check_requiretls_receipt(
                params,
                tls_active=self.session.ssl is not None,
                settings=self.requiretls_settings,
            )
            if check.reply is not None:
                await self.push(check.reply)
                return
            requiretls = check.requiretls
            if requiretls:
                kept = [w for w in params.split() if w.upper() != MAIL_PARAMETER]
                arg = " ".join([path, *kept])
        await super().smtp_MAIL(arg)
        if self.envelope is not None and self.envelope.mail_from is not None:
            self.envelope.requiretls = requiretls  # type: ignore[attr-defined]


class RequireTlsHandler:
    """An aiosmtpd handler whose EHLO reply offers REQUIRETLS inside TLS."""

    def __init__(self, *, settings: RequireTlsSettings, advertise: bool = True) -> None:
        self.settings = settings
        self.advertise = advertise

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        if self.advertise and self.settings.enabled and session.ssl is not None:
            # RFC 8689 §2: offered after STARTTLS; the MAIL command may grow by 11 octets.
            responses.insert(-1, f"250-{EHLO_KEYWORD}")
            server.command_size_limits["MAIL"] += REQUIRETLS_MAIL_INCREMENT
        return responses


class Sink(RequireTlsHandler):
    """A final destination that keeps what it receives (a next hop in the tests)."""

    def __init__(self, *, advertise: bool = True) -> None:
        super().__init__(settings=RequireTlsSettings(), advertise=advertise)
        self.received: list[Received] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.append(
            Received(
                mail_from="" if envelope.mail_from in (None, "<>") else str(envelope.mail_from),
                rcpt_tos=list(envelope.rcpt_tos),
                requiretls=bool(getattr(envelope, "requiretls", False)),
                tls=session.ssl is not None,
                content=bytes(envelope.original_content or b""),
            )
        )
        return "250 2.0.0 OK"


class _Controller(Controller):
    def factory(self) -> SMTP:
        assert isinstance(self.handler, RequireTlsHandler)
        return RequireTlsSmtp(self.handler, **self.SMTP_kwargs)


def start_server(
    handler: RequireTlsHandler,
    *,
    hostname: str,
    tls_context: ssl.SSLContext | None,
    address: str = "127.0.0.1",
    port: int = 0,
) -> tuple[Controller, int]:
    """Start an aiosmtpd server with STARTTLS in a thread; returns it and its port."""
    if port == 0:
        with socket.socket() as s:
            s.bind((address, 0))
            port = int(s.getsockname()[1])
    controller = _Controller(
        handler,
        hostname=address,
        port=port,
        server_hostname=hostname,
        tls_context=tls_context,
        require_starttls=False,
        decode_data=False,
    )
    controller.start()
    return controller, port


# --- the relay ------------------------------------------------------------------------


class Relay(RequireTlsHandler):
    """Receives mail and relays it according to mtasecure's plan.

    Args:
        hostname: this relay's host name (EHLO, Reporting-MTA).
        routes: what is known of each recipient domain.
        trust: the trust anchors for MX certificates.
        spool: where bounces and deferred messages are written.
        settings: the REQUIRETLS switches.
        content_filter: a function of the message bytes that returns True
            when the message must be sent with REQUIRETLS.
        clock: returns the current time (tests may pin it).
    """

    def __init__(
        self,
        *,
        hostname: str,
        routes: Mapping[str, Route],
        trust: TrustStore,
        spool: Path,
        settings: RequireTlsSettings | None = None,
        content_filter: Callable[[bytes], bool] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(settings=settings or RequireTlsSettings())
        self.hostname = hostname
        self.routes = dict(routes)
        self.trust = trust
        self.spool = spool
        self.content_filter = content_filter
        self.clock = clock
        self.attempts: list[Attempt] = []
        self.bounces: list[Dsn] = []
        self._lock = threading.Lock()

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        domain = address.rpartition("@")[2].lower()
        if domain not in self.routes:
            return "550 5.7.1 relay access denied"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = bytes(envelope.original_content or b"")
        reverse_path = "" if envelope.mail_from in (None, "<>") else str(envelope.mail_from)
        flagged = flag_message(
            reverse_path=reverse_path,
            recipients=list(envelope.rcpt_tos),
            mail_parameters=MAIL_PARAMETER if getattr(envelope, "requiretls", False) else "",
            headers=content,
            content_filter=bool(self.content_filter and self.content_filter(content)),
            settings=self.settings,
        )
        await asyncio.get_running_loop().run_in_executor(
            None,
            self._relay,
            reverse_path,
            flagged.recipients,
            flagged.received_recipients,
            flagged.flags,
            content,
        )
        return "250 2.0.0 OK: relayed or bounced"

    # The rest runs in a worker thread.

    def _relay(
        self,
        reverse_path: str,
        recipients: Sequence[str],
        received: Sequence[str],
        flags: MessageFlags,
        content: bytes,
    ) -> None:
        by_domain: dict[str, list[tuple[str, str]]] = {}
        for rcpt, original in zip(recipients, received, strict=True):
            by_domain.setdefault(rcpt.rpartition("@")[2].lower(), []).append((rcpt, original))
        for domain, pairs in by_domain.items():
            failures = self._deliver(domain, reverse_path, [r for r, _ in pairs], flags, content)
            if failures is None:
                continue
            verdict, status, detail, remote = failures
            if verdict is Verdict.BOUNCE and reverse_path:
                self._bounce(
                    reverse_path=reverse_path,
                    recipients=[o for _, o in pairs],
                    status=status,
                    detail=detail,
                    remote=remote,
                    flags=flags,
                    content=content,
                )
            else:
                self._write("deferred", content)

    def _deliver(
        self,
        domain: str,
        reverse_path: str,
        recipients: Sequence[str],
        flags: MessageFlags,
        content: bytes,
    ) -> tuple[Verdict, str, str, str | None] | None:
        """Deliver to one domain; None when delivered, else (verdict, status, detail, last MX)."""
        route = self.routes[domain]
        delivery_plan = plan(
            domain, mx_security=route.mx_security, mx=route.mx, sts=route.sts, flags=flags
        )
        outcomes: dict[str, SessionOutcome | None] = {}
        last_host: str | None = None
        for requirement in delivery_plan.requirements:
            if not requirement.usable:
                log.info("%s: %s skipped: %s", domain, requirement.host, requirement.detail)
                continue
            last_host = requirement.host
            attempt = self._attempt(
                domain=domain,
                requirement=requirement,
                route=route,
                reverse_path=reverse_path,
                recipients=recipients,
                content=content,
            )
            with self._lock:
                self.attempts.append(attempt)
            outcomes[requirement.host] = attempt.outcome
            if attempt.delivered:
                return None
        conclusion = conclude(delivery_plan, outcomes)
        return conclusion.verdict, conclusion.status, conclusion.detail, last_host

    def _attempt(
        self,
        *,
        domain: str,
        requirement: TransportRequirement,
        route: Route,
        reverse_path: str,
        recipients: Sequence[str],
        content: bytes,
    ) -> Attempt:
        address, port = route.addresses[requirement.host]
        attempt = Attempt(domain=domain, host=requirement.host, outcome=None)
        try:
            client = _HopClient(address, local_hostname=self.hostname, timeout=SESSION_TIMEOUT)
            client.connect(requirement.host, port)
        except (OSError, smtplib.SMTPException) as exc:  # SMTPConnectError: banner not 220
            attempt.error = f"connect: {exc}"
            return attempt
        try:
            observation = self._open(client, requirement)
            outcome = judge(requirement, observation)
            attempt.outcome = outcome
            if not outcome.deliver:
                client.quit()  # RFC 8689 §4.2.1: QUIT, then try the next MX
                return attempt
            options = [MAIL_PARAMETER] if outcome.use_requiretls_parameter else []
            code, reply = client.mail(reverse_path, options)
            if code != 250:
                attempt.error = f"MAIL: {code} {reply!r}"
                return attempt
            for rcpt in recipients:
                code, reply = client.rcpt(rcpt)
                if code not in (250, 251):
                    attempt.error = f"RCPT: {code} {reply!r}"
                    return attempt
            code, reply = client.data(content)
            attempt.delivered = code == 250
            attempt.error = "" if attempt.delivered else f"DATA: {code} {reply!r}"
            client.quit()
        except (OSError, smtplib.SMTPException) as exc:
            attempt.error = f"session: {exc}"
        finally:
            client.close()
        return attempt

    def _open(self, client: _HopClient, requirement: TransportRequirement) -> SessionObservation:
        """EHLO, STARTTLS, EHLO; what the session showed (RFC 8689 §4.2.1 steps 3-5)."""
        client.ehlo()
        offered = client.has_extn("starttls")
        if not offered:
            return SessionObservation(host=requirement.host)
        # Handshake without verification, then judge the chain with mtasecure.certs,
        # so that a bad certificate is a reportable value, not a lost connection.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            code, reply = client.starttls(context=context)
        except (ssl.SSLError, smtplib.SMTPException, OSError) as exc:
            log.info("%s: STARTTLS failed: %s", requirement.host, exc)
            return SessionObservation(host=requirement.host, starttls_offered=True)
        if code != 220:  # smtplib returns a refusal (e.g. 454) instead of raising
            log.info("%s: STARTTLS refused: %s %r", requirement.host, code, reply)
            return SessionObservation(host=requirement.host, starttls_offered=True)
        sock = client.sock
        der = sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None
        webpki = (
            check_certificate(
                [x509.load_der_x509_certificate(der)],
                requirement.host,
                now=self.clock(),
                trust=self.trust,
            )
            if der
            else CheckResult.failed(FailureReason.VALIDATION_FAILURE, "no certificate")
        )
        code, reply = client.ehlo()
        lines = reply.decode("ascii", "replace").splitlines()[1:] if code == 250 else []
        return SessionObservation(
            host=requirement.host,
            starttls_offered=True,
            tls_established=True,
            webpki=webpki,
            requiretls_advertised=check_ehlo_requiretls(lines),
        )

    def _bounce(
        self,
        *,
        reverse_path: str,
        recipients: Sequence[str],
        status: str,
        detail: str,
        remote: str | None,
        flags: MessageFlags,
        content: bytes,
    ) -> None:
        dsn = render_failure_dsn(
            reverse_path=reverse_path,
            original=content,
            failures=[
                RecipientFailure(
                    recipient=r,
                    status=status,
                    diagnostic=f"550 {status} {detail}",
                    remote_mta=remote,
                )
                for r in recipients
            ],
            reporting_mta=self.hostname,
            now=self.clock(),
            flags=flags,
        )
        with self._lock:
            self.bounces.append(dsn)
        domain = reverse_path.rpartition("@")[2].lower()
        if (
            domain in self.routes
            and self._deliver(domain, "", [dsn.envelope_to], dsn.flags, dsn.content) is None
        ):
            return
        self._write("bounces", dsn.content)

    def _write(self, kind: str, content: bytes) -> Path:
        folder = self.spool / kind
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex}.eml"
        path.write_bytes(content)
        return path


class _HopClient(smtplib.SMTP):
    """smtplib's client, connecting to a given address while naming the MX host.

    ``connect(mx_host, port)`` keeps ``mx_host`` as the name used for SNI, so
    the session is to the MX by name while the TCP connection goes to
    ``address`` (loopback in the tests).
    """

    def __init__(self, address: str, **kwargs: Any) -> None:
        self._address = address
        super().__init__(**kwargs)

    def connect(self, host: str = "localhost", port: int = 0, source_address: Any = None) -> Any:
        self._host = host  # the name STARTTLS sends as SNI (smtplib sets it only in __init__)
        return super().connect(host, port, source_address)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return socket.create_connection((self._address, port), timeout, self.source_address)


# --- command line ---------------------------------------------------------------------------


def _parse_route(text: str) -> tuple[str, Route]:
    """``domain=mx@address:port``, with ``;secure`` when the MX answer is DNSSEC-secure."""
    text, _, flag = text.partition(";")
    domain, _, rest = text.partition("=")
    mx, _, where = rest.partition("@")
    address, _, port = where.rpartition(":")
    return domain.lower(), Route(
        mx_security=Security.SECURE if flag == "secure" else Security.INSECURE,
        mx=(MxCandidate(host=mx, preference=10),),
        addresses={mx.lower(): (address, int(port))},
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Run the relay until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--listen", default="127.0.0.1:2525")
    parser.add_argument("--hostname", default="relay.localhost")
    parser.add_argument("--cert", required=True, help="PEM certificate chain for STARTTLS")
    parser.add_argument("--key", required=True, help="PEM private key for STARTTLS")
    parser.add_argument("--trust", required=True, help="PEM trust anchors for MX certificates")
    parser.add_argument("--spool", required=True, type=Path)
    parser.add_argument(
        "--route", action="append", default=[], help="domain=mx@address:port[;secure]"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    relay = Relay(
        hostname=args.hostname,
        routes=dict(_parse_route(r) for r in args.route),
        trust=TrustStore.from_pem(Path(args.trust).read_bytes()),
        spool=args.spool,
    )
    address, _, port = args.listen.rpartition(":")
    controller, bound = start_server(
        relay, hostname=args.hostname, tls_context=context, address=address, port=int(port)
    )
    print(f"relaying on {address}:{bound}; Ctrl-C stops", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
