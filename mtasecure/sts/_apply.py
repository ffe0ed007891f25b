"""Applying an MTA-STS policy to a domain's MX hosts (RFC 8461 §4, §5).

For each MX, in the order given:

=============================  ======  ====================================  ==========================
policy                         usable  TLS required                          reported if it fails
=============================  ======  ====================================  ==========================
none found, or mode ``none``   yes     nothing (opportunistic)               —
``enforce``, MX matches        yes     STARTTLS + WebPKI certificate valid   the session's failure
                                       for the MX name (§4.2)
``enforce``, MX does not       no      —                                     ``validation-failure``
match (§4.1)
``testing``, MX matches        yes     nothing; check and report (§5)        the session's failure
``testing``, MX does not       yes     nothing; report                       ``validation-failure``
match
unknown: the policy store      no      — (:attr:`MxTls.UNKNOWN`: defer)      —
could not be read, nothing
fetched (§5.1)
=============================  ======  ====================================  ==========================

An MX that matches no pattern is reported as ``validation-failure`` (RFC 8460
§4.3.3), as the decision engine does: RFC 8460 has no result type for it.
The result is shaped for :mod:`mtasecure.decision`:
``StsState.of(decision.policy, failure=decision.failure)``, or
``StsState(unknown=True)`` when :attr:`StsDecision.unknown`.

The unknown row: a cached policy stays in force even when the TXT record is
gone or the fetch fails (RFC 8461 §5.1), so when the store that may hold it
could not be read the policy in force is unknown, not absent. No MX is
usable then: the caller defers the message (a temporary, local fault; never
a bounce) and tries again later, as :func:`mtasecure.decision.conclude` does
with status 4.4.3.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from mtasecure._names import normalize_pattern
from mtasecure.errors import NameSyntaxError, UsageError
from mtasecure.results import CheckResult, FailureReason
from mtasecure.sts._match import cached_host
from mtasecure.sts._policy import PolicyMode, StsPolicy

__all__ = [
    "MxTls",
    "StsDecision",
    "StsExclusions",
    "StsMxDecision",
    "apply_policy",
]


class MxTls(StrEnum):
    """What MTA-STS requires of the session to one MX (RFC 8461 §4.1, §4.2, §5)."""

    NONE = "none"
    """No MTA-STS requirement (no policy, or mode ``none``): opportunistic TLS."""
    REPORT = "report"
    """Mode ``testing``: validate STARTTLS and the certificate, report failures, deliver anyway."""
    WEBPKI = "webpki"
    """Mode ``enforce``: STARTTLS and a WebPKI certificate valid for the MX name, or no delivery."""
    UNKNOWN = "unknown"
    """The policy in force could not be established (the policy store could not be read,
    RFC 8461 §5.1): no session now; defer the message."""


class StsMxDecision(BaseModel):
    """The MTA-STS verdict for one MX host (RFC 8461 §4, §5).

    Attributes:
        host: the MX host, normalised (as given if it is not a host name).
        usable: whether delivery may be attempted to it.
        tls: what the session must prove.
        mx_match: whether the host matches the policy's ``mx`` patterns
            (``None`` without an active policy).
        result: a failure to report (``validation-failure`` for a host
            outside the policy), or passed.
    """

    model_config = ConfigDict(frozen=True)

    host: str
    usable: bool
    tls: MxTls
    mx_match: bool | None = None
    result: CheckResult = CheckResult.passed()


class StsDecision(BaseModel):
    """The MTA-STS verdict for one domain's MX set (RFC 8461 §5, §5.1).

    Attributes:
        domain: the Policy Domain.
        policy: the policy applied (fresh or cached), or ``None``.
        mode: its mode, or ``None`` without a policy.
        failure: a discovery failure to report this time
            (``sts-policy-fetch-error``, ``sts-policy-invalid``,
            ``sts-webpki-invalid``), whether or not a cached policy applies.
        detail: words for ``failure``.
        mx: one verdict per MX host, in the order given.
        store_error: why the policy store could not be read, when that left
            the policy in force unknown (no policy was fetched in its place,
            RFC 8461 §5.1); every MX is then unusable (``tls`` ``unknown``)
            and the message is to be deferred. Empty otherwise.
    """

    model_config = ConfigDict(frozen=True)

    domain: str
    policy: StsPolicy | None = None
    mode: PolicyMode | None = None
    failure: FailureReason | None = None
    detail: str = ""
    mx: tuple[StsMxDecision, ...] = ()
    store_error: str = ""

    @property
    def unknown(self) -> bool:
        """Whether the policy in force is unknown (:attr:`store_error`): defer, never bounce."""
        return bool(self.store_error)

    @property
    def usable_hosts(self) -> tuple[str, ...]:
        """The hosts delivery may be attempted to, in order."""
        return tuple(d.host for d in self.mx if d.usable)


def apply_policy(
    domain: str,
    policy: StsPolicy | None,
    mx_hosts: Iterable[str],
    *,
    failure: CheckResult | None = None,
    store_error: str = "",
) -> StsDecision:
    """Judge each MX of ``domain`` against its MTA-STS policy (RFC 8461 §4.1, §5).

    Args:
        domain: the Policy Domain.
        policy: the policy in force, fresh or cached, or ``None``.
        mx_hosts: the MX host names, in preference order.
        failure: the discovery's failure, if any (from the refresh planner).
        store_error: with ``policy`` ``None``: why the policy store could not
            be read (the planner said ``unknown``); every MX is then unusable.

    Returns:
        The per-MX verdicts (table in the module docstring). Never raises for
        a host that is not a host name: such a host matches nothing.

    Raises:
        UsageError: both ``policy`` and ``store_error`` were given: a policy
            in hand is known, whatever the store did.
    """
    if store_error and policy is not None:
        raise UsageError("a policy is in force, so its state is not unknown: drop store_error")
    mode = policy.mode if policy is not None else None
    reason = failure.reason if failure is not None else None
    detail = failure.detail if failure is not None and failure.reason is not None else ""
    verdicts = []
    for raw in mx_hosts:
        try:
            host = cached_host(raw)
        except NameSyntaxError:
            host = raw
        if store_error:
            verdicts.append(StsMxDecision(host=host, usable=False, tls=MxTls.UNKNOWN))
            continue
        if policy is None or mode is PolicyMode.NONE:
            verdicts.append(StsMxDecision(host=host, usable=True, tls=MxTls.NONE))
            continue
        match = policy.matches(host)
        miss = (
            CheckResult.passed()
            if match
            else CheckResult.failed(
                FailureReason.VALIDATION_FAILURE,
                f"MX {host!r} matches no mx pattern of the {mode} policy (RFC 8461 §4.1)",
            )
        )
        if mode is PolicyMode.ENFORCE:
            tls = MxTls.WEBPKI
            usable = match
        else:
            tls = MxTls.REPORT
            usable = True
        verdicts.append(
            StsMxDecision(host=host, usable=usable, tls=tls, mx_match=match, result=miss)
        )
    return StsDecision(
        domain=domain,
        policy=policy,
        mode=mode,
        failure=reason,
        detail=detail,
        mx=tuple(verdicts),
        store_error=store_error,
    )


class StsExclusions:
    """Domains for which MTA-STS is skipped, as operators configure for broken peers.

    Each entry is a domain (``example.com``: that domain only) or a suffix
    pattern (``*.example.com``: every name below ``example.com``, at any
    depth, but not ``example.com`` itself). Entries and queries go through
    the one name normaliser (:mod:`mtasecure._names`), so case, a trailing dot
    and U-labels do not matter.

    Args:
        patterns: the entries.

    Raises:
        UsageError: an entry is not a host name or ``*.`` pattern.
    """

    __slots__ = ("_names", "_patterns", "_suffixes")

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        normal = []
        for pattern in patterns:
            try:
                normal.append(normalize_pattern(pattern.strip()))
            except (NameSyntaxError, AttributeError) as exc:
                raise UsageError(
                    f"exclusion {pattern!r} is not a domain or *.suffix: {exc}"
                ) from exc
        self._patterns = tuple(dict.fromkeys(normal))
        self._names = frozenset(p for p in self._patterns if not p.startswith("*."))
        self._suffixes = tuple(p[1:] for p in self._patterns if p.startswith("*."))

    @property
    def patterns(self) -> tuple[str, ...]:
        """The entries, normalised, in the order given."""
        return self._patterns

    def __bool__(self) -> bool:
        return bool(self._patterns)

    def match(self, domain: str) -> bool:
        """Whether ``domain`` (already normalised) is excluded."""
        return domain in self._names or (bool(self._suffixes) and domain.endswith(self._suffixes))
