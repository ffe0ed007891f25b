"""Helpers shared by the TLS-RPT report tests: a real third-party report consumer."""

from __future__ import annotations

import gc
import warnings
from types import ModuleType
from typing import Any

from mtasecure.tlsrpt import TlsReport


def parsedmarc() -> ModuleType:
    """parsedmarc, imported with its import-time ResourceWarning silenced and collected."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mailsuite.utils
        import parsedmarc as module

        # mailsuite (a parsedmarc dependency) opens os.devnull at import and never
        # closes it, which the interpreter reports at exit. Nothing these tests
        # call writes to it.
        mailsuite.utils.null_file.close()
        gc.collect()
    return module


def assert_same_totals(parsed: dict[str, Any], report: TlsReport) -> None:
    """parsedmarc's reading of a report agrees with ours, policy by policy."""
    assert parsed["report_id"] == report.report_id
    assert parsed["organization_name"] == report.organization_name
    assert len(parsed["policies"]) == len(report.policies)
    for theirs, ours in zip(parsed["policies"], report.policies, strict=True):
        assert theirs["policy_domain"] == ours.policy.policy_domain
        assert theirs["policy_type"] == ours.policy.policy_type.value
        assert theirs["successful_session_count"] == ours.summary.total_successful_session_count
        assert theirs["failed_session_count"] == ours.summary.total_failure_session_count
        details = theirs.get("failure_details", [])
        assert len(details) == len(ours.failure_details)
        for d_theirs, d_ours in zip(details, ours.failure_details, strict=True):
            assert d_theirs["result_type"] == str(d_ours.result_type)
            assert d_theirs["failed_session_count"] == d_ours.failed_session_count
            assert d_theirs.get("sending_mta_ip") == d_ours.sending_mta_ip
