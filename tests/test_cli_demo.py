"""``mtasecure demo`` runs the whole pipeline on the bundled world, with no network."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mtasecure.cli import main

ROOT = Path(__file__).resolve().parent.parent


_REAL_SOCKET = socket.socket
NETWORK_FAMILIES = (socket.AF_INET, socket.AF_INET6, -1)
"""-1 is socket.socket's default family, which means AF_INET."""


def _no_network(*args: object, **kwargs: object) -> socket.socket:
    raise AssertionError("the demo reached for the network")


def _local_only(
    family: int = -1, type: int = -1, proto: int = -1, fileno: int | None = None
) -> socket.socket:
    # asyncio's event loop wakes itself through an AF_UNIX socketpair; that
    # stays allowed. Any Internet socket fails the test.
    if family in NETWORK_FAMILIES:
        raise AssertionError(f"the demo opened a network socket (family {family})")
    return _REAL_SOCKET(family, type, proto, fileno)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "socket", _local_only)
    monkeypatch.setattr(socket, "create_connection", _no_network)
    monkeypatch.setattr(socket, "getaddrinfo", _no_network)


def test_the_guard_refuses_network_sockets(offline: None) -> None:
    with pytest.raises(AssertionError, match="network socket"):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with pytest.raises(AssertionError, match="network socket"):
        socket.socket()
    with pytest.raises(AssertionError, match="reached for the network"):
        socket.getaddrinfo("localhost", 25)


def _sections(out: str) -> dict[str, str]:
    part = out.split("\nMTA-STS cache:", 1)[0]
    return {s.split(":", 1)[0].strip(): s for s in part.split("\n--- ")[1:]}


