"""Pins the types of the world API and the command (type-checked by mypy, never run)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from cryptography import x509

from mtasecure.certs import TrustStore
from mtasecure.cli import main
from mtasecure.client import MtaSecure
from mtasecure.testing import FakeHttpClient, FakeResolver, FakeSmtp, FrozenClock, World


def pins(path: Path) -> None:
    world: World = World.load(path)
    same: World = World.from_text("now = '2026-01-01T00:00:00Z'", name="inline")
    bundled: World = World.default()
    resolver: FakeResolver = world.resolver
    http: FakeHttpClient = world.http
    smtp: FakeSmtp = world.smtp
    clock: FrozenClock = world.clock
    now: datetime = clock.now()
    trust: TrustStore = world.trust
    ca: x509.Certificate = world.ca
    certificate: x509.Certificate = world.certificates["mx.example.com"]
    domains: dict[str, str] = bundled.domains
    client: MtaSecure = world.client(clock=same.clock)
    status: int = main(["check", "example.com", "--probe", "--json"])
    del resolver, http, smtp, now, trust, ca, certificate, domains, client, status
