"""The TLS-RPT aggregate report: its JSON model, rendering and parsing (RFC 8460 §4).

The models mirror the JSON of RFC 8460 §4.4 field for field. Python names use
underscores; the wire names (hyphenated) are pydantic aliases, so
``TlsReport.to_json()`` writes exactly the RFC's field names and
:func:`parse_report` reads them.

Parsing is liberal where real senders differ from the letter of the RFC and
strict everywhere else:

* the input may be gzip (RFC 8460 §5.2) or plain JSON, bytes or text;
* ``contact-info`` may be ``null``; ``sending-mta-ip`` and the other optional
  failure fields may be missing; ``policy-string`` may be missing (common
  with ``no-policy-found``); ``mx-host`` may be a string (as in the RFC's own
  Appendix B) or an array of strings (as in §4.4);
* a ``result-type`` not (yet) in :class:`~mtasecure.results.FailureReason` is
  kept as a plain string, because §4.3 expects the list to grow;
* unknown fields are ignored.

It rejects, with :class:`~mtasecure.errors.ReportSyntaxError`, anything else:
input that is not JSON (or not I-JSON, RFC 7493: duplicate member names,
``NaN``), required fields missing, counts that are not non-negative integers,
date-times that are not RFC 3339 with a time zone, and input over the named
limits below (a gzip bomb stops at :data:`MAX_REPORT_BYTES` of output).
"""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
)

from mtasecure.errors import ReportSyntaxError
from mtasecure.results import FailureReason, PolicyType

__all__ = [
    "MAX_FAILURE_DETAILS",
    "MAX_POLICIES",
    "MAX_REPORT_BYTES",
    "FailureDetail",
    "PolicyResults",
    "PolicyType",
    "ReportDateRange",
    "ReportPolicy",
    "ReportSummary",
    "TlsReport",
    "parse_report",
    "render_datetime",
]

#: Largest report accepted by :func:`parse_report`, after decompression. RFC
#: 8460 §5.2 mentions a common receiver limit of ten megabytes for the
#: (compressed) report; 64 MiB of JSON is far beyond any real daily report and
#: stops a gzip bomb long before it hurts.
MAX_REPORT_BYTES = 64 * 1024 * 1024
#: Most ``policies`` entries accepted in one report.
MAX_POLICIES = 100_000
#: Most ``failure-details`` entries accepted under one policy.
MAX_FAILURE_DETAILS = 100_000
#: The largest integer I-JSON can carry exactly (RFC 7493 §2.2).
MAX_COUNT = 2**53 - 1

_RULE = "RFC 8460 §4.4"


@lru_cache(maxsize=256)
def render_datetime(value: datetime) -> str:
    """Render an aware datetime as RFC 3339 in UTC with a ``Z`` (RFC 8460 §4.4, RFC 3339 §5.6).

    Whole seconds are written without a fraction: ``2016-04-01T00:00:00Z``.
    """
    value = value.astimezone(UTC)
    if value.microsecond:
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_datetime(value: object) -> object:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("a date-time must be a string (RFC 3339 §5.6)")
    text = value.strip()
    # RFC 3339 §5.6 allows a lower-case t/z and a space only in §5.6's NOTE;
    # real senders write 'Z' or an offset. fromisoformat accepts both forms.
    if len(text) < 20 or text[10] not in "Tt ":
        raise ValueError(f"{value!r} is not an RFC 3339 date-time")
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an RFC 3339 date-time") from exc
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone (RFC 3339 §5.6 requires one)")
    return parsed.astimezone(UTC)


def _as_tuple_of_str(value: object) -> object:
    # mx-host is a string in RFC 8460 Appendix B and an array in §4.4.
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    return value


ReportDateTime = Annotated[
    datetime,
    BeforeValidator(_parse_datetime),
    PlainSerializer(render_datetime, return_type=str),
]
Count = Annotated[int, Field(strict=True, ge=0, le=MAX_COUNT)]
Text = Annotated[str, Field(strict=True)]
Strings = Annotated[tuple[Text, ...], BeforeValidator(_as_tuple_of_str)]


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True, populate_by_name=True, extra="ignore", serialize_by_alias=True
    )


