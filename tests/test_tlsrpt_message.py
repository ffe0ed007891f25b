"""The report mail (RFC 8460 §5.3), its DKIM signature (RFC 6376) checked by dkimpy and OpenDKIM.

OpenDKIM is run offline in its test mode (``opendkim -t msg``) with
``TestPublicKeys`` pointing at a key file written by the test, so no DNS is
involved. OpenDKIM 2.11 refuses a key record whose service type is only
``s=tlsrpt`` ("not an e-mail key") while dkimpy's strict RFC 8460 mode
requires exactly ``s=tlsrpt``; each verifier gets the record form it accepts
(``s=email:tlsrpt`` is the RFC 6376 §3.6.1 list form for OpenDKIM).
"""

from __future__ import annotations

import base64
import email
import email.policy
import gzip
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mtasecure.errors import UsageError
from mtasecure.results import FailureReason
from mtasecure.tlsrpt import (
    BuiltReport,
    DkimKey,
    ReportOptions,
    ReportWindow,
    TlsRptCollector,
    build_reports,
    is_report_mail,
    parse_report,
    render_report_message,
)
from mtasecure.tlsrpt._message import render_subject
from mtasecure.transport.report_submit import sign_report_message
from tests._tlsrpt_support import assert_same_totals, parsedmarc
from tests.integration.servers import require_binary

NOW = datetime(2026, 3, 2, 3, 17, tzinfo=UTC)
WINDOW = ReportWindow.containing(datetime(2026, 3, 1, tzinfo=UTC))
OPTIONS = ReportOptions(organization_name="Sender Org", contact_info="tlsrpt@mail.sender.example")
SENDER = "tlsrpt@mail.sender.example"


def _built() -> BuiltReport:
    c = TlsRptCollector()
    for _ in range(7):
        c.record("example.net", None, None)
    c.record("example.net", None, FailureReason.STARTTLS_NOT_SUPPORTED, sending_ip="192.0.2.1")
    batch = c.drain(WINDOW)
    assert batch is not None
    return build_reports(batch, OPTIONS)[0]


REPORT = _built()


def _rsa_key() -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, base64.b64encode(der).decode()


PEM, PUBLIC = _rsa_key()
KEY = DkimKey(selector="rpt2026", domain="mail.sender.example", private_key=PEM)


def _message(**kwargs: object) -> bytes:
    return render_report_message(
        REPORT,
        sender=SENDER,
        recipients=["tlsrpt@example.net"],
        now=NOW,
        **kwargs,  # type: ignore[arg-type]
    )


def test_message_has_the_rfc8460_headers_and_parts() -> None:
    msg = email.message_from_bytes(_message(), policy=email.policy.SMTP)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "tlsrpt"
    assert msg["TLS-Report-Domain"] == "example.net"
    assert msg["TLS-Report-Submitter"] == "mail.sender.example"
    assert msg["TLS-Required"] == "No"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["From"] == SENDER
    assert msg["Date"] == "Mon, 02 Mar 2026 03:17:00 +0000"
    subject = " ".join(str(msg["Subject"]).split())
    report_id = REPORT.report.report_id
    assert (
        subject
        == f"Report Domain: example.net Submitter: mail.sender.example Report-ID: <{report_id}>"
    )
    assert msg["Message-ID"] == f"<{report_id}>"
    text, attachment = msg.iter_parts()
    assert text.get_content_type() == "text/plain"
    assert attachment.get_content_type() == "application/tlsrpt+gzip"
    assert attachment.get_filename() == REPORT.filename
    assert attachment["Content-Transfer-Encoding"] == "base64"
    # The file name is one quoted parameter, not RFC 2231 continuations.
    assert f'filename="{REPORT.filename}"' in attachment["Content-Disposition"]
    assert attachment.get_payload(decode=True) == REPORT.gzip
    assert parse_report(attachment.get_payload(decode=True)) == REPORT.report


def test_submitter_header_matches_the_contact_info_domain() -> None:
    msg = email.message_from_bytes(_message())
    assert msg["TLS-Report-Submitter"] == REPORT.report.contact_info.rpartition("@")[2]  # type: ignore[union-attr]


def test_lines_are_crlf_and_short_enough() -> None:
    data = _message()
    assert b"\r\n" in data
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert max(len(line) for line in data.split(b"\r\n")) <= 998


def test_subject_renderer() -> None:
    assert render_subject(
        "example.net", "mail.sender.example", "735ff.e317+bf22029@example.net"
    ) == (
        "Report Domain: example.net Submitter: mail.sender.example "
        "Report-ID: <735ff.e317+bf22029@example.net>"
    )


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"sender": "no-at"}, "sender"),
        ({"recipients": []}, "recipient"),
        ({"recipients": ["a@b.example\r\nBcc: x@evil.example"]}, "recipient"),
        ({"now": datetime(2026, 3, 2)}, "aware"),
    ],
)
def test_bad_arguments_are_usage_errors(kwargs: dict[str, object], needle: str) -> None:
    args: dict[str, object] = {"sender": SENDER, "recipients": ["tlsrpt@example.net"], "now": NOW}
    args.update(kwargs)
    with pytest.raises(UsageError, match=needle):
        render_report_message(REPORT, **args)  # type: ignore[arg-type]


