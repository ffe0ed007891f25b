"""FakeSmtp, the scripted SMTP connector of mtasecure.testing."""

from __future__ import annotations

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mtasecure import UsageError
from mtasecure.testing import FakeSmtp
from mtasecure.transport import ProbeOutcome, ProbeResult, ProbeStage


async def test_scripted_ok_probe_carries_chain_keywords_and_address() -> None:
    leaf = x509.load_pem_x509_certificate(
        trustme.CA().issue_cert("mx.example.com").cert_chain_pems[0].bytes()
    )
    smtp = FakeSmtp()
    smtp.script("MX.example.com.", chain=[leaf], tls_keywords=("PIPELINING", "REQUIRETLS"))
    result = await smtp.probe("mx.example.com", "192.0.2.7")
    assert result.ok
    assert result.stage is ProbeStage.QUIT
    assert result.address == "192.0.2.7"
    assert result.sni == "mx.example.com"
    assert result.chain == (leaf.public_bytes(Encoding.DER),)
    assert result.certificates() == (leaf,)
    assert result.starttls_offered
    assert result.requiretls_offered
    assert smtp.calls == [("mx.example.com", "192.0.2.7", 25)]


@pytest.mark.parametrize(
    ("outcome", "stage", "tls", "starttls_offered"),
    [
        (ProbeOutcome.CONNECT_FAILED, ProbeStage.CONNECT, False, False),
        (ProbeOutcome.BANNER_REJECTED, ProbeStage.BANNER, False, False),
        (ProbeOutcome.STARTTLS_NOT_OFFERED, ProbeStage.EHLO, False, False),
        (ProbeOutcome.STARTTLS_REFUSED, ProbeStage.STARTTLS, False, True),
        (ProbeOutcome.TLS_HANDSHAKE_FAILED, ProbeStage.TLS_HANDSHAKE, False, True),
    ],
)
async def test_scripted_failures_look_like_the_real_thing(
    outcome: ProbeOutcome, stage: ProbeStage, tls: bool, starttls_offered: bool
) -> None:
    smtp = FakeSmtp()
    smtp.script("mx.example.com", outcome=outcome, chain=[b"ignored"])
    result = await smtp.probe("mx.example.com", "192.0.2.7")
    assert (result.outcome, result.stage) == (outcome, stage)
    assert result.tls_established is tls
    assert result.chain == ()
    assert result.starttls_offered is starttls_offered
    assert result.detail


async def test_anywhere_outcomes_need_a_stage() -> None:
    smtp = FakeSmtp()
    with pytest.raises(UsageError, match="stage="):
        smtp.script("mx.example.com", outcome=ProbeOutcome.TIMEOUT)
    smtp.script("mx.example.com", outcome=ProbeOutcome.DROPPED, stage=ProbeStage.EHLO_AFTER_TLS)
    result = await smtp.probe("mx.example.com", "192.0.2.7")
    assert result.tls_established
    assert result.ehlo_tls is None
    assert not result.ok
    with pytest.raises(UsageError, match="QUIT"):
        smtp.script("mx.example.com", stage=ProbeStage.BANNER)


async def test_ports_are_scripted_separately_and_unscripted_probes_fail_loudly() -> None:
    smtp = FakeSmtp()
    smtp.script("mx.example.com", port=2525)
    assert (await smtp.probe("mx.example.com", "::1", port=2525)).ok
    with pytest.raises(UsageError, match="no script"):
        await smtp.probe("mx.example.com", "::1")
    with pytest.raises(UsageError, match="no script"):
        await smtp.probe("other.example.com", "::1", port=2525)


async def test_add_takes_a_hand_built_result() -> None:
    smtp = FakeSmtp()
    smtp.add(
        ProbeResult(
            host="mx.example.com",
            address="",
            outcome=ProbeOutcome.PROTOCOL_ERROR,
            stage=ProbeStage.BANNER,
            detail="garbage",
        )
    )
    result = await smtp.probe("mx.example.com", "192.0.2.1")
    assert (result.outcome, result.detail, result.address) == (
        ProbeOutcome.PROTOCOL_ERROR,
        "garbage",
        "192.0.2.1",
    )
