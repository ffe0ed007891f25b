"""MTA-STS (RFC 8461), pure: records, policies, MX matching, lint, publishing.

Split by verb: :mod:`._record` (the ``_mta-sts`` TXT record, §3.1),
:mod:`._policy` (the policy file, §3.2), :mod:`._match` (MX patterns, §4.1),
:mod:`._lint` (what an owner should fix), :mod:`._publish` (the owner's side).
Nothing here performs I/O or reads the clock.
"""

from __future__ import annotations

from mtasecure.sts._lint import Finding, Severity, lint_policy, lint_record
from mtasecure.sts._match import match_mx
from mtasecure.sts._policy import (
    MAX_AGE_LIMIT,
    MAX_MX_PATTERNS,
    MAX_POLICY_BYTES,
    PolicyMode,
    StsPolicy,
    parse_policy,
    policy_url,
    render_policy,
)
from mtasecure.sts._publish import StsPublication, build_policy, build_publication, policy_id
from mtasecure.sts._record import StsRecord, parse_record, record_name, render_record, select_record

# Plain sorted() order, which tests/test_exported_members.py checks.
__all__ = [  # noqa: RUF022
    "Finding",
    "MAX_AGE_LIMIT",
    "MAX_MX_PATTERNS",
    "MAX_POLICY_BYTES",
    "PolicyMode",
    "Severity",
    "StsPolicy",
    "StsPublication",
    "StsRecord",
    "build_policy",
    "build_publication",
    "lint_policy",
    "lint_record",
    "match_mx",
    "parse_policy",
    "parse_record",
    "policy_id",
    "policy_url",
    "record_name",
    "render_policy",
    "render_record",
    "select_record",
]
