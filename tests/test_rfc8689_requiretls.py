"""RFC 8689 REQUIRETLS: the wire tokens, flagging, the hop steps and the DSN, as tables of vectors."""

from __future__ import annotations

import contextlib
import email
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

import mtasecure.requiretls as rt
from mtasecure.errors import MessageSyntaxError, ParseError, UsageError
from mtasecure.requiretls import (
    MAX_RETURNED_HEADER_OCTETS,
    FlagSource,
    MessageFlags,
    RecipientFailure,
    RequireTlsFailure,
    RequireTlsSettings,
    TlsRequired,
    check_ehlo_requiretls,
    check_requiretls_hop,
    check_requiretls_receipt,
    choose_bounce_failure,
    flag_message,
    parse_ehlo_line,
    parse_mail_parameters,
    parse_requiretls_parameter,
    parse_tls_required,
    parse_tls_required_field,
    render_ehlo_keyword,
    render_failure_dsn,
    render_mail_from,
    render_tls_required,
    split_requiretls_tag,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_public_objects_have_docstrings() -> None:
    undocumented = [
        name
        for name in rt.__all__
        if callable(getattr(rt, name)) and not (getattr(rt, name).__doc__ or "").strip()
    ]
    assert undocumented == []


def test_all_is_pinned() -> None:
    assert rt.__all__ == sorted(rt.__all__)
    assert set(rt.__all__) == {
        "ADDRESS_TAG",
        "EHLO_KEYWORD",
        "HEADER_FIELD",
        "MAIL_PARAMETER",
        "MAX_RETURNED_HEADER_OCTETS",
        "STATUS_ENCRYPTION_NEEDED",
        "STATUS_REQUIRETLS_REQUIRED",
        "TAG_DELIMITER",
        "Dsn",
        "FlagSource",
        "FlaggedMessage",
        "MessageFlags",
        "ReceiptCheck",
        "RecipientFailure",
        "RequireTlsFailure",
        "RequireTlsSettings",
        "TlsRequired",
        "check_ehlo_requiretls",
        "check_requiretls_hop",
        "check_requiretls_receipt",
        "choose_bounce_failure",
        "flag_message",
        "parse_ehlo_line",
        "parse_mail_parameters",
        "parse_requiretls_parameter",
        "parse_tls_required",
        "parse_tls_required_field",
        "render_ehlo_keyword",
        "render_failure_dsn",
        "render_mail_from",
        "render_tls_required",
        "split_requiretls_tag",
    }


# --- §2: EHLO keyword -------------------------------------------------------

EHLO_VECTORS = [
    # (lines after STARTTLS, offers REQUIRETLS, rule)
    (["SIZE 52428800", "8BITMIME", "PIPELINING", "REQUIRETLS", "HELP"], True, "RFC 8689 App. A.1"),
    (["requiretls"], True, "RFC 5321 §4.1.1.1: keywords are case-insensitive"),
    (["RequireTLS\r\n"], True, "RFC 5321 §4.1.1.1"),
    (["SIZE 1", "HELP"], False, "RFC 8689 §4.2.1 step 5"),
    ([], False, "RFC 8689 §4.2.1 step 5"),
    (["REQUIRETLS YES"], False, "RFC 8689 §7: no parameters; an unknown form does not count"),
    (["REQUIRETLSX"], False, "RFC 5321 §4.1.1.1: whole keyword"),
    (["X-REQUIRETLS"], False, "RFC 5321 §4.1.1.1: whole keyword"),
    (["??? garbage", "REQUIRETLS"], True, "unreadable lines are skipped"),
]


@pytest.mark.parametrize(("lines", "offered", "rule"), EHLO_VECTORS)
def test_ehlo_keyword(lines: list[str], offered: bool, rule: str) -> None:
    assert check_ehlo_requiretls(lines) is offered, rule


def test_ehlo_line_grammar() -> None:
    assert parse_ehlo_line("size 100") == ("SIZE", ("100",))
    assert parse_ehlo_line(render_ehlo_keyword()) == ("REQUIRETLS", ())
    for bad in ["", "-X", "SIZE  100", "AUTH\x7f", "ÄÖ"]:
        with pytest.raises(MessageSyntaxError):
            parse_ehlo_line(bad)


# --- §2: MAIL FROM parameter --------------------------------------------------

PARAM_VECTORS = [
    ("REQUIRETLS", True, "RFC 8689 §2 item 4"),
    ("requiretls", True, "RFC 5321 §2.4: keywords are case-insensitive"),
    ("SIZE=1000 REQUIRETLS BODY=8BITMIME", True, "RFC 5321 §4.1.2"),
    (" REQUIRETLS", True, "one space after the path"),
    ("", False, "no parameters"),
    ("SIZE=1000", False, "RFC 5321 §4.1.2"),
    ("REQUIRETLSX", False, "whole keyword"),
    (["REQUIRETLS", "SIZE=10"], True, "pre-split words (aiosmtpd mail_options)"),
]


@pytest.mark.parametrize(("params", "present", "rule"), PARAM_VECTORS)
def test_mail_parameter(params: str | list[str], present: bool, rule: str) -> None:
    assert parse_requiretls_parameter(params) is present, rule


@pytest.mark.parametrize(
    ("params", "rule"),
    [
        ("REQUIRETLS=YES", "RFC 8689 §2 item 4: no value"),
        ("REQUIRETLS=", "RFC 5321 §4.1.2: esmtp-value is 1*char"),
        ("REQUIRETLS REQUIRETLS", "given twice"),
        ("REQUIRETLS  SIZE=1", "RFC 5321 §4.1.2: one SP between parameters"),
        ("SIZE=a=b", "RFC 5321 §4.1.2: '=' not in esmtp-value"),
        ("-X", "RFC 5321 §4.1.2: keyword starts with a letter or digit"),
    ],
)
def test_mail_parameter_errors(params: str, rule: str) -> None:
    with pytest.raises(MessageSyntaxError):
        parse_requiretls_parameter(params)


def test_mail_parameters_split() -> None:
    assert parse_mail_parameters("size=10 REQUIRETLS") == (("SIZE", "10"), ("REQUIRETLS", None))


def test_render_mail_from() -> None:
    assert (
        render_mail_from("roger@example.org", requiretls=True)
        == "MAIL FROM:<roger@example.org> REQUIRETLS"
    )
    assert render_mail_from("", requiretls=True, parameters=["SIZE=10"]) == (
        "MAIL FROM:<> SIZE=10 REQUIRETLS"
    )
    assert render_mail_from("a@b", requiretls=False) == "MAIL FROM:<a@b>"
    for bad_path in ["a b@c", "<a@b>", "a@b\r\nRCPT TO:<x@y>"]:
        with pytest.raises(UsageError):
            render_mail_from(bad_path, requiretls=True)
    with pytest.raises(UsageError):
        render_mail_from("a@b", requiretls=False, parameters=["REQUIRETLS"])
    with pytest.raises(UsageError):
        render_mail_from("a@b", requiretls=False, parameters=["SIZE=a b"])


RECEIPT_VECTORS = [
    # (params, tls, enabled, flagged, reply code prefix or None, rule)
    ("REQUIRETLS", True, True, True, None, "RFC 8689 §4.1: MUST tag"),
    ("", True, True, False, None, "no parameter"),
    ("REQUIRETLS", False, True, False, "530 5.7.10", "RFC 8689 §2: only in a TLS session"),
    ("REQUIRETLS", True, False, False, "555 5.5.4", "RFC 5321 §4.1.1.11: not offered"),
    ("REQUIRETLS=1", True, True, False, "501 5.5.4", "RFC 8689 §2 item 4: no value"),
]


@pytest.mark.parametrize(("params", "tls", "enabled", "flagged", "reply", "rule"), RECEIPT_VECTORS)
def test_receipt(  # noqa: PLR0917 - one argument per table column
    params: str, tls: bool, enabled: bool, flagged: bool, reply: str | None, rule: str
) -> None:
    check = check_requiretls_receipt(
        params, tls_active=tls, settings=RequireTlsSettings(enabled=enabled)
    )
    assert check.requiretls is flagged, rule
    if reply is None:
        assert check.reply is None, rule
    else:
        assert check.reply is not None
        assert check.reply.startswith(reply), rule


# --- §3: TLS-Required header field -------------------------------------------

FIELD_VALUES_OK = [" No", "No", " no", " NO", "\r\n No", " No  ", " No\r\n", "\t\tnO"]
FIELD_VALUES_BAD = [
    " Yes",
    "",
    " ",
    " No (because)",
    " No; x",
    " Nope",
    " N o",
    "\r\nNo",
    " No No",
]


@pytest.mark.parametrize("value", FIELD_VALUES_OK)
def test_tls_required_value(value: str) -> None:
    assert parse_tls_required(value) is TlsRequired.NO


@pytest.mark.parametrize("value", FIELD_VALUES_BAD)
def test_tls_required_value_errors(value: str) -> None:
    with pytest.raises(MessageSyntaxError):
        parse_tls_required(value)


APPENDIX_A2 = (
    b"From: Roger Reporter <roger@example.org>\r\n"
    b"To: Andy Admin <admin@example.com>\r\n"
    b"Subject: Certificate problem?\r\n"
    b"TLS-Required: No\r\n"
    b"Date: Fri, 18 Jan 2019 10:26:55 -0800\r\n"
    b"Message-ID: <5c421a6f79c0e_d153ff8286d45c468473@mail.example.org>\r\n"
    b"\r\n"
    b"Andy, there seems to be a problem with the TLS certificate\r\n"
    b"TLS-Required: Yes\r\n"
)

FIELD_VECTORS = [
    (APPENDIX_A2, TlsRequired.NO, "RFC 8689 App. A.2; the body is not the header"),
    (APPENDIX_A2.decode(), TlsRequired.NO, "text input"),
    (b"Subject: x\r\ntls-required: no\r\n\r\n", TlsRequired.NO, "RFC 5322 §1.2.2 case"),
    (b"Subject: x\nTLS-Required :\n No\n\n", TlsRequired.NO, "RFC 5322 §4.5 obs WSP before ':'"),
    (b"Subject: x\r\n\r\nTLS-Required: No\r\n", None, "only in the body"),
    (b"Subject: x\r\nX-TLS-Required: No\r\n\r\n", None, "another field"),
    (b"Subject: x\r\n TLS-Required: No\r\n\r\n", None, "a continuation of Subject"),
    (b"Subject: a\x85TLS-Required: No\r\n\r\n", None, "RFC 5322 §2.1: only CRLF ends a line"),
    ("Subject: a\u2028TLS-Required: No\r\n\r\n", None, "RFC 5322 §2.1: only CRLF ends a line"),
    (b"Subject: a\x0cTLS-Required: No\r\n\r\n", None, "RFC 5322 §2.1: only CRLF ends a line"),
    ([("Subject", "x"), ("TLS-REQUIRED", " No")], TlsRequired.NO, "pairs"),
    (email.message_from_bytes(APPENDIX_A2), TlsRequired.NO, "email.message.Message"),
]


@pytest.mark.parametrize(("headers", "want", "rule"), FIELD_VECTORS)
def test_tls_required_field(headers: object, want: TlsRequired | None, rule: str) -> None:
    assert parse_tls_required_field(headers) is want, rule  # type: ignore[arg-type]


def test_tls_required_field_twice_is_an_error() -> None:
    with pytest.raises(MessageSyntaxError, match="2 times"):
        parse_tls_required_field(b"TLS-Required: No\r\nTLS-Required: No\r\n\r\n")


def test_render_tls_required_round_trips() -> None:
    line = render_tls_required()
    assert line == "TLS-Required: No"
    assert parse_tls_required_field(line + "\r\n\r\n") is TlsRequired.NO


# --- flagging ---------------------------------------------------------------

TAG_VECTORS = [
    ("alice+requiretls@example.com", "alice@example.com", True),
    ("alice+RequireTLS@example.com", "alice@example.com", True),
    ("a+b+requiretls@example.com", "a+b@example.com", True),
    ("a.b+requiretls@example.com", "a.b@example.com", True),
    ("a+requiretls+b@example.com", "a+requiretls+b@example.com", False),
    ("+requiretls@example.com", "+requiretls@example.com", False),
    ("alice+requiretlsx@example.com", "alice+requiretlsx@example.com", False),
    ('"a+requiretls"@example.com', '"a+requiretls"@example.com', False),
    ("requiretls@example.com", "requiretls@example.com", False),
    ("alice@requiretls.example", "alice@requiretls.example", False),
    ("no-at-sign+requiretls", "no-at-sign+requiretls", False),
]


@pytest.mark.parametrize(("address", "stripped", "tagged"), TAG_VECTORS)
def test_address_tag(address: str, stripped: str, tagged: bool) -> None:
    assert split_requiretls_tag(address) == (stripped, tagged)


def test_flag_by_parameter_tag_and_filter() -> None:
    by_param = flag_message(reverse_path="a@x", recipients=["b@y"], mail_parameters="REQUIRETLS")
    assert by_param.flags.requiretls
    assert by_param.flags.sources == (FlagSource.MAIL_PARAMETER,)

    by_tag = flag_message(reverse_path="a@x", recipients=["b+requiretls@y", "c@y"])
    assert by_tag.flags.requiretls  # every copy of the message (RFC 8689 §4.1)
    assert by_tag.recipients == ("b@y", "c@y")
    assert by_tag.received_recipients == ("b+requiretls@y", "c@y")
    assert by_tag.flags.sources == (FlagSource.ADDRESS_TAG,)

    by_filter = flag_message(reverse_path="a@x", recipients=["b@y"], content_filter=True)
    assert by_filter.flags.sources == (FlagSource.CONTENT_FILTER,)

    plain = flag_message(reverse_path="a@x", recipients=["b@y"])
    assert not plain.flags.requiretls
    assert plain.flags.sources == ()


def test_global_switch_off_flags_nothing() -> None:
    off = RequireTlsSettings(enabled=False)
    flagged = flag_message(
        reverse_path="a@x",
        recipients=["b+requiretls@y"],
        mail_parameters="REQUIRETLS",
        content_filter=True,
        settings=off,
    )
    assert not flagged.flags.requiretls
    assert flagged.flags.sources == ()
    assert flagged.recipients == ("b@y",)  # the tag is still not a mailbox name


def test_address_tag_switch() -> None:
    flagged = flag_message(
        reverse_path="a@x",
        recipients=["b+requiretls@y"],
        settings=RequireTlsSettings(address_tag=False),
    )
    assert not flagged.flags.requiretls
    assert flagged.recipients == ("b+requiretls@y",)


HEADER_FLAG_VECTORS = [
    # (mail params, header, honour, requiretls, tls_optional, error?, rule)
    ("", APPENDIX_A2, True, False, True, False, "RFC 8689 §4.1: tag with the header's option"),
    ("REQUIRETLS", APPENDIX_A2, True, True, False, False, "RFC 8689 §4.1: header ignored"),
    ("", APPENDIX_A2, False, False, False, False, "operator switched the header off"),
    ("", b"TLS-Required: Yes\r\n\r\n", True, False, False, True, "unreadable: policies kept"),
    ("", b"TLS-Required: No\r\nTLS-Required: No\r\n\r\n", True, False, False, True, "§3 twice"),
]


@pytest.mark.parametrize(
    ("params", "header", "honour", "requiretls", "optional", "error", "rule"), HEADER_FLAG_VECTORS
)
def test_flag_with_header(  # noqa: PLR0917 - one argument per table column
    params: str,
    header: bytes,
    honour: bool,
    requiretls: bool,
    optional: bool,
    error: bool,
    rule: str,
) -> None:
    flagged = flag_message(
        reverse_path="a@x",
        recipients=["b@y"],
        mail_parameters=params,
        headers=header,
        settings=RequireTlsSettings(honor_tls_required_no=honour),
    )
    assert flagged.flags.requiretls is requiretls, rule
    assert flagged.flags.tls_optional is optional, rule
    assert bool(flagged.tls_required_error) is error, rule


def test_requiretls_wins_over_the_header_in_handmade_flags() -> None:
    flags = MessageFlags(requiretls=True, tls_required_no=True)
    assert not flags.tls_optional  # RFC 8689 §4.1
    assert flags.requiretls_enforced


def test_null_reverse_path() -> None:
    flagged = flag_message(reverse_path="", recipients=["b@y"], mail_parameters="REQUIRETLS")
    assert flagged.flags.null_reverse_path
    assert flagged.flags.requiretls
    assert not flagged.flags.requiretls_enforced  # §4.2.1 is for non-empty return paths


# --- §4.2.1 hop steps and status codes -----------------------------------------

HOP_VECTORS = [
    # (mx validated, tls, cert, keyword, failure)
    (True, True, True, True, None),
    (False, True, True, True, RequireTlsFailure.MX_NOT_VALIDATED),
    (True, False, True, True, RequireTlsFailure.TLS_NOT_ESTABLISHED),
    (True, True, False, True, RequireTlsFailure.CERTIFICATE_NOT_AUTHENTICATED),
    (True, True, True, False, RequireTlsFailure.REQUIRETLS_NOT_ADVERTISED),
    (False, False, False, False, RequireTlsFailure.MX_NOT_VALIDATED),
    (True, False, False, False, RequireTlsFailure.TLS_NOT_ESTABLISHED),
]


@pytest.mark.parametrize(("mx", "tls", "cert", "keyword", "failure"), HOP_VECTORS)
def test_hop_steps(
    mx: bool, tls: bool, cert: bool, keyword: bool, failure: RequireTlsFailure | None
) -> None:
    got = check_requiretls_hop(
        mx_validated=mx,
        tls_established=tls,
        certificate_authenticated=cert,
        requiretls_advertised=keyword,
    )
    assert got is failure


def test_status_codes() -> None:
    assert RequireTlsFailure.REQUIRETLS_NOT_ADVERTISED.status == "5.7.30"
    for failure in (
        RequireTlsFailure.MX_NOT_VALIDATED,
        RequireTlsFailure.TLS_NOT_ESTABLISHED,
        RequireTlsFailure.CERTIFICATE_NOT_AUTHENTICATED,
    ):
        assert failure.status == "5.7.10"
    assert "REQUIRETLS support required" in RequireTlsFailure.REQUIRETLS_NOT_ADVERTISED.text
    assert "Encryption needed" in RequireTlsFailure.TLS_NOT_ESTABLISHED.text


def test_choose_bounce_failure() -> None:
    assert (
        choose_bounce_failure(
            [RequireTlsFailure.TLS_NOT_ESTABLISHED, RequireTlsFailure.REQUIRETLS_NOT_ADVERTISED]
        )
        is RequireTlsFailure.REQUIRETLS_NOT_ADVERTISED
    )
    assert (
        choose_bounce_failure(
            [RequireTlsFailure.CERTIFICATE_NOT_AUTHENTICATED, RequireTlsFailure.TLS_NOT_ESTABLISHED]
        )
        is RequireTlsFailure.CERTIFICATE_NOT_AUTHENTICATED
    )
    with pytest.raises(UsageError):
        choose_bounce_failure([])


# --- §5 and RFC 3464: the DSN -------------------------------------------------

ORIGINAL = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: bob@example.net\r\n"
    b"Subject: contract\r\n"
    b"  (folded)\r\n"
    b"Message-ID: <m1@example.org>\r\n"
    b"\r\n"
    b"THE SECRET BODY\r\n"
)


