"""TLS reporting (RFC 8460): the ``_smtp._tls`` record, and the reports themselves.

The record:

* :func:`parse_record` reads one ``_smtp._tls`` TXT record into a
  :class:`TlsRptRecord`; :func:`select_record` applies the "exactly one
  record" rule of RFC 8460 §3 to everything found at :func:`record_name`.

The reports:

* :class:`TlsReport` and its parts model the report JSON (§4) exactly;
  :func:`parse_report` reads received reports.
* :class:`TlsRptCollector` records session results (§4.2–§4.4);
  :func:`build_reports` turns a window's results into one gzip report per
  policy domain with its §5.1 file name; :func:`render_report_message` makes
  the §5.3 mail.
* The HTTPS upload, mail submission, result stores and scheduler are in
  :mod:`mtasecure.transport` (``report_submit``, ``report_sqlite``, …).
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
from mtasecure.tlsrpt._policy import (
    SessionRecord,
    plan_session_record,
    render_sts_policy_string,
    render_tlsa_policy_string,
    report_policy_for,
)
from mtasecure.tlsrpt._record import (
    MAX_RECORD_LENGTH,
    MAX_RUA_URIS,
    MAX_URI_LENGTH,
    SkippedRua,
    TlsRptRecord,
    parse_record,
    record_name,
    select_record,
)
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

__all__ = [  # noqa: RUF022 - plain sorted(), the order the tests pin
    "BuiltReport",
    "DetailCount",
    "DkimKey",
    "FailureDetail",
    "MAX_RECORD_LENGTH",
    "MAX_RUA_URIS",
    "MAX_URI_LENGTH",
    "PolicyResults",
    "PolicyType",
    "ReportDateRange",
    "ReportOptions",
    "ReportPolicy",
    "ReportSummary",
    "ReportWindow",
    "ResultBatch",
    "SessionCount",
    "SessionRecord",
    "SkippedRua",
    "TlsReport",
    "TlsRptCollector",
    "TlsRptRecord",
    "WindowResults",
    "build_reports",
    "is_report_mail",
    "merge_results",
    "no_policy_found",
    "parse_record",
    "parse_report",
    "plan_session_record",
    "record_name",
    "render_filename",
    "render_gzip",
    "render_report_message",
    "render_sts_policy_string",
    "render_tlsa_policy_string",
    "report_policy_for",
    "select_record",
]