def test_parsedmarc_reads_the_mail_with_the_same_totals() -> None:
    result = parsedmarc().parse_report_email(sign_report_message(_message(), KEY))
    assert result["report_type"] == "smtp_tls"
    assert_same_totals(result["report"], REPORT.report)


def _dns(record: str):  # type: ignore[no-untyped-def]
    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        if name.rstrip(b".") == b"rpt2026._domainkey.mail.sender.example":
            return record.encode()
        return None

    return lookup


def test_dkimpy_verifies_in_strict_tlsrpt_mode() -> None:
    import dkim

    signed = sign_report_message(_message(), KEY)
    assert signed.startswith(b"DKIM-Signature:")
    record = f"v=DKIM1; k=rsa; s=tlsrpt; p={PUBLIC}"
    assert dkim.verify(signed, dnsfunc=_dns(record), tlsrpt="strict")
    # Strict mode really is strict: a key record without s=tlsrpt fails.
    assert not dkim.verify(signed, dnsfunc=_dns(f"v=DKIM1; k=rsa; p={PUBLIC}"), tlsrpt="strict")
    # And the signature covers the report headers and the attachment.
    tampered = signed.replace(b"TLS-Report-Domain: example.net", b"TLS-Report-Domain: example.org")
    assert not dkim.verify(tampered, dnsfunc=_dns(record), tlsrpt="strict")
    body_tampered = signed.replace(b"This is an aggregate", b"This is a forged")
    assert not dkim.verify(body_tampered, dnsfunc=_dns(record), tlsrpt="strict")


def test_signature_has_no_length_tag_and_signs_the_report_headers() -> None:
    signed = sign_report_message(_message(), KEY)
    header = email.message_from_bytes(signed)["DKIM-Signature"]
    tags = {
        k.strip(): v.strip()
        for k, _, v in (t.partition("=") for t in "".join(header.split()).split(";") if t)
    }
    assert "l" not in tags  # RFC 8460 §5.3 / dkimpy's tlsrpt mode
    assert tags["s"] == "rpt2026"
    assert tags["d"] == "mail.sender.example"
    signed_headers = set(tags["h"].lower().split(":"))
    assert {"tls-report-domain", "tls-report-submitter", "subject", "from"} <= signed_headers


def test_a_bad_key_is_a_usage_error() -> None:
    bad = DkimKey(selector="s", domain="mail.sender.example", private_key=b"not a key")
    with pytest.raises(UsageError, match="DKIM"):
        sign_report_message(_message(), bad)


def _opendkim(tmp_path: Path, message: bytes, record: str) -> str:
    binary = require_binary("opendkim")
    keys = tmp_path / "keys"
    keys.write_text(f"rpt2026._domainkey.mail.sender.example {record}\n")
    conf = tmp_path / "opendkim.conf"
    conf.write_text(f"Mode v\nTestPublicKeys {keys}\nSyslog no\nLogWhy yes\n")
    msg = tmp_path / "msg.eml"
    msg.write_bytes(message)
    done = subprocess.run(
        [binary, "-x", str(conf), "-t", str(msg)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.stdout + done.stderr


@pytest.mark.integration
def test_opendkim_verifies_the_signature(tmp_path: Path) -> None:
    signed = sign_report_message(_message(), KEY)
    out = _opendkim(tmp_path, signed, f"v=DKIM1; k=rsa; s=email:tlsrpt; p={PUBLIC}")
    assert "verification (s=rpt2026, d=mail.sender.example, 2048-bit key) succeeded" in out, out


@pytest.mark.integration
def test_opendkim_rejects_a_tampered_report(tmp_path: Path) -> None:
    signed = sign_report_message(_message(), KEY)
    tampered = signed.replace(b"TLS-Report-Domain: example.net", b"TLS-Report-Domain: example.org")
    out = _opendkim(tmp_path, tampered, f"v=DKIM1; k=rsa; s=email:tlsrpt; p={PUBLIC}")
    assert "succeeded" not in out
    assert "verification" in out, out
    assert "failed" in out, out


def test_is_report_mail_recognises_report_headers() -> None:
    msg = email.message_from_bytes(_message())
    assert is_report_mail(msg.items())
    assert is_report_mail([("tls-report-submitter", "x.example")])
    assert is_report_mail([("Content-Type", 'multipart/report; report-type="tlsrpt"; boundary=x')])
    assert is_report_mail([("Content-Type", "Multipart/Report;\r\n report-type=TLSRPT")])
    assert not is_report_mail([("Content-Type", 'multipart/report; report-type="delivery-status"')])
    assert not is_report_mail([("Subject", "Report Domain: example.net"), ("From", SENDER)])
    assert not is_report_mail([])


def test_attachment_is_the_built_gzip() -> None:
    msg = email.message_from_bytes(_message(), policy=email.policy.SMTP)
    attachment = list(msg.iter_parts())[1]
    payload = attachment.get_payload(decode=True)
    assert gzip.decompress(payload) == REPORT.report.to_json()