def _dsn(**kwargs: object) -> rt.Dsn:
    args: dict[str, object] = {
        "reverse_path": "alice@example.org",
        "original": ORIGINAL,
        "failures": [
            RecipientFailure.for_failure(
                "bob+requiretls@example.net",
                RequireTlsFailure.REQUIRETLS_NOT_ADVERTISED,
                remote_mta="mx.example.net",
            )
        ],
        "reporting_mta": "relay.example.org",
        "now": NOW,
        "flags": MessageFlags(requiretls=True, sources=(FlagSource.ADDRESS_TAG,)),
    }
    args.update(kwargs)
    return render_failure_dsn(**args)  # type: ignore[arg-type]


def test_dsn_structure() -> None:
    dsn = _dsn(arrival_date=NOW - timedelta(minutes=5), envelope_id="env-1")
    message = dsn.message()
    assert isinstance(message, EmailMessage)
    # RFC 3464 §2 (a)-(d)
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "delivery-status"
    parts = message.get_payload()
    assert isinstance(parts, list)
    assert [p.get_content_type() for p in parts] == [
        "text/plain",
        "message/delivery-status",
        "text/rfc822-headers",
    ]
    # RFC 3464 §2: addressed to the original return path; RFC 3461 §6.1: MAIL FROM:<>
    assert dsn.envelope_from == ""
    assert dsn.envelope_to == "alice@example.org"
    assert message["To"] == "alice@example.org"
    assert "postmaster@relay.example.org" in message["From"]
    assert message["Auto-Submitted"] == "auto-replied"
    # RFC 8689 §5: the DSN itself specifies REQUIRETLS, with an empty return path
    assert dsn.flags.requiretls
    assert dsn.flags.null_reverse_path
    assert not dsn.flags.requiretls_enforced


