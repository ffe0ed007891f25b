"""Recording session results and aggregating them for reports (RFC 8460 §4.2–§4.4).

An MTA calls :meth:`TlsRptCollector.record` once per outbound session. The call
only bumps counters in two dictionaries, so it can sit on the delivery path.
Every so often (the shell decides: every second, every N records, at each
window boundary) :meth:`TlsRptCollector.drain` hands the accumulated deltas
over as one :class:`ResultBatch`, which a
:class:`~mtasecure.transport.ReportStore` adds atomically and at most once
(the batch id makes a retried add a no-op). A result is durable from the
moment the store's ``add`` returns.

What is aggregated (RFC 8460 §4.4):

* per (policy domain, applied policy): the successful and failed session
  counts of the ``summary``;
* per (policy domain, applied policy, result type, sending IP, receiving MX
  host name, HELO, receiving IP, failure reason code, additional information):
  a ``failed-session-count``.

Which failure details end up in a report, and whether sending IPs do, is a
report option (:class:`~mtasecure.tlsrpt.ReportOptions`) applied when the
report is built, not here, so changing the options never loses data.

Sessions that delivered a TLS report (mail to a ``mailto:`` rua) must not be
reported on (RFC 8460 §5.3 has senders ignore TLS failures for them, and a
report about a report would loop): pass ``is_report_mail=True`` and the
session is dropped.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from itertools import count as _counter

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mtasecure._names import normalize_host
from mtasecure.errors import NameSyntaxError, UsageError
from mtasecure.results import CheckResult, FailureReason
from mtasecure.tlsrpt._report import FailureDetail, PolicyType, ReportPolicy

__all__ = [
    "DAY",
    "DetailCount",
    "ReportWindow",
    "ResultBatch",
    "SessionCount",
    "TlsRptCollector",
    "WindowResults",
    "merge_results",
    "no_policy_found",
]

#: Most normalised domain names a collector remembers between drains.
MAX_NAME_CACHE = 100_000
#: The default report window: one UTC day (RFC 8460 §4.1).
DAY = timedelta(days=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class ReportWindow(_Frozen):
    """A reporting period ``[start, end)`` (RFC 8460 §4.1: a full UTC day by default).

    Attributes:
        start: first instant covered, aware UTC.
        end: first instant no longer covered.
    """

    start: datetime
    end: datetime

    @model_validator(mode="after")
    def _check(self) -> ReportWindow:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware")
        if self.end <= self.start:
            raise ValueError("a window must end after it starts")
        return self

    @classmethod
    def containing(cls, instant: datetime, length: timedelta = DAY) -> ReportWindow:
        """The window of ``length`` that contains ``instant``, aligned on the UNIX epoch.

        With the default length this is the UTC day of ``instant``
        (00:00–24:00, RFC 8460 §4.1). ``length`` must divide a day or be a
        whole number of days, so that windows line up with UTC days.

        Raises:
            UsageError: ``instant`` is naive or ``length`` does not line up.
        """
        seconds = int(length.total_seconds())
        if seconds <= 0 or length != timedelta(seconds=seconds):
            raise UsageError("a report window is a positive whole number of seconds")
        if 86400 % seconds and seconds % 86400:
            raise UsageError("a report window must divide a day or be whole days (RFC 8460 §4.1)")
        if instant.tzinfo is None:
            raise UsageError("instant must be timezone-aware")
        offset = int((instant - _EPOCH).total_seconds()) // seconds * seconds
        start = _EPOCH + timedelta(seconds=offset)
        return cls(start=start, end=start + length)

    @property
    def start_epoch(self) -> int:
        """``start`` as UNIX seconds."""
        return int((self.start - _EPOCH).total_seconds())

    def next(self) -> ReportWindow:
        """The window right after this one."""
        return ReportWindow(start=self.end, end=self.end + (self.end - self.start))


class SessionCount(_Frozen):
    """Session totals for one (policy domain, policy) pair (RFC 8460 §4.2)."""

    policy_domain: str
    policy: ReportPolicy
    successful: int = Field(ge=0)
    failed: int = Field(ge=0)


class DetailCount(_Frozen):
    """One failure-details group for one (policy domain, policy) pair (RFC 8460 §4.4).

    ``detail.failed_session_count`` carries the count.
    """

    policy_domain: str
    policy: ReportPolicy
    detail: FailureDetail


class WindowResults(_Frozen):
    """Everything recorded for one window, as a store returns it (RFC 8460 §4.1, §4.2)."""

    window: ReportWindow
    sessions: tuple[SessionCount, ...] = ()
    details: tuple[DetailCount, ...] = ()

    @property
    def session_total(self) -> int:
        """All sessions, successful or not."""
        return sum(s.successful + s.failed for s in self.sessions)


class ResultBatch(WindowResults):
    """Counts to add to a store, once (RFC 8460 §4.2): ``batch_id`` makes a repeated add a no-op."""

    batch_id: str = Field(min_length=1, max_length=200)


def no_policy_found(policy_domain: str) -> ReportPolicy:
    """The policy to record when neither DANE nor MTA-STS applied (RFC 8460 §4.4)."""
    return ReportPolicy(policy_type=PolicyType.NO_POLICY_FOUND, policy_domain=policy_domain)


# A failure key: policy domain, id of the policy, result type, sending IP, MX
# host, HELO, receiving IP, failure reason code, additional information.
# Policies are keyed by id(): hashing a pydantic model costs more than the
# rest of ``record`` together; ``_policies`` keeps each one alive (so its id
# is not reused) until the next drain.
_FailureKey = tuple[
    str,
    int,
    FailureReason,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
]


class TlsRptCollector:
    """Counts session results in memory until they are drained to a store (RFC 8460 §4.2, §4.4).

    Not thread-safe by design (one per event loop or thread; drain each into
    the same store). ``record`` costs two dictionary operations.

    Args:
        batch_prefix: prefix of the batch ids this collector hands out; a
            random one by default. Ids are ``<prefix>-<n>``.
    """

    __slots__ = ("_counter", "_fail", "_names", "_ok", "_policies", "_prefix")

    def __init__(self, *, batch_prefix: str | None = None) -> None:
        self._prefix = batch_prefix or secrets.token_hex(8)
        self._counter = _counter(1)
        self._ok: dict[tuple[str, int], int] = {}
        self._policies: dict[int, ReportPolicy | None] = {}
        # Normalised policy domains, kept across drains (bounded, see drain).
        self._names: dict[str, str | None] = {}
        self._fail: dict[_FailureKey, int] = {}

    def record(
        self,
        policy_domain: str,
        policy: ReportPolicy | None,
        outcome: CheckResult | FailureReason | None,
        *,
        sending_ip: str | None = None,
        mx_host: str | None = None,
        receiving_ip: str | None = None,
        helo: str | None = None,
        failure_reason_code: str | None = None,
        additional_information: str | None = None,
        is_report_mail: bool = False,
    ) -> None:
        """Count one session (RFC 8460 §4.2, §4.4).

        Args:
            policy_domain: the domain whose policy applied (the recipient
                domain); normalised when drained, not here.
            policy: the applied policy; ``None`` for ``no-policy-found``.
            outcome: ``None`` or a passing :class:`CheckResult` for a
                successful session; a :class:`FailureReason` or a failing
                :class:`CheckResult` otherwise (its ``detail`` becomes the
                ``failure-reason-code`` unless one is given).
            sending_ip: this MTA's source address (``sending-mta-ip``).
            mx_host: the MX host name (``receiving-mx-hostname``).
            receiving_ip: the address connected to (``receiving-ip``).
            helo: the server's greeting name (``receiving-mx-helo``).
            failure_reason_code: ``failure-reason-code`` (e.g. an OpenSSL
                verify error name).
            additional_information: ``additional-information``, a URI.
            is_report_mail: the session carried a TLS report; it is not
                counted, so reports never beget reports.
        """
        if is_report_mail:
            return
        pid = id(policy)
        self._policies[pid] = policy
        if outcome is None:
            key = (policy_domain, pid)
            ok = self._ok
            ok[key] = ok.get(key, 0) + 1
            return
        if type(outcome) is CheckResult:
            if outcome.reason is None:
                key = (policy_domain, pid)
                ok = self._ok
                ok[key] = ok.get(key, 0) + 1
                return
            reason = outcome.reason
            if failure_reason_code is None and outcome.detail:
                failure_reason_code = outcome.detail
        elif isinstance(outcome, FailureReason):
            reason = outcome
        else:
            raise UsageError(f"outcome must be None, a FailureReason or a CheckResult: {outcome!r}")
        fkey: _FailureKey = (
            policy_domain,
            pid,
            reason,
            sending_ip,
            mx_host,
            helo,
            receiving_ip,
            failure_reason_code,
            additional_information,
        )
        fail = self._fail
        fail[fkey] = fail.get(fkey, 0) + 1

    @property
    def pending(self) -> int:
        """Sessions recorded since the last drain."""
        return sum(self._ok.values()) + sum(self._fail.values())

    def drain(self, window: ReportWindow) -> ResultBatch | None:
        """Hand over everything recorded since the last drain, attributed to ``window``.

        Policy domains are normalised to A-labels here (RFC 8460 §4.4); a
        domain that is not a host name is dropped (it cannot be reported on).

        Returns:
            A batch with a fresh id, or ``None`` when nothing was recorded.
        """
        ok, fail, policies = self._ok, self._fail, self._policies
        if not ok and not fail:
            return None
        self._ok, self._fail, self._policies = {}, {}, {}
        if len(self._names) > MAX_NAME_CACHE:
            self._names = {}
        names = self._names
        sessions: dict[tuple[str, ReportPolicy], list[int]] = {}
        details: dict[tuple[str, ReportPolicy, FailureDetail], int] = {}

        def domain_of(raw: str) -> str | None:
            if raw not in names:
                try:
                    names[raw] = normalize_host(raw)
                except NameSyntaxError:
                    names[raw] = None
            return names[raw]

        def policy_of(domain: str, pid: int) -> ReportPolicy:
            policy = policies[pid]
            if policy is None:
                return no_policy_found(domain)
            if policy.policy_domain != domain:
                return policy.model_copy(update={"policy_domain": domain})
            return policy

        for (raw, pid), n in ok.items():
            domain = domain_of(raw)
            if domain is None:
                continue
            slot = sessions.setdefault((domain, policy_of(domain, pid)), [0, 0])
            slot[0] += n
        for fkey, n in fail.items():
            raw, pid, reason, sip, mx, helo, rip, code, info = fkey
            domain = domain_of(raw)
            if domain is None:
                continue
            applied = policy_of(domain, pid)
            slot = sessions.setdefault((domain, applied), [0, 0])
            slot[1] += n
            detail = FailureDetail(
                result_type=reason,
                sending_mta_ip=sip,
                receiving_mx_hostname=mx,
                receiving_mx_helo=helo,
                receiving_ip=rip,
                failed_session_count=0,
                failure_reason_code=code,
                additional_information=info,
            )
            dkey = (domain, applied, detail)
            details[dkey] = details.get(dkey, 0) + n
        return ResultBatch(
            batch_id=f"{self._prefix}-{next(self._counter)}",
            window=window,
            sessions=_session_counts(sessions),
            details=_detail_counts(details),
        )


def merge_results(window: ReportWindow, parts: list[WindowResults]) -> WindowResults:
    """Sum several result sets of the same window into one (RFC 8460 §4.2 totals)."""
    sessions: dict[tuple[str, ReportPolicy], list[int]] = {}
    details: dict[tuple[str, ReportPolicy, FailureDetail], int] = {}
    for part in parts:
        for s in part.sessions:
            slot = sessions.setdefault((s.policy_domain, s.policy), [0, 0])
            slot[0] += s.successful
            slot[1] += s.failed
        for d in part.details:
            key = (
                d.policy_domain,
                d.policy,
                d.detail.model_copy(update={"failed_session_count": 0}),
            )
            details[key] = details.get(key, 0) + d.detail.failed_session_count
    return WindowResults(
        window=window, sessions=_session_counts(sessions), details=_detail_counts(details)
    )


def _session_counts(
    sessions: dict[tuple[str, ReportPolicy], list[int]],
) -> tuple[SessionCount, ...]:
    """``(domain, policy) -> [successful, failed]`` as count rows."""
    return tuple(
        SessionCount(policy_domain=d, policy=p, successful=s, failed=f)
        for (d, p), (s, f) in sessions.items()
    )


def _detail_counts(
    details: dict[tuple[str, ReportPolicy, FailureDetail], int],
) -> tuple[DetailCount, ...]:
    """``(domain, policy, detail with count 0) -> count`` as detail rows carrying the count."""
    return tuple(
        DetailCount(
            policy_domain=d, policy=p, detail=k.model_copy(update={"failed_session_count": n})
        )
        for (d, p, k), n in details.items()
    )