def test_demo_runs_with_sockets_forbidden(
    offline: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "7 example domains on the bundled world" in out
    sections = _sections(out)
    assert list(sections) == [
        "dane.example",
        "sts.example",
        "wrongname.example",
        "testing.example",
        "plain.example",
        "bogus.example",
        "norequiretls.example",
    ]


@pytest.fixture(scope="module")
def demo_out() -> str:
    import io
    from contextlib import redirect_stdout

    buffer = io.StringIO()
    with redirect_stdout(buffer):
        assert main(["demo"]) == 0
    return buffer.getvalue()


def test_dane_domain(demo_out: str) -> None:
    dane = _sections(demo_out)["dane.example"]
    assert "MX       DNSSEC secure: 10 mx.dane.example" in dane
    assert "  DANE     usable:" in dane
    assert "           TLSA 3 1 1 " in dane
    assert "  require  dane:" in dane
    assert "DANE: ok (DANE-EE(3)" in dane
    assert "  judged   REQUIRETLS: deliver with MAIL FROM REQUIRETLS" in dane
    assert "verdict  PROTECTED" in dane
    assert "TLS-RPT  policy-type tlsa: 1 successful, 0 failed" in dane


def test_sts_enforce_good(demo_out: str) -> None:
    sts = _sections(demo_out)["sts.example"]
    assert "MX       DNSSEC insecure: 10 mx1.sts.example, 20 mx2.sts.example" in sts
    assert "MTA-STS  record _mta-sts.sts.example: id 20260215T000000" in sts
    assert "mode enforce, max_age 1209600s (14 days), mx mx1.sts.example, *.sts.example" in sts
    assert "cache: policy id 20260215T000000, fetched 2026-03-01T12:00:00Z" in sts
    assert "  DANE     not used: the MX set is not DNSSEC-secure" in sts
    assert sts.count("  require  sts-enforce:") == 2
    assert sts.count("certificate (WebPKI): ok") == 2
    assert "verdict  message: delivered; REQUIRETLS message: delivered" in sts
    assert "verdict  PROTECTED" in sts
    assert "TLS-RPT  policy-type sts: 2 successful, 0 failed" in sts


def test_sts_enforce_wrong_name_is_refused(demo_out: str) -> None:
    wrong = _sections(demo_out)["wrongname.example"]
    assert "certificate (WebPKI): certificate-host-mismatch" in wrong
    assert "  judged   message: NOT SENT, certificate-host-mismatch" in wrong
    assert "verdict  message: not delivered (deferred)" in wrong
    assert "verdict  NOT PROTECTED" in wrong
    assert "certificate-host-mismatch: receiving-mx-hostname mx.wrongname.example" in wrong


def test_testing_mode_delivers_and_reports(demo_out: str) -> None:
    testing = _sections(demo_out)["testing.example"]
    assert "  require  sts-testing:" in testing
    assert "  judged   message: deliver, reported as certificate-expired" in testing
    assert "TLS-RPT  policy-type sts: 0 successful, 1 failed" in testing
    assert "verdict  NOT PROTECTED" in testing


def test_no_policy_is_opportunistic(demo_out: str) -> None:
    plain = _sections(demo_out)["plain.example"]
    assert "MTA-STS  record _mta-sts.plain.example: none usable" in plain
    assert "  require  opportunistic:" in plain
    assert "  probe    192.0.2.50: starttls-not-offered" in plain
    assert "  judged   message: deliver\n" in plain
    assert "mx-not-validated (5.7.10)" in plain
    assert "TLS-RPT  policy-type no-policy-found: 1 successful" in plain


def test_bogus_mx_is_unusable(demo_out: str) -> None:
    bogus = _sections(demo_out)["bogus.example"]
    assert "MX       lookup failed, DNSSEC bogus" in bogus
    assert "every MX is unusable and delivery is deferred (RFC 7672 §2.1.1)" in bogus
    assert "REQUIRETLS message: defer" in bogus
    assert "  probe" not in bogus


def test_requiretls_without_next_hop_support_bounces_5_7_30(demo_out: str) -> None:
    section = _sections(demo_out)["norequiretls.example"]
    assert "  judged   message: deliver\n" in section
    assert "  judged   REQUIRETLS: NOT SENT, requiretls-not-advertised (5.7.30)" in section
    assert "REQUIRETLS message: bounce 5.7.30" in section
    assert "bounce: DSN to alice@sender.example, Status: 5.7.30" in section


def test_demo_shows_the_cache_and_keeps_the_policy_files(demo_out: str) -> None:
    assert "made 0 new policy fetch(es)" in demo_out
    assert "Policy files: 4 example domains, evaluated offline" in demo_out
    assert "== example.com\n" in demo_out


def test_explanation_json_is_json(offline: None) -> None:
    import asyncio

    from mtasecure._explain import explain_domain
    from mtasecure.cli import _explanation_json
    from mtasecure.testing import World

    world = World.default()

    async def run() -> list[dict[str, object]]:
        async with world.client() as client:
            return [
                _explanation_json(await explain_domain(client, d, probe=True, trust=world.trust))
                for d in world.domains
            ]

    found = {d["domain"]: d for d in json.loads(json.dumps(asyncio.run(run())))}
    assert found["dane.example"]["protected"] is True
    assert found["dane.example"]["hosts"][0]["dane"]["state"] == "usable"
    assert found["bogus.example"]["mx"]["failed"] is True
    nr = found["norequiretls.example"]
    assert nr["requiretls_conclusion"]["dsn_status"] == "5.7.30"
    probe = nr["hosts"][0]["probes"][0]
    assert probe["judged"]["deliver"] is True
    assert probe["judged_requiretls"]["requiretls_failure"] == "requiretls-not-advertised"
    assert found["wrongname.example"]["tls_report_sessions"] == [
        {
            "policy_type": "sts",
            "result_type": "certificate-host-mismatch",
            "mx_host": "mx.wrongname.example",
            "receiving_ip": "192.0.2.30",
        }
    ]


def test_check_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as missing:
        main(["check"])
    assert missing.value.code == 2
    with pytest.raises(SystemExit) as port:
        main(["check", "example.com", "--port", "0"])
    assert port.value.code == 2
    assert "0 is not 1-65535" in capsys.readouterr().err
    for bad in ("-1", "0", "nan", "soon"):
        with pytest.raises(SystemExit) as timeout:
            main(["check", "example.com", "--timeout", bad])
        assert timeout.value.code == 2
    assert "positive number of seconds" in capsys.readouterr().err


def test_check_bad_ca_file_is_a_usage_error(
    offline: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        ["check", "example.com", "--resolver", "127.0.0.1", "--ca-file", str(tmp_path / "no.pem")]
    )
    assert status == 2
    assert "cannot read" in capsys.readouterr().err


def test_wheel_ships_the_world_and_runs_the_demo(tmp_path: Path) -> None:
    """Build the wheel with hatchling, then run the demo from the unpacked wheel alone."""
    if importlib.util.find_spec("hatchling") is None:
        message = "hatchling (in the test extra) is needed to build the wheel"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(message)
        pytest.skip(message)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("mtasecure-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    assert "mtasecure/_demo/world.toml" in names
    assert "mtasecure/_demo/sts/example.com/policy.txt" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "mtasecure = mtasecure.cli:main" in (tmp_path / "site" / entry_points).read_text()
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    done = subprocess.run(
        [sys.executable, "-m", "mtasecure", "demo"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--- norequiretls.example" in done.stdout
    assert "Status: 5.7.30" in done.stdout


def test_check_bad_domain_is_a_usage_error(
    offline: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "bad..name", "--resolver", "127.0.0.1"]) == 2
    assert "empty label" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "expected", "local"),
    [
        (["--resolver", "192.0.2.53"], [("192.0.2.53", 53, False)], False),
        (["--resolver", "192.0.2.53", "--trust-resolver"], [("192.0.2.53", 53, True)], False),
        (["--resolver", "127.0.0.1:5353"], [("127.0.0.1", 5353, True)], False),
        (
            ["--resolver", "[::1]:53", "--resolver", "198.51.100.1"],
            [("::1", 53, True), ("198.51.100.1", 53, False)],
            False,
        ),
        # Local validation never reads the AD bit, whatever the address (RFC 4035 §5).
        (["--resolver", "192.0.2.53", "--dnssec", "local"], [("192.0.2.53", 53, False)], True),
    ],
)
def test_check_resolver_options(
    offline: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *,
    args: list[str],
    expected: list[tuple[str, int, bool]],
    local: bool,
) -> None:
    import mtasecure.transport
    from mtasecure.errors import UsageError

    built: list[mtasecure.transport.DnsResolver] = []
    real = mtasecure.transport.resolver_from_settings

    def capture(settings: mtasecure.transport.DnsSettings) -> None:
        built.append(real(settings))
        raise UsageError("stop here")

    monkeypatch.setattr(mtasecure.transport, "resolver_from_settings", capture)
    assert main(["check", "example.com", *args]) == 2
    (resolver,) = built
    assert [(ns.address, ns.port, ns.trusted) for ns in resolver.nameservers] == expected
    assert isinstance(resolver, mtasecure.transport.ValidatingResolver) is local
    assert "stop here" in capsys.readouterr().err


def test_check_trust_anchor_file(
    offline: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    import mtasecure.transport
    from mtasecure.errors import UsageError

    anchor = tmp_path / "root.ds"
    anchor.write_text(". 3600 IN DS 4242 13 2 " + "ab" * 32 + "\n", encoding="utf-8")
    seen: list[mtasecure.transport.DnsSettings] = []

    def capture(settings: mtasecure.transport.DnsSettings) -> None:
        seen.append(settings)
        raise UsageError("stop here")

    monkeypatch.setattr(mtasecure.transport, "resolver_from_settings", capture)
    base = ["check", "example.com", "--resolver", "127.0.0.1"]
    assert main([*base, "--dnssec", "local", "--trust-anchor", str(anchor)]) == 2
    (settings,) = seen
    assert settings.trust_anchor is not None
    assert settings.trust_anchor.ds == ("4242 13 2 " + "ab" * 32,)
    capsys.readouterr()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--trust-anchor", "ANCHOR"], "--trust-anchor needs --dnssec local"),
        (["--dnssec", "local", "--trust-resolver"], "--trust-resolver means nothing"),
        (["--dnssec", "local", "--trust-anchor", "MISSING"], "cannot read"),
        (["--dnssec", "local", "--trust-anchor", "BAD"], "trust anchor"),
    ],
)
def test_check_dnssec_option_errors(
    offline: None,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    extra: list[str],
    message: str,
) -> None:
    (tmp_path / "ANCHOR").write_text(". IN DS 4242 13 2 " + "ab" * 32, encoding="utf-8")
    (tmp_path / "BAD").write_text("not a record", encoding="utf-8")
    paths = {"ANCHOR", "MISSING", "BAD"}
    args = [str(tmp_path / a) if a in paths else a for a in extra]
    assert main(["check", "example.com", "--resolver", "127.0.0.1", *args]) == 2
    assert message in capsys.readouterr().err