def test_dsn_delivery_status_fields() -> None:
    dsn = _dsn(envelope_id="env-1", arrival_date=NOW - timedelta(minutes=5))
    text = dsn.content.decode("ascii")
    block = text.split("Content-Type: message/delivery-status", 1)[1]
    assert "Original-Envelope-Id: env-1" in block
    assert "Reporting-MTA: dns; relay.example.org" in block
    assert "Arrival-Date: Sun, 01 Mar 2026 11:55:00 +0000" in block
    assert "Final-Recipient: rfc822; bob+requiretls@example.net" in block  # §2.3.2: as received
    assert "Action: failed" in block
    assert "Status: 5.7.30" in block
    assert "Remote-MTA: dns; mx.example.net" in block
    assert "Diagnostic-Code: smtp; 550 5.7.30 REQUIRETLS support required" in block
    assert "Last-Attempt-Date: Sun, 01 Mar 2026 12:00:00 +0000" in block


def test_dsn_without_optional_fields() -> None:
    text = _dsn().content.decode("ascii")
    assert "Original-Envelope-Id" not in text  # RFC 3461 §6.3 (a): only with ENVID
    assert "Arrival-Date" not in text


def test_dsn_returns_only_the_header() -> None:
    # RFC 8689 §5: behave as if RET=HDRS.
    dsn = _dsn()
    assert b"THE SECRET BODY" not in dsn.content
    returned = dsn.message().get_payload()[2]  # type: ignore[index]
    text = returned.get_content()
    assert (
        "Subject: contract\r\n  (folded)\r\n" in text or "Subject: contract\n  (folded)\n" in text
    )
    assert "Message-ID: <m1@example.org>" in text


