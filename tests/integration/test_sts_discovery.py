"""MTA-STS discovery end to end: real Knot + Unbound for DNS, real nginx for HTTPS (RFC 8461 §3-§5).

Every name is resolved through mtasecure's own resolver pointed at the
validating Unbound of :mod:`tests.integration.dnsworld`, and every policy is
fetched from nginx (:mod:`tests.integration.nginxworld`) over TLS with a
certificate from a CA minted for this run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from mtasecure import FailureReason, HttpError
from mtasecure.certs import TrustStore
from mtasecure.client import MtaSecure, StsSettings
from mtasecure.sts import MxTls, PolicyMode, StsPolicy
from mtasecure.transport import DnsResolver
from mtasecure.transport.http import HttpsClient
from tests.integration.dnsworld import DnsWorld, run_dnsworld
from tests.integration.nginxworld import NginxWorld, dns_records, run_nginxworld
from tests.integration.servers import require_binary

pytestmark = pytest.mark.integration

ZONE = "signed.example"
TIMEOUT = 2.0


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DnsWorld, NginxWorld]]:
    require_binary("nginx")
    base = tmp_path_factory.mktemp("sts-discovery")
    with (
        run_dnsworld(base / "dns", extra_records={ZONE: dns_records(ZONE)}) as dns,
        run_nginxworld(base / "nginx", ZONE) as web,
    ):
        yield dns, web


def resolver_for(dns: DnsWorld) -> DnsResolver:
    address, port = dns.unbound
    return DnsResolver([f"{address}:{port}"], timeout=TIMEOUT)


def trust_for(web: NginxWorld) -> TrustStore:
    return TrustStore.from_pem(web.ca.cert_pem.bytes())


@pytest.fixture
async def client(worlds: tuple[DnsWorld, NginxWorld]) -> AsyncIterator[MtaSecure]:
    dns, web = worlds
    resolver = resolver_for(dns)
    http = HttpsClient(resolver=resolver, trust=trust_for(web), connect_timeout=TIMEOUT)
    settings = StsSettings(policy_port=web.port, fetch_timeout=TIMEOUT)
    async with resolver, http, MtaSecure(resolver=resolver, http=http, sts=settings) as built:
        yield built


async def test_valid_policy_is_discovered(
    client: MtaSecure, worlds: tuple[DnsWorld, NginxWorld]
) -> None:
    _, web = worlds
    lookup = await client.sts_lookup(web.domain("valid"))
    assert lookup.result.ok, lookup.result.detail
    assert isinstance(lookup.policy, StsPolicy)
    assert lookup.policy.mode is PolicyMode.ENFORCE
    assert lookup.policy.mx == (f"mx.valid.{ZONE}", f"*.mx.valid.{ZONE}")
    assert lookup.entry is not None
    assert lookup.entry.policy_id == "1"


async def test_charset_parameter_is_accepted(
    client: MtaSecure, worlds: tuple[DnsWorld, NginxWorld]
) -> None:
    _, web = worlds
    policy = await client.sts_policy(web.domain("charset"))
    assert policy is not None
    assert policy.mode is PolicyMode.TESTING


@pytest.mark.parametrize(
    ("case", "reason", "words"),
    [
        ("mediatype", FailureReason.STS_POLICY_FETCH_ERROR, "'text/html'"),
        ("redirect", FailureReason.STS_POLICY_FETCH_ERROR, "status 301"),
        ("toobig", FailureReason.STS_POLICY_FETCH_ERROR, "larger than 65536"),
        ("notfound", FailureReason.STS_POLICY_FETCH_ERROR, "status 404"),
        ("invalid", FailureReason.STS_POLICY_INVALID, "RFC 8461 §3.2"),
        ("wrongname", FailureReason.STS_WEBPKI_INVALID, "certificate"),
        ("expired", FailureReason.STS_WEBPKI_INVALID, "expired"),
        ("untrusted", FailureReason.STS_WEBPKI_INVALID, "certificate"),
        ("slow", FailureReason.STS_POLICY_FETCH_ERROR, "timed out"),
    ],
)
async def test_each_failure_maps_to_its_result_type(
    client: MtaSecure,
    worlds: tuple[DnsWorld, NginxWorld],
    case: str,
    reason: FailureReason,
    words: str,
) -> None:
    _, web = worlds
    lookup = await client.sts_lookup(web.domain(case))
    assert lookup.policy is None
    assert lookup.result.reason is reason, lookup.result.detail
    assert words in lookup.result.detail


async def test_a_verified_connection_is_never_reused_for_another_name(
    client: MtaSecure, worlds: tuple[DnsWorld, NginxWorld]
) -> None:
    # Same address and port, different names: the second must do its own handshake.
    _, web = worlds
    assert await client.sts_policy(web.domain("valid")) is not None
    wrong = await client.sts_lookup(web.domain("wrongname"))
    assert wrong.result.reason is FailureReason.STS_WEBPKI_INVALID
    assert await client.sts_policy(web.domain("charset")) is not None


async def test_unknown_name_at_the_address_is_a_fetch_error(client: MtaSecure) -> None:
    # signed.example publishes a _mta-sts record and an mta-sts A record, but
    # nginx has no server block for it and refuses the handshake.
    lookup = await client.sts_lookup(ZONE)
    assert lookup.policy is None
    assert lookup.result.reason is FailureReason.STS_POLICY_FETCH_ERROR


async def test_missing_policy_host_and_missing_record(client: MtaSecure) -> None:
    lookup = await client.sts_lookup("nsec3.example")
    # nsec3.example has a _mta-sts record but no mta-sts host: a fetch error, no policy.
    assert lookup.result.reason is FailureReason.STS_POLICY_FETCH_ERROR
    assert "no address" in lookup.result.detail
    none = await client.sts_lookup("unknownalgo.example")
    assert none.policy is None
    assert none.result.ok


async def test_decision_over_the_real_stack(
    client: MtaSecure, worlds: tuple[DnsWorld, NginxWorld]
) -> None:
    _, web = worlds
    decision = await client.sts_decision(
        web.domain("valid"), [f"mx.valid.{ZONE}", f"a.mx.valid.{ZONE}", "mx.elsewhere.example"]
    )
    assert [(d.usable, d.tls) for d in decision.mx] == [
        (True, MxTls.WEBPKI),
        (True, MxTls.WEBPKI),
        (False, MxTls.WEBPKI),
    ]


async def test_https_client_caps_the_body_and_does_not_follow_redirects(
    worlds: tuple[DnsWorld, NginxWorld],
) -> None:
    dns, web = worlds
    async with (
        resolver_for(dns) as resolver,
        HttpsClient(resolver=resolver, trust=trust_for(web)) as http,
    ):
        big = await http.get(web.url("toobig"), max_bytes=1000, timeout=TIMEOUT)
        assert big.status == 200
        assert big.truncated
        assert len(big.body) == 1001
        moved = await http.get(web.url("redirect"), max_bytes=1000, timeout=TIMEOUT)
        assert moved.status == 301
        assert not moved.redirected
        assert moved.header("location") == web.url("valid")
        with pytest.raises(HttpError) as caught:
            await http.get(web.url("expired"), max_bytes=1000, timeout=TIMEOUT)
        assert caught.value.certificate


async def test_public_only_refuses_loopback(worlds: tuple[DnsWorld, NginxWorld]) -> None:
    dns, web = worlds
    async with (
        resolver_for(dns) as resolver,
        HttpsClient(resolver=resolver, trust=trust_for(web), public_only=True) as http,
    ):
        with pytest.raises(HttpError, match="non-public") as caught:
            await http.get(web.url("valid"), max_bytes=1000, timeout=TIMEOUT)
        assert not caught.value.certificate


async def test_proxy_environment_is_ignored_unless_asked(
    worlds: tuple[DnsWorld, NginxWorld], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dns, web = worlds
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # discard port: nothing listens
    monkeypatch.setenv("NO_PROXY", "")
    async with resolver_for(dns) as resolver:
        async with HttpsClient(resolver=resolver, trust=trust_for(web)) as http:
            ok = await http.get(web.url("valid"), max_bytes=1000, timeout=TIMEOUT)
            assert ok.status == 200
        async with HttpsClient(resolver=resolver, trust=trust_for(web), trust_env=True) as http:
            with pytest.raises(HttpError):
                await http.get(web.url("valid"), max_bytes=1000, timeout=TIMEOUT)
