"""The STARTTLS probe against real Postfix instances on loopback (RFC 3207).

Five instances, certificates minted at test time: a good certificate, a
certificate for another name, an expired one, a leaf under an intermediate CA
(the chain sent is leaf + intermediate), and one instance without STARTTLS.
The probe does not judge certificates (that is :mod:`mtasecure.certs`); these
tests check that it reaches Postfix's TLS, records exactly the chain Postfix
presents, and ends the session the way Postfix expects.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Iterator

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mtasecure.transport import ProbeOutcome, ProbeStage
from mtasecure.transport.smtp import AsyncioSmtpConnector
from tests.integration.postfixworld import PostfixInstance, PostfixWorld

pytestmark = pytest.mark.integration

NOW = dt.datetime.now(dt.UTC)


def _der_chain(cert: trustme.LeafCert) -> tuple[bytes, ...]:
    return tuple(
        x509.load_pem_x509_certificate(blob.bytes()).public_bytes(Encoding.DER)
        for blob in cert.cert_chain_pems
    )


class Mx:
    """One Postfix instance and what it was started with."""

    def __init__(self, instance: PostfixInstance, name: str, chain: tuple[bytes, ...] = ()) -> None:
        self.instance = instance
        self.name = name
        self.chain = chain


@pytest.fixture(scope="module")
def postfix() -> Iterator[dict[str, Mx]]:
    world = PostfixWorld()
    ca = trustme.CA()
    intermediate = ca.create_child_ca()
    certs = {
        "good": ("mx.good.test", ca.issue_cert("mx.good.test")),
        "wrongname": ("mx.wrongname.test", ca.issue_cert("mx.other.test")),
        "expired": (
            "mx.expired.test",
            ca.issue_cert(
                "mx.expired.test",
                not_before=NOW - dt.timedelta(days=30),
                not_after=NOW - dt.timedelta(days=1),
            ),
        ),
        "intermediate": ("mx.chain.test", intermediate.issue_cert("mx.chain.test")),
    }
    mxs: dict[str, Mx] = {}
    try:
        for key, (name, cert) in certs.items():
            instance = world.start(
                key,
                hostname=name,
                chain_pem=cert.private_key_and_cert_chain_pem.bytes(),
                wait=False,
            )
            mxs[key] = Mx(instance, name, _der_chain(cert))
        plain = world.start("plain", hostname="mx.plain.test", wait=False)
        mxs["plain"] = Mx(plain, "mx.plain.test")
        for mx in mxs.values():
            world.wait(mx.instance)
        yield mxs
    finally:
        world.stop_all()


async def _probe(mx: Mx) -> object:
    return await AsyncioSmtpConnector(helo_name="probe.example.net").probe(
        mx.name, mx.instance.address, port=mx.instance.port
    )


async def _wait_for_log(instance: PostfixInstance, pattern: str) -> str:
    for _ in range(100):
        text = instance.log_text()
        if re.search(pattern, text):
            return text
        await asyncio.sleep(0.05)
    return instance.log_text()


@pytest.mark.parametrize("key", ["good", "wrongname", "expired", "intermediate"])
async def test_probe_reaches_postfix_tls_and_records_the_presented_chain(
    postfix: dict[str, Mx], key: str
) -> None:
    mx = postfix[key]
    result = await AsyncioSmtpConnector(helo_name="probe.example.net").probe(
        mx.name, mx.instance.address, port=mx.instance.port
    )
    assert result.outcome is ProbeOutcome.OK, result.detail
    assert result.stage is ProbeStage.QUIT
    assert result.banner is not None
    assert result.banner.text == f"{mx.name} ESMTP"
    assert result.ehlo is not None
    assert result.ehlo.domain == mx.name
    assert result.starttls_offered
    assert result.ehlo_tls is not None
    # Postfix stops offering STARTTLS once inside TLS, and has no REQUIRETLS.
    assert not result.ehlo_tls.offers("STARTTLS")
    assert not result.requiretls_offered
    assert result.tls_version == "TLSv1.3"
    assert result.sni == mx.name
    assert result.chain == mx.chain
    assert result.chain_complete
    log = await _wait_for_log(mx.instance, r"disconnect from .* quit=1")
    assert re.search(r"ehlo=2 starttls=1 quit=1 commands=4", log), log[-2000:]


async def test_the_wrong_name_certificate_is_recorded_not_judged(postfix: dict[str, Mx]) -> None:
    mx = postfix["wrongname"]
    result = await AsyncioSmtpConnector().probe(mx.name, mx.instance.address, port=mx.instance.port)
    assert result.ok
    leaf = result.certificates()[0]
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["mx.other.test"]
    assert result.sni == "mx.wrongname.test"


async def test_the_expired_certificate_is_recorded_not_judged(postfix: dict[str, Mx]) -> None:
    mx = postfix["expired"]
    result = await AsyncioSmtpConnector().probe(mx.name, mx.instance.address, port=mx.instance.port)
    assert result.ok
    assert result.certificates()[0].not_valid_after_utc < NOW


async def test_the_intermediate_is_captured_after_the_leaf(postfix: dict[str, Mx]) -> None:
    mx = postfix["intermediate"]
    result = await AsyncioSmtpConnector().probe(mx.name, mx.instance.address, port=mx.instance.port)
    leaf, issuer = result.certificates()
    assert leaf.issuer == issuer.subject
    assert issuer.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


async def test_an_instance_without_starttls(postfix: dict[str, Mx]) -> None:
    mx = postfix["plain"]
    result = await AsyncioSmtpConnector().probe(mx.name, mx.instance.address, port=mx.instance.port)
    assert (result.outcome, result.stage) == (ProbeOutcome.STARTTLS_NOT_OFFERED, ProbeStage.EHLO)
    assert result.ehlo is not None
    assert result.ehlo.domain == "mx.plain.test"
    assert "PIPELINING" in result.ehlo.names
    assert result.chain == ()
    assert not result.tls_established
    log = await _wait_for_log(mx.instance, r"ehlo=1 quit=1")
    assert "ehlo=1 quit=1 commands=2" in log


async def test_sixteen_concurrent_probes(postfix: dict[str, Mx]) -> None:
    mx = postfix["intermediate"]
    connector = AsyncioSmtpConnector()
    results = await asyncio.gather(
        *(connector.probe(mx.name, mx.instance.address, port=mx.instance.port) for _ in range(16))
    )
    assert [r.outcome for r in results] == [ProbeOutcome.OK] * 16
    assert {r.chain for r in results} == {mx.chain}
