"""The ``mtasecure`` command: ``demo`` and the ``sts`` checks, all offline."""

from __future__ import annotations

import io
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from mtasecure.cli import load_demo, main
from mtasecure.errors import ParseError
from mtasecure.sts import parse_policy, select_record

ROOT = Path(__file__).resolve().parent.parent
GOOD = b"version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmax_age: 1209600\r\n"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    status = main(list(argv))
    return status, capsys.readouterr().out


# --- demo ----------------------------------------------------------------------


def test_demo_data_ships_in_the_package() -> None:
    domains = {d.domain: d for d in load_demo()}
    assert sorted(domains) == ["broken.example", "example.com", "example.net", "example.org"]
    assert domains["example.com"].policy.endswith(b"\r\n")
    assert b"\r" not in domains["example.net"].policy  # the LF-only example
    assert domains["example.com"].mx[0] == (10, "mail.example.com.")
    assert select_record(domains["broken.example"].txt) is None
    assert select_record(domains["example.com"].txt) is not None


def test_demo_exits_zero_and_covers_every_domain(capsys: pytest.CaptureFixture[str]) -> None:
    status, out = run(capsys, "demo")
    assert status == 0
    for domain in ("broken.example", "example.com", "example.net", "example.org"):
        assert f"== {domain}\n" in out
    assert "4 example domains" in out


def test_demo_shows_policies_errors_lint_and_verdicts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, out = run(capsys, "demo")
    sections = {s.split("\n", 1)[0]: s for s in out.split("== ")[1:]}
    com = sections["example.com"]
    assert "record   _mta-sts.example.com: id 20261101000000Z" in com
    assert "https://mta-sts.example.com/.well-known/mta-sts.txt" in com
    assert "mode enforce, max_age 1209600s (14 days), mx mail.example.com, *.mx.example.net" in com
    assert "eu.mx.example.net.   allowed (enforce" in com
    assert "a.b.mx.example.net.  REFUSED" in com
    assert "mx.example.org.      REFUSED" in com
    assert "[mx-not-covered]" in com
    net = sections["example.net"]
    assert "mode testing" in net
    assert "mx3.example.net.  not covered (testing" in net
    assert "[lf-line-ending]" in net
    assert "[max-age-short]" in net
    assert "[testing-mode]" in net
    org = sections["example.org"]
    assert "mode none, max_age 86400s (1 day), mx (none)" in org
    assert "mode none: no MTA-STS requirement" in org
    broken = sections["broken.example"]
    assert "no usable MTA-STS record (2 TXT string(s), 2 starting with v=STSv1)" in broken
    assert (
        "invalid: line 2: mode 'enforcing' is not one of enforce, testing, none (RFC 8461 §3.2)"
        in broken
    )
    assert "[mx-invalid]" in broken
    assert "key 'max-age' looks like 'max_age'" in broken
    assert "no valid policy: opportunistic TLS" in broken


def test_demo_verdicts_agree_with_the_library(capsys: pytest.CaptureFixture[str]) -> None:
    _, out = run(capsys, "demo")
    for example in load_demo():
        try:
            policy = parse_policy(example.policy)
        except ParseError:
            continue
        for _, host in example.mx:
            line = next(line for line in out.splitlines() if f" {host} " in line)
            if policy.mode.value != "none":
                assert ("allowed" in line) is policy.matches(host), line


def test_python_dash_m_runs_the_demo() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mtasecure", "demo"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "== example.com" in done.stdout


def test_closed_pipe_is_not_an_error() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "mtasecure", "demo"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 0
    assert done.stderr == ""


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    status, out = run(capsys)
    assert status == 2
    assert "demo" in out
    assert "sts" in out


def test_sts_without_subcommand_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    status, out = run(capsys, "sts")
    assert status == 2
    assert "usage: mtasecure" in out


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["frobnicate"])
    assert caught.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out.startswith("mtasecure 0.")


# --- sts check-policy -------------------------------------------------------------


def test_check_policy_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mta-sts.txt"
    path.write_bytes(GOOD)
    status, out = run(capsys, "sts", "check-policy", str(path))
    assert status == 0
    assert out == (
        "valid: mode enforce, max_age 1209600s (14 days), mx mail.example.com\n"
        "findings nothing to fix\n"
    )


