"""The exception tree (errors.py) and the RFC 8460 §4.3 result types (results.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mtasecure import errors
from mtasecure.results import CheckResult, FailureReason

RFC8460 = Path(__file__).resolve().parents[2] / "shared" / "rfc" / "rfc8460.txt"


def test_failure_reasons_are_exactly_rfc8460_result_types() -> None:
    expected = {
        "starttls-not-supported",
        "certificate-host-mismatch",
        "certificate-expired",
        "certificate-not-trusted",
        "validation-failure",
        "tlsa-invalid",
        "dnssec-invalid",
        "dane-required",
        "sts-policy-fetch-error",
        "sts-policy-invalid",
        "sts-webpki-invalid",
    }
    assert {r.value for r in FailureReason} == expected


@pytest.mark.skipif(not RFC8460.exists(), reason="shared/rfc not beside the checkout")
def test_failure_reasons_appear_as_result_types_in_the_rfc_text() -> None:
    text = RFC8460.read_text(encoding="utf-8")
    section = text[
        text.index("\n4.3.  Result Types\n") : text.index("\n4.4.  JSON Report Schema\n")
    ]
    quoted = set(re.findall(r'"([a-z0-9-]+)"', section))
    assert {r.value for r in FailureReason} <= quoted


def test_failure_reason_is_built_from_its_wire_token() -> None:
    assert FailureReason("certificate-host-mismatch") is FailureReason.CERTIFICATE_HOST_MISMATCH
    assert str(FailureReason.DANE_REQUIRED) == "dane-required"
    with pytest.raises(ValueError, match="not a valid"):
        FailureReason("certificate-mismatch")


def test_check_result_truthiness_and_frozen() -> None:
    ok = CheckResult.passed("fine")
    bad = CheckResult.failed(FailureReason.CERTIFICATE_EXPIRED, "notAfter passed")
    assert ok.ok
    assert bool(ok)
    assert not bad.ok
    assert not bad
    assert bad.reason is FailureReason.CERTIFICATE_EXPIRED
    with pytest.raises(ValueError, match="frozen"):
        bad.detail = "changed"  # type: ignore[misc]


def test_parse_error_message_joins_where_and_rule() -> None:
    exc = errors.PolicySyntaxError(
        "mode 'enfore' is not one of enforce, testing, none", where="line 3", rule="RFC 8461 §3.2"
    )
    assert str(exc) == "line 3: mode 'enfore' is not one of enforce, testing, none (RFC 8461 §3.2)"
    assert exc.where == "line 3"
    assert exc.rule == "RFC 8461 §3.2"
    assert str(errors.ParseError("bare")) == "bare"


@pytest.mark.parametrize(
    ("child", "parent"),
    [
        (errors.ParseError, errors.MtaSecureError),
        (errors.NameSyntaxError, errors.ParseError),
        (errors.RecordSyntaxError, errors.ParseError),
        (errors.PolicySyntaxError, errors.ParseError),
        (errors.ReportSyntaxError, errors.ParseError),
        (errors.TlsaSyntaxError, errors.ParseError),
        (errors.MessageSyntaxError, errors.ParseError),
        (errors.UsageError, errors.MtaSecureError),
        (errors.UsageError, ValueError),
        (errors.TransportError, errors.MtaSecureError),
        (errors.DnsError, errors.TransportError),
        (errors.HttpError, errors.TransportError),
        (errors.SmtpError, errors.TransportError),
        (errors.StoreError, errors.TransportError),
        (errors.TransportTimeout, errors.TransportError),
        (errors.TransportTimeout, TimeoutError),
    ],
)
def test_exception_tree(child: type[Exception], parent: type[Exception]) -> None:
    assert issubclass(child, parent)


def test_every_exception_is_in_the_drawn_tree() -> None:
    doc = errors.__doc__ or ""
    for name in errors.__all__:
        assert name in doc, f"{name} is missing from the tree in errors.py's docstring"


@pytest.mark.parametrize(
    ("text", "limit", "quoted"),
    [
        ("a" * 60, 60, "a" * 60),  # at the limit: kept whole
        ("a" * 61, 60, "a" * 57 + "..."),  # one over: cut to exactly the limit
        ("", 60, ""),
        ("abcdef", 5, "ab..."),
    ],
)
def test_excerpt_bounds_quoted_input(text: str, limit: int, quoted: str) -> None:
    assert errors.excerpt(text, limit) == quoted
    assert len(errors.excerpt(text, limit)) <= limit
