"""The fast paths give exactly the answers (and the errors) of the general paths.

Each fast path accepts a subset of its inputs and must return what the general
code returns for them; everything else must reach the general code. These
tests generate inputs close to the fast paths' shapes (where a mistake would
hide: case, trailing dots, hyphens at label edges, digits, ``xn--``, blank
lines, CR, extra spaces, over-long values) and compare the two paths.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mtasecure import _names
from mtasecure._names import match_wildcard, normalize_host, normalize_pattern
from mtasecure._tagvalue import one_field_record
from mtasecure.errors import MtaSecureError, NameSyntaxError
from mtasecure.sts import _match, _policy, _record, match_mx, parse_policy, parse_record
from mtasecure.sts._match import PatternIndex
from mtasecure.tlsrpt import _record as tlsrpt_record


def outcome(function: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    """What a call returns, or which error it raises with which message and where."""
    try:
        return ("value", function(*args))
    except MtaSecureError as exc:
        return (type(exc).__name__, (str(exc), getattr(exc, "where", None)))


# --- names -------------------------------------------------------------------

_label_text = st.one_of(
    st.sampled_from(["mx", "MX", "a", "xn--bcher-kva", "XN--BCHER-KVA", "xn--a", "ab--c", "0"]),
    st.sampled_from(["-a", "a-", "123", "com", "c0m", "1a", "a" * 63, "b" * 64, "é", "_", "*"]),
    st.from_regex(r"[A-Za-z0-9-]{1,8}", fullmatch=True),
)
_name = st.builds(
    lambda labels, dots: ".".join(labels) + dots,
    st.lists(_label_text, min_size=1, max_size=5),
    st.sampled_from(["", ".", ".."]),
)
_any_name = st.one_of(_name, st.text(max_size=30), st.just("a." * 126 + "bc"))


@given(_any_name)
@example("a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 61)
@example("a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 62)
@example("\u212a.example")  # the Kelvin sign lower-cases to ASCII "k"
@example("mx.example.123")
@example("-")
def test_normalize_host_quick_path_matches_the_general_path(name: str) -> None:
    assert outcome(normalize_host, name) == outcome(_names._normalize_general, name)


@given(_any_name)
def test_ascii_names_normalise_to_lower_case_without_the_dot_or_not_at_all(name: str) -> None:
    # The premise match_mx and PatternIndex.covers rely on to skip validation.
    if not name.isascii():
        return
    try:
        normal = normalize_host(name)
    except NameSyntaxError:
        return
    assert normal == name.lower().removesuffix(".")


# --- match_mx, StsPolicy.matches ---------------------------------------------


def reference_match(pattern: object, host: object) -> bool:
    """RFC 8461 §4.1 the long way: normalise both, then compare."""
    try:
        return match_wildcard(normalize_pattern(pattern), normalize_host(host))  # type: ignore[arg-type]
    except (NameSyntaxError, AttributeError, TypeError):
        return False


_pattern = st.one_of(_any_name, st.builds(lambda rest: "*." + rest, _any_name))


def _covered_host(first: str, pattern: str, upper: bool, dot: str) -> str:
    host = first + "." + pattern[2:] if pattern.startswith("*.") else pattern
    return (host.upper() if upper else host) + dot


# hosts a pattern is likely to cover, in another case, with or without a dot
_host_like = st.one_of(
    _any_name,
    st.builds(_covered_host, _label_text, _pattern, st.booleans(), st.sampled_from(["", "."])),
)


def _forget() -> None:
    _match._HOSTS.clear()
    _match._PATTERNS.clear()


@given(_pattern, _host_like, st.booleans())
@example("*.com", "mx.com", False)
@example("*.example.com", "mx.xn--bcher-kva.example.com", False)
@example("*.xn--a.example", "mx.xn--a.example", False)
@example("MX.Example.COM.", "mx.example.com", False)
@example("*.example.123", "mx.example.123", False)
@example("*.*.example.com", "a.*.example.com", False)
def test_match_mx_equals_normalise_then_compare(pattern: str, host: str, cold: bool) -> None:
    if cold:
        _forget()
    assert match_mx(pattern, host) is reference_match(pattern, host)
    # and again, now that the memos may hold either name
    assert match_mx(pattern, host) is reference_match(pattern, host)


@pytest.mark.parametrize("value", [None, 3, b"mx.example.com", ["mx.example.com"]])
def test_match_mx_never_raises_on_non_strings(value: Any) -> None:
    assert match_mx(value, "mx.example.com") is False
    assert match_mx("mx.example.com", value) is False


@given(st.lists(_pattern, max_size=6), _host_like, st.booleans())
def test_policy_matches_equals_any_pattern(patterns: list[str], host: str, cold: bool) -> None:
    normal: list[str] = []
    for pattern in patterns:
        with contextlib.suppress(NameSyntaxError):
            normal.append(normalize_pattern(pattern))
    index = PatternIndex(tuple(dict.fromkeys(normal)))
    if cold:
        _forget()
    try:
        expected = any(match_wildcard(p, normalize_host(host)) for p in index.patterns)
    except NameSyntaxError:
        expected = False
    assert index.covers(host) is expected


def test_pattern_index_is_rebuilt_for_another_tuple() -> None:
    first = ("mx.example.com",)
    second = ("*.example.net",)
    assert _match.pattern_index(first).covers("mx.example.com")
    assert not _match.pattern_index(second).covers("mx.example.com")
    assert _match.pattern_index(second).covers("a.example.net")


@pytest.mark.parametrize("value", [None, 3, ["mx.example.com"]])
def test_pattern_index_never_raises_on_non_strings(value: Any) -> None:
    assert PatternIndex(("mx.example.com",)).covers(value) is False


# --- records -----------------------------------------------------------------

_sep = st.sampled_from([";", "; ", " ;", "\t;\t", ";;", " ", ""])
_id_value = st.one_of(
    st.sampled_from(["20160831085700Z", "a" * 32, "a" * 33, "", "x-y", "é", "id"]),
    st.from_regex(r"[A-Za-z0-9]{1,34}", fullmatch=True),
)
_sts_record = st.builds(
    lambda version, sep1, key, value, tail: f"{version}{sep1}{key}={value}{tail}",
    st.sampled_from(["v=STSv1", "v=STSv10", "V=STSv1", " v=STSv1", "v=STSv1 "]),
    _sep,
    st.sampled_from(["id", "ID", "id ", "x"]),
    _id_value,
    st.sampled_from(["", ";", "; ", " ; ", ";;", "; x=y", " ", "\t;", ";\n"]),
)


@given(st.one_of(_sts_record, st.text(max_size=40)))
@example("v=STSv1; id=" + "a" * 32 + " " * 8200)
@example("v=STSv1;id=abc;")
def test_sts_record_fast_path_matches_the_general_path(text: str) -> None:
    general = _record._usual  # the fast path is switched off by a pattern that never matches
    try:
        _record._usual = one_field_record("\x00never", "x").fullmatch  # type: ignore[assignment]
        slow = outcome(parse_record, text)
    finally:
        _record._usual = general
    assert outcome(parse_record, text) == slow


def test_one_field_record_shape() -> None:
    pattern = one_field_record("v=X1", "k=([a-z]+)")
    assert pattern.fullmatch("v=X1; k=abc;")[1] == "abc"  # type: ignore[index]
    assert pattern.fullmatch("v=X1 ;\tk=abc \t; ") is not None
    assert pattern.fullmatch("v=X1;k=abc") is not None
    for text in ("v=X1; k=abc;;", "v=X1; k=abc; j=d", " v=X1; k=abc", "v=X1k=abc", "v=X10; k=a"):
        assert pattern.fullmatch(text) is None, text


_rua = st.sampled_from(
    [
        "mailto:reports@example.com",
        "https://reporting.example.com/v1/tlsrpt",
        "https://r.example.com:99999/x",
        "mailto:a@-bad.example",
        "ftp://x.example",
        "mailto:a@example.com,https://b.example",
    ]
)
_tlsrpt_record = st.builds(
    lambda sep1, rua, tail: f"v=TLSRPTv1{sep1}rua={rua}{tail}",
    _sep,
    _rua,
    st.sampled_from(["", ";", " ; ", ";;", "; x=y"]),
)


@given(_tlsrpt_record)
def test_tlsrpt_fast_paths_match_the_general_path(text: str) -> None:
    assert outcome(tlsrpt_record.parse_record, text) == outcome(
        tlsrpt_record._parse_record_fully, text
    )


# --- policies ----------------------------------------------------------------

_nl = st.sampled_from(["\r\n", "\n", "\r\r\n", "\n\n"])
_space = st.sampled_from([" ", "", "  ", "\t", " \t"])
_mx_value = st.one_of(
    st.sampled_from(
        [
            "mail.example.com",
            "*.example.net",
            "MX.Example.ORG.",
            "192.0.2.1",
            "*.com",
            "bad_name.example",
            "a..b",
            "xn--bcher-kva.example",
            "bücher.example",
            "mx:colon.example",
        ]
    ),
    _name,
)


@st.composite
def _policy_text(draw: st.DrawFn) -> str:
    lines = [
        ("version", draw(st.sampled_from(["STSv1", "STSv2", "STSv1 "]))),
        ("mode", draw(st.sampled_from(["enforce", "testing", "none", "Enforce"]))),
    ]
    lines += [("mx", v) for v in draw(st.lists(_mx_value, max_size=4))]
    lines.insert(
        draw(st.integers(2, len(lines))),
        ("max_age", draw(st.sampled_from(["604800", "86400", "99999999999", "1" * 10, "-1"]))),
    )
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(_EXTRA_LINES)))
    text = ""
    for key, value in lines:
        text += f"{key}:{draw(_space)}{value}{draw(st.sampled_from(['', ' ', chr(9)]))}"
        text += draw(_nl)
    return text if draw(st.booleans()) else text.rstrip("\r\n")


_EXTRA_LINES = [
    ("mode", "testing"),
    ("version", "STSv1"),
    ("max_age", "1"),
    ("Mode", "enforce"),
    ("x-ext", "value"),
    (" mx", "other.example"),
]


@given(_policy_text())
@example("version: STSv1\nmode: none\nmax_age: 5\n")
@example("version: STSv1\nmode: enforce\nmax_age: 5\n")
@example("version: STSv1\r\nmode: testing\r\nmax_age: 5\r\nmx: a.example\r")
@example("version:STSv1\nmode:enforce\nmx:a.example\nmax_age:5")
def test_policy_fast_path_matches_the_line_loop(text: str) -> None:
    for data in (text, text.encode()):
        assert outcome(parse_policy, data) == outcome(_policy._parse_lines, text)


def test_policy_fast_path_is_taken_for_the_usual_file() -> None:
    usual = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmax_age: 86400\r\n"
    assert _policy._usual(usual) is not None
    for unusual in (
        usual + "\r\n",  # a blank line
        usual.replace("mode", "Mode"),
        usual + "x: y\r\n",
        usual.replace("mx: ", "mx:"),
    ):
        assert _policy._usual(unusual) is None, unusual


def test_policy_mx_block_memo_gives_the_same_policy_and_is_bounded() -> None:
    text = "version: STSv1\nmode: enforce\nmx: MX1.Example.COM.\nmx: *.example.net\nmax_age: 9\n"
    _policy._MX_BLOCKS.clear()
    first = parse_policy(text)
    assert "\nmx: MX1.Example.COM.\nmx: *.example.net" in _policy._MX_BLOCKS
    again = parse_policy(text)
    assert again == first == _policy._parse_lines(text)
    assert again.mx == ("mx1.example.com", "*.example.net")
    # a run of mx lines longer than MAX_MEMO_BLOCK is not remembered
    names = "".join(f"mx: host-number-{i}.example.com\n" for i in range(100))
    assert len(names) > _policy.MAX_MEMO_BLOCK
    long_text = "version: STSv1\nmode: enforce\nmax_age: 9\n" + names
    assert len(long_text) <= _policy._USUAL_MAX
    _policy._MX_BLOCKS.clear()
    assert len(parse_policy(long_text).mx) == 100
    assert not _policy._MX_BLOCKS
    # and at most MX_BLOCK_CACHE_SIZE runs are kept
    for i in range(_policy.MX_BLOCK_CACHE_SIZE + 10):
        parse_policy(f"version: STSv1\nmode: enforce\nmx: m{i}.example\nmax_age: 9\n")
    assert 0 < len(_policy._MX_BLOCKS) <= _policy.MX_BLOCK_CACHE_SIZE
    assert _policy.MAX_MEMO_BLOCK == 2048
    assert _policy.MX_BLOCK_CACHE_SIZE == 1024


def test_pattern_index_memo_is_bounded() -> None:
    assert _match.INDEX_CACHE_SIZE == 256
    _match._INDEXES.clear()
    kept = [(f"mx{i}.example",) for i in range(_match.INDEX_CACHE_SIZE + 10)]
    for patterns in kept:
        assert _match.pattern_index(patterns).covers(patterns[0])
    assert 0 < len(_match._INDEXES) <= _match.INDEX_CACHE_SIZE


# --- TXT presentation format -------------------------------------------------------

_txt_piece = st.text(alphabet='ab "\\\t;=09\u00e9\x7f', max_size=8)
_txt_text = st.one_of(
    st.lists(_txt_piece, min_size=1, max_size=4).map(lambda ps: " ".join(f'"{p}"' for p in ps)),
    st.text(alphabet='ab "\\\t;', max_size=12),
)


def _txt_by_dnspython(text: str) -> tuple[str, Any]:
    """The general path: dnspython's presentation-format parser, then the join."""
    import dns.exception
    import dns.rdata
    import dns.rdataclass
    import dns.rdatatype

    try:
        rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, text)
    except (dns.exception.DNSException, ValueError):
        return ("DnsError", None)
    return ("value", (b"".join(rdata.strings).decode("utf-8", errors="replace"),))  # type: ignore[attr-defined]