def test_dsn_header_limit_cuts_whole_fields() -> None:
    field = "X-Filler: " + "a" * 990 + "\r\n"
    count = MAX_RETURNED_HEADER_OCTETS // len(field) + 5
    original = ("Subject: first\r\n" + field * count + "\r\nbody").encode()
    returned = _dsn(original=original).message().get_payload()[2].get_content()  # type: ignore[index]
    assert returned.startswith("Subject: first")
    assert len(returned.replace("\n", "\r\n").encode()) <= MAX_RETURNED_HEADER_OCTETS + count
    kept = returned.count("X-Filler:")
    assert 0 < kept < count
    assert all(len(line) in (0, len(field) - 2) for line in returned.splitlines()[1:])


def test_dsn_is_deterministic_for_the_same_input() -> None:
    assert _dsn().content == _dsn().content
    assert _dsn().content != _dsn(now=NOW + timedelta(seconds=1)).content


def test_dsn_from_a_message_object_and_pairs() -> None:
    message = email.message_from_bytes(ORIGINAL)
    assert b"Subject: contract" in _dsn(original=message).content
    assert b"Subject: contract" in _dsn(original=[("Subject", "contract")]).content


def test_dsn_from_a_message_with_non_ascii_text() -> None:
    message = email.message_from_string("Subject: caf\u00e9\nX-Folded: a\n b\n\nbody \u00e9\n")
    returned = _dsn(original=message).message().get_payload()[2].get_content()  # type: ignore[index]
    assert "Subject: caf\u00e9" in returned
    assert "X-Folded: a\r\n b" in returned or "X-Folded: a\n b" in returned
    assert "body" not in returned


