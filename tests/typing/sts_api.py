"""Pins the types of mtasecure.sts's public API; type-checked by mypy, never run."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, assert_type

from mtasecure.cli import main
from mtasecure.sts import (
    Finding,
    PolicyMode,
    Severity,
    StsPolicy,
    StsPublication,
    StsRecord,
    build_policy,
    build_publication,
    lint_policy,
    lint_record,
    match_mx,
    parse_policy,
    parse_record,
    policy_id,
    policy_url,
    record_name,
    render_policy,
    render_record,
    select_record,
)


def _pins() -> None:
    record = parse_record("v=STSv1; id=1")
    assert_type(record, StsRecord)
    assert_type(record.id, str)
    assert_type(record.extensions, tuple[tuple[str, str], ...])
    assert_type(select_record(["v=STSv1; id=1"]), StsRecord | None)
    assert_type(render_record("1"), str)
    assert_type(record_name("example.com"), str)

    policy = parse_policy(b"version: STSv1\nmode: none\nmax_age: 1\n")
    assert_type(policy, StsPolicy)
    assert_type(parse_policy("version: STSv1\nmode: none\nmax_age: 1\n"), StsPolicy)
    assert_type(policy.version, Literal["STSv1"])
    assert_type(policy.mode, PolicyMode)
    assert_type(policy.mx, tuple[str, ...])
    assert_type(policy.max_age, int)
    assert_type(policy.extensions, tuple[tuple[str, str], ...])
    assert_type(policy.matches("mx.example.com"), bool)
    assert_type(render_policy(policy), str)
    assert_type(policy_url("example.com"), str)
    assert_type(match_mx("*.example.com", "mx.example.com"), bool)

    findings = lint_policy(b"", mx_hosts=["mx.example.com"])
    assert_type(findings, list[Finding])
    assert_type(lint_record("v=STSv1; id=1"), list[Finding])
    assert_type(findings[0].severity, Severity)
    assert_type(findings[0].line, int | None)
    assert_type(findings[0].code, str)

    built = build_policy(mode="enforce", mx=["mx.example.com"])
    assert_type(built, StsPolicy)
    assert_type(policy_id(built, now=datetime.now(UTC)), str)
    published = build_publication("example.com", built)
    assert_type(published, StsPublication)
    assert_type(published.record, StsRecord)
    assert_type(published.record_text, str)

    assert_type(main(["demo"]), int)
