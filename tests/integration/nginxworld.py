"""Real nginx serving MTA-STS policies over HTTPS on loopback, with a test CA minted at test time.

One nginx listens on one loopback port and picks a ``server`` block by the TLS
server name (SNI), so every policy host below shares the address and port a
client is configured with (``StsSettings.policy_port``), exactly as policy
hosts of different domains may share an address on the Internet. Each
``server`` block is one case of RFC 8461 §3.3:

================  ==========================================================
case              what ``mta-sts.<case>.<zone>`` serves
================  ==========================================================
``valid``         200, ``text/plain``, a valid ``enforce`` policy
``charset``       200, ``text/plain; charset=utf-8``, a valid ``testing`` policy
``mediatype``     200, ``text/html``
``redirect``      301 to the ``valid`` policy
``toobig``        200, ``text/plain``, a body over 64 KiB
``notfound``      404
``invalid``       200, ``text/plain``, a body that is not a policy
``wrongname``     a certificate for another name (trusted CA)
``expired``       an expired certificate (trusted CA)
``untrusted``     a certificate from a CA the client does not trust
``slow``          accepted, then never answered (nginx proxies to a socket
                  that listens but never reads)
================  ==========================================================

:func:`run_nginxworld` writes the config, certificates and files in a
temporary directory and starts ``nginx -g 'daemon off;'``; :func:`dns_records`
gives the ``mta-sts`` A and ``_mta-sts`` TXT records to add to the DNS tree of
:mod:`tests.integration.dnsworld`.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trustme

from tests.integration.servers import (
    LOOPBACK,
    free_port,
    require_binary,
    stop_process,
    wait_for_port,
)

__all__ = ["CASES", "NginxWorld", "dns_records", "policy_text", "run_nginxworld"]

CASES = (
    "valid",
    "charset",
    "mediatype",
    "redirect",
    "toobig",
    "notfound",
    "invalid",
    "wrongname",
    "expired",
    "untrusted",
    "slow",
)
"""The policy domains' first labels, one per case (module docstring)."""

START_TIMEOUT = 15.0
"""Seconds nginx gets to start listening."""


def policy_text(domain: str, mode: str = "enforce") -> str:
    """The policy a case serves: its own MX, one day's ``max_age``."""
    return f"version: STSv1\r\nmode: {mode}\r\nmx: mx.{domain}\r\nmx: *.mx.{domain}\r\nmax_age: 86400\r\n"


def dns_records(zone: str, cases: tuple[str, ...] = CASES, count: int = 0) -> list[str]:
    """Zone lines for each case's ``mta-sts`` host and ``_mta-sts`` record.

    Args:
        zone: the DNS zone the policy domains live in (``signed.example``).
        cases: the cases to publish.
        count: also publish ``d0``..``d<count-1>`` domains served like ``valid``
            (for the benchmark).
    """
    names = [*cases, *(f"d{i}" for i in range(count))]
    lines = []
    for name in names:
        lines.append(f"mta-sts.{name}.{zone}. A {LOOPBACK}")
        lines.append(f'_mta-sts.{name}.{zone}. TXT "v=STSv1; id=1;"')
    return lines


@dataclass
class NginxWorld:
    """A running nginx: where it listens and what a client must trust.

    Attributes:
        port: the HTTPS port every policy host is served on.
        zone: the DNS zone of the policy domains.
        ca: the trusted test CA (``ca.cert_pem.bytes()`` for a trust store).
        directory: config, certificates, logs.
        count: how many ``d<i>`` bulk domains are served.
    """

    port: int
    zone: str
    ca: trustme.CA
    directory: Path
    count: int = 0

    def domain(self, case: str) -> str:
        """The policy domain of ``case``."""
        return f"{case}.{self.zone}"

    def url(self, case: str) -> str:
        """The policy URL of ``case`` on this port."""
        return f"https://mta-sts.{case}.{self.zone}:{self.port}/.well-known/mta-sts.txt"


def _server_block(name: str, cert: Path, key: Path, body: str, port: int) -> str:
    return (
        "  server {\n"
        f"    listen {LOOPBACK}:{port} ssl;\n"
        f"    server_name {name};\n"
        f"    ssl_certificate {cert};\n"
        f"    ssl_certificate_key {key};\n"
        f"{body}"
        "  }\n"
    )