@given(_txt_text)
@example('"v=STSv1; id=1;"')
@example('"v=STSv1; " "id=1;"')
@example('""')
@example('"a"\t"b"')
@example('"a" "b')
@example('"' + "a" * 255 + '"')
@example('"' + "a" * 256 + '"')
@example('"a\\"b"')
@example('"\\195\\169"')
@example("v=STSv1;")
def test_txt_strings_quick_path_matches_dnspython(text: str) -> None:
    from mtasecure.dnssec import DnsAnswer
    from mtasecure.errors import DnsError

    answer = DnsAnswer(name="_mta-sts.example.com", rdtype="TXT", records=(text,))
    try:
        got: tuple[str, Any] = ("value", answer.txt_strings())
    except DnsError:
        got = ("DnsError", None)
    assert got == _txt_by_dnspython(text)


# --- URLs of the HTTPS client -------------------------------------------------------

_url_host = st.one_of(
    st.sampled_from(["mta-sts.example.com", "a", "MTA-STS.Example.com", "-a-.b", "1.2.3.4"]),
    st.text(alphabet="ab-.0", min_size=1, max_size=8),
)
_url_port = st.one_of(
    st.just(""), st.sampled_from([":443", ":8443", ":0", ":65535", ":65536", ":99999", ":"])
)
_url_path = st.one_of(
    st.just("/.well-known/mta-sts.txt"),
    st.text(alphabet="/a.~%?=&:@#' \"<>[]\u00e9", max_size=10).map(lambda p: "/" + p),
    st.just(""),
)


