"""DANE against real servers, cross-checked with Postfix's own DANE client.

For each case a Postfix instance presents a chain minted at test time, and
TLSA records for it are served by the signed DNS tree of the DNSSEC work
(Knot, validated by Unbound). ``MtaSecure.check_mx`` looks the records up,
probes the instance and judges it; ``posttls-finger -l dane`` (Postfix's DANE
client, RFC 7672) does the same on its own. Both verdicts — "was the peer
authenticated by DANE?" — must be equal, and equal to what RFC 7672 says.

posttls-finger reads ``/etc/resolv.conf``, which has no port, so a second
Unbound answers on port 53 of :data:`RESOLVER_ADDRESS` and posttls-finger
runs in a private mount namespace with a ``resolv.conf`` bind-mounted over
the host's (never modified).
"""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtasecure.certs import TrustStore
from mtasecure.client import MtaSecure
from mtasecure.dane import DaneState, association_data
from mtasecure.transport import DnsResolver, ProbeOutcome
from mtasecure.transport.smtp import AsyncioSmtpConnector
from tests.integration.dnsworld import _unbound_config, run_dnsworld
from tests.integration.postfixworld import (
    RESOLVER_ADDRESS,
    PostfixInstance,
    PostfixWorld,
    posttls_finger,
    require_mount_namespace,
)
from tests.integration.servers import require_binary, stop_process, wait_for_port
from tests.pki import Issued, mint

pytestmark = pytest.mark.integration

ZONE = "signed.example"
UNSIGNED = "unsigned.example"
NOW = dt.datetime.now(dt.UTC)
DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Pki:
    root: Issued
    inter: Issued
    other: Issued


def _tlsa(cert: x509.Certificate, usage: int, selector: int, mtype: int) -> str:
    data = association_data(cert, selector, mtype)
    assert data is not None
    return f"{usage} {selector} {mtype} {data.hex()}"


@dataclass(frozen=True)
class Case:
    """One DANE situation: the leaf's names and dates, the TLSA records, the verdict."""

    name: str
    records: Callable[[Pki, Issued], list[str]]
    authenticated: bool
    sans: tuple[str, ...] | None = None
    expired: bool = False
    alias: bool = False
    unsigned_target: bool = False  # the host is a signed alias into an unsigned zone

    @property
    def host(self) -> str:
        """The name probed (an alias of :attr:`base` when ``alias``)."""
        return f"mx-{self.name}.{ZONE}"

    @property
    def base(self) -> str:
        """Where the TLSA records are: the alias's target, or the host."""
        return f"real-{self.name}.{ZONE}" if self.alias else self.host

    @property
    def target(self) -> str:
        """Where the address record is."""
        return f"real-{self.name}.{UNSIGNED}" if self.unsigned_target else self.base


CASES = [
    Case("ee-spki", lambda p, leaf: [_tlsa(leaf.cert, 3, 1, 1)], True),
    Case("ee-cert", lambda p, leaf: [_tlsa(leaf.cert, 3, 0, 1)], True),
    Case("ee-sha512", lambda p, leaf: [_tlsa(leaf.cert, 3, 1, 2)], True),
    # DANE-EE(3): no name and no date checks (RFC 7672 §3.1.1).
    Case("ee-expired", lambda p, leaf: [_tlsa(leaf.cert, 3, 1, 1)], True, expired=True),
    Case(
        "ee-wrongname",
        lambda p, leaf: [_tlsa(leaf.cert, 3, 1, 1)],
        True,
        sans=("other.example.net",),
    ),
    Case("ee-mismatch", lambda p, leaf: [_tlsa(p.other.cert, 3, 1, 1)], False),
    Case("ta-cert", lambda p, leaf: [_tlsa(p.inter.cert, 2, 0, 1)], True),
    Case("ta-spki", lambda p, leaf: [_tlsa(p.inter.cert, 2, 1, 1)], True),
    # DANE-TA(2): the leaf must carry a reference identifier (RFC 7672 §3.2.2).
    Case(
        "ta-wrongname",
        lambda p, leaf: [_tlsa(p.inter.cert, 2, 0, 1)],
        False,
        sans=("other.example.net",),
    ),
    # A digest of a trust anchor the server does not send cannot be matched.
    Case("ta-absent-root", lambda p, leaf: [_tlsa(p.root.cert, 2, 0, 1)], False),
    Case(
        "mismatch-and-match",
        lambda p, leaf: [_tlsa(p.other.cert, 3, 1, 1), _tlsa(leaf.cert, 3, 1, 1)],
        True,
    ),
    # A secure alias: the expanded name is the TLSA base domain and the
    # DANE-TA reference identifier (RFC 7672 §2.2.3, §3.2.2).
    Case("alias-ta", lambda p, leaf: [_tlsa(p.inter.cert, 2, 0, 1)], True, alias=True),
    Case("alias-ee", lambda p, leaf: [_tlsa(leaf.cert, 3, 1, 1)], True, alias=True),
    # A signed alias into an unsigned zone: the first response is secure, the
    # addresses are not, so the TLSA records at the alias itself apply (RFC 7672
    # §2.2.2, "Insecure CNAME").
    Case(
        "unsigned-target", lambda p, leaf: [_tlsa(leaf.cert, 3, 1, 1)], True, unsigned_target=True
    ),
    # Only PKIX usages (unusable for SMTP, RFC 7672 §3.1.3): encrypt, don't authenticate.
    Case("unusable", lambda p, leaf: [_tlsa(leaf.cert, 1, 1, 1)], False),
]