def test_dsn_for_an_ordinary_message_has_no_requiretls() -> None:
    dsn = _dsn(flags=MessageFlags())
    assert not dsn.flags.requiretls
    assert b"REQUIRETLS, which asks" not in dsn.content


@pytest.mark.parametrize(
    "kwargs",
    [
        {"reverse_path": ""},
        {"reverse_path": "<>"},
        {"failures": []},
        {"now": datetime(2026, 3, 1)},  # naive
        {"reporting_mta": "not a host"},
        {"envelope_id": "a\r\nb"},
    ],
)
def test_dsn_usage_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        _dsn(**kwargs)


def test_recipient_failure_validation() -> None:
    with pytest.raises(ValidationError):
        RecipientFailure(recipient="a@b", status="5.07.1")
    with pytest.raises(ValidationError):
        RecipientFailure(recipient="a@b\r\nX: y", status="5.7.1")
    assert RecipientFailure(recipient="a@b", status="4.4.0").status == "4.4.0"


def test_dsn_for_a_utf8_recipient_stays_7bit() -> None:
    # RFC 3464 §2.1: message/delivery-status is 7bit; RFC 6533 §3: the utf-8 address type.
    dsn = _dsn(failures=[RecipientFailure(recipient="bj\u00f6rn@example.net", status="5.7.10")])
    block = dsn.content.decode("ascii").split("message/delivery-status", 1)[1]
    assert "Final-Recipient: utf-8; bj\\x{F6}rn@example.net" in block


