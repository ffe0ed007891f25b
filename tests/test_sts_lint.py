"""lint_policy and lint_record: what a domain owner should fix (RFC 8461 §3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mtasecure.sts import Finding, Severity, lint_policy, lint_record
from mtasecure.sts._lint import MISSPELLING_DISTANCE, SHORT_MAX_AGE, WEEK, _distance

CLEAN = (
    "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
    "mx: *.example.net\r\nmax_age: 1209600\r\n"
)


def codes(findings: list[Finding]) -> list[str]:
    return [f.code for f in findings]


def one(findings: list[Finding], code: str) -> Finding:
    found = [f for f in findings if f.code == code]
    assert len(found) == 1, findings
    return found[0]


def test_clean_policy_has_no_findings() -> None:
    assert lint_policy(CLEAN) == []
    assert lint_policy(CLEAN.encode()) == []
    assert lint_policy(CLEAN, mx_hosts=["mail.example.com", "mx1.example.net"]) == []


def test_lf_line_endings() -> None:
    finding = one(lint_policy(CLEAN.replace("\r\n", "\n")), "lf-line-ending")
    assert finding.severity is Severity.WARNING
    assert finding.line == 1
    assert finding.message.startswith("5 line(s) end in LF alone")


def test_lf_on_one_line_names_that_line() -> None:
    text = CLEAN.replace("mx: *.example.net\r\n", "mx: *.example.net\n")
    assert one(lint_policy(text), "lf-line-ending").line == 4


def test_missing_final_terminator_is_not_an_lf_finding() -> None:
    assert lint_policy(CLEAN.removesuffix("\r\n")) == []


@pytest.mark.parametrize(
    ("max_age", "code", "severity"),
    [
        (0, "max-age-short", Severity.WARNING),
        (SHORT_MAX_AGE - 1, "max-age-short", Severity.WARNING),
        (SHORT_MAX_AGE, "max-age-under-a-week", Severity.INFO),
        (WEEK - 1, "max-age-under-a-week", Severity.INFO),
        (31557601, "max-age-too-large", Severity.ERROR),
        (9999999999, "max-age-too-large", Severity.ERROR),
    ],
)
def test_max_age(max_age: int, code: str, severity: Severity) -> None:
    text = CLEAN.replace("max_age: 1209600", f"max_age: {max_age}")
    finding = one(lint_policy(text), code)
    assert finding.severity is severity


def test_max_age_of_a_week_or_more_is_fine() -> None:
    for value in (WEEK, 31557600):
        assert lint_policy(CLEAN.replace("1209600", str(value))) == []


@pytest.mark.parametrize(
    ("key", "code"),
    [
        ("max-age", "misspelt-key"),
        ("maxage", "misspelt-key"),
        ("Max_Age", "misspelt-key"),
        ("moed", "misspelt-key"),  # a transposition is one edit
        ("MODE", "misspelt-key"),
        ("versoin", "misspelt-key"),
        ("mxx", "misspelt-key"),
        ("x-contact", "unknown-key"),
        ("comment", "unknown-key"),
    ],
)
def test_unknown_and_misspelt_keys(key: str, code: str) -> None:
    finding = one(lint_policy(CLEAN + f"{key}: x\r\n"), code)
    assert finding.line == 6
    assert key in finding.message


def test_misspelt_required_key_also_gives_the_syntax_error() -> None:
    findings = lint_policy(CLEAN.replace("max_age:", "max-age:"))
    assert one(findings, "syntax").message.startswith("policy has no max_age field")
    assert one(findings, "misspelt-key").line == 5


def test_distance() -> None:
    assert MISSPELLING_DISTANCE == 2
    assert _distance("mode", "mode") == 0
    assert _distance("moed", "mode") == 1
    assert _distance("max-age", "max_age") == 1
    assert _distance("maxage", "max_age") == 1
    assert _distance("x-contact", "max_age") > MISSPELLING_DISTANCE
    assert _distance("", "mx") == 2


def test_testing_mode_is_always_noted() -> None:
    finding = one(lint_policy(CLEAN.replace("enforce", "testing")), "testing-mode")
    assert finding.severity is Severity.INFO
    assert "enforce" in finding.message


def test_mode_none_is_noted() -> None:
    text = "version: STSv1\r\nmode: none\r\nmax_age: 1209600\r\n"
    assert codes(lint_policy(text)) == ["mode-none"]


def test_duplicate_keys() -> None:
    findings = lint_policy(CLEAN + "mode: testing\r\n")
    finding = one(findings, "duplicate-key")
    assert finding.line == 6
    assert "repeats line 2" in finding.message
    assert "'enforce', not 'testing'" in finding.message


def test_blank_lines_and_spacing() -> None:
    text = CLEAN.replace("mode: enforce\r\n", "mode : enforce\r\n\r\n")
    findings = lint_policy(text)
    assert one(findings, "key-spacing").line == 2
    assert one(findings, "blank-line").line == 3


def test_mx_spelling() -> None:
    text = CLEAN + "mx: bücher.example\r\nmx: mx.example.org.\r\nmx: MX.Example.info\r\n"
    findings = lint_policy(text)
    assert one(findings, "mx-u-label").severity is Severity.ERROR
    assert one(findings, "mx-trailing-dot").line == 7
    assert one(findings, "mx-case").line == 8


def test_byte_order_mark() -> None:
    assert codes(lint_policy("\ufeff" + CLEAN)) == ["byte-order-mark"]
    assert codes(lint_policy(b"\xef\xbb\xbf" + CLEAN.encode())) == ["byte-order-mark"]


def test_syntax_error_carries_the_line_and_rule() -> None:
    finding = one(lint_policy(CLEAN.replace("enforce", "enforcing")), "syntax")
    assert finding.severity is Severity.ERROR
    assert finding.line == 2
    assert finding.rule == "RFC 8461 §3.2"
    assert "no policy" in finding.message


def test_non_utf8_stops_after_the_syntax_error() -> None:
    findings = lint_policy(CLEAN.encode() + b"x: \xff\n")
    assert codes(findings) == ["syntax"]
    assert findings[0].line is None


def test_oversized_policy_gives_only_the_syntax_error() -> None:
    assert codes(lint_policy(CLEAN + "x: " + "a" * 70000 + "\r\n")) == ["syntax"]


def test_mx_hosts_not_covered_and_patterns_unused() -> None:
    findings = lint_policy(
        CLEAN, mx_hosts=["mail.example.com", "a.b.example.net", "mx.example.org", "192.0.2.1"]
    )
    not_covered = [f for f in findings if f.code == "mx-not-covered"]
    assert [f.message.split("'")[1] for f in not_covered] == ["a.b.example.net", "mx.example.org"]
    assert all("refuse" in f.message for f in not_covered)
    assert one(findings, "pattern-unused").message.startswith("mx pattern '*.example.net'")
    assert one(findings, "mx-host-invalid").severity is Severity.ERROR


def test_mx_not_covered_in_testing_mode_says_report() -> None:
    findings = lint_policy(CLEAN.replace("enforce", "testing"), mx_hosts=["mx.example.org"])
    assert one(findings, "mx-not-covered").message.endswith("senders will report failures for it")


def test_mode_none_checks_no_coverage() -> None:
    text = "version: STSv1\r\nmode: none\r\nmax_age: 1209600\r\n"
    assert codes(lint_policy(text, mx_hosts=["mx.example.org"])) == ["mode-none"]


def test_findings_are_ordered_whole_file_first() -> None:
    text = CLEAN.replace("\r\n", "\n").replace("1209600", "60") + "foo: 1\n"
    lines = [f.line for f in lint_policy(text)]
    assert lines == sorted(lines, key=lambda n: -1 if n is None else n)
    assert lines[0] is None


def test_finding_str() -> None:
    finding = one(lint_policy(CLEAN.replace("enforce", "enforcing")), "syntax")
    assert str(finding).startswith("error: line 2: mode 'enforcing' is not one of")
    assert str(finding).endswith("[syntax] (RFC 8461 §3.2)")


@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_lint_policy_never_raises(text: str | bytes) -> None:
    for finding in lint_policy(text, mx_hosts=["mail.example.com", "bad host"]):
        assert isinstance(finding, Finding)


# --- records -----------------------------------------------------------------


def test_clean_record() -> None:
    assert lint_record("v=STSv1; id=20160831085700Z;") == []


def test_record_syntax_error() -> None:
    [finding] = lint_record("v=STSv1; id=2016-08-31")
    assert finding.code == "syntax"
    assert finding.rule == "RFC 8461 §3.1"


def test_record_duplicates_extensions_and_spacing() -> None:
    findings = lint_record("v=STSv1 ; id=a; id=b; x=1")
    assert "field 'id' appears 2 times" in one(findings, "duplicate-field").message
    assert "'x'" in one(findings, "unknown-field").message
    assert one(findings, "version-spacing").severity is Severity.WARNING


@given(st.text(max_size=100))
def test_lint_record_never_raises(text: str) -> None:
    assert all(isinstance(f, Finding) for f in lint_record(text))
