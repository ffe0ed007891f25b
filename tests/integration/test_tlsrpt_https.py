"""HTTPS report upload (RFC 8460 §5.4) to a real nginx on loopback.

nginx terminates TLS with a certificate minted by trustme for this test and
proxies ``/tlsrpt`` to a small Python receiver, which keeps every body and
content type it gets and answers with a status the test scripts.
"""

from __future__ import annotations

import gzip
import http.server
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from random import Random

import pytest
import trustme

from mtasecure.certs import TrustStore
from mtasecure.results import FailureReason
from mtasecure.tlsrpt import (
    ReportOptions,
    ReportWindow,
    TlsRptCollector,
    build_reports,
    parse_report,
)
from mtasecure.tlsrpt._submit import RetryPolicy
from mtasecure.transport.http import HttpsClient
from mtasecure.transport.report_submit import submit_report
from tests._tlsrpt_support import assert_same_totals, parsedmarc
from tests.integration.servers import (
    LOOPBACK,
    free_port,
    require_binary,
    stop_process,
    wait_for_port,
)

pytestmark = pytest.mark.integration

NGINX_CONF = """\
daemon off;
master_process off;
pid {root}/nginx.pid;
error_log {root}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {root}/access.log;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    client_max_body_size 10m;
    server {{
        listen {host}:{port} ssl;
        server_name localhost;
        ssl_certificate {root}/cert.pem;
        ssl_certificate_key {root}/key.pem;
        location = /tlsrpt {{
            proxy_pass http://{host}:{backend}/received;
            proxy_set_header Content-Type $content_type;
        }}
        location = /big {{ return 200 "{big}"; }}
        location / {{ return 404; }}
    }}
}}
"""


@dataclass
class Receiver:
    statuses: list[int] = field(default_factory=list)
    bodies: list[tuple[str, str, bytes]] = field(default_factory=list)


@dataclass
class Endpoint:
    url: str
    ca: trustme.CA
    receiver: Receiver


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    nginx = require_binary("nginx")
    root = tmp_path_factory.mktemp("nginx")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", LOOPBACK)
    cert.private_key_pem.write_to_path(str(root / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(root / "cert.pem"))
    receiver = Receiver()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            receiver.bodies.append((self.path, self.headers.get("content-type", ""), body))
            status = receiver.statuses.pop(0) if receiver.statuses else 200
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    backend = http.server.ThreadingHTTPServer((LOOPBACK, 0), Handler)
    thread = threading.Thread(target=backend.serve_forever, daemon=True)
    thread.start()
    port = free_port()
    (root / "nginx.conf").write_text(
        NGINX_CONF.format(
            root=root, host=LOOPBACK, port=port, backend=backend.server_port, big="x" * 1000
        )
    )
    log = root / "nginx.out"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [nginx, "-c", str(root / "nginx.conf"), "-p", str(root)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, process=process, log=root / "error.log")
        yield Endpoint(url=f"https://localhost:{port}/tlsrpt", ca=ca, receiver=receiver)
    finally:
        stop_process(process)
        backend.shutdown()
        backend.server_close()


def _report():  # type: ignore[no-untyped-def]
    c = TlsRptCollector()
    for _ in range(41):
        c.record("example.net", None, None)
    c.record("example.net", None, FailureReason.CERTIFICATE_EXPIRED, sending_ip="192.0.2.1")
    batch = c.drain(ReportWindow.containing(datetime(2026, 3, 1, tzinfo=UTC)))
    assert batch is not None
    options = ReportOptions(organization_name="Sender", contact_info="tlsrpt@mail.sender.example")
    return build_reports(batch, options)[0]


async def test_report_is_posted_through_nginx(endpoint: Endpoint) -> None:
    endpoint.receiver.bodies.clear()
    report = _report()
    client = HttpsClient(trust=_trust(endpoint.ca))
    try:
        (outcome,) = await submit_report(report, [endpoint.url], http=client)
    finally:
        await client.aclose()
    assert outcome.delivered, outcome.detail
    assert outcome.detail == "HTTP 200"
    ((path, content_type, body),) = endpoint.receiver.bodies
    assert path == "/received"
    assert content_type == "application/tlsrpt+gzip"
    assert body == report.gzip
    assert parse_report(body) == report.report
    assert_same_totals(
        parsedmarc().parse_smtp_tls_report_json(gzip.decompress(body)), report.report
    )


async def test_server_errors_are_retried_until_accepted(endpoint: Endpoint) -> None:
    endpoint.receiver.bodies.clear()
    endpoint.receiver.statuses[:] = [503, 500]
    client = HttpsClient(trust=_trust(endpoint.ca))
    retry = RetryPolicy(first_delay=0.05, max_delay=0.2, total=10, attempt_timeout=10)
    try:
        (outcome,) = await submit_report(
            _report(), [endpoint.url], http=client, retry=retry, rng=Random(1)
        )
    finally:
        await client.aclose()
    assert outcome.delivered
    assert outcome.attempts == 3
    assert len(endpoint.receiver.bodies) == 3


async def test_untrusted_certificate_is_a_failed_delivery_not_an_exception(
    endpoint: Endpoint,
) -> None:
    client = HttpsClient(trust=_trust(trustme.CA()))
    retry = RetryPolicy(max_attempts=1)
    try:
        (outcome,) = await submit_report(_report(), [endpoint.url], http=client, retry=retry)
    finally:
        await client.aclose()
    assert not outcome.delivered
    assert "CERTIFICATE_VERIFY_FAILED" in outcome.detail or "certificate" in outcome.detail.lower()


def _trust(ca: trustme.CA) -> TrustStore:
    return TrustStore.from_pem(ca.cert_pem.bytes())


async def test_client_caps_what_it_reads(endpoint: Endpoint) -> None:
    client = HttpsClient(trust=_trust(endpoint.ca))
    try:
        big = endpoint.url.replace("/tlsrpt", "/big")
        response = await client.get(big, max_bytes=100, timeout=10)
    finally:
        await client.aclose()
    assert response.status == 200
    assert response.truncated
    assert len(response.body) == 101


async def test_client_timeout_is_a_transport_timeout() -> None:
    import asyncio

    from mtasecure.errors import TransportTimeout

    writers: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.read()  # says nothing until the client goes away
        writer.close()

    server = await asyncio.start_server(silent, LOOPBACK, 0)
    port = server.sockets[0].getsockname()[1]
    client = HttpsClient(trust=_trust(trustme.CA()))
    try:
        with pytest.raises(TransportTimeout):
            await client.post(
                f"https://{LOOPBACK}:{port}/x", body=b"x", content_type="x/y", timeout=0.3
            )
    finally:
        await client.aclose()
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()
