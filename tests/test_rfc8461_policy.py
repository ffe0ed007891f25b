"""RFC 8461 §3.2: the policy file — grammar, the cases the RFC leaves open, limits, rendering."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from mtasecure.errors import NameSyntaxError, ParseError, PolicySyntaxError, UsageError
from mtasecure.sts import (
    MAX_AGE_LIMIT,
    MAX_MX_PATTERNS,
    MAX_POLICY_BYTES,
    PolicyMode,
    StsPolicy,
    parse_policy,
    policy_url,
    render_policy,
)
from mtasecure.sts._policy import MAX_AGE_DIGITS

# §3.2's example, as served (CRLF-separated key/value pairs)
RFC_EXAMPLE = (
    "version: STSv1\r\n"
    "mode: enforce\r\n"
    "mx: mail.example.com\r\n"
    "mx: *.example.net\r\n"
    "mx: backupmx.example.com\r\n"
    "max_age: 604800\r\n"
)
RFC_POLICY = StsPolicy(
    mode=PolicyMode.ENFORCE,
    mx=("mail.example.com", "*.example.net", "backupmx.example.com"),
    max_age=604800,
)


def policy(*lines: str, end: str = "\r\n") -> str:
    return end.join(lines) + end


def test_rfc_example() -> None:
    parsed = parse_policy(RFC_EXAMPLE)
    assert parsed == RFC_POLICY
    assert parsed.version == "STSv1"
    assert parsed.mode is PolicyMode.ENFORCE
    assert parsed.mx == ("mail.example.com", "*.example.net", "backupmx.example.com")
    assert parsed.max_age == 604800
    assert parsed.extensions == ()


def test_bytes_and_text_give_the_same_policy() -> None:
    assert parse_policy(RFC_EXAMPLE.encode()) == parse_policy(RFC_EXAMPLE)
    assert parse_policy(bytearray(RFC_EXAMPLE.encode())) == RFC_POLICY
    assert parse_policy(memoryview(RFC_EXAMPLE.encode())) == RFC_POLICY  # type: ignore[arg-type]


def test_policy_mode_values_are_the_wire_tokens() -> None:
    assert [m.value for m in PolicyMode] == ["enforce", "testing", "none"]
    assert PolicyMode("testing") is PolicyMode.TESTING


# (file text, expected field values as a dict) for every case the parser accepts
ACCEPTED = [
    # the grammar: LF or CRLF terminators, final terminator optional, *WSP
    ("LF alone", policy("version: STSv1", "mode: testing", "mx: a.example", "max_age: 1", end="\n"),
     {"mode": PolicyMode.TESTING, "mx": ("a.example",), "max_age": 1}),
    ("mixed CRLF and LF", "version: STSv1\r\nmode: enforce\nmx: a.example\r\nmax_age: 1\n",
     {"mx": ("a.example",)}),
    ("no final terminator", "version: STSv1\r\nmode: enforce\r\nmx: a.example\r\nmax_age: 1",
     {"max_age": 1}),
    ("no space after colon", policy("version:STSv1", "mode:enforce", "mx:a.example", "max_age:1"),
     {"mx": ("a.example",)}),
    ("tabs after colon", policy("version:\tSTSv1", "mode:\t enforce", "mx:\ta.example", "max_age:\t1"),
     {"mode": PolicyMode.ENFORCE}),
    ("trailing whitespace", policy("version: STSv1 ", "mode: enforce\t", "mx: a.example  ", "max_age: 1 \t"),
     {"mx": ("a.example",), "max_age": 1}),
    ("fields in any order", policy("max_age: 1", "mx: a.example", "mode: enforce", "version: STSv1"),
     {"mx": ("a.example",)}),
    # mode none needs no mx
    ("mode none, no mx", policy("version: STSv1", "mode: none", "max_age: 86400"),
     {"mode": PolicyMode.NONE, "mx": ()}),
    ("mode none with mx", policy("version: STSv1", "mode: none", "mx: a.example", "max_age: 0"),
     {"mode": PolicyMode.NONE, "mx": ("a.example",), "max_age": 0}),
    # unknown fields SHALL be ignored (kept as extensions)
    ("unknown keys", policy("version: STSv1", "mode: enforce", "mx: a.example", "max_age: 1",
                            "x-note: hello world", "Mode: testing", "a.b-c_d: ü"),
     {"mode": PolicyMode.ENFORCE,
      "extensions": (("x-note", "hello world"), ("Mode", "testing"), ("a.b-c_d", "ü"))}),
    ("empty extension value", policy("version: STSv1", "mode: none", "max_age: 1", "x:"),
     {"extensions": (("x", ""),)}),
    ("colon inside a value", policy("version: STSv1", "mode: none", "max_age: 1", "x: a:b"),
     {"extensions": (("x", "a:b"),)}),
    # non-repeated fields: the first wins, later ones are ignored unread
    ("duplicate mode", policy("version: STSv1", "mode: enforce", "mode: none", "mode: bogus",
                              "mx: a.example", "max_age: 1"),
     {"mode": PolicyMode.ENFORCE}),
    ("duplicate max_age", policy("version: STSv1", "mode: enforce", "mx: a.example", "max_age: 5",
                                 "max_age: x"), {"max_age": 5}),
    ("duplicate version", policy("version: STSv1", "version: STSv2", "mode: none", "max_age: 1"),
     {"version": "STSv1"}),
    ("duplicate extension", policy("version: STSv1", "mode: none", "max_age: 1", "x: 1", "x: 2"),
     {"extensions": (("x", "1"),)}),
    # mx: every line counts; the same pattern is kept once
    ("duplicate mx", policy("version: STSv1", "mode: enforce", "mx: a.example", "mx: b.example",
                            "mx: A.example.", "max_age: 1"),
     {"mx": ("a.example", "b.example")}),
    # max_age: 1*10 DIGIT, capped at 31557600
    ("max_age at the limit", policy("version: STSv1", "mode: none", f"max_age: {MAX_AGE_LIMIT}"),
     {"max_age": MAX_AGE_LIMIT}),
    ("max_age above the limit is clamped", policy("version: STSv1", "mode: none", "max_age: 31557601"),
     {"max_age": MAX_AGE_LIMIT}),
    ("max_age of 10 digits", policy("version: STSv1", "mode: none", "max_age: 9999999999"),
     {"max_age": MAX_AGE_LIMIT}),
    ("max_age with leading zeros", policy("version: STSv1", "mode: none", "max_age: 0000086400"),
     {"max_age": 86400}),
    # leniency on what does not change the meaning
    ("blank lines", "\r\nversion: STSv1\r\n\r\nmode: none\r\n \t\r\nmax_age: 1\r\n\r\n\n",
     {"mode": PolicyMode.NONE}),
    ("spaces around keys", policy(" version : STSv1", "mode\t: none", "  mx  : a.example", "max_age : 1"),
     {"mx": ("a.example",)}),
    ("byte order mark", "\ufeff" + policy("version: STSv1", "mode: none", "max_age: 1"),
     {"mode": PolicyMode.NONE}),
    ("CR before a final missing LF", "version: STSv1\r\nmode: none\r\nmax_age: 1\r",
     {"max_age": 1}),
    # mx values: normalised to lower-case A-labels, one trailing dot removed
    ("mx case and dot", policy("version: STSv1", "mode: enforce", "mx: MAIL.Example.COM.",
                               "mx: *.EXAMPLE.net", "max_age: 1"),
     {"mx": ("mail.example.com", "*.example.net")}),
    ("mx A-label", policy("version: STSv1", "mode: enforce", "mx: xn--bcher-kva.example", "max_age: 1"),
     {"mx": ("xn--bcher-kva.example",)}),
    ("mx U-label converted", policy("version: STSv1", "mode: enforce", "mx: *.bücher.example", "max_age: 1"),
     {"mx": ("*.xn--bcher-kva.example",)}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "fields"), [(t, f) for _, t, f in ACCEPTED], ids=[a[0] for a in ACCEPTED]
)
def test_accepted(text: str, fields: dict[str, object]) -> None:
    parsed = parse_policy(text)
    for name, value in fields.items():
        assert getattr(parsed, name) == value
    assert parse_policy(text.encode("utf-8")) == parsed


# (file text, line named in the error or None for the whole file, message fragment)
REJECTED = [
    ("empty file", "", None, "no version and no mode and no max_age"),
    ("no version", policy("mode: none", "max_age: 1"), None, "no version"),
    ("no mode", policy("version: STSv1", "max_age: 1"), None, "no mode"),
    ("no max_age", policy("version: STSv1", "mode: none"), None, "no max_age"),
    ("enforce without mx", policy("version: STSv1", "mode: enforce", "max_age: 1"), None,
     "'enforce' needs at least one mx"),
    ("testing without mx", policy("version: STSv1", "mode: testing", "max_age: 1"), None,
     "'testing' needs at least one mx"),
    ("version STSv2", policy("version: STSv2", "mode: none", "max_age: 1"), 1, "is not 'STSv1'"),
    ("version case", policy("version: stsv1", "mode: none", "max_age: 1"), 1, "is not 'STSv1'"),
    ("empty version", policy("version:", "mode: none", "max_age: 1"), 1, "is not 'STSv1'"),
    ("mode misspelt", policy("version: STSv1", "mode: enfore", "mx: a.example", "max_age: 1"), 2,
     "mode 'enfore' is not one of enforce, testing, none"),
    ("mode case", policy("version: STSv1", "mode: Enforce", "mx: a.example", "max_age: 1"), 2,
     "is not one of"),
    ("keys are case-sensitive", policy("Version: STSv1", "mode: none", "max_age: 1"), None,
     "no version"),
    ("max_age empty", policy("version: STSv1", "mode: none", "max_age:"), 3, "not 1 to 10"),
    ("max_age negative", policy("version: STSv1", "mode: none", "max_age: -1"), 3, "not 1 to 10"),
    ("max_age plus", policy("version: STSv1", "mode: none", "max_age: +1"), 3, "not 1 to 10"),
    ("max_age unit", policy("version: STSv1", "mode: none", "max_age: 1d"), 3, "not 1 to 10"),
    ("max_age float", policy("version: STSv1", "mode: none", "max_age: 1.5"), 3, "not 1 to 10"),
    ("max_age underscore", policy("version: STSv1", "mode: none", "max_age: 1_000"), 3, "not 1 to 10"),
    ("max_age non-ASCII digits", policy("version: STSv1", "mode: none", "max_age: ٣٠"), 3, "ASCII"),
    ("max_age 11 digits", policy("version: STSv1", "mode: none", "max_age: 10000000000"), 3,
     "not 1 to 10"),
    ("max_age inner space", policy("version: STSv1", "mode: none", "max_age: 1 0"), 3, "not 1 to 10"),
    # mx values that are not ["*."] Domain
    ("mx empty", policy("version: STSv1", "mode: enforce", "mx:", "max_age: 1"), 3, "not a host name"),
    ("mx IPv4", policy("version: STSv1", "mode: enforce", "mx: 192.0.2.1", "max_age: 1"), 3,
     "IP address"),
    ("mx IPv4 literal", policy("version: STSv1", "mode: enforce", "mx: [192.0.2.1]", "max_age: 1"), 3,
     "address literal"),
    ("mx IPv6", policy("version: STSv1", "mode: enforce", "mx: 2001:db8::25", "max_age: 1"), 3,
     "address literal"),
    ("mx inner wildcard", policy("version: STSv1", "mode: enforce", "mx: mx.*.example", "max_age: 1"),
     3, "'\\*' is allowed only"),
    ("mx partial wildcard", policy("version: STSv1", "mode: enforce", "mx: mx*.example", "max_age: 1"),
     3, "only as the whole"),
    ("mx bare wildcard", policy("version: STSv1", "mode: enforce", "mx: *", "max_age: 1"), 3,
     "not a host name"),
    ("mx wildcard on a TLD", policy("version: STSv1", "mode: enforce", "mx: *.com", "max_age: 1"), 3,
     "at least two labels"),
    ("mx two names", policy("version: STSv1", "mode: enforce", "mx: a.example b.example", "max_age: 1"),
     3, "not a host name"),
    ("mx comma list", policy("version: STSv1", "mode: enforce", "mx: a.example,b.example", "max_age: 1"),
     3, "not a host name"),
    ("mx underscore", policy("version: STSv1", "mode: enforce", "mx: a_b.example", "max_age: 1"), 3,
     "not a host name"),
    ("mx empty label", policy("version: STSv1", "mode: enforce", "mx: a..example", "max_age: 1"), 3,
     "empty label"),
    ("mx bad one among good", policy("version: STSv1", "mode: enforce", "mx: a.example",
                                     "mx: 192.0.2.1", "max_age: 1"), 4, "IP address"),
    # lines that are not key/value pairs
    ("no colon", policy("version: STSv1", "mode: none", "max_age 1"), 3, "not a 'key: value' line"),
    ("HTML", "<html><body>Not found</body></html>\n", 1, "not a 'key: value' line"),
    ("empty key", policy("version: STSv1", "mode: none", "max_age: 1", ": x"), 4, "not a valid field"),
    ("key with space", policy("version: STSv1", "mode: none", "max_age: 1", "max age: 1"), 4,
     "not a valid field"),
    ("key too long", policy("version: STSv1", "mode: none", "max_age: 1", "k" * 33 + ": 1"), 4,
     "not a valid field"),
    ("key starts with _", policy("version: STSv1", "mode: none", "max_age: 1", "_x: 1"), 4,
     "not a valid field"),
    # control characters, lone CR
    ("NUL in a line", policy("version: STSv1", "mode: none", "max_age: 1", "x: a\x00b"), 4,
     "control character"),
    ("lone CR separator", "version: STSv1\rmode: none\rmax_age: 1\r", 1, "is not 'STSv1'"),
    ("CR inside mx", policy("version: STSv1", "mode: enforce", "mx: a\r.example", "max_age: 1"), 3,
     "not a host name"),
    ("vertical tab line", policy("version: STSv1", "mode: none", "max_age: 1", "\x0b"), 4,
     "not a 'key: value' line"),
    ("DEL in extension", policy("version: STSv1", "mode: none", "max_age: 1", "x: \x7f"), 4,
     "control character"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "line", "fragment"), [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED]
)
def test_rejected(text: str, line: int | None, fragment: str) -> None:
    with pytest.raises(PolicySyntaxError, match=fragment) as caught:
        parse_policy(text)
    error = caught.value
    assert error.where == (f"line {line}" if line is not None else "policy")
    assert error.rule is not None
    assert error.rule.startswith("RFC ")


def test_error_message_says_where_and_rule() -> None:
    with pytest.raises(PolicySyntaxError) as caught:
        parse_policy(policy("version: STSv1", "mx: a.example", "mode: enfore", "max_age: 1"))
    assert str(caught.value) == (
        "line 3: mode 'enfore' is not one of enforce, testing, none (RFC 8461 §3.2)"
    )


def test_name_errors_are_chained_not_leaked() -> None:
    with pytest.raises(PolicySyntaxError) as caught:
        parse_policy(policy("version: STSv1", "mode: enforce", "mx: 192.0.2.1", "max_age: 1"))
    assert isinstance(caught.value.__cause__, NameSyntaxError)


# --- encodings ---------------------------------------------------------------


def test_non_utf8_bytes_are_rejected_with_the_offset() -> None:
    data = b"version: STSv1\r\nmode: none\r\nmax_age: 1\r\nx: \xff\r\n"
    with pytest.raises(PolicySyntaxError, match="not UTF-8") as caught:
        parse_policy(data)
    offset = data.index(b"\xff")
    assert caught.value.where == f"byte {offset}"


def test_latin1_mx_is_rejected() -> None:
    with pytest.raises(PolicySyntaxError, match="not UTF-8"):
        parse_policy(
            "version: STSv1\nmode: enforce\nmx: bücher.example\nmax_age: 1\n".encode("latin-1")
        )


def test_utf8_bom_bytes_are_skipped() -> None:
    assert parse_policy(b"\xef\xbb\xbf" + RFC_EXAMPLE.encode()) == RFC_POLICY


def test_bom_is_only_skipped_at_the_start() -> None:
    with pytest.raises(PolicySyntaxError):
        parse_policy("version: STSv1\r\n\ufeffmode: none\r\nmax_age: 1\r\n")


def test_lone_surrogate_in_text_is_a_parse_error() -> None:
    with pytest.raises(PolicySyntaxError, match="surrogate"):
        parse_policy("version: STSv1\nmode: none\nmax_age: 1\nx: \udcff\n")


def test_other_types_are_a_usage_error() -> None:
    with pytest.raises(UsageError):
        parse_policy(42)  # type: ignore[arg-type]


# --- limits ------------------------------------------------------------------


def test_limits_are_the_rfc_values() -> None:
    assert MAX_POLICY_BYTES == 65536  # §3.3: "a suggested maximum policy size is 64 kilobytes"
    assert MAX_AGE_LIMIT == 31557600  # §3.2
    assert MAX_AGE_DIGITS == 10  # §3.2: 1*10(DIGIT)


def _padded(size: int) -> str:
    head = policy("version: STSv1", "mode: none", "max_age: 1")
    filler = "x: " + "a" * (size - len(head) - 5) + "\r\n"
    text = head + filler
    assert len(text.encode()) == size
    return text


def test_size_limit_in_octets() -> None:
    at_limit = _padded(MAX_POLICY_BYTES)
    assert parse_policy(at_limit).mode is PolicyMode.NONE
    assert parse_policy(at_limit.encode()).mode is PolicyMode.NONE
    over = _padded(MAX_POLICY_BYTES + 1)
    for body in (over, over.encode()):
        with pytest.raises(PolicySyntaxError, match="more than 65536"):
            parse_policy(body)


def test_size_limit_counts_utf8_octets_not_characters() -> None:
    head = policy("version: STSv1", "mode: none", "max_age: 1")
    text = head + "x: " + "é" * ((MAX_POLICY_BYTES - len(head)) // 2) + "\r\n"
    assert len(text) <= MAX_POLICY_BYTES < len(text.encode())
    with pytest.raises(PolicySyntaxError, match="octets long"):
        parse_policy(text)


def test_mx_pattern_count_limit() -> None:
    head = ["version: STSv1", "mode: enforce", "max_age: 1"]
    at_limit = policy(*head, *(f"mx: m{i}.ex" for i in range(MAX_MX_PATTERNS)), end="\n")
    assert len(at_limit.encode()) <= MAX_POLICY_BYTES
    assert len(parse_policy(at_limit).mx) == MAX_MX_PATTERNS
    over = policy(*head, *(f"mx: m{i}.ex" for i in range(MAX_MX_PATTERNS + 1)), end="\n")
    assert len(over.encode()) <= MAX_POLICY_BYTES
    with pytest.raises(PolicySyntaxError, match="more than 4096"):
        parse_policy(over)


def test_parser_memo_is_bounded_in_count_and_key_size() -> None:
    from mtasecure.sts import _policy
    from mtasecure.sts._match import NAME_CACHE_SIZE

    padded = "mx: pad.example" + " " * 60000 + "\n"
    text = "version: STSv1\nmode: enforce\nmax_age: 1\n" + padded
    assert parse_policy(text).mx == ("pad.example",)
    assert all(len(key) <= _policy.MAX_MEMO_KEY for key in _policy._MX_CACHE)
    for start in range(0, NAME_CACHE_SIZE + 100, 2000):
        lines = "".join(f"mx: h{i}.example\n" for i in range(start, start + 2000))
        parse_policy("version: STSv1\nmode: enforce\nmax_age: 1\n" + lines)
    assert 0 < len(_policy._MX_CACHE) <= NAME_CACHE_SIZE


def test_repeated_mx_lines_do_not_count_twice() -> None:
    lines = ["version: STSv1", "mode: enforce", "max_age: 1"] + ["mx: a.ex"] * (MAX_MX_PATTERNS + 1)
    assert parse_policy(policy(*lines, end="\n")).mx == ("a.ex",)


# --- the model ---------------------------------------------------------------


def test_model_validates_when_built_directly() -> None:
    built = StsPolicy(mode="enforce", mx=["MAIL.example.com.", "mail.example.com"], max_age=5)  # type: ignore[arg-type]
    assert built.mx == ("mail.example.com",)
    assert built.mode is PolicyMode.ENFORCE
    with pytest.raises(ValidationError):
        StsPolicy(mode=PolicyMode.ENFORCE, mx=(), max_age=5)
    with pytest.raises(ValidationError):
        StsPolicy(mode=PolicyMode.NONE, max_age=MAX_AGE_LIMIT + 1)
    with pytest.raises(ValidationError):
        StsPolicy(mode=PolicyMode.NONE, max_age=-1)
    with pytest.raises(ValidationError):
        StsPolicy(mode=PolicyMode.NONE, max_age=1, version="STSv2")  # type: ignore[arg-type]
    for extensions in ([("mode", "x")], [("x", "1"), ("x", "2")], [("x", " a")], [("x", "a\n")]):
        with pytest.raises(ValidationError):
            StsPolicy(mode=PolicyMode.NONE, max_age=1, extensions=extensions)  # type: ignore[arg-type]


def test_model_is_frozen_and_hashable() -> None:
    parsed = parse_policy(RFC_EXAMPLE)
    with pytest.raises(ValidationError):
        parsed.mode = PolicyMode.NONE  # type: ignore[misc]
    assert hash(parsed) == hash(RFC_POLICY)
    assert parsed.model_fields_set == set(StsPolicy.model_fields)


def test_render_rfc_example() -> None:
    assert render_policy(RFC_POLICY) == RFC_EXAMPLE


def test_render_extensions_after_the_known_fields() -> None:
    built = StsPolicy(mode=PolicyMode.NONE, max_age=1, extensions=(("x-a", "1"), ("B", "é ü")))
    assert (
        render_policy(built) == "version: STSv1\r\nmode: none\r\nmax_age: 1\r\nx-a: 1\r\nB: é ü\r\n"
    )


def test_policy_url() -> None:
    assert policy_url("example.com") == "https://mta-sts.example.com/.well-known/mta-sts.txt"
    assert policy_url("Example.COM.") == "https://mta-sts.example.com/.well-known/mta-sts.txt"
    assert policy_url("bücher.example") == (
        "https://mta-sts.xn--bcher-kva.example/.well-known/mta-sts.txt"
    )
    for bad in ("", "192.0.2.1", "[::1]", "a..b", ".".join(["a" * 63] * 3 + ["b" * 61])):
        with pytest.raises(NameSyntaxError):
            policy_url(bad)


# --- hypothesis --------------------------------------------------------------

_line_parts = st.sampled_from(
    ["version", "mode", "mx", "max_age", "x", ":", " ", "\t", "\r", "\n", "\r\n", "STSv1",
     "enforce", "testing", "none", "*.", "a.example", "1", "99999999999", "é", "\x00", "\ufeff",
     "[", "192.0.2.1"]
)  # fmt: skip
_policy_like = st.lists(_line_parts, max_size=30).map("".join)


@given(st.one_of(st.text(max_size=300), _policy_like))
def test_only_parse_errors_escape_on_text(text: str) -> None:
    try:
        parsed = parse_policy(text)
    except ParseError:
        return
    assert 0 <= parsed.max_age <= MAX_AGE_LIMIT
    assert parsed.mx or parsed.mode is PolicyMode.NONE


@given(st.one_of(st.binary(max_size=300), _policy_like.map(lambda t: t.encode("utf-8", "replace"))))
def test_only_parse_errors_escape_on_bytes(data: bytes) -> None:
    try:
        parsed = parse_policy(data)
    except ParseError:
        return
    assert parsed.mx or parsed.mode is PolicyMode.NONE


_labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_hosts = (
    st.lists(_labels, min_size=2, max_size=4)
    .map(".".join)
    .filter(lambda h: not h.rpartition(".")[2].isdigit() and "--" not in h)
)
_patterns = st.one_of(_hosts, _hosts.map(lambda h: "*." + h))
_ext_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}", fullmatch=True).filter(
    lambda n: n not in {"version", "mode", "mx", "max_age"}
)
_ext_values = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=20
).map(
    lambda v: v.strip(
        " \t\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000\ufeff"
    )
)


@st.composite
def policies(draw: st.DrawFn) -> StsPolicy:
    mode = draw(st.sampled_from(PolicyMode))
    mx = draw(st.lists(_patterns, min_size=0 if mode is PolicyMode.NONE else 1, max_size=6))
    return StsPolicy(
        mode=mode,
        mx=tuple(mx),
        max_age=draw(st.integers(0, MAX_AGE_LIMIT)),
        extensions=tuple(draw(st.dictionaries(_ext_names, _ext_values, max_size=3)).items()),
    )


@given(policies())
def test_render_parse_round_trip(original: StsPolicy) -> None:
    text = render_policy(original)
    assert parse_policy(text) == original
    assert parse_policy(text.encode("utf-8")) == original
    assert parse_policy(text.replace("\r\n", "\n")) == original


@given(policies())
def test_parsed_policy_equals_a_validated_one(original: StsPolicy) -> None:
    parsed = parse_policy(render_policy(original))
    assert StsPolicy.model_validate(parsed.model_dump()) == parsed