class ReportDateRange(_Model):
    """The ``date-range`` object: the time the report covers (RFC 8460 §4.1, §4.4).

    Attributes:
        start_datetime: ``start-datetime``, an aware UTC datetime.
        end_datetime: ``end-datetime``, an aware UTC datetime.
    """

    start_datetime: ReportDateTime = Field(alias="start-datetime")
    end_datetime: ReportDateTime = Field(alias="end-datetime")


class ReportPolicy(_Model):
    """The ``policy`` object: which policy was applied to which domain (RFC 8460 §4.4, §4.5).

    Attributes:
        policy_type: ``policy-type``.
        policy_string: ``policy-string``: for ``sts`` the policy's lines
            (``"mode: enforce"``, one ``"mx: ..."`` per pattern); for ``tlsa``
            one ``"3 1 1 <hex>"`` string per record; empty for
            ``no-policy-found``.
        policy_domain: ``policy-domain``, in A-labels.
        mx_host: ``mx-host``: the MX patterns of an ``sts`` policy, or the MX
            host a ``tlsa`` policy applies to. Rendered as an array (§4.4);
            a string is accepted when parsing (Appendix B).
    """

    policy_type: PolicyType = Field(alias="policy-type")
    policy_string: Strings = Field(default=(), alias="policy-string")
    policy_domain: Text = Field(alias="policy-domain", min_length=1)
    mx_host: Strings = Field(default=(), alias="mx-host")


class ReportSummary(_Model):
    """The ``summary`` object: session totals for one policy (RFC 8460 §4.2).

    Attributes:
        total_successful_session_count: sessions that met the policy.
        total_failure_session_count: sessions that did not.
    """

    total_successful_session_count: Count = Field(alias="total-successful-session-count")
    total_failure_session_count: Count = Field(alias="total-failure-session-count")


class FailureDetail(_Model):
    """One ``failure-details`` entry: a group of failed sessions (RFC 8460 §4.3, §4.4).

    Attributes:
        result_type: ``result-type``: a :class:`FailureReason`; a string when a
            received report carries a type this library does not know yet.
        sending_mta_ip: ``sending-mta-ip``, the reporter's own address.
        receiving_mx_hostname: ``receiving-mx-hostname``.
        receiving_mx_helo: ``receiving-mx-helo`` (optional).
        receiving_ip: ``receiving-ip``.
        failed_session_count: ``failed-session-count``.
        additional_information: ``additional-information``, a URI (optional).
        failure_reason_code: ``failure-reason-code``, an error code or text.
    """

    result_type: FailureReason | Text = Field(alias="result-type", union_mode="left_to_right")
    sending_mta_ip: Text | None = Field(default=None, alias="sending-mta-ip")
    receiving_mx_hostname: Text | None = Field(default=None, alias="receiving-mx-hostname")
    receiving_mx_helo: Text | None = Field(default=None, alias="receiving-mx-helo")
    receiving_ip: Text | None = Field(default=None, alias="receiving-ip")
    failed_session_count: Count = Field(alias="failed-session-count")
    additional_information: Text | None = Field(default=None, alias="additional-information")
    failure_reason_code: Text | None = Field(default=None, alias="failure-reason-code")


class PolicyResults(_Model):
    """One entry of ``policies``: a policy, its summary and its failure details (RFC 8460 §4.4).

    Attributes:
        policy: the applied policy.
        summary: its session totals.
        failure_details: groups of failed sessions; empty when none (the
            array is then left out of the JSON, as real senders do).
    """

    policy: ReportPolicy
    summary: ReportSummary
    failure_details: tuple[FailureDetail, ...] = Field(
        default=(), alias="failure-details", max_length=MAX_FAILURE_DETAILS
    )

    @field_validator("failure_details", mode="before")
    @classmethod
    def _null_is_empty(cls, value: object) -> object:
        return () if value is None else value


