"""Host-name normalisation (RFC 1123, RFC 5890/5891) and the wildcard matcher
(RFC 8461 §4.1, RFC 6125 §6.4.3)."""

from __future__ import annotations

import re
from unittest import mock

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mtasecure import _names
from mtasecure._names import match_wildcard, normalize_host, normalize_pattern
from mtasecure.errors import NameSyntaxError, ParseError

NORMALISED = [
    ("example.com", "example.com"),
    ("Example.COM", "example.com"),
    ("mx.example.com.", "mx.example.com"),
    ("localhost", "localhost"),
    ("a-b.c0.example", "a-b.c0.example"),
    ("Bücher.example", "xn--bcher-kva.example"),
    ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    ("XN--BCHER-KVA.example", "xn--bcher-kva.example"),
    ("ＥＸＡＭＰＬＥ.com", "example.com"),  # UTS-46 maps full-width letters
    ("ß.de", "xn--zca.de"),  # IDNA 2008: eszett is PVALID, not mapped to "ss"
    ("a" * 63 + ".com", "a" * 63 + ".com"),
    (".".join(["a" * 63] * 3 + ["b" * 61]), ".".join(["a" * 63] * 3 + ["b" * 61])),
]

REJECTED = [
    ("", "empty"),
    (".", "empty"),
    ("a..b", "empty label"),
    ("example.com..", "empty label"),
    (".example.com", "empty label"),
    ("-a.example", "hyphen"),
    ("a-.example", "hyphen"),
    ("a_b.example", "not allowed"),
    ("a b.example", "not allowed"),
    ("a" * 64 + ".com", "too long"),
    (".".join(["a" * 63] * 4), "more than 253"),
    ("192.0.2.1", "IP address"),
    ("example.123", "all-numeric"),
    ("[192.0.2.1]", "address literal"),
    ("2001:db8::1", "address literal"),
    ("xn--zz.example", "A-label"),
    ("*.example.com", "not allowed"),
]


@pytest.mark.parametrize(("name", "expected"), NORMALISED)
def test_normalize_host(name: str, expected: str) -> None:
    assert normalize_host(name) == expected


@pytest.mark.parametrize(("name", "message"), REJECTED)
def test_normalize_host_rejects(name: str, message: str) -> None:
    with pytest.raises(NameSyntaxError, match=message) as info:
        normalize_host(name)
    assert info.value.rule


def test_non_string_is_a_parse_error() -> None:
    with pytest.raises(NameSyntaxError, match="expected a str"):
        normalize_host(b"example.com")  # type: ignore[arg-type]


def test_ascii_ldh_fast_path_does_not_call_idna() -> None:
    with mock.patch.object(_names.idna, "encode", side_effect=AssertionError("idna called")):
        assert normalize_host("MX1.Mail.Example.NET.") == "mx1.mail.example.net"


def test_limits_are_named() -> None:
    assert _names.MAX_LABEL_LENGTH == 63
    assert _names.MAX_NAME_LENGTH == 253
    longest = ".".join(["a" * 63] * 3 + ["b" * 61])
    assert len(longest) == _names.MAX_NAME_LENGTH
    with pytest.raises(NameSyntaxError):
        normalize_host(longest + "b")


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("*.Example.com", "*.example.com"),
        ("mx.example.com", "mx.example.com"),
        ("*.bücher.example", "*.xn--bcher-kva.example"),
    ],
)
def test_normalize_pattern(pattern: str, expected: str) -> None:
    assert normalize_pattern(pattern) == expected


@pytest.mark.parametrize(
    "pattern", ["mx*.example.com", "*mx.example.com", "a.*.example.com", "*", "*.com"]
)
def test_normalize_pattern_rejects_partial_wildcards(pattern: str) -> None:
    with pytest.raises(NameSyntaxError):
        normalize_pattern(pattern)


# RFC 8461 §4.1: "*.example.com" matches "mail.example.com" but not
# "example.com" nor "foo.bar.example.com".
WILDCARD_VECTORS = [
    ("*.example.com", "mail.example.com", True),
    ("*.example.com", "example.com", False),
    ("*.example.com", "foo.bar.example.com", False),
    ("*.example.com", "mail.example.org", False),
    ("*.example.com", "mail.xexample.com", False),
    ("mail.example.com", "mail.example.com", True),
    ("mail.example.com", "mail2.example.com", False),
    ("mail.example.com", "x.mail.example.com", False),
]


@pytest.mark.parametrize(("pattern", "host", "expected"), WILDCARD_VECTORS)
def test_match_wildcard_rfc8461_4_1(pattern: str, host: str, expected: bool) -> None:
    assert match_wildcard(normalize_pattern(pattern), normalize_host(host)) is expected


LABEL = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True).filter(
    lambda s: not s.startswith("xn--") and not s.isdigit()
)


@given(st.lists(LABEL, min_size=2, max_size=5), st.lists(LABEL, min_size=0, max_size=3))
def test_wildcard_never_matches_more_or_less_than_one_label(
    suffix: list[str], prefix: list[str]
) -> None:
    pattern = "*." + ".".join(suffix)
    host = ".".join([*prefix, *suffix])
    assert match_wildcard(pattern, host) is (len(prefix) == 1)


@given(st.text(max_size=300))
def test_only_parse_errors_escape_the_normaliser(text: str) -> None:
    try:
        result = normalize_host(text)
    except ParseError:
        return
    assert result == result.lower()
    assert not result.endswith(".")
    assert len(result) <= _names.MAX_NAME_LENGTH
    assert normalize_host(result) == result  # idempotent


@given(st.text(max_size=120))
def test_only_parse_errors_escape_the_pattern_normaliser(text: str) -> None:
    try:
        result = normalize_pattern(text)
    except ParseError:
        return
    assert normalize_pattern(result) == result


_REFERENCE_LDH = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?",
    re.ASCII,
)


def _reference_normalize(name: str) -> str:
    """normalize_host as first written: one structured regex picks the fast path."""
    name = name.removesuffix(".")
    if _REFERENCE_LDH.fullmatch(name) and "xn--" not in name.lower():
        host = name.lower()
    else:
        host = _names._normalize_slow(name)
    if len(host) > _names.MAX_NAME_LENGTH:
        raise NameSyntaxError("too long")
    if re.fullmatch(r"[0-9]+", host.rpartition(".")[2]):
        raise NameSyntaxError("numeric")
    return host


_LDHISH_LABEL = st.one_of(
    st.text(alphabet="aZ0-", max_size=5),
    st.sampled_from(["a" * 63, "a" * 64, "b" * 62, "xn--bcher-kva", "xN--a", "é", "a_b", "9"]),
)


@given(
    st.lists(_LDHISH_LABEL, min_size=1, max_size=6).map(".".join),
    st.sampled_from(["", ".", ".."]),
)
@example("x.-b.example", "")
@example("x.b-.example", "")
@example("-x.example", "")
@example("x-.example", ".")
@example("x..example", "")
@example("x.example", "..")
@example("x." + "a" * 64, "")
@example("ab--cd.example", "")
@example("x.example.123", "")
def test_fast_path_accepts_exactly_the_ldh_names(name: str, dots: str) -> None:
    text = name + dots
    try:
        expected: str | None = _reference_normalize(text)
    except NameSyntaxError:
        expected = None
    try:
        got: str | None = normalize_host(text)
    except NameSyntaxError:
        got = None
    assert got == expected