def test_check_policy_with_mx(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mta-sts.txt"
    path.write_bytes(GOOD)
    status, out = run(capsys, "sts", "check-policy", str(path), "--mx", "mail.example.com")
    assert status == 0
    assert "mx mail.example.com: allowed (enforce" in out
    status, out = run(
        capsys, "sts", "check-policy", str(path), "--mx", "mail.example.com", "--mx", "b.example"
    )
    assert status == 1
    assert "mx b.example: REFUSED" in out
    assert "[mx-not-covered]" in out


def test_check_policy_warnings_only_exit_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "mta-sts.txt"
    path.write_bytes(GOOD.replace(b"\r\n", b"\n"))
    status, out = run(capsys, "sts", "check-policy", str(path))
    assert status == 0
    assert "[lf-line-ending]" in out


def test_check_policy_invalid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mta-sts.txt"
    path.write_bytes(GOOD.replace(b"enforce", b"enforcing"))
    status, out = run(capsys, "sts", "check-policy", str(path))
    assert status == 1
    assert out.startswith(
        "invalid: line 2: mode 'enforcing' is not one of enforce, testing, none (RFC 8461 §3.2)\n"
    )


def test_check_policy_reads_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Stdin:
        buffer = io.BytesIO(GOOD)

    monkeypatch.setattr(sys, "stdin", Stdin)
    status, out = run(capsys, "sts", "check-policy", "-")
    assert status == 0
    assert out.startswith("valid: mode enforce")


def test_check_policy_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["sts", "check-policy", str(tmp_path / "absent.txt")])
    captured = capsys.readouterr()
    assert status == 2
    assert "cannot read" in captured.err
    assert captured.out == ""


def test_check_policy_on_the_bundled_examples(capsys: pytest.CaptureFixture[str]) -> None:
    base = ROOT / "mtasecure" / "_demo" / "sts"
    assert run(capsys, "sts", "check-policy", str(base / "broken.example" / "policy.txt"))[0] == 1
    status, out = run(
        capsys,
        "sts",
        "check-policy",
        str(base / "example.com" / "policy.txt"),
        "--mx",
        "mail.example.com",
        "eu.mx.example.net",
    )
    assert status == 0, out


# --- sts check-record ---------------------------------------------------------------


def test_check_record_valid(capsys: pytest.CaptureFixture[str]) -> None:
    status, out = run(capsys, "sts", "check-record", "v=STSv1; id=20160831085700Z;")
    assert status == 0
    assert out == "valid: id 20160831085700Z\nfindings nothing to fix\n"


def test_check_record_with_extension_and_warning(capsys: pytest.CaptureFixture[str]) -> None:
    status, out = run(capsys, "sts", "check-record", "v=STSv1 ; id=a; x=1")
    assert status == 0
    assert out.startswith("valid: id a, extensions x=1\n")
    assert "[version-spacing]" in out


def test_check_record_invalid(capsys: pytest.CaptureFixture[str]) -> None:
    status, out = run(capsys, "sts", "check-record", "v=STSv1; id=2016-08-31")
    assert status == 1
    assert out.startswith("invalid: error: id '2016-08-31' is not 1 to 32 letters and digits")


def test_check_record_not_an_sts_record(capsys: pytest.CaptureFixture[str]) -> None:
    status, out = run(capsys, "sts", "check-record", "v=spf1 -all")
    assert status == 1
    assert "must start with 'v=STSv1'" in out


# --- the examples/ scripts ------------------------------------------------------------


