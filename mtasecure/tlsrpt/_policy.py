"""From a delivery decision to a TLS-report entry (RFC 8460 §4.3–§4.5).

:mod:`mtasecure.decision` says, per MX, which policy governs a session
(:class:`~mtasecure.decision.TransportRequirement`) and how the session went
(:class:`~mtasecure.decision.SessionOutcome`). A TLS report files each session
under the *applied* policy. This module turns the one into the other, without
I/O:

* :func:`report_policy_for` — the ``policy`` object (§4.4): its
  ``policy-type`` is the requirement's (``tlsa``, ``sts``,
  ``no-policy-found``); its ``policy-string`` is, for ``sts``, the policy
  file's lines in the order RFC 8461 §3.2 writes them, one string per line and
  one per ``mx`` (§4.5), and for ``tlsa`` one ``"usage selector mtype hex"``
  string per TLSA record, in presentation format with no grouping (§4.5);
  its ``mx-host`` is the policy's MX patterns (``sts``) or the MX host the
  TLSA records belong to (``tlsa``).
* :func:`plan_session_record` — everything the collector's ``record`` needs
  for one session, or ``None`` when the session must not be reported.

Decisions where RFC 8460 leaves room:

* **The policy domain** is the one the caller names — normally the recipient
  (next-hop) domain, whose ``_smtp._tls`` record receives the report — for
  all three policy types. RFC 8460 §2 defines the DANE Policy Domain as the
  TLSA base domain; a caller that wants to report DANE sessions there passes
  that name instead.
* **MTA-STS discovery failures** (``sts-policy-fetch-error``,
  ``sts-policy-invalid``, ``sts-webpki-invalid``, §4.3.2.2) are reported under
  ``policy-type`` ``sts`` — with the cached policy when one was applied, with
  an empty ``policy-string`` when none was — for sessions that had no failure
  of their own. When DANE governs the MX the discovery failure is not
  reported: MTA-STS was not the applied policy (RFC 8461 §2).
* **``TLS-Required: No``** (RFC 8689 §4.2.2) sets the recipient's policies
  aside: the session is not reported at all, because filing it under
  ``no-policy-found`` would tell the domain owner its policy was not found,
  and filing it under the policy would count a session that never tried to
  meet it.
* **Sessions that carried a TLS report** (``is_report_mail``) are not
  reported (RFC 8460 §5.3: reports about reports must not loop).
* ``failure-reason-code`` (§4.4: "a TLS-related error code or error
  message") is what the caller gives, else the ``detail`` of a failing
  :class:`~mtasecure.results.CheckResult` outcome. A
  :class:`~mtasecure.decision.SessionOutcome`'s ``detail`` is a sentence
  about the decision (which rule applied), not a TLS error, and is not used:
  pass the failing check's detail (or the TLS library's error name) instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from mtasecure._names import normalize_host
from mtasecure.dane import parse_tlsa, render_tlsa
from mtasecure.decision import SessionOutcome, TransportRequirement
from mtasecure.errors import NameSyntaxError, ParseError, UsageError
from mtasecure.results import CheckResult, FailureReason
from mtasecure.sts import StsPolicy, render_policy
from mtasecure.tlsrpt._collect import no_policy_found
from mtasecure.tlsrpt._report import PolicyType, ReportPolicy

__all__ = [
    "MAX_POLICY_MEMO",
    "STS_DISCOVERY_FAILURES",
    "SessionRecord",
    "plan_session_record",
    "render_sts_policy_string",
    "render_tlsa_policy_string",
    "report_policy_for",
]

#: Most distinct inputs :func:`report_policy_for` remembers (per policy kind).
MAX_POLICY_MEMO = 4096
#: The result types of MTA-STS discovery (RFC 8460 §4.3.2.2), reported per session.
STS_DISCOVERY_FAILURES = frozenset(
    {
        FailureReason.STS_POLICY_FETCH_ERROR,
        FailureReason.STS_POLICY_INVALID,
        FailureReason.STS_WEBPKI_INVALID,
    }
)


def render_sts_policy_string(policy: StsPolicy) -> tuple[str, ...]:
    """The ``policy-string`` of an MTA-STS policy: its file lines, one string each (RFC 8460 §4.5).

    ``version``, ``mode``, each ``mx`` on its own line, ``max_age``, then any
    extensions — :func:`mtasecure.sts.render_policy`'s lines without their CRLF.
    """
    return tuple(line for line in render_policy(policy).split("\r\n") if line)


def render_tlsa_policy_string(records: Iterable[str]) -> tuple[str, ...]:
    """The ``policy-string`` of a TLSA RRset: one ``"3 1 1 <hex>"`` per record (RFC 8460 §4.5).

    Each record is re-rendered in presentation format (RFC 6698 §2.2) with no
    internal spaces or grouping parentheses, hex in lower case.

    Raises:
        UsageError: a record is not TLSA presentation format.
    """
    rendered = []
    for text in records:
        try:
            rendered.append(render_tlsa(parse_tlsa(text)))
        except ParseError as exc:
            raise UsageError(f"TLSA record {text!r}: {exc}") from exc
    return tuple(rendered)


def _domain(policy_domain: str) -> str:
    try:
        return normalize_host(policy_domain)
    except NameSyntaxError as exc:
        raise UsageError(f"policy domain: {exc}") from exc


def report_policy_for(
    policy_domain: str,
    requirement: TransportRequirement,
    *,
    sts_policy: StsPolicy | None = None,
    sts_failure: FailureReason | None = None,
) -> ReportPolicy:
    """The ``policy`` object a session under ``requirement`` is filed under (RFC 8460 §4.4, §4.5).

    Results are memoised (the last :data:`MAX_POLICY_MEMO` distinct inputs),
    so that the same policy costs one dictionary lookup per session; the
    model is frozen, so sharing it is safe.

    Args:
        policy_domain: the Policy Domain (module docstring), normalised here
            to A-labels.
        requirement: the MX's entry of the delivery plan.
        sts_policy: the MTA-STS policy the requirement was planned from
            (fresh or cached); needed when the requirement's policy type is
            ``sts``.
        sts_failure: an MTA-STS discovery failure of this delivery attempt
            (``DeliveryPlan.sts_failure``); files a session that had no
            policy under ``sts`` (module docstring).

    Raises:
        UsageError: ``policy_domain`` is not a host name, an ``sts``
            requirement comes without its policy, or a TLSA record cannot be read.
    """
    kind = requirement.policy_type
    if kind is PolicyType.TLSA:
        return _tlsa_policy(policy_domain, requirement.host, requirement.tlsa_records)
    if kind is PolicyType.STS:
        if sts_policy is None:
            raise UsageError(
                f"the requirement for {requirement.host} was planned from an MTA-STS policy: "
                "pass it as sts_policy, the report must name it (RFC 8460 §4.4)"
            )
        return _sts_policy(policy_domain, sts_policy)
    if sts_failure is not None and sts_failure in STS_DISCOVERY_FAILURES:
        return _sts_policy(policy_domain, sts_policy)
    return _no_policy(policy_domain)


@lru_cache(maxsize=MAX_POLICY_MEMO)
def _tlsa_policy(policy_domain: str, host: str, records: tuple[str, ...]) -> ReportPolicy:
    return ReportPolicy(
        policy_type=PolicyType.TLSA,
        policy_string=render_tlsa_policy_string(records),
        policy_domain=_domain(policy_domain),
        mx_host=(host,),
    )


@lru_cache(maxsize=MAX_POLICY_MEMO)
def _sts_policy(policy_domain: str, policy: StsPolicy | None) -> ReportPolicy:
    if policy is None:  # a discovery failure with nothing cached: no policy to name
        return ReportPolicy(policy_type=PolicyType.STS, policy_domain=_domain(policy_domain))
    return ReportPolicy(
        policy_type=PolicyType.STS,
        policy_string=render_sts_policy_string(policy),
        policy_domain=_domain(policy_domain),
        mx_host=policy.mx,
    )


@lru_cache(maxsize=MAX_POLICY_MEMO)
def _no_policy(policy_domain: str) -> ReportPolicy:
    return no_policy_found(_domain(policy_domain))


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """What to count for one session (:meth:`mtasecure.tlsrpt.TlsRptCollector.record`'s arguments).

    Attributes:
        policy_domain: the Policy Domain, in A-labels.
        policy: the applied policy (RFC 8460 §4.4).
        result: ``None`` for a successful session, else its result type (§4.3).
        mx_host: ``receiving-mx-hostname``.
        failure_reason_code: ``failure-reason-code`` of a failed session.

    A frozen dataclass rather than a model: it is made once per session on
    the delivery path from parts that are already validated, and a pydantic
    model costs more to build than the rest of the recording together.
    """

    policy_domain: str
    policy: ReportPolicy
    result: FailureReason | None
    mx_host: str
    failure_reason_code: str | None = None


def plan_session_record(
    policy_domain: str,
    requirement: TransportRequirement,
    outcome: SessionOutcome | CheckResult | FailureReason | None,
    *,
    sts_policy: StsPolicy | None = None,
    sts_failure: FailureReason | None = None,
    failure_reason_code: str | None = None,
    is_report_mail: bool = False,
) -> SessionRecord | None:
    """What a TLS report should count for one finished session (RFC 8460 §4.2–§4.4).

    Args:
        policy_domain: see :func:`report_policy_for`.
        requirement: the MX's entry of the delivery plan.
        outcome: :func:`mtasecure.decision.judge`'s verdict; or, for a caller
            that judged the session itself, a :class:`CheckResult`, a
            :class:`FailureReason`, or ``None`` for success.
        sts_policy: see :func:`report_policy_for`.
        sts_failure: see :func:`report_policy_for`; reported for a session
            that had no failure of its own, unless DANE governed it.
        failure_reason_code: the ``failure-reason-code`` of a failed session
            (default: a failing :class:`CheckResult`'s detail).
        is_report_mail: the session carried a TLS report (RFC 8460 §5.3).

    Returns:
        The record, or ``None`` when the session must not be reported
        (a report mail, ``TLS-Required: No`` set the policies aside, or the
        MX was left out because the MTA-STS state was unknown: no session
        was attempted, and RFC 8460 §4.3 names no result type for a sender's
        own policy store failing).

    Raises:
        UsageError: see :func:`report_policy_for`.
    """
    if is_report_mail or requirement.policy_ignored or requirement.sts_unknown:
        return None
    policy = report_policy_for(
        policy_domain, requirement, sts_policy=sts_policy, sts_failure=sts_failure
    )
    result: FailureReason | None
    detail = ""
    if isinstance(outcome, CheckResult):
        result, detail = outcome.reason, outcome.detail
    elif isinstance(outcome, SessionOutcome):
        result = outcome.reason
    else:
        result = outcome
    if (
        result is None
        and policy.policy_type is PolicyType.STS
        and sts_failure in STS_DISCOVERY_FAILURES
    ):
        result = sts_failure
    code = None
    if result is not None:
        code = failure_reason_code if failure_reason_code is not None else (detail or None)
    return SessionRecord(policy.policy_domain, policy, result, requirement.host, code)
