"""``mtasecure tlsrpt read`` and ``check-record``: the domain owner's side of RFC 8460."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest

import mtasecure._cli_tlsrpt as cli_tlsrpt
from mtasecure.cli import main

DATA = Path(__file__).parent / "data" / "tlsrpt"
GOOGLE = DATA / "google-style.json"
MICROSOFT = DATA / "microsoft-style.json"
APPENDIX_B = DATA / "rfc8460-appendix-b.json"
MINIMAL = DATA / "minimal-sender.json"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["tlsrpt", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_read_summarises_per_policy(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "read", str(APPENDIX_B))
    assert code == 0
    assert "report 5065427c-23d3-47ca-b6e0-946ea0e8c4be" in out
    assert "5326 successful, 303 failed session(s) under 1 policy" in out
    assert "policy sts for company-y.example (mx-host *.mail.company-y.example)" in out
    assert "      | mode: testing\n" in out
    # Grouped by result type, most sessions first, with hosts and IPs.
    lines = out.splitlines()
    kinds = [line.strip() for line in lines if line.endswith("session(s)") and ":" in line]
    assert kinds == [
        "starttls-not-supported: 200 session(s)",
        "certificate-expired: 100 session(s)",
        "validation-failure: 3 session(s)",
    ]
    assert "      mx hosts: mx2.mail.company-y.example" in lines
    assert "      sending IPs: 2001:db8:abcd:0013::1" in lines
    assert "      reason codes: X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED" in lines


def test_read_takes_several_files_and_both_senders_styles(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = _run(capsys, "read", str(GOOGLE), str(MICROSOFT), str(MINIMAL))
    assert code == 0
    assert "1942 successful, 7 failed session(s) under 1 policy" in out
    assert "401 successful, 4 failed session(s) under 2 policies" in out
    assert "policy tlsa for example.com (mx-host mx2.example.com)" in out
    assert "from Small Relay <no contact>" in out  # contact-info: null
    assert "policy no-policy-found for example.org" in out


def test_read_accepts_gzip_and_stdin(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packed = tmp_path / "report.json.gz"
    packed.write_bytes(gzip.compress(GOOGLE.read_bytes()))
    code, from_file, _ = _run(capsys, "read", str(packed))
    assert code == 0
    stdin = io.TextIOWrapper(io.BytesIO(packed.read_bytes()))
    monkeypatch.setattr("sys.stdin", stdin)
    code, from_stdin, _ = _run(capsys, "read", "-")
    assert code == 0
    assert from_stdin.replace("<stdin>", str(packed)) == from_file


def test_an_unreadable_report_exits_1_and_the_others_are_still_read(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"organization-name": "X"}')
    code, out, _ = _run(capsys, "read", str(bad), str(GOOGLE))
    assert code == 1
    assert f"{bad}: unreadable report: " in out
    assert "RFC 8460" in out  # the ReportSyntaxError names its rule
    assert "1942 successful" in out


def test_garbage_bytes_are_an_unreadable_report(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "junk.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage")
    code, out, _ = _run(capsys, "read", str(bad))
    assert code == 1
    assert "unreadable report" in out


def test_an_oversized_input_is_refused_before_parsing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_tlsrpt, "MAX_INPUT_BYTES", 100)
    code, out, _ = _run(capsys, "read", str(GOOGLE))
    assert code == 1
    assert "over 100 bytes" in out


def test_a_missing_file_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "read", "/nonexistent/report.json")
    assert code == 2
    assert "cannot read /nonexistent/report.json" in err
    assert out == ""


def test_read_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    code, out, _ = _run(capsys, "read", "--json", str(MICROSOFT), str(bad))
    assert code == 1
    good, broken = json.loads(out)
    assert good["file"] == str(MICROSOFT)
    assert good["total-successful-session-count"] == 401
    assert good["total-failure-session-count"] == 4
    sts, tlsa = good["policies"]
    assert sts["policy-type"] == "sts"
    assert sts["failures"] == [
        {
            "result-type": "certificate-host-mismatch",
            "sessions": 4,
            "mx-hosts": ["mx1.example.com"],
            "receiving-ips": ["192.0.2.25"],
            "sending-ips": ["40.107.22.101"],
            "failure-reason-codes": [],
        }
    ]
    assert tlsa["failures"] == []
    assert broken["file"] == str(bad)
    assert "error" in broken


def test_check_record(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys,
        "check-record",
        "v=TLSRPTv1; rua=mailto:tls@example.com,https://r.example.com/v1,ftp://x.example",
    )
    assert code == 0
    assert out.splitlines() == [
        "valid: reports go to 2 endpoint(s)",
        "  rua mailto:tls@example.com",
        "  rua https://r.example.com/v1",
        "  ignored ftp://x.example: scheme 'ftp' is not mailto or https (RFC 8460 §3)",
    ]


@pytest.mark.parametrize(
    "text",
    ["v=STSv1; id=1", "v=TLSRPTv1;", "v=TLSRPTv1; rua=ftp://only.example", ""],
)
def test_check_record_invalid(capsys: pytest.CaptureFixture[str], text: str) -> None:
    code, out, _ = _run(capsys, "check-record", text)
    assert code == 1
    assert out.startswith("invalid: ")


def test_check_record_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys, "check-record", "--json", "v=TLSRPTv1; rua=mailto:a@example.com; x=y"
    )
    assert code == 0
    assert json.loads(out) == {
        "valid": True,
        "rua": ["mailto:a@example.com"],
        "ignored-rua": [],
        "extensions": [["x", "y"]],
    }
    code, out, _ = _run(capsys, "check-record", "--json", "v=TLSRPTv1")
    assert code == 1
    assert json.loads(out)["valid"] is False


def test_no_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys)
    assert code == 2
    assert "read FILE" in err


def test_no_file_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["tlsrpt", "read"])
    assert exc.value.code == 2