def test_examples_evaluate_policies(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(ROOT / "examples" / "evaluate_policies.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "example.com: record id 20261101000000Z" in out
    assert "a.b.mx.example.net.: not covered (enforce)" in out
    assert "broken.example: record id None" in out


def test_examples_publish_policy(capsys: pytest.CaptureFixture[str]) -> None:
    module = runpy.run_path(str(ROOT / "examples" / "publish_policy.py"))
    assert module["main"](["example.com", "mail.example.com"]) == 0
    out = capsys.readouterr().out
    assert "https://mta-sts.example.com/.well-known/mta-sts.txt" in out
    assert "_mta-sts.example.com.  IN TXT  'v=STSv1; id=" in out
    assert module["main"](["example.com", "192.0.2.1"]) == 2
    assert module["main"]([]) == 2


# --- check: which DNSSEC mode gave the security statuses --------------------------------

ANCHOR_DS = "4242 13 2 " + "ab" * 32


@pytest.fixture
def explained(monkeypatch: pytest.MonkeyPatch) -> None:
    """``check`` explains dane.example of the bundled world instead of asking the network."""
    import socket

    import mtasecure._explain
    from mtasecure.testing import World

    real = mtasecure._explain.explain_domain
    world = World.default()

    async def from_world(client: object, domain: str, **kwargs: object) -> object:
        async with world.client() as fake:
            return await real(fake, "dane.example", trust=world.trust)

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("check reached for the network")

    monkeypatch.setattr(mtasecure._explain, "explain_domain", from_world)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)


@pytest.mark.parametrize(
    ("args", "expected", "line"),
    [
        (
            ["--resolver", "192.0.2.53"],
            {"mode": "validator", "servers": ["192.0.2.53:53"], "trusted": []},
            "DNSSEC   validator: AD bit believed from no nameserver (nothing can be secure); "
            "asking 192.0.2.53:53 (RFC 4035 §4.9.3)",
        ),
        (
            ["--resolver", "127.0.0.1:5353", "--resolver", "192.0.2.53"],
            {
                "mode": "validator",
                "servers": ["127.0.0.1:5353", "192.0.2.53:53"],
                "trusted": ["127.0.0.1:5353"],
            },
            "DNSSEC   validator: AD bit believed from 127.0.0.1:5353; "
            "asking 127.0.0.1:5353, 192.0.2.53:53 (RFC 4035 §4.9.3)",
        ),
        (
            ["--resolver", "[2001:db8::53]", "--trust-resolver"],
            {
                "mode": "validator",
                "servers": ["[2001:db8::53]:53"],
                "trusted": ["[2001:db8::53]:53"],
            },
            "DNSSEC   validator: AD bit believed from [2001:db8::53]:53; "
            "asking [2001:db8::53]:53 (RFC 4035 §4.9.3)",
        ),
        (
            ["--resolver", "192.0.2.53", "--dnssec", "local"],
            {
                "mode": "local",
                "servers": ["192.0.2.53:53"],
                "trust_anchor": "built-in root",
                "anchor_zone": ".",
            },
            "DNSSEC   validated here from trust anchor built-in root (zone .), "
            "asking 192.0.2.53:53 (RFC 4035 §5)",
        ),
        (
            ["--resolver", "192.0.2.53", "--dnssec", "local", "--trust-anchor", "ANCHOR"],
            {
                "mode": "local",
                "servers": ["192.0.2.53:53"],
                "trust_anchor": "ANCHOR",
                "anchor_zone": "example",
            },
            "DNSSEC   validated here from trust anchor ANCHOR (zone example), "
            "asking 192.0.2.53:53 (RFC 4035 §5)",
        ),
    ],
)
def test_check_names_the_dnssec_mode(
    explained: None,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    *,
    args: list[str],
    expected: dict[str, object],
    line: str,
) -> None:
    import json

    anchor = tmp_path / "example.ds"
    anchor.write_text(f"example. 3600 IN DS {ANCHOR_DS}\n", encoding="utf-8")
    argv = ["check", "example.com", *(str(anchor) if a == "ANCHOR" else a for a in args)]
    if "trust_anchor" in expected and expected["trust_anchor"] == "ANCHOR":
        expected = {**expected, "trust_anchor": str(anchor)}
        line = line.replace("ANCHOR", str(anchor))
    status, out = run(capsys, *argv, "--json")
    report = json.loads(out)
    assert report["domain"] == "dane.example"
    assert report["dnssec"] == expected
    status_text, text = run(capsys, *argv)
    assert status_text == status
    assert text.splitlines()[:2] == ["--- dane.example", line]