def test_dsn_time_zone_is_numeric() -> None:
    tz = timezone(timedelta(hours=2))
    text = _dsn(now=datetime(2026, 3, 1, 14, 0, tzinfo=tz)).content.decode()
    assert "Last-Attempt-Date: Sun, 01 Mar 2026 14:00:00 +0200" in text


# --- fuzz: only the ParseError family escapes the parsers ----------------------

TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=200)
ASCIIISH = st.text(
    alphabet=st.sampled_from(list("REQUIRETLSreqtls=+ -:No\r\n\t\x00é@.<>")), max_size=80
)


@given(st.one_of(TEXT, ASCIIISH))
def test_fuzz_ehlo_line(text: str) -> None:
    try:
        keyword, params = parse_ehlo_line(text)
    except ParseError:
        return
    assert keyword == keyword.upper()
    assert all(params)


@given(st.one_of(TEXT, ASCIIISH, st.lists(ASCIIISH, max_size=5)))
def test_fuzz_mail_parameters(params: str | list[str]) -> None:
    try:
        parse_requiretls_parameter(params)
        parse_mail_parameters(params)
    except ParseError:
        pass
    check_requiretls_receipt(params, tls_active=True, settings=RequireTlsSettings())


@given(st.one_of(TEXT, ASCIIISH))
def test_fuzz_tls_required_value(text: str) -> None:
    try:
        assert parse_tls_required(text) is TlsRequired.NO
    except ParseError:
        return
    assert text.strip().lower() == "no"


