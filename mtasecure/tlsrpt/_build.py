"""Building a window's reports: one per policy domain, gzip, file name (RFC 8460 §4, §5.1, §5.2).

:func:`build_reports` turns what a store holds for one window into one
:class:`BuiltReport` per policy domain: the :class:`~mtasecure.tlsrpt.TlsReport`,
its gzip bytes and its RFC 8460 §5.1 file name. The operator's
:class:`ReportOptions` decide what goes in.

Decisions where RFC 8460 leaves room:

* ``end-datetime`` is the last second of the window (``...T23:59:59Z`` for a
  day), as in the RFC's Appendix B and as the large senders write it; the file
  name's ``begin-timestamp`` and ``end-timestamp`` are the same two instants as
  UNIX seconds, so name and body never disagree (§5.6).
* ``report-id`` is ``<unique-id>@<submitter>``, where ``unique-id`` is a
  hash of submitter, policy domain and window (letters and digits, as §5.1's
  ``unique-id`` requires). The same report built again (after a crash, by
  another fleet member) gets the same id, so the receiver can drop duplicates
  (§5.3), and the id doubles as the Subject's ``Report-ID: <...>``.
* Summaries always count every session. The failure-detail options only trim
  the ``failure-details`` array: the groups with the most sessions are kept.
* If the gzip output would pass ``max_report_bytes``, failure details are
  halved until it fits, then policies with the fewest sessions are dropped.
"""

from __future__ import annotations

import gzip
import hashlib
from collections import defaultdict
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mtasecure._names import normalize_host
from mtasecure.errors import NameSyntaxError, UsageError
from mtasecure.results import FailureReason
from mtasecure.tlsrpt._collect import DAY, ReportWindow, WindowResults
from mtasecure.tlsrpt._report import (
    FailureDetail,
    PolicyResults,
    ReportDateRange,
    ReportPolicy,
    ReportSummary,
    TlsReport,
)

__all__ = [
    "DEFAULT_MAX_FAILURE_DETAILS",
    "MAX_REPORT_SIZE",
    "BuiltReport",
    "ReportOptions",
    "build_reports",
    "render_filename",
    "render_gzip",
    "report_unique_id",
]

#: Default cap on ``failure-details`` entries per policy in a built report.
DEFAULT_MAX_FAILURE_DETAILS = 1000
#: Default cap on a built report's gzip size: RFC 8460 §5.2 notes that ten
#: megabytes is a commonly observed receiver limit; stay well under it.
MAX_REPORT_SIZE = 5 * 1024 * 1024


class ReportOptions(BaseModel):
    """What an operator decides about the reports it sends (RFC 8460 §4, §5.1).

    Attributes:
        organization_name: ``organization-name``.
        contact_info: ``contact-info``, an addr-spec (RFC 5322 §3.4.1).
        submitter: the sending MTA's domain: the file name's ``sender``, the
            ``TLS-Report-Submitter`` header. Defaults to the domain of
            ``contact_info``, which §5.3 requires it to match.
        failure_types: which result types get ``failure-details`` entries
            (``None``: all). Summaries count every failure regardless.
        max_failure_details: most ``failure-details`` entries per policy.
        include_sending_ip: whether ``sending-mta-ip`` is filled in; when
            ``False``, groups that differ only in it are merged.
        window: the report window; one UTC day by default (§4.1).
        exclude_domains: policy domains never reported on (normalised; a
            domain also excludes its subdomains).
        max_report_bytes: cap on the gzip size of one report.
    """

    model_config = ConfigDict(frozen=True)

    organization_name: str = Field(min_length=1)
    contact_info: str = Field(min_length=3)
    submitter: str | None = None
    failure_types: frozenset[FailureReason] | None = None
    max_failure_details: int = Field(default=DEFAULT_MAX_FAILURE_DETAILS, ge=0)
    include_sending_ip: bool = True
    window: timedelta = DAY
    exclude_domains: frozenset[str] = frozenset()
    max_report_bytes: int = Field(default=MAX_REPORT_SIZE, ge=1024)

    @field_validator("contact_info")
    @classmethod
    def _addr_spec(cls, value: str) -> str:
        local, at, domain = value.rpartition("@")
        if not at or not local or not domain or any(c.isspace() for c in value):
            raise ValueError(f"{value!r} is not an addr-spec (RFC 5322 §3.4.1)")
        return value

    @field_validator("exclude_domains")
    @classmethod
    def _normalise(cls, value: frozenset[str]) -> frozenset[str]:
        return frozenset(normalize_host(v) for v in value)

    @property
    def sender_domain(self) -> str:
        """The submitter domain in A-labels (RFC 8460 §5.1 ``sender``)."""
        raw = self.submitter or self.contact_info.rpartition("@")[2]
        try:
            return normalize_host(raw)
        except NameSyntaxError as exc:
            raise UsageError(f"submitter {raw!r} is not a domain (RFC 8460 §5.1)") from exc

    def excludes(self, domain: str) -> bool:
        """Whether reports for ``domain`` (normalised) are suppressed."""
        labels = domain.split(".")
        return any(".".join(labels[i:]) in self.exclude_domains for i in range(len(labels)))


