"""The asyncio STARTTLS probe against scripted in-process servers on loopback.

Each test starts an asyncio server on 127.0.0.1 (or ::1) that plays one
server behaviour — well-behaved, rude, broken or lying — and asserts the typed
outcome and the stage at which the probe stopped (RFC 5321, RFC 3207).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st

from mtasecure import UsageError
from mtasecure._smtpwire import MAX_REPLY_LINE_OCTETS, MAX_REPLY_LINES
from mtasecure.testing import FakeSmtp
from mtasecure.transport import ProbeOutcome, ProbeStage, SmtpConnector
from mtasecure.transport import smtp as smtp_module
from mtasecure.transport.smtp import (
    BANNER_TIMEOUT,
    COMMAND_TIMEOUT,
    CONNECT_TIMEOUT,
    QUIT_TIMEOUT,
    TLS_HANDSHAKE_TIMEOUT,
    AsyncioSmtpConnector,
    presented_chain,
)

HOST = "mx.example.test"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def fast(helo_name: str | None = None) -> AsyncioSmtpConnector:
    """A connector with short step timeouts, so a hung test fails quickly."""
    return AsyncioSmtpConnector(
        helo_name=helo_name, banner_timeout=2.0, command_timeout=2.0, tls_handshake_timeout=2.0
    )


@pytest.fixture(scope="module")
def pki() -> dict[str, Any]:
    ca = trustme.CA()
    intermediate = ca.create_child_ca()
    leaf = intermediate.issue_cert(HOST)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(context)
    seen_sni: list[str | None] = []

    def remember(obj: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        seen_sni.append(name)

    context.sni_callback = remember
    chain = [
        x509.load_pem_x509_certificate(blob.bytes()).public_bytes(Encoding.DER)
        for blob in leaf.cert_chain_pems
    ]
    return {"context": context, "chain": tuple(chain), "sni": seen_sni}


@contextlib.asynccontextmanager
async def serve(handler: Handler, host: str = "127.0.0.1") -> AsyncIterator[int]:
    """Run ``handler`` for each connection on a free loopback port."""
    tasks: list[asyncio.Task[None]] = []

    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await handler(reader, writer)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(wrapped, host, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def say(writer: asyncio.StreamWriter, *lines: str) -> None:
    writer.write("".join(line + "\r\n" for line in lines).encode())
    await writer.drain()


async def hear(reader: asyncio.StreamReader) -> str:
    return (await reader.readuntil(b"\n")).decode().rstrip("\r\n")


EHLO_LINES = ("250-mx.example.test hello", "250-PIPELINING", "250-SIZE 1000", "250 STARTTLS")


def good_server(
    context: ssl.SSLContext,
    *,
    after_tls: tuple[str, ...] = ("250-mx.example.test", "250-REQUIRETLS", "250 8BITMIME"),
    log: list[str] | None = None,
) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await say(writer, "220 mx.example.test ESMTP")
        while True:
            command = await hear(reader)
            if log is not None:
                log.append(command)
            verb = command.split(" ")[0].upper()
            if verb == "EHLO":
                tls = writer.get_extra_info("ssl_object") is not None
                await say(writer, *(after_tls if tls else EHLO_LINES))
            elif verb == "STARTTLS":
                await say(writer, "220 2.0.0 go ahead")
                await writer.start_tls(context)
            elif verb == "QUIT":
                await say(writer, "221 2.0.0 bye")
                return
            else:
                await say(writer, "502 5.5.1 no")

    return handler


async def test_a_good_server_gives_ok_with_the_whole_chain(pki: dict[str, Any]) -> None:
    log: list[str] = []
    async with serve(good_server(pki["context"], log=log)) as port:
        result = await fast().probe(HOST, "127.0.0.1", port=port)
    assert result.outcome is ProbeOutcome.OK, result.detail
    assert result.stage is ProbeStage.QUIT
    assert result.ok
    assert result.tls_established
    assert result.starttls_offered
    assert result.banner is not None
    assert result.banner.code == 220
    assert result.ehlo is not None
    assert result.ehlo.names == ("PIPELINING", "SIZE", "STARTTLS")
    assert result.ehlo.params("size") == ("1000",)
    assert result.ehlo_tls is not None
    assert result.ehlo_tls.names == ("REQUIRETLS", "8BITMIME")
    assert result.requiretls_offered
    assert result.tls_version in {"TLSv1.2", "TLSv1.3"}
    assert result.tls_cipher
    assert result.chain == pki["chain"]
    assert len(result.chain) == 2
    assert result.chain_complete
    assert (
        result.certificates()[0].subject == x509.load_der_x509_certificate(pki["chain"][0]).subject
    )
    assert result.sni == HOST
    assert pki["sni"][-1] == HOST
    assert [t.stage for t in result.timings] == [
        ProbeStage.CONNECT,
        ProbeStage.BANNER,
        ProbeStage.EHLO,
        ProbeStage.STARTTLS,
        ProbeStage.TLS_HANDSHAKE,
        ProbeStage.EHLO_AFTER_TLS,
        ProbeStage.QUIT,
    ]
    assert all(t.seconds >= 0 for t in result.timings)
    assert result.seconds(ProbeStage.TLS_HANDSHAKE) is not None
    # Default EHLO name: the address literal of our end (RFC 5321 §4.1.3).
    assert log == ["EHLO [127.0.0.1]", "STARTTLS", "EHLO [127.0.0.1]", "QUIT"]


async def test_requiretls_offered_only_in_the_clear_does_not_count(pki: dict[str, Any]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await good_server(pki["context"], after_tls=("250 mx.example.test",))(reader, writer)

    async with serve(handler) as port:
        result = await fast().probe(HOST, "127.0.0.1", port=port)
    assert result.ok
    assert not result.requiretls_offered


async def test_helo_name_and_sni_follow_the_arguments(pki: dict[str, Any]) -> None:
    log: list[str] = []
    async with serve(good_server(pki["context"], log=log)) as port:
        connector = fast("probe.example.net")
        result = await connector.probe("MX.Example.TEST.", "127.0.0.1", port=port)
    assert result.ok
    assert log[0] == "EHLO probe.example.net"
    assert result.host == HOST
    assert result.sni == HOST
    assert pki["sni"][-1] == HOST


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this host")
async def test_ipv6_loopback_and_its_address_literal(pki: dict[str, Any]) -> None:
    log: list[str] = []
    async with serve(good_server(pki["context"], log=log), host="::1") as port:
        result = await fast().probe(HOST, "::1", port=port)
    assert result.ok, result.detail
    assert result.address == "::1"
    assert log[0] == "EHLO [IPv6:::1]"


async def test_refused_connection() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = await fast().probe(HOST, "127.0.0.1", port=port)
    assert (result.outcome, result.stage) == (ProbeOutcome.CONNECT_FAILED, ProbeStage.CONNECT)
    assert result.banner is None
    assert result.timings == ()


async def test_server_that_closes_before_the_banner() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        return

    async with serve(handler) as port:
        result = await fast().probe(HOST, "127.0.0.1", port=port)
    assert (result.outcome, result.stage) == (ProbeOutcome.DROPPED, ProbeStage.BANNER)


async def test_silent_server_times_out_at_the_banner() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    async with serve(handler) as port:
        connector = AsyncioSmtpConnector(banner_timeout=0.2)
        result = await connector.probe(HOST, "127.0.0.1", port=port)
    assert (result.outcome, result.stage) == (ProbeOutcome.TIMEOUT, ProbeStage.BANNER)
    assert "0.2s" in result.detail


async def test_a_slow_drip_reply_is_bounded_by_the_step_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await say(writer, "220 mx")
        await hear(reader)
        for _ in range(300):
            writer.write(b"250-X\r\n")
            await writer.drain()
            await asyncio.sleep(0.01)

    async with serve(handler) as port:
        connector = AsyncioSmtpConnector(command_timeout=0.3)
        result = await connector.probe(HOST, "127.0.0.1", port=port)
    # 300 lines would also pass MAX_REPLY_LINES; the clock runs out first.
    assert (result.outcome, result.stage) == (ProbeOutcome.TIMEOUT, ProbeStage.EHLO)


@pytest.mark.parametrize("code", ["554", "421"])
async def test_a_refusing_banner_is_banner_rejected_and_quit_is_sent(code: str) -> None:
    log: list[str] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await say(writer, f"{code}-mx.example.test go away", f"{code} really")
        log.append(await hear(reader))
        await say(writer, "221 bye")

    async with serve(handler) as port:
        result = await fast().probe(HOST, "127.0.0.1", port=port)
    assert (result.outcome, result.stage) == (ProbeOutcome.BANNER_REJECTED, ProbeStage.BANNER)
    assert result.banner is not None
    assert result.banner.code == int(code)
    assert result.banner.lines == ("mx.example.test go away", "really")
    assert log == ["QUIT"]


async def test_ehlo_refused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await say(writer, "220 mx")
        await hear(reader)
        await say(writer, "502 5.5.2 EHLO not implemented")
        await hear(reader)

    async with serve(handler) as port:
        result = await fast().probe(HOST, "127.0.0.1", port=port)
    assert (result.outcome, result.stage) == (ProbeOutcome.EHLO_FAILED, ProbeStage.EHLO)
    assert "502" in result.detail


async def test_starttls_not_offered_quits_politely() -> None:
    log: list[str] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await say(writer, "220-mx.example.test", "220 multi-line banner")
        log.append(await hear(reader))
        await say(writer, "250-mx.example.test", "250 PIPELINING")
        log.append(await hear(reader))
        await say(writer, "221 bye")

    async with serve(handler) as port:
        result = await fast().probe(HOST, "127.0.0.1", port=port)
    assert (result.outcome, result.stage) == (ProbeOutcome.STARTTLS_NOT_OFFERED, ProbeStage.EHLO)
    assert not result.starttls_offered
    assert not result.tls_established
    assert result.ehlo is not None
    assert result.ehlo.names == ("PIPELINING",)
    assert log[1] == "QUIT"


async def test_starttls_offered_then_refused_with_454() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await say(writer, "220 mx")
        await hear(reader)
        await say(writer, *EHLO_LINES)
        await hear(reader)
        await say(writer, "454 4.7.0 TLS not available due to temporary reason")
        await hear(reader)

    async with serve(handler) as port:
        result = await fast().probe(HOST, "127.0.0.1", port=port)
    assert (result.outcome, result.stage) == (ProbeOutcome.STARTTLS_REFUSED, ProbeStage.STARTTLS)
    assert result.starttls_reply is not None
    assert result.starttls_reply.code == 454
    assert result.starttls_offered
    assert not result.tls_established


async def test_220_to_starttls_then_plaintext_is_a_failed_handshake() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await say(writer, "220 mx")
        await hear(reader)
        await say(writer, *EHLO_LINES)
        await hear(reader)
        await say(writer, "220 go ahead")
        await reader.read(1)  # the ClientHello arrives; answer in clear text
        await say(writer, "500 this is not TLS at all, not even close to a TLS record")
        await asyncio.sleep(1)

    async with serve(handler) as port:
        result = await fast().probe(HOST, "127.0.0.1", port=port)
    assert (result.outcome, result.stage) == (
        ProbeOutcome.TLS_HANDSHAKE_FAILED,
        ProbeStage.TLS_HANDSHAKE,
    )
    assert result.chain == ()
    assert result.tls_version is None


async def test_220_to_starttls_then_close_is_a_failed_handshake() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await say(writer, "220 mx")
        await hear(reader)
        await say(writer, *EHLO_LINES)
        await hear(reader)
        await say(writer, "220 go ahead")

    async with serve(handler) as port:
        result = await fast().probe(HOST, "127.0.0.1", port=port)
    assert (result.outcome, result.stage) == (
        ProbeOutcome.TLS_HANDSHAKE_FAILED,
        ProbeStage.TLS_HANDSHAKE,
    )


async def test_220_to_starttls_then_silence_times_out_in_the_handshake() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await say(writer, "220 mx")
        await hear(reader)
        await say(writer, *EHLO_LINES)
        await hear(reader)
        await say(writer, "220 go ahead")
        await asyncio.sleep(30)

    async with serve(handler) as port:
        connector = AsyncioSmtpConnector(tls_handshake_timeout=0.3)
        result = await connector.probe(HOST, "127.0.0.1", port=port)
    assert (result.outcome, result.stage) == (ProbeOutcome.TIMEOUT, ProbeStage.TLS_HANDSHAKE)


async def test_data_after_220_to_starttls_is_refused_as_injection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await say(writer, "220 mx")
        await hear(reader)
        await say(writer, *EHLO_LINES)
        await hear(reader)
        await say(writer, "220 go ahead", "250 injected before TLS")
        await asyncio.sleep(1)

    async with serve(handler) as port:
        result = await fast().probe(HOST, "127.0.0.1", port=port)
    assert (result.outcome, result.stage) == (ProbeOutcome.PROTOCOL_ERROR, ProbeStage.STARTTLS)
    assert "RFC 3207 §5" in result.detail


async def test_drop_when_starttls_is_sent() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await say(writer, "220 mx")
        await hear(reader)
        await say(writer, *EHLO_LINES)
        await hear(reader)

    async with serve(handler) as port:
        result = await fast().probe(HOST, "127.0.0.1", port=port)
    assert (result.outcome, result.stage) == (ProbeOutcome.DROPPED, ProbeStage.STARTTLS)


async def test_drop_after_the_handshake_keeps_the_tls_facts(pki: dict[str, Any]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await say(writer, "220 mx")
        await hear(reader)
        await say(writer, *EHLO_LINES)
        await hear(reader)
        await say(writer, "220 go ahead")
        await writer.start_tls(pki["context"])
        writer.close()

    async with serve(handler) as port:
        result = await fast().probe(HOST, "127.0.0.1", port=port)
    assert (result.outcome, result.stage) == (ProbeOutcome.DROPPED, ProbeStage.EHLO_AFTER_TLS)
    assert result.tls_established
    assert result.chain == pki["chain"]
    assert not result.ok


async def test_ehlo_refused_inside_tls(pki: dict[str, Any]) -> None:
    handler = good_server(pki["context"], after_tls=("554 5.7.1 go away",))
    async with serve(handler) as port:
        result = await fast().probe(HOST, "127.0.0.1", port=port)
    assert (result.outcome, result.stage) == (ProbeOutcome.EHLO_FAILED, ProbeStage.EHLO_AFTER_TLS)
    assert result.tls_established


def _banner_server(*lines: bytes) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"".join(lines))
        await writer.drain()
        with contextlib.suppress(asyncio.IncompleteReadError):
            await hear(reader)
            await say(writer, "250-mx", "250 PIPELINING")
            await hear(reader)
            await say(writer, "221 bye")

    return handler


async def test_a_banner_line_of_exactly_the_limit_is_read() -> None:
    line = b"220 " + b"x" * (MAX_REPLY_LINE_OCTETS - 6) + b"\r\n"
    assert len(line) == MAX_REPLY_LINE_OCTETS
    async with serve(_banner_server(line)) as port:
        result = await fast().probe(HOST, "127.0.0.1", port=port)
    assert result.outcome is ProbeOutcome.STARTTLS_NOT_OFFERED, result.detail


@pytest.mark.parametrize("extra", [1, 2, 10_000])
async def test_a_banner_line_over_the_limit_is_a_protocol_error(extra: int) -> None:
    line = b"220 " + b"x" * (MAX_REPLY_LINE_OCTETS - 6 + extra) + b"\r\n"
    async with serve(_banner_server(line)) as port:
        result = await fast().probe(HOST, "127.0.0.1", port=port)
    assert (result.outcome, result.stage) == (ProbeOutcome.PROTOCOL_ERROR, ProbeStage.BANNER)
    assert str(MAX_REPLY_LINE_OCTETS) in result.detail


async def test_too_many_lines_is_a_protocol_error() -> None:
    lines = b"220-x\r\n" * MAX_REPLY_LINES + b"220 x\r\n"
    async with serve(_banner_server(lines)) as port:
        result = await fast().probe(HOST, "127.0.0.1", port=port)
    assert (result.outcome, result.stage) == (ProbeOutcome.PROTOCOL_ERROR, ProbeStage.BANNER)


@pytest.mark.parametrize(
    "banner",
    [b"220-mx\r\n250 mixed codes\r\n", b"hello there\r\n", b"620 out of range\r\n"],
)
async def test_malformed_banners_are_protocol_errors(banner: bytes) -> None:
    async with serve(_banner_server(banner)) as port:
        result = await fast().probe(HOST, "127.0.0.1", port=port)
    assert (result.outcome, result.stage) == (ProbeOutcome.PROTOCOL_ERROR, ProbeStage.BANNER)


async def test_a_malformed_ehlo_keyword_is_a_protocol_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await say(writer, "220 mx")
        await hear(reader)
        await say(writer, "250-mx", "250 -BAD")
        await hear(reader)

    async with serve(handler) as port:
        result = await fast().probe(HOST, "127.0.0.1", port=port)
    assert (result.outcome, result.stage) == (ProbeOutcome.PROTOCOL_ERROR, ProbeStage.EHLO)


async def test_default_timeouts_are_the_named_constants() -> None:
    connector = AsyncioSmtpConnector()
    assert (
        connector.connect_timeout,
        connector.banner_timeout,
        connector.command_timeout,
        connector.tls_handshake_timeout,
        connector.quit_timeout,
    ) == (CONNECT_TIMEOUT, BANNER_TIMEOUT, COMMAND_TIMEOUT, TLS_HANDSHAKE_TIMEOUT, QUIT_TIMEOUT)
    assert smtp_module.SMTP_PORT == 25


@pytest.mark.parametrize(
    ("host", "address", "port"),
    [
        ("not a host", "127.0.0.1", 25),
        ("192.0.2.1", "127.0.0.1", 25),
        (HOST, "mx.example.test", 25),
        (HOST, "127.0.0.1", 0),
        (HOST, "127.0.0.1", 65536),
    ],
)
async def test_bad_arguments_are_usage_errors(host: str, address: str, port: int) -> None:
    with pytest.raises(UsageError):
        await AsyncioSmtpConnector().probe(host, address, port=port)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"banner_timeout": 0},
        {"connect_timeout": -1.0},
        {"helo_name": ""},
        {"helo_name": "a b"},
        {"helo_name": "mx.bücher.example"},
    ],
)
def test_bad_configuration_is_a_usage_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        AsyncioSmtpConnector(**kwargs)


class _LeafOnly:
    """An SSL object from a platform without get_unverified_chain()."""

    def __init__(self, leaf: bytes | None) -> None:
        self.leaf = leaf

    def getpeercert(self, binary_form: bool = False) -> bytes | None:
        return self.leaf


def test_without_get_unverified_chain_the_leaf_is_kept_and_flagged() -> None:
    assert presented_chain(_LeafOnly(b"leaf-der")) == ((b"leaf-der",), False)  # type: ignore[arg-type]
    assert presented_chain(_LeafOnly(None)) == ((), False)  # type: ignore[arg-type]


def test_connectors_satisfy_the_protocol() -> None:
    assert isinstance(AsyncioSmtpConnector(), SmtpConnector)
    assert isinstance(FakeSmtp(), SmtpConnector)


class _RecordingSocket:
    def __init__(self) -> None:
        self.options: list[tuple[int, int, int]] = []

    def setsockopt(self, level: int, option: int, value: int) -> None:
        self.options.append((level, option, value))


class _Writer:
    def __init__(self, raw: object) -> None:
        self.raw = raw

    def get_extra_info(self, name: str) -> object:
        return self.raw if name == "socket" else None


@pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="Linux-only socket option")
def test_quickack_is_requested_after_the_handshake() -> None:
    raw = _RecordingSocket()
    smtp_module._ack_quickly(_Writer(raw))  # type: ignore[arg-type]
    assert raw.options == [(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)]
    smtp_module._ack_quickly(_Writer(None))  # type: ignore[arg-type]  # no socket: no error


_server_lines = st.lists(
    st.one_of(
        st.binary(max_size=80),
        st.sampled_from([b"220 mx", b"250-mx", b"250 STARTTLS", b"220 go", b"454 no", b"250 x"]),
    ),
    max_size=6,
)


@settings(max_examples=40, deadline=None)
@given(banner=_server_lines, replies=_server_lines, close_early=st.booleans())
def test_fuzz_whatever_the_server_sends_the_probe_returns_a_result(
    banner: list[bytes], replies: list[bytes], close_early: bool
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"".join(line + b"\r\n" for line in banner))
        await writer.drain()
        if close_early:
            return
        for line in replies:
            with contextlib.suppress(asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                await asyncio.wait_for(reader.readuntil(b"\n"), 0.2)
            writer.write(line + b"\r\n")
            await writer.drain()

    async def main() -> None:
        async with serve(handler) as port:
            connector = AsyncioSmtpConnector(
                banner_timeout=0.3,
                command_timeout=0.3,
                tls_handshake_timeout=0.3,
                quit_timeout=0.2,
            )
            result = await connector.probe(HOST, "127.0.0.1", port=port)
        assert result.outcome in set(ProbeOutcome)
        assert result.outcome is not ProbeOutcome.OK
        assert (result.detail != "") is (result.outcome is not ProbeOutcome.OK)

    asyncio.run(main())


async def test_a_full_accept_queue_times_out_at_connect() -> None:
    # A listener that never accepts, its queue filled: SYNs go unanswered.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(4):
                filler = socket.socket()
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    filler.connect(("127.0.0.1", port))
                fillers.append(filler)
            result = await AsyncioSmtpConnector(connect_timeout=0.3).probe(
                HOST, "127.0.0.1", port=port
            )
        finally:
            for filler in fillers:
                filler.close()
    assert (result.outcome, result.stage) == (ProbeOutcome.TIMEOUT, ProbeStage.CONNECT)
    assert "0.3s" in result.detail


async def test_an_unanswered_quit_is_bounded_by_the_quit_timeout() -> None:
    log: list[str] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await say(writer, "220 mx")
        await hear(reader)
        await say(writer, "250-mx", "250 PIPELINING")
        log.append(await hear(reader))
        await asyncio.sleep(30)  # never answers QUIT

    async with serve(handler) as port:
        connector = AsyncioSmtpConnector(command_timeout=30, quit_timeout=0.2)
        result = await asyncio.wait_for(connector.probe(HOST, "127.0.0.1", port=port), 10)
    assert (result.outcome, result.stage) == (ProbeOutcome.STARTTLS_NOT_OFFERED, ProbeStage.EHLO)
    assert log == ["QUIT"]
    # The QUIT step did not finish, so it has no timing.
    assert result.seconds(ProbeStage.QUIT) is None
