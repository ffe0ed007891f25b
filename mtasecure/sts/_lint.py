"""What a domain owner should fix in a policy or record, even where senders are lenient.

:func:`~mtasecure.sts.parse_policy` is the sender's reader: it accepts every
file whose meaning is unambiguous, because rejecting a policy switches
MTA-STS off for the domain (RFC 8461 §5.1). Other senders may be stricter.
:func:`lint_policy` is the owner's view of the same file: every deviation from
the grammar and every setting that weakens the policy becomes a
:class:`Finding`, from the text alone (no network).

The file alone cannot tell how long a policy has been in ``testing``; the
lint therefore always notes ``testing`` mode, with what to check (the TLS
reports) before moving to ``enforce``.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from mtasecure._names import match_wildcard
from mtasecure._tagvalue import split_record
from mtasecure.errors import NameSyntaxError, ParseError, PolicySyntaxError, RecordSyntaxError
from mtasecure.sts._match import cached_host, cached_pattern
from mtasecure.sts._policy import (
    KNOWN_KEYS,
    MAX_AGE_DIGITS,
    MAX_AGE_LIMIT,
    MAX_POLICY_BYTES,
    PolicyMode,
    StsPolicy,
    parse_policy,
)
from mtasecure.sts._record import RECORD_VERSION, parse_record

__all__ = [
    "MISSPELLING_DISTANCE",
    "SHORT_MAX_AGE",
    "WEEK",
    "Finding",
    "Severity",
    "lint_policy",
    "lint_record",
]

SHORT_MAX_AGE = 86400
"""A ``max_age`` below this (one day) leaves little protection between refreshes."""
WEEK = 604800
"""RFC 8461 §3.2 expects ``max_age`` to be "in the range of weeks or greater"."""
MISSPELLING_DISTANCE = 2
"""Unknown keys this close (edits, case ignored) to a known key are reported as misspelt."""

_POLICY = "RFC 8461 §3.2"
_RECORD = "RFC 8461 §3.1"


class Severity(StrEnum):
    """How much a finding matters (an ERROR breaks RFC 8461 §3.2 or §4.1; a WARNING does not)."""

    ERROR = "error"
    """Senders reject the file, or mail to a listed MX will be refused."""
    WARNING = "warning"
    """Accepted by mtasecure, but weakens the policy or may be rejected by stricter senders."""
    INFO = "info"
    """Worth knowing; nothing to fix unless it is not what the owner meant."""


class Finding(BaseModel):
    """One thing :func:`lint_policy` or :func:`lint_record` found.

    Attributes:
        severity: how much it matters.
        line: the 1-based line of the policy file, or ``None`` for the whole
            file or record.
        code: a stable identifier (``"lf-line-ending"``, ``"max-age-short"``,
            ...) to filter on.
        message: what is wrong and what to do, in words.
        rule: the RFC section behind it.
    """

    model_config = ConfigDict(frozen=True)

    severity: Severity
    line: int | None
    code: str
    message: str
    rule: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{self.severity.value}: {where}{self.message} [{self.code}] ({self.rule})"


def lint_policy(text: str | bytes, *, mx_hosts: Iterable[str] | None = None) -> list[Finding]:
    """Report what a domain owner should fix in an MTA-STS policy file (RFC 8461 §3.2).

    Args:
        text: the policy file as served (bytes or text).
        mx_hosts: the domain's MX host names, if known. Then every MX the
            policy does not cover is an error (senders in ``enforce`` mode
            refuse it) and every pattern covering no MX is a warning.

    Returns:
        The findings, ordered by line (whole-file findings first). An empty
        list means nothing to fix.
    """
    findings: list[Finding] = []
    policy: StsPolicy | None = None
    try:
        policy = parse_policy(text)
    except PolicySyntaxError as exc:
        findings.append(_syntax(exc))
    if isinstance(text, bytes | bytearray | memoryview):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            return findings  # already reported; nothing more can be read
    if not isinstance(text, str) or len(text.encode("utf-8", "replace")) > MAX_POLICY_BYTES:
        return findings
    if text.startswith("\ufeff"):
        text = text[1:]
        findings.append(
            _f(Severity.WARNING, None, "byte-order-mark", "remove the byte order mark", _POLICY)
        )
    syntax_lines = {f.line for f in findings}  # the one syntax error, if any
    findings += [
        f for f in _lint_lines(text) if not (f.code == "mx-invalid" and f.line in syntax_lines)
    ]
    if policy is not None:
        findings += _lint_values(policy)
        if mx_hosts is not None:
            findings += _lint_coverage(policy, mx_hosts)
    findings.sort(key=lambda f: -1 if f.line is None else f.line)
    return findings


def lint_record(text: str) -> list[Finding]:
    """Report what a domain owner should fix in a ``_mta-sts`` TXT record (RFC 8461 §3.1).

    Returns:
        The findings: a syntax error, repeated fields (ignored after the
        first), and extensions (ignored by senders).
    """
    try:
        record = parse_record(text)
    except RecordSyntaxError as exc:
        return [_syntax(exc)]
    findings: list[Finding] = []
    # parse_record accepted the text, so the shared splitter cannot fail on it.
    names = [name for name, _ in split_record(text, RECORD_VERSION, rule=_RECORD)]
    for name in dict.fromkeys(n for n in names if names.count(n) > 1):
        findings.append(
            _f(
                Severity.WARNING,
                None,
                "duplicate-field",
                f"field {name!r} appears {names.count(name)} times; senders use the first",
                _RECORD,
            )
        )
    for name, _value in record.extensions:
        findings.append(
            _f(
                Severity.INFO,
                None,
                "unknown-field",
                f"field {name!r} is not defined by RFC 8461; senders ignore it",
                _RECORD,
            )
        )
    if not text.startswith(RECORD_VERSION + ";"):
        findings.append(
            _f(
                Severity.WARNING,
                None,
                "version-spacing",
                "write 'v=STSv1;' with no space before ';': some senders look for that exact text",
                _RECORD,
            )
        )
    return findings


def _lint_lines(text: str) -> list[Finding]:
    findings: list[Finding] = []
    lines = text.split("\n")
    terminated = len(lines) - 1  # lines followed by a LF
    if lines[-1] == "":
        lines.pop()
    lf_only = [n for n, line in enumerate(lines[:terminated], 1) if not line.endswith("\r")]
    if lf_only:
        findings.append(
            _f(
                Severity.WARNING,
                lf_only[0],
                "lf-line-ending",
                f"{len(lf_only)} line(s) end in LF alone; serve CRLF line endings, "
                "the terminator RFC 8461 §3.2 names",
                _POLICY,
            )
        )
    seen: dict[str, tuple[int, str]] = {}
    for lineno, raw in enumerate(lines, 1):
        line = raw.removesuffix("\r")
        key, sep, value = line.partition(":")
        if not sep:
            if not line.strip(" \t"):
                findings.append(
                    _f(
                        Severity.WARNING,
                        lineno,
                        "blank-line",
                        "remove the blank line; the grammar has none and strict senders reject it",
                        _POLICY,
                    )
                )
            continue
        name = key.strip(" \t")
        if name != key:
            findings.append(
                _f(
                    Severity.WARNING,
                    lineno,
                    "key-spacing",
                    f"remove the spaces around {name!r}; the key must start the line "
                    "and be followed directly by ':'",
                    _POLICY,
                )
            )
        value = value.strip(" \t\r")
        if name == "mx":
            findings += _lint_mx_text(lineno, value)
            continue
        if name in seen:
            first, first_value = seen[name]
            same = "the same value" if first_value == value else f"{first_value!r}, not {value!r}"
            findings.append(
                _f(
                    Severity.WARNING,
                    lineno,
                    "duplicate-key",
                    f"{name!r} repeats line {first}; senders use the first ({same})",
                    _POLICY,
                )
            )
            continue
        seen[name] = (lineno, value)
        if name == "max_age" and _digits(value) and int(value) > MAX_AGE_LIMIT:
            findings.append(
                _f(
                    Severity.ERROR,
                    lineno,
                    "max-age-too-large",
                    f"max_age {value} is above the maximum {MAX_AGE_LIMIT}; mtasecure "
                    "caps it, other senders may reject the policy",
                    _POLICY,
                )
            )
        if name not in KNOWN_KEYS and name:
            findings.append(_unknown_key(lineno, name))
    return findings


def _lint_mx_text(lineno: int, value: str) -> list[Finding]:
    findings = []
    try:
        cached_pattern(value)
    except NameSyntaxError as exc:
        findings.append(
            _f(Severity.ERROR, lineno, "mx-invalid", f"mx {value!r}: {exc.message}", _POLICY)
        )
        return findings
    if not value.isascii():
        findings.append(
            _f(
                Severity.ERROR,
                lineno,
                "mx-u-label",
                f"write mx {value!r} in A-labels (punycode); the RFC requires them "
                "and other senders may reject the policy",
                _POLICY,
            )
        )
    elif value.endswith("."):
        findings.append(
            _f(
                Severity.WARNING,
                lineno,
                "mx-trailing-dot",
                f"remove the trailing dot from {value!r}; the mx value is a Domain "
                "(RFC 5321 §4.1.2), without one",
                _POLICY,
            )
        )
    elif value != value.lower():
        findings.append(
            _f(
                Severity.INFO,
                lineno,
                "mx-case",
                f"mx {value!r} is compared case-insensitively; lower case reads better",
                _POLICY,
            )
        )
    return findings


def _unknown_key(lineno: int, name: str) -> Finding:
    lowered = name.lower()
    for known in KNOWN_KEYS:
        if lowered == known or _distance(lowered, known) <= MISSPELLING_DISTANCE:
            return _f(
                Severity.WARNING,
                lineno,
                "misspelt-key",
                f"key {name!r} looks like {known!r}; keys are case-sensitive and "
                "senders ignore unknown keys",
                _POLICY,
            )
    return _f(
        Severity.INFO,
        lineno,
        "unknown-key",
        f"key {name!r} is not defined by RFC 8461; senders ignore it",
        _POLICY,
    )


def _lint_values(policy: StsPolicy) -> list[Finding]:
    findings = []
    if policy.max_age < SHORT_MAX_AGE:
        findings.append(
            _f(
                Severity.WARNING,
                None,
                "max-age-short",
                f"max_age {policy.max_age} is under a day; an attacker who blocks the "
                "refresh gets a downgrade soon after. Use weeks once the policy is stable",
                "RFC 8461 §3.2, §10.3",
            )
        )
    elif policy.max_age < WEEK:
        findings.append(
            _f(
                Severity.INFO,
                None,
                "max-age-under-a-week",
                f"max_age {policy.max_age} is under a week; the RFC expects weeks or greater",
                _POLICY,
            )
        )
    if policy.mode is PolicyMode.TESTING:
        findings.append(
            _f(
                Severity.INFO,
                None,
                "testing-mode",
                "mode is testing: senders deliver even when validation fails, and only "
                "report it. Move to enforce once the TLS reports (RFC 8460) show no "
                "failures; the file alone cannot tell how long testing has lasted",
                "RFC 8461 §5",
            )
        )
    elif policy.mode is PolicyMode.NONE:
        findings.append(
            _f(
                Severity.INFO,
                None,
                "mode-none",
                "mode is none: MTA-STS is off. When removing MTA-STS, keep serving this "
                "policy until every previously served max_age has passed",
                "RFC 8461 §8.3",
            )
        )
    return findings


def _lint_coverage(policy: StsPolicy, mx_hosts: Iterable[str]) -> list[Finding]:
    findings = []
    hosts: list[str] = []
    for host in mx_hosts:
        try:
            hosts.append(cached_host(host))
        except NameSyntaxError as exc:
            findings.append(
                _f(Severity.ERROR, None, "mx-host-invalid", f"MX {host!r}: {exc}", "RFC 8461 §4.1")
            )
    if policy.mode is not PolicyMode.NONE:
        for host in hosts:
            if not any(match_wildcard(pattern, host) for pattern in policy.mx):
                consequence = (
                    "senders will refuse to deliver to it"
                    if policy.mode is PolicyMode.ENFORCE
                    else "senders will report failures for it"
                )
                findings.append(
                    _f(
                        Severity.ERROR,
                        None,
                        "mx-not-covered",
                        f"MX {host!r} matches no mx pattern; {consequence}",
                        "RFC 8461 §4.1",
                    )
                )
    for pattern in policy.mx:
        if not any(match_wildcard(pattern, host) for host in hosts):
            findings.append(
                _f(
                    Severity.WARNING,
                    None,
                    "pattern-unused",
                    f"mx pattern {pattern!r} covers none of the MX hosts given",
                    "RFC 8461 §4.1",
                )
            )
    return findings


def _syntax(exc: ParseError) -> Finding:
    line = None
    if exc.where and exc.where.startswith("line "):
        line = int(exc.where.removeprefix("line "))
    return Finding(
        severity=Severity.ERROR,
        line=line,
        code="syntax",
        message=exc.message + ("; senders treat the domain as having no policy"),
        rule=exc.rule or _POLICY,
    )


def _f(severity: Severity, line: int | None, code: str, message: str, rule: str) -> Finding:
    return Finding(severity=severity, line=line, code=code, message=message, rule=rule)


def _distance(a: str, b: str) -> int:
    """Edit distance with adjacent transpositions (optimal string alignment)."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, char_b in enumerate(b, 1):
            cost = char_a != char_b
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and char_a == b[j - 2] and a[i - 2] == char_b:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]


def _digits(value: str) -> bool:
    return value.isascii() and value.isdigit() and len(value) <= MAX_AGE_DIGITS
