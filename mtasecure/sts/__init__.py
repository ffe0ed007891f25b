"""MTA-STS (RFC 8461), pure: records, policies, MX matching, lint, publishing.

Split by verb: :mod:`._record` (the ``_mta-sts`` TXT record, §3.1),
:mod:`._policy` (the policy file, §3.2), :mod:`._match` (MX patterns, §4.1),
:mod:`._lint` (what an owner should fix), :mod:`._publish` (the owner's side),
:mod:`._fetch` (the fetch response rules, §3.3), :mod:`._cache` (the cached
policy and the refresh planner, §3.3, §5.1), :mod:`._apply` (policy
application to an MX set, §4, §5).
Nothing here performs I/O or reads the clock.
"""

from __future__ import annotations

from mtasecure.sts._apply import MxTls, StsDecision, StsExclusions, StsMxDecision, apply_policy
from mtasecure.sts._cache import (
    DEFAULT_REFRESH_INTERVAL,
    FETCH_RETRY_DELAY,
    CachedPolicy,
    FetchFailure,
    Step,
    StepAction,
    TxtOutcome,
    TxtState,
    plan_after_fetch,
    plan_proactive,
    plan_refresh,
    txt_expiry,
)
from mtasecure.sts._fetch import (
    DEFAULT_FETCH_TIMEOUT,
    POLICY_MEDIA_TYPE,
    check_response,
    check_transport_failure,
)
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
    "CachedPolicy",
    "DEFAULT_FETCH_TIMEOUT",
    "DEFAULT_REFRESH_INTERVAL",
    "FETCH_RETRY_DELAY",
    "FetchFailure",
    "Finding",
    "MAX_AGE_LIMIT",
    "MAX_MX_PATTERNS",
    "MAX_POLICY_BYTES",
    "MxTls",
    "POLICY_MEDIA_TYPE",
    "PolicyMode",
    "Severity",
    "Step",
    "StepAction",
    "StsDecision",
    "StsExclusions",
    "StsMxDecision",
    "StsPolicy",
    "StsPublication",
    "StsRecord",
    "TxtOutcome",
    "TxtState",
    "apply_policy",
    "build_policy",
    "build_publication",
    "check_response",
    "check_transport_failure",
    "lint_policy",
    "lint_record",
    "match_mx",
    "parse_policy",
    "parse_record",
    "plan_after_fetch",
    "plan_proactive",
    "plan_refresh",
    "policy_id",
    "policy_url",
    "record_name",
    "render_policy",
    "render_record",
    "select_record",
    "txt_expiry",
]
