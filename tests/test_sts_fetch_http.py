"""The default HttpsClient where it fails before any HTTP is spoken (no server needed).

What it does against real servers is in tests/integration/test_sts_discovery.py.
"""

from __future__ import annotations

import asyncio
import socket
import ssl

import pytest
import trustme

from mtasecure import HttpError, UsageError
from mtasecure.certs import TrustStore
from mtasecure.testing import FakeResolver
from mtasecure.transport import HttpClient
from mtasecure.transport.http import (
    MAX_ADDRESSES,
    MAX_HEADER_BYTES,
    AsyncioBackend,
    HttpsClient,
    ssl_context,
)


@pytest.fixture(scope="module")
def trust() -> TrustStore:
    return TrustStore.from_pem(trustme.CA().cert_pem.bytes())


def resolver() -> FakeResolver:
    fake = FakeResolver()
    fake.add("mta-sts.private.example", "A", ["10.0.0.1"])
    fake.add("mta-sts.v6only.example", "AAAA", ["2001:db8::1", "::1"])
    fake.add("mta-sts.public.example", "A", ["192.0.2.1", "8.8.8.8"])
    fake.add("mta-sts.many.example", "A", [f"8.8.8.{i}" for i in range(1, 9)])
    fake.add("mta-sts.mixed.example", "A", ["127.0.0.1"])
    fake.add("mta-sts.mixed.example", "AAAA", ["2001:4860::1"])
    fake.add_failure("mta-sts.broken.example")
    return fake


async def test_is_an_http_client(trust: TrustStore) -> None:
    async with HttpsClient(resolver=resolver(), trust=trust) as http:
        assert isinstance(http, HttpClient)


@pytest.mark.parametrize("url", ["http://mta-sts.example.com/x", "not a url", "https:///path"])
async def test_only_https_urls(trust: TrustStore, url: str) -> None:
    async with HttpsClient(resolver=resolver(), trust=trust) as http:
        with pytest.raises(HttpError, match="URL"):
            await http.get(url, max_bytes=10, timeout=1)


async def test_bad_timeouts_are_usage_errors(trust: TrustStore) -> None:
    with pytest.raises(UsageError):
        HttpsClient(trust=trust, connect_timeout=0)
    async with HttpsClient(resolver=resolver(), trust=trust) as http:
        with pytest.raises(UsageError):
            await http.get("https://mta-sts.public.example/", max_bytes=10, timeout=0)


async def test_addresses_a_then_aaaa_and_bounded() -> None:
    backend = AsyncioBackend(resolver=resolver())
    assert await backend.addresses("mta-sts.public.example", 443) == ["192.0.2.1", "8.8.8.8"]
    assert await backend.addresses("mta-sts.v6only.example", 443) == ["2001:db8::1", "::1"]
    assert len(await backend.addresses("mta-sts.many.example", 443)) == MAX_ADDRESSES
    assert await backend.addresses("192.0.2.7", 443) == ["192.0.2.7"]
    assert await backend.addresses("[::1]", 443) == ["::1"]


async def test_no_address_is_an_http_error() -> None:
    backend = AsyncioBackend(resolver=resolver())
    with pytest.raises(HttpError, match="no A or AAAA record"):
        await backend.addresses("mta-sts.nothing.example", 443)
    with pytest.raises(HttpError, match=r"lookup of mta-sts\.broken\.example fails"):
        await backend.addresses("mta-sts.broken.example", 443)


async def test_public_only_guard() -> None:
    guarded = AsyncioBackend(resolver=resolver(), public_only=True)
    with pytest.raises(HttpError, match=r"non-public address 10\.0\.0\.1") as caught:
        await guarded.addresses("mta-sts.private.example", 443)
    assert not caught.value.certificate
    for literal in ("127.0.0.1", "::1", "169.254.1.1", "100.64.0.1", "192.168.1.1", "fe80::1"):
        with pytest.raises(HttpError, match="non-public"):
            await guarded.addresses(literal, 443)
    # Documentation ranges are not global either; only 8.8.8.8 survives.
    assert await guarded.addresses("mta-sts.public.example", 443) == ["8.8.8.8"]
    # A records are tried first; a loopback A record does not make the name usable.
    with pytest.raises(HttpError, match="non-public"):
        await guarded.addresses("mta-sts.mixed.example", 443)


async def test_guard_applies_to_the_whole_get(trust: TrustStore) -> None:
    fake = resolver()
    async with HttpsClient(resolver=fake, trust=trust, public_only=True) as http:
        with pytest.raises(HttpError, match="non-public"):
            await http.get(
                "https://mta-sts.private.example/.well-known/mta-sts.txt", max_bytes=10, timeout=2
            )
    assert ("mta-sts.private.example", "A") in fake.queries


