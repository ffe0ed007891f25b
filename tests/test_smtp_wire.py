"""SMTP reply and EHLO parsing (RFC 5321 §4.2, §4.1.1.1) and the probe value types."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mtasecure.transport
from mtasecure import MessageSyntaxError, ParseError
from mtasecure._smtpwire import (
    MAX_REPLY_LINE_OCTETS,
    MAX_REPLY_LINES,
    MAX_REPLY_OCTETS,
    EhloResponse,
    ProbeOutcome,
    ProbeResult,
    ProbeStage,
    ReplyReader,
    SmtpReply,
    offers_requiretls,
    parse_ehlo,
    parse_ehlo_line,
    parse_reply,
)
from mtasecure.requiretls import check_ehlo_requiretls
from mtasecure.requiretls import parse_ehlo_line as requiretls_parse_ehlo_line

# ---- RFC 5321 §4.2 reply vectors -------------------------------------------

GOOD_REPLIES = [
    (b"220 mx.example.com ESMTP\r\n", 220, ("mx.example.com ESMTP",)),
    (b"250-first\r\n250-second\r\n250 last\r\n", 250, ("first", "second", "last")),
    # §4.2: a bare code, with or without its space, MUST be acceptable.
    (b"250\r\n", 250, ("",)),
    (b"250 \r\n", 250, ("",)),
    (b"250-\r\n250 done\r\n", 250, ("", "done")),
    # Bare LF line endings are read too.
    (b"221 bye\n", 221, ("bye",)),
    (b"554 5.7.1 no\r\n", 554, ("5.7.1 no",)),
    # Text is kept as sent: HT, and UTF-8 (RFC 6531) decoded.
    (b"220 a\tb caf\xc3\xa9\r\n", 220, ("a\tb café",)),
    (b"220 \xff\r\n", 220, ("\ufffd",)),
]


@pytest.mark.parametrize(("data", "code", "lines"), GOOD_REPLIES)
def test_good_replies(data: bytes, code: int, lines: tuple[str, ...]) -> None:
    reply = parse_reply(data)
    assert (reply.code, reply.lines) == (code, lines)


BAD_REPLIES = [
    (b"", "ends without"),
    (b"250-more to come\r\n", "ends without"),
    (b"25 short\r\n", "reply code"),
    (b"abc text\r\n", "reply code"),
    (b"150 first digit 1\r\n", "reply code"),
    (b"650 first digit 6\r\n", "reply code"),
    (b"260 second digit 6\r\n", "reply code"),
    (b"250_underscore\r\n", "not SP or '-'"),
    (b"2500 four digits\r\n", "not SP or '-'"),
    (b"250-a\r\n251 b\r\n", "differs"),
    (b"250 a\rb\r\n", "CR, LF or NUL"),
    (b"250 a\x00b\r\n", "CR, LF or NUL"),
    (b"250 done\r\n250 again\r\n", "continues after"),
]


@pytest.mark.parametrize(("data", "message"), BAD_REPLIES)
def test_bad_replies(data: bytes, message: str) -> None:
    with pytest.raises(MessageSyntaxError, match=message) as info:
        parse_reply(data)
    assert info.value.rule is not None
    assert info.value.rule.startswith("RFC 5321")


def test_line_limit_is_inclusive_of_crlf() -> None:
    at_limit = b"250 " + b"x" * (MAX_REPLY_LINE_OCTETS - 6) + b"\r\n"
    assert len(at_limit) == MAX_REPLY_LINE_OCTETS
    assert parse_reply(at_limit).code == 250
    with pytest.raises(MessageSyntaxError, match=f"longer than {MAX_REPLY_LINE_OCTETS}"):
        parse_reply(b"250 x" + at_limit[4:])


def test_line_count_limit() -> None:
    ok = b"250-x\r\n" * (MAX_REPLY_LINES - 1) + b"250 x\r\n"
    assert len(parse_reply(ok).lines) == MAX_REPLY_LINES
    with pytest.raises(MessageSyntaxError, match=f"more than {MAX_REPLY_LINES} lines"):
        parse_reply(b"250-x\r\n" + ok)


def test_reply_octet_limit() -> None:
    line = b"250-" + b"y" * 1000 + b"\r\n"
    count = MAX_REPLY_OCTETS // len(line)
    ok = line * count + b"250 z\r\n"
    assert len(ok) <= MAX_REPLY_OCTETS
    assert parse_reply(ok).code == 250
    with pytest.raises(MessageSyntaxError, match=f"longer than {MAX_REPLY_OCTETS} octets"):
        parse_reply(line * (count + 1) + b"250 z\r\n")


def test_limits_are_above_the_rfc_minimum() -> None:
    # RFC 5321 §4.5.3.1.5: clients MUST accept reply lines of 512 octets.
    assert MAX_REPLY_LINE_OCTETS >= 512
    assert MAX_REPLY_OCTETS >= MAX_REPLY_LINE_OCTETS


def test_reader_is_incremental() -> None:
    reader = ReplyReader()
    assert reader.feed(b"250-a\r\n") is None
    assert reader.feed(b"250-b\r\n") is None
    reply = reader.feed(b"250 c\r\n")
    assert reply == SmtpReply(code=250, lines=("a", "b", "c"))
    assert reply.positive
    assert reply.text == "a\nb\nc"
    assert str(reply) == "250 a\nb\nc"
    assert not SmtpReply(code=454, lines=("no",)).positive


# ---- RFC 5321 §4.1.1.1 EHLO --------------------------------------------------


def _ehlo(*lines: str) -> EhloResponse:
    data = "".join(f"250-{line}\r\n" for line in lines[:-1]) + f"250 {lines[-1]}\r\n"
    return parse_ehlo(parse_reply(data.encode()))


def test_ehlo_keywords_and_params() -> None:
    ehlo = _ehlo(
        "mx.example.com Hello [192.0.2.1]",
        "pipelining",
        "SIZE 35882577",
        "AUTH PLAIN LOGIN",
        "AUTH=PLAIN LOGIN",
        "8BITMIME",
        "StartTLS",
        "REQUIRETLS",
    )
    assert ehlo.domain == "mx.example.com"
    assert ehlo.greeting == "Hello [192.0.2.1]"
    assert ehlo.names == (
        "PIPELINING",
        "SIZE",
        "AUTH",
        "AUTH",
        "8BITMIME",
        "STARTTLS",
        "REQUIRETLS",
    )
    assert ehlo.offers("starttls")
    assert ehlo.offers("RequireTLS")
    assert not ehlo.offers("CHUNKING")
    assert ehlo.params("size") == ("35882577",)
    assert ehlo.params("auth") == ("PLAIN", "LOGIN")
    assert ehlo.params("CHUNKING") is None


def test_ehlo_single_line_and_tolerated_spaces() -> None:
    assert _ehlo("mx.example.com") == EhloResponse(domain="mx.example.com")
    assert _ehlo("mx", "SIZE  100 ", "DSN ").params("SIZE") == ("100",)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (("mx", "-LEADING-HYPHEN"), "ehlo-keyword"),
        (("mx", "UNDER_SCORE"), "ehlo-keyword"),
        (("mx", ""), "ehlo-keyword"),
        (("mx", "SIZE caf\u00e9"), "ehlo-param"),
        (("mx", "X a\tb"), "ehlo-param"),
        (("",), "domain"),
    ],
)
def test_bad_ehlo_lines(lines: tuple[str, ...], message: str) -> None:
    with pytest.raises(MessageSyntaxError, match=message) as info:
        _ehlo(*lines)
    assert info.value.rule == "RFC 5321 §4.1.1.1"


def test_ehlo_must_be_250() -> None:
    with pytest.raises(MessageSyntaxError, match="not 250"):
        parse_ehlo(SmtpReply(code=502, lines=("no",)))


# ---- fuzz: only MessageSyntaxError escapes ----------------------------------

_reply_bytes = st.one_of(
    st.binary(max_size=300),
    st.lists(
        st.tuples(
            st.sampled_from([b"250", b"220", b"554", b"25", b"999", b"2a0", b""]),
            st.sampled_from([b"-", b" ", b"", b"_"]),
            st.binary(max_size=40),
            st.sampled_from([b"\r\n", b"\n", b"\r", b""]),
        ).map(b"".join),
        max_size=8,
    ).map(b"".join),
)


@given(_reply_bytes)
def test_fuzz_parse_reply_raises_only_message_syntax_error(data: bytes) -> None:
    try:
        reply = parse_reply(data)
    except MessageSyntaxError:
        return
    assert 200 <= reply.code <= 559
    assert len(reply.lines) >= 1
    try:
        ehlo = parse_ehlo(reply)
    except MessageSyntaxError:
        return
    assert all(k.name == k.name.upper() for k in ehlo.keywords)


@given(st.lists(st.binary(max_size=60), max_size=10))
def test_fuzz_reader_raises_only_message_syntax_error(lines: list[bytes]) -> None:
    reader = ReplyReader()
    try:
        for line in lines:
            if reader.feed(line) is not None:
                break
    except MessageSyntaxError:
        pass


@given(st.lists(st.text(max_size=30), min_size=1, max_size=6))
def test_fuzz_parse_ehlo_raises_only_message_syntax_error(lines: list[str]) -> None:
    with contextlib.suppress(MessageSyntaxError):
        parse_ehlo(SmtpReply(code=250, lines=tuple(lines)))


# ---- the probe result --------------------------------------------------------


def test_certificates_refuses_non_der_with_a_parse_error() -> None:
    result = ProbeResult(
        host="mx.example.com",
        address="192.0.2.1",
        outcome=ProbeOutcome.OK,
        stage=ProbeStage.QUIT,
        chain=(b"not a certificate",),
    )
    with pytest.raises(ParseError, match="position 0"):
        result.certificates()


def test_probe_result_is_frozen() -> None:
    result = ProbeResult(
        host="mx.example.com",
        address="192.0.2.1",
        outcome=ProbeOutcome.TIMEOUT,
        stage=ProbeStage.BANNER,
    )
    with pytest.raises(ValueError, match="frozen"):
        result.outcome = ProbeOutcome.OK  # type: ignore[misc]
    assert not result.ok
    assert not result.tls_established
    assert not result.starttls_offered
    assert not result.requiretls_offered
    assert result.seconds(ProbeStage.BANNER) is None


def test_outcome_and_stage_wire_values() -> None:
    assert [o.value for o in ProbeOutcome] == [
        "ok",
        "connect-failed",
        "banner-rejected",
        "ehlo-failed",
        "starttls-not-offered",
        "starttls-refused",
        "tls-handshake-failed",
        "dropped",
        "timeout",
        "protocol-error",
    ]
    assert [s.value for s in ProbeStage] == [
        "connect",
        "banner",
        "ehlo",
        "starttls",
        "tls-handshake",
        "ehlo-after-tls",
        "quit",
    ]


def test_transport_all_is_pinned() -> None:
    names = set(mtasecure.transport.__all__)
    assert {
        "EhloKeyword",
        "EhloResponse",
        "ProbeOutcome",
        "ProbeResult",
        "ProbeStage",
        "SmtpConnector",
        "SmtpReply",
        "StepTiming",
    } <= names
    exported = list(mtasecure.transport.__all__)
    assert exported == sorted(exported)
    for name in exported:
        assert getattr(mtasecure.transport, name).__doc__


# ---- RFC 8689 §2: one rule for "REQUIRETLS is offered" ----------------------


@pytest.mark.parametrize(
    ("line", "offered"),
    [
        ("REQUIRETLS", True),
        ("requiretls", True),
        ("REQUIRETLS  ", True),  # trailing SP is cosmetic for the probe
        ("REQUIRETLS YES", False),  # RFC 8689 §2 item 2: the keyword takes no parameters
        ("REQUIRETLS=YES", False),  # the legacy '=' form carries a parameter too
        ("REQUIRETLSX", False),
    ],
)
def test_probe_and_requiretls_module_agree_on_the_offer(line: str, offered: bool) -> None:
    ehlo = _ehlo("mx.example.com", "SIZE 100", line)
    result = ProbeResult(
        host="mx.example.com",
        address="192.0.2.1",
        outcome=ProbeOutcome.OK,
        stage=ProbeStage.QUIT,
        ehlo_tls=ehlo,
    )
    assert result.requiretls_offered is offered
    assert offers_requiretls(ehlo.keywords) is offered
    strict = " ".join(line.replace("=", " ").split())
    assert check_ehlo_requiretls(["SIZE 100", strict]) is offered


def test_requiretls_offer_counts_only_after_starttls() -> None:
    ehlo = _ehlo("mx.example.com", "REQUIRETLS", "STARTTLS")
    result = ProbeResult(
        host="mx.example.com",
        address="192.0.2.1",
        outcome=ProbeOutcome.OK,
        stage=ProbeStage.QUIT,
        ehlo=ehlo,
    )
    assert result.starttls_offered
    assert not result.requiretls_offered


def test_strict_ehlo_line_grammar_is_shared() -> None:
    assert parse_ehlo_line("SIZE 100") == requiretls_parse_ehlo_line("SIZE 100")
    for bad in ("SIZE  100", "AUTH=PLAIN", "", "-X"):
        with pytest.raises(MessageSyntaxError, match="ehlo-") as info:
            parse_ehlo_line(bad, where="EHLO reply line 3")
        assert info.value.where == "EHLO reply line 3"
        assert info.value.rule == "RFC 5321 §4.1.1.1"