class BuiltReport(BaseModel):
    """One report, ready to deliver (RFC 8460 §5).

    Attributes:
        policy_domain: the domain reported on, in A-labels.
        submitter: the sending domain (``TLS-Report-Submitter``).
        window: the window covered.
        report: the report itself.
        filename: ``sender!policy-domain!begin!end!unique-id.json.gz`` (§5.1).
        gzip: the gzip-compressed JSON (§5.2), the body to send.
    """

    model_config = ConfigDict(frozen=True)

    policy_domain: str
    submitter: str
    window: ReportWindow
    report: TlsReport
    filename: str
    gzip: bytes


def render_gzip(data: bytes) -> bytes:
    """gzip ``data`` (RFC 8460 §5.2, RFC 1952) reproducibly: no name, mtime 0."""
    return gzip.compress(data, compresslevel=6, mtime=0)


def report_unique_id(submitter: str, policy_domain: str, window: ReportWindow) -> str:
    """A letters-and-digits id that is the same each time this report is built (RFC 8460 §5.1)."""
    seed = f"{submitter}!{policy_domain}!{window.start.isoformat()}!{window.end.isoformat()}"
    return hashlib.sha256(seed.encode()).hexdigest()[:24]


def render_filename(
    submitter: str,
    policy_domain: str,
    window: ReportWindow,
    unique_id: str | None = None,
    *,
    compressed: bool = True,
) -> str:
    """The RFC 8460 §5.1 file name: ``sender!policy-domain!begin!end[!id].json[.gz]``.

    ``begin`` and ``end`` are UNIX seconds of the first and last second the
    report covers (the same instants as its ``date-range``).

    Raises:
        UsageError: ``unique_id`` has characters other than letters and digits.
    """
    if unique_id is not None and not (unique_id.isascii() and unique_id.isalnum()):
        raise UsageError("unique-id is 1*(ALPHA / DIGIT) (RFC 8460 §5.1)")
    return _filename(
        normalize_host(submitter), normalize_host(policy_domain), window, unique_id, compressed
    )


def _filename(
    submitter: str,
    policy_domain: str,
    window: ReportWindow,
    unique_id: str | None,
    compressed: bool,
) -> str:
    begin = window.start_epoch
    end = begin + int((window.end - window.start).total_seconds()) - 1
    parts = [submitter, policy_domain, str(begin), str(end)]
    if unique_id:
        parts.append(unique_id)
    return "!".join(parts) + (".json.gz" if compressed else ".json")


def _sort_key(policy: ReportPolicy) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    return (policy.policy_type.value, policy.mx_host, policy.policy_string)


