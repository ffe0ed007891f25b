"""mtasecure.testing.World: one TOML file drives every fake (docs/testing.md)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mtasecure._world
from mtasecure._world import MAX_WORLD_BYTES, CertificateKind, World
from mtasecure.certs import check_certificate
from mtasecure.client import MtaSecure
from mtasecure.dane import DaneState, check_dane, plan_dane
from mtasecure.decision import RequirementKind
from mtasecure.dnssec import Security
from mtasecure.errors import HttpError, TransportTimeout, UsageError
from mtasecure.results import FailureReason
from mtasecure.testing import FakeHttpClient, FakeResolver, FakeSmtp, FrozenClock
from mtasecure.transport import ProbeOutcome

WORLD = '''
now = "2026-05-01T00:00:00Z"

[domains]
"a.example" = "first"
"b.example" = "second"

[dns]
zone = """
$SECURITY secure
a.example.      MX 10 mx.a.example.
mx.a.example.   A  192.0.2.1
$SECURITY insecure
b.example.      MX 10 mx.b.example.
mx.b.example.   A  192.0.2.2
_mta-sts.b.example. TXT "v=STSv1; id=1;"
_mta-sts.c.example. TXT "v=STSv1; id=1;"
_mta-sts.d.example. TXT "v=STSv1; id=1;"
_mta-sts.e.example. TXT "v=STSv1; id=1;"
_mta-sts.f.example. TXT "v=STSv1; id=1;"
"""

[policy."b.example"]
body = "version: STSv1\\r\\nmode: enforce\\r\\nmx: mx.b.example\\r\\nmax_age: 86400\\r\\n"

[policy."c.example"]
failure = "certificate"

[policy."d.example"]
failure = "timeout"

[policy."e.example"]
body = "<html>"
status = 404
content_type = "text/html"

[smtp."mx.a.example"]
tlsa = ["3 1 1", "2 0 1"]
keywords = ["REQUIRETLS"]

[smtp."mx.b.example"]
certificate = "wrong-name"

[smtp."good.example"]
[smtp."expired.example"]
certificate = "expired"
[smtp."self.example"]
certificate = "self-signed"
[smtp."clear.example"]
starttls = false
[smtp."down.example"]
outcome = "connect-failed"
[smtp."other-port.example"]
port = 2525
'''


@pytest.fixture(scope="module")
def world() -> World:
    return World.from_text(WORLD)


def test_pinned_all() -> None:
    assert mtasecure._world.__all__ == [
        "DEFAULT_WORLD_TIME",
        "MAX_WORLD_BYTES",
        "CertificateKind",
        "World",
    ]


def test_world_builds_the_fakes(world: World) -> None:
    assert isinstance(world.resolver, FakeResolver)
    assert isinstance(world.http, FakeHttpClient)
    assert isinstance(world.smtp, FakeSmtp)
    assert isinstance(world.clock, FrozenClock)
    assert world.clock.now() == datetime(2026, 5, 1, tzinfo=UTC)
    assert world.domains == {"a.example": "first", "b.example": "second"}
    client = world.client()
    assert isinstance(client, MtaSecure)
    assert client.resolver is world.resolver
    assert client.smtp is world.smtp
    assert client.http is world.http
    assert client.clock is world.clock


def test_default_time_and_empty_world() -> None:
    empty = World.from_text("")
    assert empty.clock.now() == mtasecure._world.DEFAULT_WORLD_TIME
    assert empty.domains == {}
    assert empty.certificates == {}


async def test_dns_answers_carry_the_annotated_security(world: World) -> None:
    secure = await world.resolver.resolve("a.example", "MX")
    insecure = await world.resolver.resolve("b.example", "MX")
    assert secure.security is Security.SECURE
    assert secure.records == ("10 mx.a.example.",)
    assert insecure.security is Security.INSECURE


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("good.example", None),
        ("mx.b.example", FailureReason.CERTIFICATE_HOST_MISMATCH),
        ("expired.example", FailureReason.CERTIFICATE_EXPIRED),
        ("self.example", FailureReason.CERTIFICATE_NOT_TRUSTED),
    ],
)
def test_certificate_kinds_against_the_world_ca(
    world: World, host: str, reason: FailureReason | None
) -> None:
    result = check_certificate(
        [world.certificates[host]], host, now=world.clock.now(), trust=world.trust
    )
    assert result.reason is reason, result.detail


def test_certificate_kind_values() -> None:
    assert [k.value for k in CertificateKind] == ["good", "wrong-name", "expired", "self-signed"]


async def test_tlsa_records_are_made_from_the_minted_certificate(world: World) -> None:
    answer = await world.resolver.resolve("_25._tcp.mx.a.example", "TLSA")
    assert answer.security is Security.SECURE
    assert len(answer.records) == 2
    policy = plan_dane(answer, True, next_hop="a.example")
    assert policy.state is DaneState.USABLE
    cert = world.certificates["mx.a.example"]
    assert check_dane(policy, [cert], now=world.clock.now()).ok
    other = world.certificates["good.example"]
    assert not check_dane(policy, [other], now=world.clock.now()).ok


async def test_smtp_hosts_are_scripted(world: World) -> None:
    probe = await world.smtp.probe("mx.a.example", "192.0.2.1")
    assert probe.outcome is ProbeOutcome.OK
    assert probe.requiretls_offered
    assert probe.certificates()[0] == world.certificates["mx.a.example"]
    good = await world.smtp.probe("good.example", "192.0.2.9")
    assert not good.requiretls_offered
    clear = await world.smtp.probe("clear.example", "192.0.2.9")
    assert clear.outcome is ProbeOutcome.STARTTLS_NOT_OFFERED
    assert not clear.starttls_offered
    down = await world.smtp.probe("down.example", "192.0.2.9")
    assert down.outcome is ProbeOutcome.CONNECT_FAILED
    assert (await world.smtp.probe("other-port.example", "192.0.2.9", port=2525)).ok
    with pytest.raises(UsageError):
        await world.smtp.probe("other-port.example", "192.0.2.9")


async def test_policy_files_and_failures(world: World) -> None:
    ok = await world.http.get(
        "https://mta-sts.b.example/.well-known/mta-sts.txt", max_bytes=65536, timeout=5
    )
    assert ok.status == 200
    assert ok.body.startswith(b"version: STSv1\r\n")
    with pytest.raises(HttpError) as cert:
        await world.http.get(
            "https://mta-sts.c.example/.well-known/mta-sts.txt", max_bytes=65536, timeout=5
        )
    assert cert.value.certificate
    with pytest.raises(TransportTimeout):
        await world.http.get(
            "https://mta-sts.d.example/.well-known/mta-sts.txt", max_bytes=65536, timeout=5
        )
    notfound = await world.http.get(
        "https://mta-sts.e.example/.well-known/mta-sts.txt", max_bytes=65536, timeout=5
    )
    assert notfound.status == 404


@pytest.mark.parametrize(
    ("domain", "reason"),
    [
        ("b.example", None),
        ("c.example", FailureReason.STS_WEBPKI_INVALID),
        ("d.example", FailureReason.STS_POLICY_FETCH_ERROR),
        ("e.example", FailureReason.STS_POLICY_FETCH_ERROR),
        ("f.example", FailureReason.STS_POLICY_FETCH_ERROR),  # no [policy]: refused
    ],
)
async def test_discovery_through_the_client(
    world: World, domain: str, reason: FailureReason | None
) -> None:
    async with World.from_text(WORLD).client() as client:
        lookup = await client.sts_lookup(domain)
    assert lookup.result.reason is reason, lookup.result.detail
    assert (lookup.policy is not None) is (reason is None)


async def test_plan_delivery_through_the_client(world: World) -> None:
    async with World.from_text(WORLD).client() as client:
        dane = await client.plan_delivery("a.example")
        sts = await client.plan_delivery("b.example", sts=await client.sts_policy("b.example"))
        discovered = await client.plan_delivery("b.example")
        webpki = await client.plan_delivery("c.example")
    assert dane.requirements[0].kind is RequirementKind.DANE
    assert sts.requirements[0].kind is RequirementKind.STS_ENFORCE
    assert discovered.requirements == sts.requirements
    assert webpki.sts_failure is FailureReason.STS_WEBPKI_INVALID


def test_client_overrides(world: World) -> None:
    other = FrozenClock("2030-01-01T00:00:00Z")
    assert world.client(clock=other).clock is other


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("now = ", "not TOML"),
        ("colour = 1", "unknown key(s) colour"),
        ("[dns]\nzones = ''", "[dns]: unknown key(s) zones"),
        ("[dns]\nzone = 'x. BOGUSTYPE 1'", "zone text line 1"),
        ("[policy.'a.example']\nfailure = 'dropped'", "failure must be one of"),
        ("[policy.'a.example']\nstatus = 'ok'", "status is a number"),
        ("[policy.'a.example']\nbdy = ''", "unknown key(s) bdy"),
        ("[smtp.'mx.example']\ncertificate = 'fake'", "'fake' is not a valid CertificateKind"),
        ("[smtp.'mx.example']\ntlsa = ['3 1']", "is not 'usage selector matching'"),
        ("[smtp.'mx.example']\ntlsa = ['3 7 1']", "selector 7"),
        ("[smtp.'mx.example']\ntlsa = ['3 1 9']", "matching type 9"),
        ("[smtp.'mx.example']\noutcome = 'timeout'", "can happen at any stage"),
        ("[smtp.'not a host']", "[smtp.'not a host']"),
        ("domains = 3", "[domains] must be a table"),
        ("[smtp.'mx.example']\nstarttls = 'no'", "starttls is true or false"),
        ("[smtp.'mx.example']\nport = '25'", "port a number"),
        ("[smtp.'mx.example']\nkeywords = 'REQUIRETLS'", "keywords and tlsa are lists"),
        ("now = 'yesterday'", "not an ISO 8601 time"),
    ],
)
def test_bad_worlds_are_usage_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        World.from_text(text)
    assert message in str(caught.value)


def test_load_reads_a_file_and_names_it(tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text(WORLD, encoding="utf-8")
    world = World.load(path)
    assert world.name == str(path)
    assert "mx.a.example" in world.certificates


def test_load_limits_and_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read"):
        World.load(tmp_path / "missing.toml")
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (MAX_WORLD_BYTES + 1))
    with pytest.raises(UsageError, match="larger than"):
        World.load(big)
    fits = tmp_path / "fits.toml"
    fits.write_bytes(b"#" * MAX_WORLD_BYTES)
    assert World.load(fits).domains == {}
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b"# \xff\n")
    with pytest.raises(UsageError, match="not UTF-8"):
        World.load(latin)


def test_the_bundled_world_loads() -> None:
    world = World.default()
    assert list(world.domains) == [
        "dane.example",
        "sts.example",
        "wrongname.example",
        "testing.example",
        "plain.example",
        "bogus.example",
        "norequiretls.example",
    ]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_only_usage_errors_escape_on_any_text(text: str) -> None:
    with contextlib.suppress(UsageError):
        World.from_text(text)


_VALUES = st.one_of(
    st.integers(-5, 70000),
    st.text(max_size=20),
    st.booleans(),
    st.lists(st.text(max_size=8), max_size=3),
)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["policy", "smtp"]),
    st.sampled_from(["a.example", "mx.example", "-bad-", ""]),
    st.dictionaries(
        st.sampled_from(
            [
                "body",
                "status",
                "content_type",
                "failure",
                "starttls",
                "certificate",
                "keywords",
                "tlsa",
                "tlsa_security",
                "port",
                "outcome",
            ]
        ),
        _VALUES,
        max_size=4,
    ),
)
def test_only_usage_errors_escape_on_odd_sections(
    section: str, name: str, entry: dict[str, object]
) -> None:
    import json

    lines = [f"[{section}.{json.dumps(name)}]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in entry.items()]
    with contextlib.suppress(UsageError):
        World.from_text("\n".join(lines))
