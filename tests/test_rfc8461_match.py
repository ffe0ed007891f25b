"""RFC 8461 §4.1: MX host validation against ``mx`` patterns."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mtasecure.sts import PolicyMode, StsPolicy, _match, match_mx, parse_policy

# (pattern, host, matches)
VECTORS = [
    # §4.1, verbatim: "*.example.com" matches "mail.example.com" but not
    # "example.com" or "foo.bar.example.com"
    ("*.example.com", "mail.example.com", True),
    ("*.example.com", "example.com", False),
    ("*.example.com", "foo.bar.example.com", False),
    # §3.2 example patterns
    ("mail.example.com", "mail.example.com", True),
    ("*.example.net", "mx1.example.net", True),
    ("backupmx.example.com", "backupmx.example.com", True),
    ("mail.example.com", "mail2.example.com", False),
    ("mail.example.com", "sub.mail.example.com", False),
    ("mail.example.com", "example.com", False),
    # comparison is case-insensitive, trailing dots ignored, on A-labels (RFC 6125 §6.4.1)
    ("MAIL.Example.COM", "mail.example.com.", True),
    ("*.EXAMPLE.com.", "MX.example.COM", True),
    ("*.xn--bcher-kva.example", "mx.bücher.example", True),
    ("mx.bücher.example", "mx.xn--bcher-kva.example", True),
    # the wildcard is the whole left-most label only; it never matches a partial label
    ("*.example.com", ".example.com", False),
    ("*.example.com", "a.example.org", False),
    ("*.example.com", "aexample.com", False),
    ("*.mail.example.com", "mail.example.com", False),
    # a literal '*' in the host is not a wildcard
    ("*.example.com", "*.example.com", False),
    ("mail.example.com", "*.example.com", False),
    # neither side a host name: covered by nothing, never an exception
    ("mx*.example.com", "mx1.example.com", False),
    ("m*x.example.com", "mx.example.com", False),
    ("*", "example", False),
    ("*.com", "example.com", False),  # a wildcard must stand above two labels
    ("", "", False),
    ("mail.example.com", "", False),
    ("192.0.2.1", "192.0.2.1", False),
    ("[192.0.2.1]", "[192.0.2.1]", False),
    ("mail.example.com", "2001:db8::25", False),
    ("a..example", "a..example", False),
    ("a_b.example", "a_b.example", False),
]


@pytest.mark.parametrize(("pattern", "host", "expected"), VECTORS)
def test_match_mx(pattern: str, host: str, expected: bool) -> None:
    assert match_mx(pattern, host) is expected


@pytest.mark.parametrize(("pattern", "host", "expected"), [v for v in VECTORS if v[0] != ""])
def test_policy_matches_agrees_with_match_mx(pattern: str, host: str, expected: bool) -> None:
    try:
        policy = StsPolicy(mode=PolicyMode.ENFORCE, mx=(pattern,), max_age=1)
    except ValueError:
        return  # the pattern is not valid in a policy; match_mx said no above
    assert policy.matches(host) is expected


def test_rfc_example_policy() -> None:
    policy = parse_policy(
        "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
        "mx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n"
    )
    assert policy.matches("mail.example.com")
    assert policy.matches("backupmx.example.com")
    assert policy.matches("mx.example.net")
    assert not policy.matches("example.net")
    assert not policy.matches("a.b.example.net")
    assert not policy.matches("mx.example.org")
    assert not policy.matches("192.0.2.1")
    assert not policy.matches("")


def test_mode_none_without_mx_matches_nothing() -> None:
    policy = StsPolicy(mode=PolicyMode.NONE, max_age=1)
    assert not policy.matches("mail.example.com")


def test_memo_is_bounded() -> None:
    _match._HOSTS.clear()
    for i in range(_match.NAME_CACHE_SIZE + 10):
        assert match_mx("*.example.com", f"h{i}.example.com")
    assert 0 < len(_match._HOSTS) <= _match.NAME_CACHE_SIZE


def test_memo_never_stores_failures() -> None:
    assert not match_mx("*.example.com", "bad_host.example.com")
    assert "bad_host.example.com" not in _match._HOSTS


def test_non_strings_are_not_matches() -> None:
    assert match_mx(None, "mail.example.com") is False  # type: ignore[arg-type]
    assert match_mx("mail.example.com", 3) is False  # type: ignore[arg-type]


_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True).filter(
    lambda s: "--" not in s
)


@given(st.lists(_label, min_size=1, max_size=4), st.lists(_label, min_size=2, max_size=4))
def test_wildcard_never_covers_more_or_less_than_one_label(
    extra: list[str], base: list[str]
) -> None:
    suffix = ".".join(base)
    if suffix.rpartition(".")[2].isdigit():
        return
    host = ".".join([*extra, suffix])
    assert match_mx("*." + suffix, host) is (len(extra) == 1)
    assert match_mx("*." + suffix, suffix) is False


@given(st.text(max_size=40), st.text(max_size=40))
def test_match_mx_never_raises(pattern: str, host: str) -> None:
    assert match_mx(pattern, host) in (True, False)


@given(st.text(max_size=40))
def test_policy_matches_never_raises(host: str) -> None:
    policy = StsPolicy(mode=PolicyMode.ENFORCE, mx=("*.example.com", "mx.example.org"), max_age=1)
    expected = match_mx("*.example.com", host) or match_mx("mx.example.org", host)
    assert policy.matches(host) is expected
