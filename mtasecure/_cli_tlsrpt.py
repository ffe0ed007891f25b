"""``mtasecure tlsrpt``: tools for domain owners who receive TLS reports (RFC 8460).

::

    mtasecure tlsrpt read FILE... [--json]
    mtasecure tlsrpt check-record TEXT [--json]

``read`` parses each received report (gzip or plain JSON, as mailed or
POSTed, §5.2; ``-`` reads standard input) with
:func:`~mtasecure.tlsrpt.parse_report` and summarises it per policy: the
successful and failed session totals (§4.2), and the failures grouped by
result type (§4.3) with the MX hosts, receiving IPs and sending IPs that saw
them. ``check-record`` parses a ``_smtp._tls`` TXT record value (§3) and
shows where reports would go.

Exit status: 0 when every report was read (``check-record``: the record is
valid and names at least one usable endpoint), 1 when a report could not be
read (the :class:`~mtasecure.errors.ReportSyntaxError` is shown, the other
files are still read) or the record is invalid, 2 for a usage error (bad
arguments, a file that cannot be opened).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, TextIO

from mtasecure.errors import ParseError
from mtasecure.tlsrpt import PolicyResults, TlsReport, parse_record, parse_report
from mtasecure.tlsrpt._report import render_datetime

__all__ = ["MAX_INPUT_BYTES", "add_tlsrpt_parser", "run_tlsrpt"]

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2

#: Most bytes read from one input; larger inputs are refused before parsing
#: (a real daily report is far smaller; parse_report caps what gzip expands to).
MAX_INPUT_BYTES = 64 * 1024 * 1024


def add_tlsrpt_parser(commands: Any) -> None:
    """Add ``tlsrpt`` and its subcommands to the ``mtasecure`` parser's subcommands."""
    tlsrpt = commands.add_parser(
        "tlsrpt", help="read received TLS reports, check a _smtp._tls record (no network)"
    )
    tlsrpt.description = "Tools for domains that receive TLS reports (RFC 8460)."
    sub = tlsrpt.add_subparsers(dest="tlsrpt_command", metavar="SUBCOMMAND")
    read = sub.add_parser(
        "read",
        help="summarise received reports per policy (RFC 8460 §4)",
        description="Parse TLS reports (gzip or JSON; - reads stdin) and summarise each "
        "per policy: session totals, failures by result type with MX hosts and IPs. "
        "Exit status: 0 all read, 1 a report could not be read, 2 usage error.",
    )
    read.add_argument("files", metavar="FILE", nargs="+", help="a report file, or - for stdin")
    read.add_argument("--json", action="store_true", help="print JSON instead of text")
    record = sub.add_parser(
        "check-record",
        help="parse a _smtp._tls TXT record value (RFC 8460 §3)",
        description="Parse a _smtp._tls TXT record value and show where reports go. "
        "Exit status: 0 valid with a usable rua, 1 invalid, 2 usage error.",
    )
    record.add_argument(
        "text", metavar="TEXT", help='e.g. "v=TLSRPTv1; rua=mailto:tls@example.com"'
    )
    record.add_argument("--json", action="store_true", help="print JSON instead of text")


def run_tlsrpt(
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO | None = None,
    stdin: Any = None,
) -> int:
    """Run ``mtasecure tlsrpt …``; returns the exit status."""
    err = err if err is not None else sys.stderr
    command = getattr(args, "tlsrpt_command", None)
    if command == "read":
        return _read(args.files, args.json, out, err, stdin if stdin is not None else sys.stdin)
    if command == "check-record":
        return _check_record(args.text, args.json, out)
    err.write("mtasecure tlsrpt: say read FILE... or check-record TEXT\n")
    return EXIT_USAGE


# --- read ------------------------------------------------------------------------


def _load(name: str, stdin: Any) -> bytes:
    if name == "-":
        data: bytes = stdin.buffer.read(MAX_INPUT_BYTES + 1)
    else:
        with open(name, "rb") as handle:
            data = handle.read(MAX_INPUT_BYTES + 1)
    return data


def _read(files: list[str], as_json: bool, out: TextIO, err: TextIO, stdin: Any) -> int:
    loaded: list[tuple[str, bytes]] = []
    for name in files:
        try:
            loaded.append((name, _load(name, stdin)))
        except OSError as exc:
            err.write(f"mtasecure tlsrpt read: cannot read {name}: {exc.strerror or exc}\n")
            return EXIT_USAGE
    status = EXIT_OK
    results: list[dict[str, Any]] = []
    for index, (name, data) in enumerate(loaded):
        label = "<stdin>" if name == "-" else name
        try:
            if len(data) > MAX_INPUT_BYTES:
                raise ParseError(f"input is over {MAX_INPUT_BYTES} bytes", where=label)
            report = parse_report(data)
        except ParseError as exc:
            status = EXIT_INVALID
            if as_json:
                results.append({"file": label, "error": str(exc)})
            else:
                out.write(("\n" if index else "") + f"{label}: unreadable report: {exc}\n")
            continue
        if as_json:
            results.append({"file": label, **_report_json(report)})
        else:
            if index:
                out.write("\n")
            _write_report(label, report, out)
    if as_json:
        json.dump(results, out, indent=2)
        out.write("\n")
    return status


