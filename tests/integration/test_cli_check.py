"""``mtasecure check`` end to end against real servers on loopback.

Knot + Unbound serve and validate the DNS tree (tests/integration/dnsworld.py),
nginx serves MTA-STS policies with a test CA (nginxworld.py), and a real
Postfix presents a certificate from that CA (postfixworld.py). The command
runs in-process through ``main()`` exactly as an operator types it.

Domains added to the tree for these tests:

* ``dane.signed.example`` (secure): MX ``mx.dane.signed.example`` with a
  DANE-EE ``3 1 1`` TLSA record of Postfix's key at ``_<port>._tcp``;
* ``valid.unsigned.example`` (insecure): MX ``mx.valid.unsigned.example``
  and nginx's ``valid`` enforce policy, which lists it;
* ``wrongname.unsigned.example``: the same MX, but nginx presents a
  certificate for another name for the policy host.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from mtasecure.cli import main
from tests.integration.dnsworld import DnsWorld, run_dnsworld
from tests.integration.nginxworld import NginxWorld, dns_records, run_nginxworld
from tests.integration.postfixworld import PostfixInstance, PostfixWorld
from tests.integration.servers import require_binary
from tests.pki import DAY, mint

pytestmark = pytest.mark.integration

STS_ZONE = "unsigned.example"
MX_STS = f"mx.valid.{STS_ZONE}"
MX_DANE = "mx.dane.signed.example"


@dataclass
class Servers:
    dns: DnsWorld
    web: NginxWorld
    postfix: PostfixInstance
    ca_file: Path
    anchor_file: Path

    def args(self, domain: str, *extra: str, local: bool = False) -> list[str]:
        """The command line; ``local`` validates DNSSEC here, straight from Knot."""
        address, port = self.dns.knot if local else self.dns.unbound
        dnssec = ["--dnssec", "local", "--trust-anchor", str(self.anchor_file)] if local else []
        return [
            "check",
            domain,
            *dnssec,
            "--resolver",
            f"{address}:{port}",
            "--port",
            str(self.postfix.port),
            "--policy-port",
            str(self.web.port),
            "--ca-file",
            str(self.ca_file),
            "--timeout",
            "5",
            *extra,
        ]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    require_binary("nginx")
    base = tmp_path_factory.mktemp("cli-check")
    with run_nginxworld(base / "nginx", STS_ZONE) as web:
        # The MX certificate comes from a CA of our own, minted with
        # cryptography: trustme marks subjectAltName critical next to a
        # non-empty subject, which the WebPKI verifier rightly refuses.
        now = datetime.now(UTC)
        root = mint("cli-check root", ca=True, not_before=now - DAY, not_after=now + 30 * DAY)
        issued = mint(
            MX_STS,
            root,
            sans=(MX_STS, MX_DANE),
            not_before=now - DAY,
            not_after=now + 30 * DAY,
            key_role="cli-check mx",
        )
        cert = issued.cert
        chain_pem = issued.key.private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        ) + cert.public_bytes(Encoding.PEM)
        spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        digest = hashlib.sha256(spki).hexdigest()
        postfix_world = PostfixWorld()
        try:
            postfix = postfix_world.start("mx", hostname=MX_STS, chain_pem=chain_pem)
            extra = {
                "signed.example": [
                    f"dane.signed.example. MX 10 {MX_DANE}.",
                    f"{MX_DANE}. A 127.0.0.1",
                    f"_{postfix.port}._tcp.{MX_DANE}. TLSA 3 1 1 {digest}",
                ],
                STS_ZONE: [
                    *dns_records(STS_ZONE, cases=("valid", "wrongname")),
                    f"valid.{STS_ZONE}. MX 10 {MX_STS}.",
                    f"wrongname.{STS_ZONE}. MX 10 {MX_STS}.",
                    f"{MX_STS}. A 127.0.0.1",
                ],
            }
            ca_file = base / "ca.pem"
            ca_file.write_bytes(web.ca.cert_pem.bytes() + root.cert.public_bytes(Encoding.PEM))
            with run_dnsworld(base / "dns", extra_records=extra) as dns:
                # The private tree's root DS, as an operator's root.ds file.
                anchor_file = base / "root.ds"
                anchor_file.write_text("\n".join(dns.trust_anchor) + "\n", encoding="utf-8")
                yield Servers(dns, web, postfix, ca_file, anchor_file)
        finally:
            postfix_world.stop_all()


def run(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str]:
    status = main(args)
    return status, capsys.readouterr().out


def test_dane_domain_is_protected(servers: Servers, capsys: pytest.CaptureFixture[str]) -> None:
    status, out = run(
        capsys, servers.args("dane.signed.example", "--probe", "--allow-private", "--json")
    )
    report = json.loads(out)
    assert status == 0, out
    assert report["protected"] is True
    assert report["mx"]["security"] == "secure"
    (host,) = report["hosts"]
    assert host["host"] == MX_DANE
    assert host["dane"]["state"] == "usable"
    assert host["requirement"]["kind"] == "dane"
    (probe,) = host["probes"]
    assert probe["address"] == "127.0.0.1"
    assert probe["outcome"] == "ok"
    assert probe["dane"]["ok"] is True
    assert probe["judged"]["deliver"] is True
    # Postfix offers no REQUIRETLS: a REQUIRETLS message would bounce with 5.7.30.
    assert probe["judged_requiretls"]["requiretls_failure"] == "requiretls-not-advertised"
    assert report["requiretls_conclusion"]["dsn_status"] == "5.7.30"


def test_sts_enforce_domain_is_protected(
    servers: Servers, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = run(capsys, servers.args(f"valid.{STS_ZONE}", "--probe", "--allow-private"))
    assert status == 0, out
    assert f"MX       DNSSEC insecure: 10 {MX_STS}" in out
    assert f"MTA-STS  record _mta-sts.valid.{STS_ZONE}: id 1" in out
    assert "mode enforce, max_age 86400s (1 day)" in out
    assert "  require  sts-enforce:" in out
    assert "  probe    127.0.0.1: STARTTLS, TLSv1.3, no REQUIRETLS" in out
    assert "certificate (WebPKI): ok" in out
    assert "  judged   message: deliver" in out
    assert "verdict  PROTECTED" in out


def test_policy_host_with_wrong_name_is_not_protected(
    servers: Servers, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = run(capsys, servers.args(f"wrongname.{STS_ZONE}", "--allow-private", "--json"))
    report = json.loads(out)
    assert status == 1
    assert report["protected"] is False
    assert report["mta_sts"]["record"] == {"id": "1"}
    assert report["mta_sts"]["policy"] is None
    assert report["mta_sts"]["failure"]["reason"] == "sts-webpki-invalid"
    assert report["hosts"][0]["requirement"]["kind"] == "opportunistic"


def test_bogus_domain_is_not_protected(
    servers: Servers, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = run(capsys, servers.args("expired.example", "--probe", "--allow-private"))
    assert status == 1
    assert "MX       lookup failed, DNSSEC bogus" in out
    assert "verdict  NOT PROTECTED: the MX lookup failed or is not trustworthy" in out
    assert "  probe" not in out


def test_non_public_addresses_are_refused_by_default(
    servers: Servers, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = run(capsys, servers.args(f"valid.{STS_ZONE}", "--probe", "--json"))
    report = json.loads(out)
    assert status == 1
    # The policy host resolves to 127.0.0.1: the HTTPS guard refuses it ...
    assert report["mta_sts"]["failure"]["reason"] == "sts-policy-fetch-error"
    # ... and the SMTP probe skips the loopback MX address.
    (probe,) = report["hosts"][0]["probes"]
    assert probe["outcome"] is None
    assert "not a public address" in probe["skipped"]


def test_unreachable_resolver_is_not_protected(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.integration.servers import free_port

    status, out = run(capsys, ["check", "example.com", "--resolver", f"127.0.0.1:{free_port()}"])
    assert status == 1
    assert "MX       lookup failed, DNSSEC indeterminate" in out
    assert "MTA-STS  record _mta-sts.example.com: lookup failed" in out


# --- --dnssec local: the same verdicts, validated here from the tree's root DS -------


def _verdicts(report: dict[str, Any]) -> dict[str, object]:
    hosts = report["hosts"]
    return {
        "protected": report["protected"],
        "mx": (report["mx"]["security"], report["mx"]["failed"]),
        "hosts": [
            (
                h["host"],
                h["address_security"],
                h["dane"]["state"] if h["dane"] else None,
                h["requirement"]["kind"],
                [(p["outcome"], p["judged"] and p["judged"]["deliver"]) for p in h["probes"]],
            )
            for h in hosts
        ],
        "sts": report["mta_sts"]["policy"] and report["mta_sts"]["policy"]["mode"],
        "sts_failure": report["mta_sts"]["failure"] and report["mta_sts"]["failure"]["reason"],
    }


@pytest.mark.parametrize(
    "domain", ["dane.signed.example", f"valid.{STS_ZONE}", "expired.example", "signed.example"]
)
def test_local_validation_agrees_with_the_trusted_validator(
    servers: Servers, capsys: pytest.CaptureFixture[str], domain: str
) -> None:
    extra = ("--probe", "--allow-private", "--json")
    status_validator, out_validator = run(capsys, servers.args(domain, *extra))
    status_local, out_local = run(capsys, servers.args(domain, *extra, local=True))
    validator, local = json.loads(out_validator), json.loads(out_local)
    assert status_local == status_validator
    assert _verdicts(local) == _verdicts(validator)
    # The same statuses, vouched for differently: the JSON says by whom.
    unbound, knot = (f"{a}:{p}" for a, p in (servers.dns.unbound, servers.dns.knot))
    assert validator["dnssec"] == {"mode": "validator", "servers": [unbound], "trusted": [unbound]}
    assert local["dnssec"] == {
        "mode": "local",
        "servers": [knot],
        "trust_anchor": str(servers.anchor_file),
        "anchor_zone": ".",
    }


def test_local_validation_of_a_dane_domain(
    servers: Servers, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = run(
        capsys, servers.args("dane.signed.example", "--probe", "--allow-private", local=True)
    )
    assert status == 0, out
    assert f"MX       DNSSEC secure: 10 {MX_DANE}" in out
    assert "  DANE     usable" in out
    assert "verdict  PROTECTED" in out


def test_local_validation_with_the_root_anchor_cannot_vouch_for_the_private_tree(
    servers: Servers, capsys: pytest.CaptureFixture[str]
) -> None:
    # Without --trust-anchor the IANA root KSKs are the anchor: the private
    # root's keys match none of them, so nothing is secure (RFC 4035 §5).
    args = servers.args("dane.signed.example", "--json", local=True)
    anchor = args.index("--trust-anchor")
    del args[anchor : anchor + 2]
    status, out = run(capsys, args)
    report = json.loads(out)
    assert status == 1
    assert report["mx"]["security"] == "bogus"
    assert report["protected"] is False
