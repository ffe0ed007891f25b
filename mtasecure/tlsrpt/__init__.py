"""TLS-RPT (RFC 8460): reports of TLS failures between mail servers.

The report side: the report JSON model and parser (§4), recording session
results (§4.2–§4.4), building a window's reports with gzip and file names
(§5.1, §5.2), and the report mail (§5.3). The HTTPS upload and mail
submission, and the result stores, are in :mod:`mtasecure.transport`.
"""

from __future__ import annotations

from mtasecure.tlsrpt._build import (
    BuiltReport,
    ReportOptions,
    build_reports,
    render_filename,
    render_gzip,
)
from mtasecure.tlsrpt._collect import (
    DetailCount,
    ReportWindow,
    ResultBatch,
    SessionCount,
    TlsRptCollector,
    WindowResults,
    merge_results,
    no_policy_found,
)
from mtasecure.tlsrpt._message import DkimKey, is_report_mail, render_report_message
from mtasecure.tlsrpt._report import (
    FailureDetail,
    PolicyResults,
    PolicyType,
    ReportDateRange,
    ReportPolicy,
    ReportSummary,
    TlsReport,
    parse_report,
)

__all__ = [
    "BuiltReport",
    "DetailCount",
    "DkimKey",
    "FailureDetail",
    "PolicyResults",
    "PolicyType",
    "ReportDateRange",
    "ReportOptions",
    "ReportPolicy",
    "ReportSummary",
    "ReportWindow",
    "ResultBatch",
    "SessionCount",
    "TlsReport",
    "TlsRptCollector",
    "WindowResults",
    "build_reports",
    "is_report_mail",
    "merge_results",
    "no_policy_found",
    "parse_report",
    "render_filename",
    "render_gzip",
    "render_report_message",
]