def test_check_fetch_timeout_default_is_the_named_constant(
    offline: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mtasecure.client
    from mtasecure.cli import CHECK_FETCH_TIMEOUT
    from mtasecure.errors import UsageError

    seen: list[float] = []

    def capture(**kwargs: float) -> None:
        seen.append(kwargs["fetch_timeout"])
        raise UsageError("stop here")

    monkeypatch.setattr(mtasecure.client, "StsSettings", capture)
    assert main(["check", "example.com", "--resolver", "127.0.0.1"]) == 2
    assert main(["check", "example.com", "--resolver", "127.0.0.1", "--timeout", "2.5"]) == 2
    assert seen == [CHECK_FETCH_TIMEOUT, 2.5]
    assert CHECK_FETCH_TIMEOUT == 30.0


def _report_part(demo_out: str) -> str:
    head = "TLS reports for 2026-03-01 (RFC 8460): "
    assert head in demo_out
    return demo_out.split(head, 1)[1].split("\nPolicy files:", 1)[0]


def test_demo_records_the_sessions_and_builds_the_days_reports(demo_out: str) -> None:
    part = _report_part(demo_out)
    assert part.startswith("7 judged session(s) recorded with MtaSecure.record_session")
    assert "aggregated into 6 report(s), one per policy domain; 2 of those domains" in part
    assert "the reports are built, not sent" in part
    assert (
        "No _smtp._tls record, so no report is sent for: dane.example, norequiretls.example, "
        "plain.example, sts.example" in part
    )
    lines = part.splitlines()
    assert "== testing.example" in lines
    assert (
        "rua      mailto:tlsrpt@testing.example  (would be sent to; RFC 8460 §3: every rua)"
        in lines
    )
    # Every rua of wrongname.example's record, not just the first (RFC 8460 §3).
    assert any(line.startswith("rua      https://tlsrpt.wrongname.example/v1 ") for line in lines)
    assert any(line.startswith("rua      mailto:tls-reports@wrongname.example ") for line in lines)
    files = [line.split()[1] for line in lines if line.startswith("file     ")]
    assert [f.split("!")[:4] for f in files] == [
        ["sender.example", "testing.example", "1772323200", "1772409599"],
        ["sender.example", "wrongname.example", "1772323200", "1772409599"],
    ]
    assert all(f.endswith(".json.gz") for f in files)


def test_demo_report_json_is_an_rfc8460_report(demo_out: str) -> None:
    from mtasecure.results import FailureReason
    from mtasecure.tlsrpt import PolicyType, parse_report

    part = _report_part(demo_out)
    blocks = ["{" + b.split("\n}\n", 1)[0] + "\n}" for b in part.split("\n{\n")[1:]]
    reports = [parse_report(block) for block in blocks]
    assert [r.policies[0].policy.policy_domain for r in reports] == [
        "testing.example",
        "wrongname.example",
    ]
    testing, wrongname = reports
    assert testing.organization_name == "Sender Example"
    assert testing.contact_info == "tlsrpt@sender.example"
    (entry,) = testing.policies
    assert entry.policy.policy_type is PolicyType.STS
    assert entry.policy.policy_string == (
        "version: STSv1",
        "mode: testing",
        "mx: mx.testing.example",
        "max_age: 604800",
    )
    assert (testing.total_successful, testing.total_failed) == (0, 1)
    (detail,) = entry.failure_details
    assert detail.result_type is FailureReason.CERTIFICATE_EXPIRED
    assert detail.sending_mta_ip == "198.51.100.25"
    assert detail.receiving_ip == "192.0.2.40"
    assert detail.failure_reason_code is not None
    assert "expired" in detail.failure_reason_code
    (wrong,) = wrongname.policies[0].failure_details
    assert wrong.result_type is FailureReason.CERTIFICATE_HOST_MISMATCH
    assert wrong.receiving_mx_hostname == "mx.wrongname.example"