async def test_refused_connection_is_not_a_certificate_failure(trust: TrustStore) -> None:
    with socket.socket() as probe:  # a loopback port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    fake = FakeResolver()
    fake.add("mta-sts.closed.example", "A", ["127.0.0.1"])
    async with HttpsClient(resolver=fake, trust=trust) as http:
        with pytest.raises(HttpError, match="cannot connect") as caught:
            await http.get(f"https://mta-sts.closed.example:{port}/", max_bytes=10, timeout=2)
    assert not caught.value.certificate


def test_ssl_context_trusts_exactly_the_store(trust: TrustStore) -> None:
    context = ssl_context(trust)
    assert len(context.get_ca_certs()) == len(trust)
    assert context.check_hostname


# --- the direct exchange against a tiny loopback TLS server (what nginx never sends) -------------


@pytest.fixture(scope="module")
def pki() -> tuple[trustme.CA, TrustStore]:
    ca = trustme.CA()
    return ca, TrustStore.from_pem(ca.cert_pem.bytes())


async def serve_once(ca: trustme.CA, answer: bytes) -> tuple[asyncio.Server, int, list[bytes]]:
    """A TLS server for mta-sts.raw.example that records the request and sends ``answer``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("mta-sts.raw.example").configure_cert(context)
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    return server, server.sockets[0].getsockname()[1], seen


def raw_resolver() -> FakeResolver:
    fake = FakeResolver()
    fake.add("mta-sts.raw.example", "A", ["127.0.0.1"])
    return fake


async def test_request_names_the_host_and_port_and_closes(
    pki: tuple[trustme.CA, TrustStore],
) -> None:
    ca, trust = pki
    answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
    server, port, seen = await serve_once(ca, answer)
    async with server, HttpsClient(resolver=raw_resolver(), trust=trust) as http:
        response = await http.get(
            f"https://mta-sts.raw.example:{port}/.well-known/mta-sts.txt?x=1",
            max_bytes=100,
            timeout=5,
        )
    assert (response.status, response.body, response.truncated) == (200, b"hello", False)
    assert ("content-type", "text/plain") in response.headers
    request = seen[0].decode("ascii").lower()
    assert request.startswith("get /.well-known/mta-sts.txt?x=1 http/1.1\r\n")
    assert f"host: mta-sts.raw.example:{port}\r\n" in request
    assert "connection: close\r\n" in request
    assert "accept-encoding: identity\r\n" in request


async def test_chunked_body_is_capped(pki: tuple[trustme.CA, TrustStore]) -> None:
    ca, trust = pki
    chunks = b"".join(b"400\r\n" + b"x" * 1024 + b"\r\n" for _ in range(8)) + b"0\r\n\r\n"
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
    server, port, _ = await serve_once(ca, answer)
    async with server, HttpsClient(resolver=raw_resolver(), trust=trust) as http:
        response = await http.get(f"https://mta-sts.raw.example:{port}/", max_bytes=1500, timeout=5)
    assert response.truncated
    assert len(response.body) == 1501


async def test_header_section_is_bounded(pki: tuple[trustme.CA, TrustStore]) -> None:
    ca, trust = pki
    huge = b"X-Pad: " + b"a" * MAX_HEADER_BYTES + b"\r\n"
    server, port, _ = await serve_once(ca, b"HTTP/1.1 200 OK\r\n" + huge + b"\r\n")
    async with server, HttpsClient(resolver=raw_resolver(), trust=trust) as http:
        with pytest.raises(HttpError, match="header section over") as caught:
            await http.get(f"https://mta-sts.raw.example:{port}/", max_bytes=10, timeout=5)
    assert not caught.value.certificate


@pytest.mark.parametrize(
    "answer",
    [b"", b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort", b"SSH-2.0-OpenSSH\r\n\r\n"],
)
async def test_broken_answers_are_http_errors(
    pki: tuple[trustme.CA, TrustStore], answer: bytes
) -> None:
    ca, trust = pki
    server, port, _ = await serve_once(ca, answer)
    async with server, HttpsClient(resolver=raw_resolver(), trust=trust) as http:
        with pytest.raises(HttpError):
            await http.get(f"https://mta-sts.raw.example:{port}/", max_bytes=100, timeout=5)


async def test_wrong_name_is_a_certificate_failure(pki: tuple[trustme.CA, TrustStore]) -> None:
    ca, trust = pki
    server, port, _ = await serve_once(ca, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    fake = FakeResolver()
    fake.add("mta-sts.other.example", "A", ["127.0.0.1"])
    async with server, HttpsClient(resolver=fake, trust=trust) as http:
        with pytest.raises(HttpError) as caught:
            await http.get(f"https://mta-sts.other.example:{port}/", max_bytes=10, timeout=5)
    assert caught.value.certificate


def test_clients_share_one_context_per_store(trust: TrustStore) -> None:
    assert HttpsClient(trust=trust)._context is HttpsClient(trust=trust)._context
