"""Pin the public API's types. Type-checked by ``nox -s typing``; never run.

``mypy --strict`` checks every ``assert_type`` below against the library's
annotations, so a changed signature fails the typing session. Lines marked
``# type: ignore[...]`` pin what must stay a type error; ``strict`` turns an
ignore that is no longer needed into an error, so they cannot rot either.
The file holds no test functions, so pytest never collects or runs it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, assert_type

import dns.rdata

import mtasecure
from mtasecure import errors, results, sts, tlsrpt
from mtasecure._http import HttpResponse
from mtasecure.dnssec import DnsAnswer, Security
from mtasecure.transport import Clock, HttpClient, Resolver


def errors_and_results() -> None:
    """mtasecure.errors and mtasecure.results (RFC 8460 §4.3)."""
    error = errors.RecordSyntaxError("bad", where="field 2", rule="RFC 8460 §3")
    assert_type(error.message, str)
    assert_type(error.where, str | None)
    assert_type(error.rule, str | None)
    parse_error: errors.ParseError = error
    root: errors.MtaSecureError = parse_error
    usage: ValueError = errors.UsageError("misuse")
    timeout: TimeoutError = errors.TransportTimeout("too slow")
    assert_type(root, errors.MtaSecureError)
    assert_type(usage, ValueError)
    assert_type(timeout, TimeoutError)
    errors.ParseError("bad", "field 2")  # type: ignore[call-arg]

    reason = results.FailureReason("certificate-host-mismatch")
    assert_type(reason.value, str)
    failed = results.CheckResult.failed(reason, "detail")
    assert_type(failed, results.CheckResult)
    assert_type(results.CheckResult.passed(), results.CheckResult)
    assert_type(failed.reason, results.FailureReason | None)
    assert_type(failed.detail, str)
    assert_type(failed.ok, bool)
    results.CheckResult.failed("certificate-expired")  # type: ignore[arg-type]

    assert_type(mtasecure.__version__, str)
    assert_type(mtasecure.CheckResult, type[results.CheckResult])
    assert_type(mtasecure.RecordSyntaxError, type[errors.RecordSyntaxError])


def dns_and_http_values(answer: DnsAnswer, response: HttpResponse) -> None:
    """The value types the transports hand to the core."""
    assert_type(answer.name, str)
    assert_type(answer.records, tuple[str, ...])
    assert_type(answer.security, Security)
    assert_type(answer.ttl, int)
    assert_type(answer.final_name, str)
    assert_type(answer.nodata, bool)
    assert_type(answer.txt_strings(), tuple[str, ...])
    assert_type(answer.rdatas(), tuple[dns.rdata.Rdata, ...])
    assert_type(Security("secure"), Security)

    assert_type(response.status, int)
    assert_type(response.body, bytes)
    assert_type(response.headers, tuple[tuple[str, str], ...])
    assert_type(response.header("content-type"), str | None)
    assert_type(response.redirected, bool)


async def transport_protocols(clock: Clock, resolver: Resolver, http: HttpClient) -> None:
    """The Protocols users plug in (ARCHITECTURE.md: "Pluggable means a Protocol")."""
    assert_type(clock.now(), datetime)
    assert_type(await resolver.resolve("example.com", "TXT"), DnsAnswer)
    got = await http.get("https://mta-sts.example.com/", max_bytes=65536, timeout=10.0)
    assert_type(got, HttpResponse)
    posted = await http.post("https://r.example/", body=b"{}", content_type="x", timeout=1.0)
    assert_type(posted, HttpResponse)
    await http.get("https://mta-sts.example.com/")  # type: ignore[call-arg]


def tlsrpt_record(texts: list[str]) -> None:
    """mtasecure.tlsrpt: the _smtp._tls record (RFC 8460 §3)."""
    record = tlsrpt.parse_record("v=TLSRPTv1;rua=mailto:reports@example.com")
    assert_type(record, tlsrpt.TlsRptRecord)
    assert_type(record.rua, tuple[str, ...])
    assert_type(record.ignored_rua, tuple[tlsrpt.SkippedRua, ...])
    assert_type(record.extensions, tuple[tuple[str, str], ...])
    skipped = record.ignored_rua[0]
    assert_type(skipped.uri, str)
    assert_type(skipped.reason, str)
    assert_type(tlsrpt.select_record(texts), tlsrpt.TlsRptRecord | None)
    assert_type(tlsrpt.select_record(iter(texts)), tlsrpt.TlsRptRecord | None)
    assert_type(tlsrpt.record_name("example.com"), str)
    assert_type(tlsrpt.MAX_RUA_URIS, int)
    assert_type(tlsrpt.MAX_RECORD_LENGTH, int)
    assert_type(tlsrpt.MAX_URI_LENGTH, int)
    tlsrpt.parse_record(b"v=TLSRPTv1;rua=mailto:reports@example.com")  # type: ignore[arg-type]
    record.rua = ()  # type: ignore[misc]


def sts_contract(texts: list[str], policy_bytes: bytes) -> None:
    """mtasecure.sts: the names issue 2 makes a contract (RFC 8461)."""
    record = sts.parse_record("v=STSv1; id=20160831085700Z;")
    assert_type(record, sts.StsRecord)
    assert_type(record.id, str)
    assert_type(record.extensions, tuple[tuple[str, str], ...])
    assert_type(sts.select_record(texts), sts.StsRecord | None)
    assert_type(sts.select_record(iter(texts)), sts.StsRecord | None)

    policy = sts.parse_policy("version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 86400\n")
    assert_type(policy, sts.StsPolicy)
    assert_type(sts.parse_policy(policy_bytes), sts.StsPolicy)
    assert_type(policy.version, Literal["STSv1"])
    assert_type(policy.mode, sts.PolicyMode)
    assert_type(policy.mx, tuple[str, ...])
    assert_type(policy.max_age, int)
    assert_type(policy.extensions, tuple[tuple[str, str], ...])
    assert_type(policy.matches("mx.example.com"), bool)
    assert_type(sts.PolicyMode("enforce"), sts.PolicyMode)

    findings = sts.lint_policy(policy_bytes)
    assert_type(findings, list[sts.Finding])
    assert_type(sts.lint_policy("mode: testing"), list[sts.Finding])
    assert_type(findings[0].message, str)
    assert_type(sts.render_policy(policy), str)
    assert_type(sts.policy_url("example.com"), str)
    assert_type(sts.match_mx("*.example.com", "mx.example.com"), bool)

    sts.parse_record(b"v=STSv1; id=1")  # type: ignore[arg-type]
    sts.match_mx("*.example.com")  # type: ignore[call-arg]
    sts.render_policy("version: STSv1")  # type: ignore[arg-type]
    policy.mx = ()  # type: ignore[misc]
