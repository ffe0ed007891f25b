"""HttpsClient limits not covered elsewhere: the cap on a report upload's reply."""

from __future__ import annotations

import asyncio
import ssl

import pytest
import trustme

from mtasecure import TransportTimeout
from mtasecure.certs import TrustStore
from mtasecure.transport import http as shell_http
from mtasecure.transport.http import MAX_UPLOAD_REPLY_BYTES, HttpsClient
from tests.test_sts_fetch_http import raw_resolver, serve_once


@pytest.fixture(scope="module")
def pki() -> tuple[trustme.CA, TrustStore]:
    ca = trustme.CA()
    return ca, TrustStore.from_pem(ca.cert_pem.bytes())


def test_the_upload_reply_cap_is_sixty_four_kib() -> None:
    assert MAX_UPLOAD_REPLY_BYTES == 65536


async def test_an_upload_reply_is_read_up_to_the_cap(
    pki: tuple[trustme.CA, TrustStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    ca, trust = pki
    monkeypatch.setattr(shell_http, "MAX_UPLOAD_REPLY_BYTES", 100)
    body = b"y" * 5000
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    server, port, seen = await serve_once(ca, answer)
    async with server, HttpsClient(resolver=raw_resolver(), trust=trust) as http:
        response = await http.post(
            f"https://mta-sts.raw.example:{port}/report",
            body=b"{}",
            content_type="application/tlsrpt+json",
            timeout=5,
        )
    assert response.status == 200
    assert response.truncated
    assert len(response.body) == 101
    assert seen[0].lower().startswith(b"post /report http/1.1\r\n")


async def test_an_upload_reply_within_the_cap_is_whole(pki: tuple[trustme.CA, TrustStore]) -> None:
    ca, trust = pki
    body = b"z" * MAX_UPLOAD_REPLY_BYTES
    answer = b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    server, port, _ = await serve_once(ca, answer)
    async with server, HttpsClient(resolver=raw_resolver(), trust=trust) as http:
        response = await http.post(
            f"https://mta-sts.raw.example:{port}/",
            body=b"{}",
            content_type="application/tlsrpt+gzip",
            timeout=5,
        )
    assert (response.status, response.truncated, len(response.body)) == (201, False, len(body))


async def test_a_silent_upload_target_times_out(pki: tuple[trustme.CA, TrustStore]) -> None:
    ca, trust = pki
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("mta-sts.raw.example").configure_cert(context)
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    async with server, HttpsClient(resolver=raw_resolver(), trust=trust) as http:
        with pytest.raises(TransportTimeout, match=r"within 0\.5 s"):
            await http.post(
                f"https://mta-sts.raw.example:{port}/",
                body=b"{}",
                content_type="application/tlsrpt+json",
                timeout=0.5,
            )
        for writer in held:
            writer.close()