def _groups(entry: PolicyResults) -> list[dict[str, Any]]:
    """Failures of one policy grouped by result type (RFC 8460 §4.3), most sessions first."""
    groups: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"sessions": 0, "mx": set(), "receiving": set(), "sending": set(), "codes": set()}
    )
    for detail in entry.failure_details:
        group = groups[str(detail.result_type)]
        group["sessions"] += detail.failed_session_count
        for key, value in (
            ("mx", detail.receiving_mx_hostname),
            ("receiving", detail.receiving_ip),
            ("sending", detail.sending_mta_ip),
            ("codes", detail.failure_reason_code),
        ):
            if value:
                group[key].add(value)
    return [
        {
            "result-type": kind,
            "sessions": g["sessions"],
            "mx-hosts": sorted(g["mx"]),
            "receiving-ips": sorted(g["receiving"]),
            "sending-ips": sorted(g["sending"]),
            "failure-reason-codes": sorted(g["codes"]),
        }
        for kind, g in sorted(groups.items(), key=lambda kv: (-kv[1]["sessions"], kv[0]))
    ]


def _report_json(report: TlsReport) -> dict[str, Any]:
    return {
        "organization-name": report.organization_name,
        "contact-info": report.contact_info,
        "report-id": report.report_id,
        "start-datetime": render_datetime(report.date_range.start_datetime),
        "end-datetime": render_datetime(report.date_range.end_datetime),
        "total-successful-session-count": report.total_successful,
        "total-failure-session-count": report.total_failed,
        "policies": [
            {
                "policy-type": entry.policy.policy_type.value,
                "policy-domain": entry.policy.policy_domain,
                "policy-string": list(entry.policy.policy_string),
                "mx-host": list(entry.policy.mx_host),
                "total-successful-session-count": entry.summary.total_successful_session_count,
                "total-failure-session-count": entry.summary.total_failure_session_count,
                "failures": _groups(entry),
            }
            for entry in report.policies
        ],
    }


def _join(values: Iterable[str], limit: int = 5) -> str:
    items = list(values)
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _write_report(label: str, report: TlsReport, out: TextIO) -> None:
    w = out.write
    start = render_datetime(report.date_range.start_datetime)
    end = render_datetime(report.date_range.end_datetime)
    w(f"{label}: report {report.report_id}\n")
    w(f"  from {report.organization_name} <{report.contact_info or 'no contact'}>\n")
    w(f"  covering {start} to {end}\n")
    w(
        f"  {report.total_successful} successful, {report.total_failed} failed session(s) "
        f"under {len(report.policies)} polic{'y' if len(report.policies) == 1 else 'ies'}\n"
    )
    for entry in report.policies:
        policy = entry.policy
        summary = entry.summary
        mx = f" (mx-host {_join(policy.mx_host)})" if policy.mx_host else ""
        w(f"  policy {policy.policy_type.value} for {policy.policy_domain}{mx}\n")
        for line in policy.policy_string:
            w(f"      | {line}\n")
        w(
            f"    {summary.total_successful_session_count} successful, "
            f"{summary.total_failure_session_count} failed\n"
        )
        for group in _groups(entry):
            w(f"    {group['result-type']}: {group['sessions']} session(s)\n")
            for key, title in (
                ("mx-hosts", "mx hosts"),
                ("receiving-ips", "receiving IPs"),
                ("sending-ips", "sending IPs"),
                ("failure-reason-codes", "reason codes"),
            ):
                if group[key]:
                    w(f"      {title}: {_join(group[key])}\n")


# --- check-record ------------------------------------------------------------------


def _check_record(text: str, as_json: bool, out: TextIO) -> int:
    try:
        record = parse_record(text)
    except ParseError as exc:
        if as_json:
            json.dump({"valid": False, "error": str(exc)}, out, indent=2)
            out.write("\n")
        else:
            out.write(f"invalid: {exc}\n")
        return EXIT_INVALID
    usable = bool(record.rua)
    if as_json:
        json.dump(
            {
                "valid": usable,
                "rua": list(record.rua),
                "ignored-rua": [{"uri": s.uri, "reason": s.reason} for s in record.ignored_rua],
                "extensions": [list(e) for e in record.extensions],
            },
            out,
            indent=2,
        )
        out.write("\n")
        return EXIT_OK if usable else EXIT_INVALID
    if usable:
        out.write(f"valid: reports go to {len(record.rua)} endpoint(s)\n")
    else:
        out.write("invalid: no rua URI that reports can be sent to (RFC 8460 §3)\n")
    for uri in record.rua:
        out.write(f"  rua {uri}\n")
    for skipped in record.ignored_rua:
        out.write(f"  ignored {skipped.uri}: {skipped.reason}\n")
    for name, value in record.extensions:
        out.write(f"  extension {name}={value} (ignored by senders, RFC 8460 §3)\n")
    return EXIT_OK if usable else EXIT_INVALID
