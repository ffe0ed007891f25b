"""Pins the types of the SMTP probe API (type-checked by mypy, never run)."""

from __future__ import annotations

from cryptography import x509

from mtasecure.certs import TrustStore
from mtasecure.client import MtaSecure, MxAddressCheck, MxCheck
from mtasecure.results import CheckResult
from mtasecure.testing import FakeResolver, FakeSmtp
from mtasecure.transport import (
    EhloKeyword,
    EhloResponse,
    ProbeOutcome,
    ProbeResult,
    ProbeStage,
    SmtpConnector,
    SmtpReply,
    StepTiming,
)
from mtasecure.transport.smtp import AsyncioSmtpConnector


async def pins(trust: TrustStore) -> None:
    real: SmtpConnector = AsyncioSmtpConnector(helo_name="probe.example.net", banner_timeout=5)
    fake: SmtpConnector = FakeSmtp()
    scripted: ProbeResult = FakeSmtp().script("mx.example.com", outcome=ProbeOutcome.OK)
    result: ProbeResult = await real.probe("mx.example.com", "192.0.2.1", port=25)
    outcome: ProbeOutcome = result.outcome
    stage: ProbeStage = result.stage
    banner: SmtpReply | None = result.banner
    ehlo: EhloResponse | None = result.ehlo_tls
    keywords: tuple[EhloKeyword, ...] = ehlo.keywords if ehlo else ()
    timings: tuple[StepTiming, ...] = result.timings
    chain: tuple[bytes, ...] = result.chain
    certificates: tuple[x509.Certificate, ...] = result.certificates()
    requiretls: bool = result.requiretls_offered
    async with MtaSecure(resolver=FakeResolver(), smtp=fake) as client:
        checked: MxCheck = await client.check_mx("example.com", "mx.example.com", trust=trust)
        per_address: tuple[MxAddressCheck, ...] = checked.checks
        webpki: CheckResult | None = per_address[0].webpki
        dane: CheckResult = per_address[0].dane
    del scripted, outcome, stage, banner, keywords, timings, chain, certificates
    del requiretls, webpki, dane