@dataclass
class World:
    pki: Pki
    instances: dict[str, PostfixInstance]
    resolver: str
    resolv_conf: Path


def _chain_pem(leaf: Issued, inter: Issued) -> bytes:
    key = leaf.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return (
        key
        + leaf.cert.public_bytes(serialization.Encoding.PEM)
        + inter.cert.public_bytes(serialization.Encoding.PEM)
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    require_binary("posttls-finger")
    require_mount_namespace()
    unbound = require_binary("unbound")
    root = mint("crosscheck root", ca=True, not_before=NOW - 2 * DAY, not_after=NOW + 60 * DAY)
    inter = mint(
        "crosscheck inter", root, ca=True, not_before=NOW - 2 * DAY, not_after=NOW + 60 * DAY
    )
    other = mint("crosscheck other", inter, not_before=NOW - DAY, not_after=NOW + 30 * DAY)
    pki = Pki(root, inter, other)
    postfix = PostfixWorld()
    records: list[str] = []
    unsigned: list[str] = []
    instances: dict[str, PostfixInstance] = {}
    try:
        for case in CASES:
            dates = (NOW - 30 * DAY, NOW - DAY) if case.expired else (NOW - DAY, NOW + 30 * DAY)
            leaf = mint(
                case.base,
                inter,
                sans=case.sans or (case.base,),
                not_before=dates[0],
                not_after=dates[1],
                key_role=f"crosscheck {case.name}",
            )
            instance = postfix.start(
                case.name, hostname=case.base, chain_pem=_chain_pem(leaf, inter), wait=False
            )
            instances[case.name] = instance
            if case.alias:
                records.append(f"{case.host}. CNAME {case.base}.")
            if case.unsigned_target:
                records.append(f"{case.host}. CNAME {case.target}.")
                unsigned.append(f"{case.target}. A 127.0.0.1")
            else:
                records.append(f"{case.base}. A 127.0.0.1")
            records += [
                f"_{instance.port}._tcp.{case.base}. TLSA {r}" for r in case.records(pki, leaf)
            ]
        for instance in instances.values():
            postfix.wait(instance)
        directory = tmp_path_factory.mktemp("dane-dns")
        with run_dnsworld(
            directory, extra_records={ZONE: records, UNSIGNED: unsigned}, with_unbound=False
        ) as dns:
            zones = [z.name for z in dns.zones] + ["example", "."]
            # The tree's own Unbound listens on a free port; Postfix needs port 53.
            config = _unbound_config(directory, 53, dns.knot[1], zones, dns.trust_anchor)
            config.write_text(
                config.read_text().replace("interface: 127.0.0.1", f"interface: {RESOLVER_ADDRESS}")
            )
            process = subprocess.Popen(
                [unbound, "-d", "-c", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                wait_for_port(53, RESOLVER_ADDRESS, process=process, log=directory / "unbound.log")
                resolv_conf = directory / "resolv.conf"
                resolv_conf.write_text(f"nameserver {RESOLVER_ADDRESS}\noptions edns0 trust-ad\n")
                yield World(pki, instances, f"{RESOLVER_ADDRESS}:53", resolv_conf)
            finally:
                stop_process(process)
    finally:
        postfix.stop_all()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_dane_verdict_equals_posttls_finger(world: World, case: Case) -> None:
    instance = world.instances[case.name]
    resolver = DnsResolver(nameservers=[world.resolver])
    async with MtaSecure(resolver=resolver, smtp=AsyncioSmtpConnector()) as client:
        result = await client.check_mx(
            ZONE, case.host, port=instance.port, trust=TrustStore([world.pki.root.cert])
        )
    assert result.dane_policy.state in (DaneState.USABLE, DaneState.UNUSABLE), result
    (check,) = result.checks
    assert check.probe.outcome is ProbeOutcome.OK, check.probe.detail
    ours = result.dane_policy.requires_authentication and check.dane.ok

    output = posttls_finger(case.host, instance.port, resolv_conf=world.resolv_conf)
    theirs = "Verified TLS connection established" in output
    assert "TLS connection established" in output, output[-3000:]

    assert ours == theirs, f"mtasecure: {check.dane}\nposttls-finger:\n{output[-3000:]}"
    assert ours == case.authenticated, check.dane.detail
    assert result.dane_policy.base_domain == case.base
    if case.name == "unusable":
        # Unusable records still make TLS mandatory, and TLS happened.
        assert result.dane_policy.state is DaneState.UNUSABLE
        assert check.dane.ok
