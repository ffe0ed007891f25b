"""The default HttpsClient where it fails before any HTTP is spoken (no server needed).

What it does against real servers is in tests/integration/test_sts_discovery.py.
"""

from __future__ import annotations

import socket

import pytest
import trustme

from mtasecure import HttpError, UsageError
from mtasecure.certs import TrustStore
from mtasecure.testing import FakeResolver
from mtasecure.transport import HttpClient
from mtasecure.transport.http import MAX_ADDRESSES, AsyncioBackend, HttpsClient, ssl_context


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
