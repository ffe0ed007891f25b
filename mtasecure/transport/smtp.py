"""The default SMTP STARTTLS probe, on asyncio streams (RFC 5321, RFC 3207).

:class:`AsyncioSmtpConnector` does what a sending MTA does up to the first
mail transaction and stops there: connect, read the greeting, ``EHLO``,
``STARTTLS``, the TLS handshake, ``EHLO`` again, ``QUIT``. Whatever the server
does — refuse, stall, drop the connection, send garbage, offer STARTTLS and
then refuse it — the probe returns a :class:`~mtasecure.transport.ProbeResult`
whose :class:`~mtasecure.transport.ProbeOutcome` says what happened and whose
:class:`~mtasecure.transport.ProbeStage` says where. It raises only for misuse
(:class:`~mtasecure.errors.UsageError`).

The TLS layer verifies nothing: certificate and name checks belong to
:mod:`mtasecure.certs` and :mod:`mtasecure.dane`, which need the chain exactly
as presented. The chain is read with ``get_unverified_chain()``, which is
public on ``ssl.SSLObject`` from Python 3.13 and present as a method of the
private ``_ssl`` object from 3.10 to 3.12 (it wraps OpenSSL's
``SSL_get_peer_cert_chain``, which on a client includes the leaf). Where
neither exists, only the leaf is recorded and
:attr:`~mtasecure.transport.ProbeResult.chain_complete` is ``False``.

Each step has its own time limit (the constants below, each overridable).
RFC 5321 §4.5.3.2 gives a sending MTA five minutes per step; a probe that
answers a question for a person or a checker waits less by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
import time
from typing import Any

from mtasecure._names import normalize_host
from mtasecure._smtpwire import (
    MAX_REPLY_LINE_OCTETS,
    EhloResponse,
    ProbeOutcome,
    ProbeResult,
    ProbeStage,
    ReplyReader,
    SmtpReply,
    StepTiming,
    parse_ehlo,
)
from mtasecure.errors import MessageSyntaxError, NameSyntaxError, UsageError

__all__ = [
    "BANNER_TIMEOUT",
    "COMMAND_TIMEOUT",
    "CONNECT_TIMEOUT",
    "QUIT_TIMEOUT",
    "SMTP_PORT",
    "TLS_HANDSHAKE_TIMEOUT",
    "AsyncioSmtpConnector",
]

SMTP_PORT = 25
"""The port MX delivery uses (RFC 5321 §4.5.4.2)."""

CONNECT_TIMEOUT = 10.0
"""Seconds to wait for the TCP connection."""

BANNER_TIMEOUT = 60.0
"""Seconds to wait for the greeting; servers that pause before it (to catch
clients that talk first) commonly wait a few seconds (RFC 5321 §4.5.3.2.1: 5 min)."""

COMMAND_TIMEOUT = 30.0
"""Seconds to wait for the reply to EHLO or STARTTLS (RFC 5321 §4.5.3.2: 5 min)."""

TLS_HANDSHAKE_TIMEOUT = 30.0
"""Seconds to wait for the TLS handshake to complete (RFC 3207 §4)."""

QUIT_TIMEOUT = 5.0
"""Seconds to wait for the reply to QUIT and the close; a late one changes nothing."""


class _Stop(Exception):
    """Ends a probe with an outcome; raised inside :meth:`_Probe.run` only."""

    def __init__(self, outcome: ProbeOutcome, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail


class AsyncioSmtpConnector:
    """Probe an MX with STARTTLS, the way a sending MTA would (RFC 3207).

    Satisfies :class:`~mtasecure.transport.SmtpConnector`.

    Args:
        helo_name: the name sent with EHLO. ``None`` sends the address literal
            of the local end of each connection (``[192.0.2.1]``,
            ``[IPv6:2001:db8::1]``), which RFC 5321 §4.1.1.1 recommends when a
            client has no meaningful domain name.
        connect_timeout: see :data:`CONNECT_TIMEOUT`.
        banner_timeout: see :data:`BANNER_TIMEOUT`.
        command_timeout: see :data:`COMMAND_TIMEOUT`.
        tls_handshake_timeout: see :data:`TLS_HANDSHAKE_TIMEOUT`.
        quit_timeout: see :data:`QUIT_TIMEOUT`.
    """

    def __init__(
        self,
        *,
        helo_name: str | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        banner_timeout: float = BANNER_TIMEOUT,
        command_timeout: float = COMMAND_TIMEOUT,
        tls_handshake_timeout: float = TLS_HANDSHAKE_TIMEOUT,
        quit_timeout: float = QUIT_TIMEOUT,
    ) -> None:
        for name, value in (
            ("connect_timeout", connect_timeout),
            ("banner_timeout", banner_timeout),
            ("command_timeout", command_timeout),
            ("tls_handshake_timeout", tls_handshake_timeout),
            ("quit_timeout", quit_timeout),
        ):
            if not value > 0:
                raise UsageError(f"{name} must be a positive number of seconds, not {value!r}")
        if helo_name is not None and (
            not helo_name
            or not helo_name.isascii()
            or any(c.isspace() or not c.isprintable() for c in helo_name)
        ):
            raise UsageError(
                f"helo_name {helo_name!r} is not an ASCII domain or address literal "
                "(RFC 5321 §4.1.1.1; send IDNs as A-labels)"
            )
        self.helo_name = helo_name
        self.connect_timeout = connect_timeout
        self.banner_timeout = banner_timeout
        self.command_timeout = command_timeout
        self.tls_handshake_timeout = tls_handshake_timeout
        self.quit_timeout = quit_timeout
        self._context: ssl.SSLContext | None = None

    def _tls_context(self) -> ssl.SSLContext:
        if self._context is None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            # The library judges the chain itself (certs, dane); the TLS layer
            # must accept anything so that what was presented can be recorded.
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            # TLS 1.0 and 1.1 are deprecated (RFC 8996 §2, §3).
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            self._context = context
        return self._context

    async def probe(self, host: str, address: str, *, port: int = SMTP_PORT) -> ProbeResult:
        """Probe ``host`` at ``address``; never raises for what the server does.

        Args:
            host: the MX host name; sent as SNI (RFC 6066 §3, RFC 7672 §8.1).
            address: the IPv4 or IPv6 address to connect to.
            port: the TCP port, :data:`SMTP_PORT` unless testing.

        Raises:
            UsageError: ``host`` is not a host name, ``address`` not an IP
                address, or ``port`` out of range.
        """
        try:
            name = normalize_host(host)
        except NameSyntaxError as exc:
            raise UsageError(f"host {host!r} is not a host name: {exc}") from exc
        try:
            ip = ipaddress.ip_address(address)
        except ValueError as exc:
            raise UsageError(f"address {address!r} is not an IP address") from exc
        if not 0 < port < 65536:
            raise UsageError(f"port {port} is not a TCP port")
        return await _Probe(self, name, str(ip), port).run()


class _Probe:
    """The state of one probe; :meth:`run` walks the steps in order."""

    def __init__(self, connector: AsyncioSmtpConnector, host: str, address: str, port: int):
        self.connector = connector
        self.host = host
        self.address = address
        self.port = port
        self.stage = ProbeStage.CONNECT
        self.timings: list[StepTiming] = []
        self.seen: dict[str, Any] = {}
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def run(self) -> ProbeResult:
        outcome, detail = ProbeOutcome.OK, ""
        try:
            await self._steps()
        except _Stop as stop:
            outcome, detail = stop.outcome, stop.detail
        finally:
            await self._close()
        return ProbeResult(
            host=self.host,
            address=self.address,
            port=self.port,
            outcome=outcome,
            stage=self.stage,
            timings=tuple(self.timings),
            detail=detail,
            **self.seen,
        )

    async def _steps(self) -> None:
        c = self.connector
        started = self._begin(ProbeStage.CONNECT)
        try:
            async with asyncio.timeout(c.connect_timeout):
                self.reader, self.writer = await asyncio.open_connection(
                    self.address, self.port, limit=MAX_REPLY_LINE_OCTETS
                )
        except TimeoutError as exc:
            raise _Stop(ProbeOutcome.TIMEOUT, f"no connection within {c.connect_timeout}s") from exc
        except OSError as exc:
            raise _Stop(ProbeOutcome.CONNECT_FAILED, _describe(exc)) from exc
        self._end(started)

        started = self._begin(ProbeStage.BANNER)
        banner = await self._reply(c.banner_timeout)
        self.seen["banner"] = banner
        self._end(started)
        if banner.code != 220:
            await self._quit()
            raise _Stop(ProbeOutcome.BANNER_REJECTED, f"greeting was {banner} (RFC 5321 §3.1)")

        ehlo = await self._ehlo(ProbeStage.EHLO)
        self.seen["ehlo"] = ehlo
        if not ehlo.offers("STARTTLS"):
            await self._quit()
            raise _Stop(ProbeOutcome.STARTTLS_NOT_OFFERED, "EHLO reply does not list STARTTLS")

        started = self._begin(ProbeStage.STARTTLS)
        await self._send(b"STARTTLS\r\n")
        reply = await self._reply(c.command_timeout)
        self.seen["starttls_reply"] = reply
        self._end(started)
        if reply.code != 220:
            await self._quit()
            raise _Stop(
                ProbeOutcome.STARTTLS_REFUSED, f"STARTTLS was answered {reply} (RFC 3207 §4)"
            )
        # StreamReader has no public "bytes buffered" accessor.
        if getattr(self.reader, "_buffer", b""):
            # Plaintext sent after "220" would be read as if it came through
            # TLS: the response injection RFC 3207 §5 warns against.
            raise _Stop(
                ProbeOutcome.PROTOCOL_ERROR,
                "server sent data after its 220 to STARTTLS, before TLS (RFC 3207 §5)",
            )

        started = self._begin(ProbeStage.TLS_HANDSHAKE)
        await self._handshake()
        self._end(started)

        ehlo_tls = await self._ehlo(ProbeStage.EHLO_AFTER_TLS)
        self.seen["ehlo_tls"] = ehlo_tls
        await self._quit(last_step=True)

    def _begin(self, stage: ProbeStage) -> float:
        self.stage = stage
        return time.perf_counter()

    def _end(self, started: float) -> None:
        self.timings.append(StepTiming(self.stage, time.perf_counter() - started))

    async def _ehlo(self, stage: ProbeStage) -> EhloResponse:
        started = self._begin(stage)
        await self._send(b"EHLO " + self._helo_name().encode("ascii") + b"\r\n")
        reply = await self._reply(self.connector.command_timeout)
        self._end(started)
        if reply.code != 250:
            await self._quit()
            raise _Stop(ProbeOutcome.EHLO_FAILED, f"EHLO was answered {reply}")
        try:
            return parse_ehlo(reply)
        except MessageSyntaxError as exc:
            raise _Stop(ProbeOutcome.PROTOCOL_ERROR, str(exc)) from exc

    def _helo_name(self) -> str:
        if self.connector.helo_name is not None:
            return self.connector.helo_name
        assert self.writer is not None
        local = ipaddress.ip_address(self.writer.get_extra_info("sockname")[0])
        if local.version == 6:
            return f"[IPv6:{local.compressed}]"
        return f"[{local}]"

    async def _send(self, line: bytes) -> None:
        assert self.writer is not None
        try:
            self.writer.write(line)
            await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            raise _Stop(ProbeOutcome.DROPPED, f"sending failed: {_describe(exc)}") from exc
        if "tls_version" in self.seen:
            _ack_quickly(self.writer)

    async def _reply(self, timeout: float) -> SmtpReply:
        assert self.reader is not None
        reader = ReplyReader()
        try:
            async with asyncio.timeout(timeout):
                while True:
                    line = await self.reader.readuntil(b"\n")
                    reply = reader.feed(line)
                    if reply is not None:
                        return reply
        except TimeoutError as exc:
            raise _Stop(ProbeOutcome.TIMEOUT, f"no complete reply within {timeout}s") from exc
        except asyncio.IncompleteReadError as exc:
            raise _Stop(
                ProbeOutcome.DROPPED, f"connection closed after {len(exc.partial)} octets"
            ) from exc
        except asyncio.LimitOverrunError as exc:
            raise _Stop(
                ProbeOutcome.PROTOCOL_ERROR,
                f"reply line longer than {MAX_REPLY_LINE_OCTETS} octets (RFC 5321 §4.5.3.1.5)",
            ) from exc
        except MessageSyntaxError as exc:
            raise _Stop(ProbeOutcome.PROTOCOL_ERROR, str(exc)) from exc
        except (ConnectionError, OSError) as exc:
            raise _Stop(ProbeOutcome.DROPPED, _describe(exc)) from exc

    async def _handshake(self) -> None:
        assert self.writer is not None
        timeout = self.connector.tls_handshake_timeout
        self.seen["sni"] = self.host
        try:
            async with asyncio.timeout(timeout):
                await self.writer.start_tls(
                    self.connector._tls_context(),
                    server_hostname=self.host,
                    ssl_handshake_timeout=timeout,
                )
        except TimeoutError as exc:
            raise _Stop(ProbeOutcome.TIMEOUT, f"TLS handshake not done within {timeout}s") from exc
        except (ssl.SSLError, ConnectionError, OSError) as exc:
            raise _Stop(ProbeOutcome.TLS_HANDSHAKE_FAILED, _describe(exc)) from exc
        tls = self.writer.get_extra_info("ssl_object")
        if not isinstance(tls, ssl.SSLObject):
            raise _Stop(ProbeOutcome.TLS_HANDSHAKE_FAILED, "no TLS session after the handshake")
        cipher = tls.cipher()
        self.seen["tls_version"] = tls.version()
        self.seen["tls_cipher"] = cipher[0] if cipher else None
        self.seen["chain"], self.seen["chain_complete"] = presented_chain(tls)

    async def _quit(self, *, last_step: bool = False) -> None:
        """Say QUIT and read the reply, best effort: its fate changes no outcome.

        Only a probe that went through every step ends at stage ``QUIT``; one
        that quits early keeps the stage where it stopped.
        """
        if self.writer is None or self.writer.is_closing():
            return
        previous = self.stage
        started = self._begin(ProbeStage.QUIT)
        try:
            async with asyncio.timeout(self.connector.quit_timeout):
                self.writer.write(b"QUIT\r\n")
                await self.writer.drain()
                assert self.reader is not None
                reader = ReplyReader()
                while reader.feed(await self.reader.readuntil(b"\n")) is None:
                    pass
        except (TimeoutError, ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        except (asyncio.LimitOverrunError, MessageSyntaxError):
            pass
        else:
            self._end(started)
        if not last_step:
            self.stage = previous

    async def _close(self) -> None:
        if self.writer is None:
            return
        self.writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.connector.quit_timeout):
                await self.writer.wait_closed()


def presented_chain(tls: ssl.SSLObject) -> tuple[tuple[bytes, ...], bool]:
    """The certificates the peer sent, DER, leaf first, and whether that is all of them.

    Uses ``get_unverified_chain()`` (public from Python 3.13, on the private
    ``_ssl`` object from 3.10); falls back to the leaf alone.
    """
    getter: Any = getattr(tls, "get_unverified_chain", None)
    if getter is None:
        inner = getattr(tls, "_sslobj", None)
        getter = getattr(inner, "get_unverified_chain", None)
    if getter is not None:
        try:
            certs = getter() or []
            der = tuple(
                c if isinstance(c, bytes) else c.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
                for c in certs
            )
        except (AttributeError, TypeError, ValueError, ssl.SSLError):
            der = ()
        if der:
            return der, True
    leaf = tls.getpeercert(binary_form=True)
    return ((leaf,) if leaf else ()), False


def _ack_quickly(writer: asyncio.StreamWriter) -> None:
    """Ask Linux to acknowledge what arrives next at once (``TCP_QUICKACK``).

    A TLS 1.3 server sends its NewSessionTicket after the handshake, while the
    client's EHLO is already on its way: the ticket arrives when the client
    has nothing to send, so its kernel delays the ACK (up to 40 ms), and a
    server with Nagle's algorithm on holds its EHLO reply until that ACK
    comes. Quick-ACK mode is not sticky (the kernel leaves it on its own), so
    it is asked for after each command sent inside TLS. Measured against
    Postfix on loopback, this took the EHLO after TLS from about 40 ms to
    under 1 ms. Elsewhere (no ``TCP_QUICKACK``) it does nothing.
    """
    option = getattr(socket, "TCP_QUICKACK", None)
    raw = writer.get_extra_info("socket")
    if option is None or raw is None:
        return
    with contextlib.suppress(OSError):
        raw.setsockopt(socket.IPPROTO_TCP, option, 1)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if str(exc) else text