class TlsReport(_Model):
    """An RFC 8460 aggregate TLS report (§4, §4.4).

    Attributes:
        organization_name: ``organization-name``.
        date_range: ``date-range``.
        contact_info: ``contact-info``, an addr-spec; ``None`` only when a
            received report had ``null`` there.
        report_id: ``report-id``.
        policies: ``policies``, always an array (§4).
    """

    organization_name: Text = Field(alias="organization-name")
    date_range: ReportDateRange = Field(alias="date-range")
    contact_info: Text | None = Field(alias="contact-info")
    report_id: Text = Field(alias="report-id", min_length=1)
    policies: tuple[PolicyResults, ...] = Field(max_length=MAX_POLICIES)

    def to_json(self) -> bytes:
        """The report as RFC 8460 §4.4 JSON (UTF-8, compact, optional fields left out)."""
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        # contact-info is required (§4.4): a received null is written back as null.
        data["contact-info"] = self.contact_info
        for entry in data["policies"]:
            if not entry["failure-details"]:
                del entry["failure-details"]
            policy = entry["policy"]
            if not policy["mx-host"]:
                del policy["mx-host"]
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()

    @property
    def total_successful(self) -> int:
        """Sum of ``total-successful-session-count`` over all policies."""
        return sum(p.summary.total_successful_session_count for p in self.policies)

    @property
    def total_failed(self) -> int:
        """Sum of ``total-failure-session-count`` over all policies."""
        return sum(p.summary.total_failure_session_count for p in self.policies)


def _gunzip(data: bytes) -> bytes:
    """Decompress gzip (all members), stopping at :data:`MAX_REPORT_BYTES` of output."""
    out = bytearray()
    rest = data
    while rest:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += inflater.decompress(rest, MAX_REPORT_BYTES + 1 - len(out))
        except zlib.error as exc:
            raise ReportSyntaxError(f"bad gzip data: {exc}", rule="RFC 8460 §5.2") from exc
        if len(out) > MAX_REPORT_BYTES:
            raise ReportSyntaxError(
                f"report is larger than {MAX_REPORT_BYTES} bytes when decompressed"
            )
        if not inflater.eof:
            raise ReportSyntaxError("gzip data is truncated", rule="RFC 8460 §5.2")
        rest = inflater.unused_data
        if rest and not rest.startswith(b"\x1f\x8b"):
            break  # trailing garbage after a member is ignored, as gzip(1) does
    return bytes(out)


def _reject_constant(name: str) -> Any:
    raise ReportSyntaxError(f"{name} is not allowed in I-JSON", rule="RFC 7493 §2.2")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ReportSyntaxError(f"member {key!r} appears twice", rule="RFC 7493 §2.3")
        result[key] = value
    return result


def _where(loc: tuple[int | str, ...]) -> str:
    return "report" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)


def parse_report(data: bytes | str) -> TlsReport:
    """Read a received TLS report, gzip-compressed or plain JSON (RFC 8460 §4.4, §5.2).

    Args:
        data: the report body or attachment: gzip bytes, JSON bytes (UTF-8,
            a BOM is tolerated) or JSON text.

    Returns:
        The report as a frozen :class:`TlsReport`.

    Raises:
        ReportSyntaxError: the input is not a report; the message says where
            and which rule.
    """
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        if raw[:2] == b"\x1f\x8b":
            raw = _gunzip(raw)
        elif len(raw) > MAX_REPORT_BYTES:
            raise ReportSyntaxError(f"report is larger than {MAX_REPORT_BYTES} bytes")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ReportSyntaxError(
                f"report is not UTF-8 (offset {exc.start})", rule="RFC 7493 §2.1"
            ) from exc
    else:
        if len(data) > MAX_REPORT_BYTES:
            raise ReportSyntaxError(f"report is larger than {MAX_REPORT_BYTES} bytes")
        text = data
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except ReportSyntaxError:
        raise
    except json.JSONDecodeError as exc:
        raise ReportSyntaxError(
            f"not JSON: {exc.msg}", where=f"line {exc.lineno} column {exc.colno}", rule=_RULE
        ) from exc
    except RecursionError as exc:
        # json's scanner stops at Python's recursion limit; the schema needs 4 levels.
        raise ReportSyntaxError("JSON is nested too deeply", rule=_RULE) from exc
    except ValueError as exc:  # e.g. an integer of 5000 digits
        raise ReportSyntaxError(f"not usable JSON: {exc}", rule=_RULE) from exc
    if not isinstance(obj, dict):
        raise ReportSyntaxError("a report must be a JSON object", rule=_RULE)
    try:
        return TlsReport.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise ReportSyntaxError(
            f"{first['msg']} ({exc.error_count()} problem(s) in all)",
            where=_where(tuple(first["loc"])),
            rule=_RULE,
        ) from exc