@given(st.sampled_from(["https://", "http://", "HTTPS://"]), _url_host, _url_port, _url_path)
@example("https://", "mta-sts.example.com", "", "/.well-known/mta-sts.txt")
@example("https://", "mta-sts.example.com", ":443", "/a?b=c")
@example("https://", "mta-sts.example.com", ":65536", "/")
@example("https://", "a", "", "/.")
@example("https://", "a", "", "/b/../c?d")
@example("https://", "a", "", "/x/.?q")
@example("https://", "a", "", "/a.?x/./")
@example("https://", "a", "", "/.well-known/..x")
def test_https_url_quick_path_matches_httpx(scheme: str, host: str, port: str, path: str) -> None:
    import httpx

    from mtasecure.errors import HttpError
    from mtasecure.transport import http

    url = scheme + host + port + path
    try:
        target = httpx.URL(url)
        general: tuple[str, Any] = (
            ("value", (target.raw_host.decode("ascii"), target.port, target.raw_path))
            if target.scheme == "https" and target.host
            else ("HttpError", None)
        )
    except (httpx.InvalidURL, TypeError, ValueError):
        general = ("HttpError", None)
    try:
        got: tuple[str, Any] = ("value", tuple(http._parse_url(url)))
    except HttpError:
        got = ("HttpError", None)
    assert got == general