def _details_for(details: dict[FailureDetail, int], options: ReportOptions) -> list[FailureDetail]:
    merged: dict[FailureDetail, int] = defaultdict(int)
    for detail, n in details.items():
        if options.failure_types is not None and detail.result_type not in options.failure_types:
            continue
        key = detail.model_copy(update={"failed_session_count": 0})
        if not options.include_sending_ip:
            key = key.model_copy(update={"sending_mta_ip": None})
        merged[key] += n
    ranked = sorted(
        merged.items(),
        key=lambda kv: (-kv[1], str(kv[0].result_type), kv[0].model_dump_json()),
    )
    return [
        d.model_copy(update={"failed_session_count": n})
        for d, n in ranked[: options.max_failure_details]
    ]


def build_reports(results: WindowResults, options: ReportOptions) -> tuple[BuiltReport, ...]:
    """Build the window's reports: one per policy domain (RFC 8460 §4, §4.4, §5.1, §5.2).

    Args:
        results: what the store holds for the window.
        options: what the operator wants in them.

    Returns:
        The reports, ordered by policy domain; excluded domains and domains
        with no sessions are left out.
    """
    submitter = options.sender_domain
    window = results.window
    sessions: dict[str, dict[ReportPolicy, list[int]]] = defaultdict(dict)
    details: dict[str, dict[ReportPolicy, dict[FailureDetail, int]]] = defaultdict(dict)
    for s in results.sessions:
        slot = sessions[s.policy_domain].setdefault(s.policy, [0, 0])
        slot[0] += s.successful
        slot[1] += s.failed
    for d in results.details:
        per = details[d.policy_domain].setdefault(d.policy, {})
        key = d.detail.model_copy(update={"failed_session_count": 0})
        per[key] = per.get(key, 0) + d.detail.failed_session_count
    date_range = ReportDateRange(
        start_datetime=window.start, end_datetime=window.end - timedelta(seconds=1)
    )
    built = []
    for domain in sorted(sessions):
        if options.excludes(domain):
            continue
        per_policy = sessions[domain]
        if not any(s + f for s, f in per_policy.values()):
            continue
        entries = [
            PolicyResults(
                policy=policy,
                summary=ReportSummary(
                    total_successful_session_count=ok, total_failure_session_count=failed
                ),
                failure_details=tuple(_details_for(details[domain].get(policy, {}), options)),
            )
            for policy, (ok, failed) in sorted(per_policy.items(), key=lambda kv: _sort_key(kv[0]))
        ]
        unique = report_unique_id(submitter, domain, window)
        report = TlsReport(
            organization_name=options.organization_name,
            date_range=date_range,
            contact_info=options.contact_info,
            report_id=f"{unique}@{submitter}",
            policies=tuple(entries),
        )
        report, data = _fit(report, options.max_report_bytes)
        built.append(
            BuiltReport(
                policy_domain=domain,
                submitter=submitter,
                window=window,
                report=report,
                filename=_filename(submitter, domain, window, unique, True),
                gzip=data,
            )
        )
    return tuple(built)


def _fit(report: TlsReport, limit: int) -> tuple[TlsReport, bytes]:
    """gzip the report; trim failure details, then policies, until it fits in ``limit``."""
    data = render_gzip(report.to_json())
    while len(data) > limit:
        policies = list(report.policies)
        longest = max(len(p.failure_details) for p in policies)
        if longest:
            keep = longest // 2
            policies = [
                p.model_copy(update={"failure_details": p.failure_details[:keep]}) for p in policies
            ]
        elif len(policies) > 1:
            policies.sort(
                key=lambda p: (
                    -(
                        p.summary.total_successful_session_count
                        + p.summary.total_failure_session_count
                    )
                )
            )
            policies = policies[: len(policies) // 2]
        else:
            raise UsageError(f"a report with one policy does not fit in {limit} bytes")
        report = report.model_copy(update={"policies": tuple(policies)})
        data = render_gzip(report.to_json())
    return report, data