@given(st.one_of(st.binary(max_size=300), TEXT, ASCIIISH))
def test_fuzz_tls_required_field(data: bytes | str) -> None:
    with contextlib.suppress(ParseError):
        parse_tls_required_field(data)
    flag_message(reverse_path="a@b", recipients=["c@d"], headers=data)


@given(st.one_of(TEXT, ASCIIISH))
def test_fuzz_address_tag(address: str) -> None:
    stripped, tagged = split_requiretls_tag(address)
    if tagged:
        assert len(stripped) == len(address) - len("+requiretls")
    else:
        assert stripped == address


@given(st.lists(ASCIIISH, max_size=5), st.one_of(st.binary(max_size=300), TEXT))
def test_fuzz_flag_and_dsn(recipients: list[str], header: bytes | str) -> None:
    try:
        flagged = flag_message(reverse_path="a@example.org", recipients=recipients, headers=header)
    except ParseError:  # pragma: no cover - no MAIL parameters given
        raise
    failures = [
        RecipientFailure(recipient=r, status="5.7.10")
        for r in flagged.received_recipients
        if not any(c in r for c in "\r\n\0")
    ]
    if failures:
        dsn = render_failure_dsn(
            reverse_path="a@example.org",
            original=header,
            failures=failures,
            reporting_mta="relay.example.org",
            now=NOW,
            flags=flagged.flags,
        )
        assert dsn.message().get_content_type() == "multipart/report"


@given(
    st.lists(st.sampled_from(["SIZE=1", "BODY=8BITMIME", "SMTPUTF8"]), max_size=3), st.booleans()
)
def test_render_parse_round_trip(extra: list[str], requiretls: bool) -> None:
    line = render_mail_from("a@example.org", requiretls=requiretls, parameters=extra)
    params = line.split(">", 1)[1]
    assert parse_requiretls_parameter(params) is requiretls