@contextmanager
def run_nginxworld(directory: Path, zone: str, *, count: int = 0) -> Iterator[NginxWorld]:
    """Mint certificates, write the config and files, start nginx; stop it on exit.

    Args:
        directory: an empty directory.
        zone: the DNS zone the policy domains are in.
        count: also serve ``d0``..``d<count-1>`` like ``valid``, each with its
            own certificate (benchmark).
    """
    nginx = require_binary("nginx")
    directory.mkdir(parents=True, exist_ok=True)
    for sub in ("logs", "tmp", "files"):
        (directory / sub).mkdir(exist_ok=True)
    ca = trustme.CA()
    other_ca = trustme.CA()
    port = free_port()
    now = datetime.now(UTC)

    def cert(label: str, issued: trustme.LeafCert) -> tuple[Path, Path]:
        chain = directory / f"{label}.pem"
        key = directory / f"{label}.key"
        chain.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
        key.write_bytes(issued.private_key_pem.bytes())
        return chain, key

    hosts = [f"mta-sts.{c}.{zone}" for c in CASES if c not in ("wrongname", "expired", "untrusted")]
    good = cert("good", ca.issue_cert(*hosts))
    wrong = cert("wrong", ca.issue_cert(f"mta-sts.elsewhere.{zone}"))
    expired = cert(
        "expired",
        ca.issue_cert(
            f"mta-sts.expired.{zone}",
            not_before=now - timedelta(days=30),
            not_after=now - timedelta(days=1),
        ),
    )
    untrusted = cert("untrusted", other_ca.issue_cert(f"mta-sts.untrusted.{zone}"))

    files = directory / "files"
    valid_domain = f"valid.{zone}"
    (files / "valid.txt").write_text(policy_text(valid_domain))
    (files / "charset.txt").write_text(policy_text(f"charset.{zone}", "testing"))
    (files / "toobig.txt").write_text(policy_text(f"toobig.{zone}") + "x: " + "a" * 70000 + "\r\n")
    (files / "invalid.txt").write_text("<html><body>Welcome to nginx!</body></html>\n")
    for i in range(count):
        (files / f"d{i}.txt").write_text(policy_text(f"d{i}.{zone}"))

    # A socket that listens and never reads: the kernel completes the TCP
    # handshake, nginx sends its request, and no answer ever comes.
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.bind((LOOPBACK, 0))
    silent.listen(64)
    silent_port = silent.getsockname()[1]

    def serve(file: str, content_type: str = "text/plain", charset: bool = False) -> str:
        extra = "      charset utf-8;\n      charset_types text/plain;\n" if charset else ""
        return (
            "    location = /.well-known/mta-sts.txt {\n"
            f"      default_type {content_type};\n"
            f"{extra}"
            f"      alias {files / file};\n"
            "    }\n"
            "    location / { return 404; }\n"
        )

    blocks = {
        "valid": (good, serve("valid.txt")),
        "charset": (good, serve("charset.txt", charset=True)),
        "mediatype": (good, serve("valid.txt", "text/html")),
        "redirect": (
            good,
            f"    location / {{ return 301 https://mta-sts.{valid_domain}:{port}/.well-known/mta-sts.txt; }}\n",
        ),
        "toobig": (good, serve("toobig.txt")),
        "notfound": (good, "    location / { return 404; }\n"),
        "invalid": (good, serve("invalid.txt")),
        "wrongname": (wrong, serve("valid.txt")),
        "expired": (expired, serve("valid.txt")),
        "untrusted": (untrusted, serve("valid.txt")),
        "slow": (
            good,
            "    location / {\n"
            f"      proxy_pass http://{LOOPBACK}:{silent_port};\n"
            "      proxy_read_timeout 300s;\n"
            "    }\n",
        ),
    }
    servers = "".join(
        _server_block(f"mta-sts.{case}.{zone}", chain, key, body, port)
        for case, ((chain, key), body) in blocks.items()
    )
    # Bulk domains: one certificate and one server block each, as separate
    # policy hosts would have (a certificate naming all of them would make
    # every handshake carry a thousand names).
    for i in range(count):
        name = f"mta-sts.d{i}.{zone}"
        chain, key = cert(f"d{i}", ca.issue_cert(name))
        servers += _server_block(name, chain, key, serve(f"d{i}.txt"), port)
    config = directory / "nginx.conf"
    config.write_text(
        "worker_processes 1;\n"
        f"pid {directory / 'nginx.pid'};\n"
        f"error_log {directory / 'logs' / 'error.log'} warn;\n"
        "events { worker_connections 4096; }\n"
        "http {\n"
        "  access_log off;\n"
        "  types { }\n"
        f"  client_body_temp_path {directory / 'tmp'};\n"
        f"  proxy_temp_path {directory / 'tmp'};\n"
        f"  fastcgi_temp_path {directory / 'tmp'};\n"
        f"  uwsgi_temp_path {directory / 'tmp'};\n"
        f"  scgi_temp_path {directory / 'tmp'};\n"
        "  server_tokens off;\n"
        "  server_names_hash_max_size 16384;\n"
        "  server_names_hash_bucket_size 128;\n"
        "  keepalive_timeout 10s;\n"
        "  ssl_protocols TLSv1.2 TLSv1.3;\n"
        # The default server for unknown names: refuse the handshake.
        "  server {\n"
        f"    listen {LOOPBACK}:{port} ssl default_server;\n"
        "    ssl_reject_handshake on;\n"
        "  }\n"
        f"{servers}"
        "}\n"
    )
    process: subprocess.Popen[bytes] | None = None
    try:
        with (directory / "logs" / "stderr.log").open("wb") as err:
            process = subprocess.Popen(
                [
                    nginx,
                    "-p",
                    str(directory),
                    "-e",
                    str(directory / "logs" / "error.log"),
                    "-c",
                    str(config),
                    "-g",
                    "daemon off; user root;",
                ],
                stdout=err,
                stderr=err,
            )
        wait_for_port(
            port, timeout=START_TIMEOUT, process=process, log=directory / "logs" / "error.log"
        )
        yield NginxWorld(port=port, zone=zone, ca=ca, directory=directory, count=count)
    finally:
        if process is not None:
            stop_process(process)
        silent.close()
