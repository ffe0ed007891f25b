"""The MTA-STS policy cache, pure: the cached value and the refresh planner (RFC 8461 §3.3, §5.1, §10.2).

The shell keeps policies in a :class:`~mtasecure.transport.PolicyCache` and
asks this module what to do next; it never decides anything itself. Rules, in
the order the planner applies them::

    cached entry past expires_at (fetched_at + max_age)  -> drop it, plan as if absent
    TXT lookup failed, or no usable record (§3.1)
        valid cached entry                               -> use it (never downgrade)
        none                                             -> no policy
    TXT record, id == cached id
        refresh not yet due                              -> use it
        refresh due (fetched_at + refresh interval)      -> fetch (§3.3, §10.2)
    TXT record, id != cached id, or nothing cached       -> fetch
    a fetch for this id failed less than FETCH_RETRY_DELAY ago
                                                         -> do not fetch again (§3.3);
                                                            use the cached entry if valid
    after a fetch:
        success                                          -> store the new entry, use it
        failure, valid cached entry                      -> use it (never downgrade)
        failure, nothing cached                          -> no policy, with the reason
    the store could not be read (``store_failed``), and a rule above
    would give "no policy"                               -> unknown: defer (§5.1)

Decisions where RFC 8461 leaves room:

* An unchanged id does not extend ``expires_at``: the expiry belongs to the
  fetched body (``max_age`` is read from it). Freshness is kept by fetching
  again once :data:`DEFAULT_REFRESH_INTERVAL` has passed since the last fetch,
  whatever the TXT record says (§10.2: refresh "regardless of the state of the
  TXT record"), so an attacker must foil every refresh for a whole
  ``max_age`` to make a policy lapse.
* A successful fetch of a policy whose mode is ``none`` replaces the cached
  policy (that is how a domain removes MTA-STS, §8.3).
* A missing TXT record never removes a cached policy (§3.1, §5.1); only expiry
  does.
* When the persistent store that may hold the domain's policy could not be
  read, "nothing cached" is not known to be true: a cached ``enforce`` policy
  that §5.1 keeps in force may be there. Every "no policy" answer then
  becomes ``UNKNOWN`` — the delivery is deferred, the way an MTA defers on a
  failed policy-table lookup, rather than downgraded by a local fault. A
  policy fetched in the same discovery is known, and is used.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, ValidationError

from mtasecure.errors import ParseError, PolicySyntaxError
from mtasecure.results import CheckResult, FailureReason
from mtasecure.sts._policy import StsPolicy, parse_policy, render_policy
from mtasecure.sts._record import StsRecord

__all__ = [
    "CACHE_FORMAT",
    "DEFAULT_IDLE_AFTER",
    "DEFAULT_REFRESH_INTERVAL",
    "DEFAULT_REFRESH_JITTER",
    "FETCH_RETRY_DELAY",
    "MAX_REFRESH_BATCH",
    "MAX_TXT_TTL",
    "MIN_TXT_TTL",
    "STORE_RETRY_DELAY",
    "CachedPolicy",
    "FetchFailure",
    "Step",
    "StepAction",
    "TxtOutcome",
    "TxtState",
    "plan_after_fetch",
    "plan_proactive",
    "plan_refresh",
    "txt_expiry",
]

CACHE_FORMAT = 1
"""Version of :meth:`CachedPolicy.to_json`'s layout; bumped on incompatible change."""
DEFAULT_REFRESH_INTERVAL = timedelta(days=1)
"""Fetch a cached policy again once this long has passed since its fetch (RFC 8461 §3.3: "once per day")."""
FETCH_RETRY_DELAY = timedelta(minutes=5)
"""Least time between two failed fetches for the same policy id (RFC 8461 §3.3: "five minutes or longer")."""
STORE_RETRY_DELAY = timedelta(seconds=10)
"""Longest time an ``UNKNOWN`` answer (the policy store could not be read) is reused.

Long enough for a burst of messages to one domain to share one store read,
short enough that a mended store is read again well before an MTA's first
queue retry (minutes).
"""
DEFAULT_IDLE_AFTER = timedelta(days=7)
"""Proactive refresh leaves alone the domains that saw no traffic for this long."""
DEFAULT_REFRESH_JITTER = 0.1
"""Fraction of the refresh interval over which proactive refreshes are spread."""
MAX_REFRESH_BATCH = 1000
"""Most domains one proactive-refresh round plans."""
MIN_TXT_TTL = 60
"""Shortest time, in seconds, a ``_mta-sts`` TXT answer is cached, whatever its TTL."""
MAX_TXT_TTL = 86400
"""Longest time, in seconds, a ``_mta-sts`` TXT answer is cached, whatever its TTL."""

_RULE = "RFC 8461 §3.3"
_PASSED = CheckResult.passed()


class CachedPolicy(BaseModel):
    """A policy as a sender caches it (RFC 8461 §3.3, §5.1).

    Attributes:
        domain: the Policy Domain, lower-case A-labels, no trailing dot.
        policy: the policy fetched.
        policy_id: the ``id`` of the ``_mta-sts`` record it was fetched for.
        fetched_at: when the policy body was fetched (timezone-aware, UTC).
        expires_at: ``fetched_at + max_age``: after this the entry is gone.
    """

    model_config = ConfigDict(frozen=True)

    domain: str
    policy: StsPolicy
    policy_id: str
    fetched_at: datetime
    expires_at: datetime

    @classmethod
    def from_fetch(
        cls, domain: str, policy: StsPolicy, policy_id: str, fetched_at: datetime
    ) -> CachedPolicy:
        """The entry for a policy just fetched: it expires after ``max_age`` (RFC 8461 §3.2)."""
        fetched_at = fetched_at.astimezone(UTC)
        return cls(
            domain=domain,
            policy=policy,
            policy_id=policy_id,
            fetched_at=fetched_at,
            expires_at=fetched_at + timedelta(seconds=policy.max_age),
        )

    def valid_at(self, now: datetime) -> bool:
        """Whether the entry has not yet expired at ``now`` (RFC 8461 §5.1 step 1)."""
        return now < self.expires_at

    def to_json(self) -> str:
        """A JSON text for stores: the policy as its file text, times in ISO 8601 UTC.

        An operator can read and edit it; :meth:`from_json` reads it back.
        """
        return json.dumps(
            {
                "format": CACHE_FORMAT,
                "domain": self.domain,
                "policy_id": self.policy_id,
                "fetched_at": self.fetched_at.astimezone(UTC).isoformat(),
                "expires_at": self.expires_at.astimezone(UTC).isoformat(),
                "policy": render_policy(self.policy),
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> CachedPolicy:
        """Read what :meth:`to_json` wrote.

        Raises:
            PolicySyntaxError: the text is not such an entry (``where`` says
                which field); stores translate it into a ``StoreError``.
        """
        try:
            data = json.loads(text)
        except (ValueError, TypeError) as exc:
            raise PolicySyntaxError(f"not JSON: {exc}", where="cache entry") from exc
        if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
            raise PolicySyntaxError(
                f"not a cache entry of format {CACHE_FORMAT}", where="cache entry"
            )
        policy_text = data.get("policy")
        if not isinstance(policy_text, str):
            raise PolicySyntaxError("no policy text", where="cache entry field 'policy'")
        try:
            policy = parse_policy(policy_text)
        except ParseError as exc:
            raise PolicySyntaxError(str(exc), where="cache entry field 'policy'") from exc
        try:
            entry = cls(
                domain=data.get("domain"),
                policy=policy,
                policy_id=data.get("policy_id"),
                fetched_at=data.get("fetched_at"),
                expires_at=data.get("expires_at"),
            )
        except ValidationError as exc:
            raise PolicySyntaxError(
                f"bad field: {exc.errors()[0]['loc']}", where="cache entry"
            ) from exc
        if entry.fetched_at.tzinfo is None or entry.expires_at.tzinfo is None:
            raise PolicySyntaxError("times must carry a timezone", where="cache entry")
        return entry


class TxtState(StrEnum):
    """What the ``_mta-sts`` TXT lookup gave (RFC 8461 §3.1)."""

    RECORD = "record"
    """Exactly one valid ``v=STSv1`` record."""
    ABSENT = "absent"
    """NXDOMAIN, NODATA, no or several ``v=STSv1`` records, or an invalid one."""
    FAILED = "failed"
    """No usable answer (timeout, SERVFAIL, a bogus DNSSEC answer)."""


@dataclass(frozen=True, slots=True)
class TxtOutcome:
    """The result of one ``_mta-sts`` lookup, as the planner reads it (RFC 8461 §3.1, §5.1).

    Attributes:
        state: record, absent or failed.
        record: the record when ``state`` is ``RECORD``.
        expires_at: until when the answer may be reused (its TTL, clamped to
            :data:`MIN_TXT_TTL`..:data:`MAX_TXT_TTL`; see :func:`txt_expiry`).
    """

    state: TxtState
    record: StsRecord | None = None
    expires_at: datetime | None = None


def txt_expiry(ttl: int, now: datetime) -> datetime:
    """Until when a TXT answer with ``ttl`` seconds may be reused (RFC 1035 §3.2.1 TTL; RFC 8461 §3.1).

    The TTL is clamped to :data:`MIN_TXT_TTL`..:data:`MAX_TXT_TTL`, so a zero
    TTL does not send one query per message and a huge one does not hide a
    new policy id for weeks.
    """
    return now + timedelta(seconds=min(max(ttl, MIN_TXT_TTL), MAX_TXT_TTL))


@dataclass(frozen=True, slots=True)
class FetchFailure:
    """A fetch that failed, remembered to space out retries (RFC 8461 §3.3).

    Attributes:
        policy_id: the id the fetch was for.
        at: when it failed.
        result: why (its ``reason`` is an RFC 8460 result type).
    """

    policy_id: str
    at: datetime
    result: CheckResult


class StepAction(StrEnum):
    """What the shell does next (RFC 8461 §3.3 fetch, §5.1 refresh)."""

    USE_CACHED = "use-cached"
    """Apply :attr:`Step.entry`; nothing to fetch."""
    FETCH = "fetch"
    """Fetch the policy for :attr:`Step.policy_id`, then call :func:`plan_after_fetch`."""
    STORE = "store"
    """Store :attr:`Step.entry` (a fresh fetch) and apply it."""
    NO_POLICY = "no-policy"
    """Deliver as if the domain had no MTA-STS policy (RFC 8461 §3.3); see :attr:`Step.result`."""
    UNKNOWN = "unknown"
    """The policy in force cannot be established: the store that may hold a cached
    policy could not be read, and none was fetched (RFC 8461 §5.1). Defer the
    delivery; :attr:`Step.result` carries a fetch failure, if there was one."""


@dataclass(frozen=True, slots=True)
class Step:
    """The next step of a discovery (the planners' answer; RFC 8461 §3.3, §5.1).

    Attributes:
        action: what to do.
        entry: the policy to apply (``USE_CACHED``, ``STORE``), or the valid
            cached entry to fall back on (``FETCH``).
        policy_id: the id to fetch for (``FETCH``).
        drop: the stored entry has expired and should be deleted.
        result: for ``NO_POLICY``, ``UNKNOWN`` or a fallback after a failed
            fetch: why (passed when there is simply no policy).
    """

    action: StepAction
    entry: CachedPolicy | None = None
    policy_id: str | None = None
    drop: bool = False
    result: CheckResult = _PASSED


def plan_refresh(
    cached: CachedPolicy | None,
    txt: TxtOutcome,
    now: datetime,
    *,
    failure: FetchFailure | None = None,
    refresh_interval: timedelta = DEFAULT_REFRESH_INTERVAL,
    force: bool = False,
    store_failed: bool = False,
) -> Step:
    """Decide what to do with a domain's cached policy given its TXT lookup (RFC 8461 §3.3, §5.1).

    Args:
        cached: the stored entry, expired or not, or ``None``.
        txt: what the ``_mta-sts`` lookup gave.
        now: the current time.
        failure: the last failed fetch for this domain, if any.
        refresh_interval: fetch again after this long even if the id is unchanged.
        force: a proactive refresh (RFC 8461 §10.2): fetch even when the id is
            unchanged, and, when a valid policy is cached, even when the TXT
            lookup gave no record (for the cached id).
        store_failed: the persistent store could not be read, so ``cached``
            (``None``, from an in-memory front that missed) may not be all
            there is: ``UNKNOWN`` stands in for ``NO_POLICY``.

    Returns:
        ``USE_CACHED``, ``FETCH``, ``NO_POLICY`` or ``UNKNOWN`` (the table in
        the module docstring); ``drop`` is set when ``cached`` has expired.
    """
    drop = False
    if cached is not None and not now < cached.expires_at:
        cached, drop = None, True
    record = txt.record if txt.state is TxtState.RECORD else None
    if record is None and force and cached is not None:
        record = StsRecord(id=cached.policy_id)
    if record is None:
        if cached is not None:
            return Step(StepAction.USE_CACHED, entry=cached)
        if txt.state is TxtState.FAILED:
            result = CheckResult.passed("the _mta-sts lookup failed; no cached policy")
        else:
            result = CheckResult.passed("no usable _mta-sts record")
        return _no_policy(drop, result, store_failed)
    if (
        not force
        and cached is not None
        and cached.policy_id == record.id
        and now < cached.fetched_at + refresh_interval
    ):
        return Step(StepAction.USE_CACHED, entry=cached)
    if (
        failure is not None
        and failure.policy_id == record.id
        and now < failure.at + FETCH_RETRY_DELAY
    ):
        if cached is not None:
            return Step(StepAction.USE_CACHED, entry=cached, result=failure.result)
        return _no_policy(drop, failure.result, store_failed)
    return Step(StepAction.FETCH, entry=cached, policy_id=record.id, drop=drop)


def plan_after_fetch(
    domain: str,
    cached: CachedPolicy | None,
    policy_id: str,
    outcome: StsPolicy | CheckResult,
    now: datetime,
    *,
    store_failed: bool = False,
) -> Step:
    """Decide what a fetch's outcome means (RFC 8461 §3.3).

    Args:
        domain: the Policy Domain (normalised).
        cached: the entry :func:`plan_refresh` passed along with ``FETCH``.
        policy_id: the id that was fetched for.
        outcome: the policy, or the failed :class:`CheckResult` of
            :func:`~mtasecure.sts.check_response` or of the transport.
        now: the current time.
        store_failed: as for :func:`plan_refresh`.

    Returns:
        ``STORE`` with the new entry; or, after a failure, ``USE_CACHED`` with
        the still valid cached entry (never a downgrade), else ``NO_POLICY``
        (``UNKNOWN`` when the store could not be read); either way
        ``result`` carries the failure.
    """
    if isinstance(outcome, StsPolicy):
        return Step(
            StepAction.STORE, entry=CachedPolicy.from_fetch(domain, outcome, policy_id, now)
        )
    if outcome.ok:  # a passed CheckResult carries no policy: treat as a fetch error
        outcome = CheckResult.failed(FailureReason.STS_POLICY_FETCH_ERROR, "fetch gave no policy")
    if cached is not None and now < cached.expires_at:
        return Step(StepAction.USE_CACHED, entry=cached, result=outcome)
    return _no_policy(cached is not None, outcome, store_failed)


def _no_policy(drop: bool, result: CheckResult, store_failed: bool) -> Step:
    """No valid policy is known: none (RFC 8461 §3.3), or unknown when the store failed (§5.1)."""
    action = StepAction.UNKNOWN if store_failed else StepAction.NO_POLICY
    return Step(action, drop=drop, result=result)


def plan_proactive(
    candidates: Iterable[tuple[CachedPolicy, datetime]],
    now: datetime,
    *,
    refresh_interval: timedelta = DEFAULT_REFRESH_INTERVAL,
    idle_after: timedelta = DEFAULT_IDLE_AFTER,
    jitter: float = DEFAULT_REFRESH_JITTER,
    limit: int = MAX_REFRESH_BATCH,
) -> tuple[str, ...]:
    """Which cached policies to refresh now, before they expire (RFC 8461 §3.3, §10.2).

    A policy is due when its domain saw traffic within ``idle_after`` (idle
    domains are not polled), it has not expired (an expired one is simply
    fetched again on next use), and either ``refresh_interval`` has passed
    since its fetch, or half its ``max_age`` if that is shorter — less a
    per-domain jitter of up to ``jitter`` of that interval, so that policies
    fetched together are not refreshed together. Mode ``none``
    policies are refreshed like others (that is how a removal completes).

    The jitter is derived from the domain and the fetch time, so the plan is
    a pure function of its arguments.

    Args:
        candidates: ``(entry, last_used)`` pairs.
        now: the current time.
        refresh_interval: the target time between fetches of one policy.
        idle_after: domains unused for this long are left alone.
        jitter: fraction (0..1) of ``refresh_interval`` to spread refreshes over.
        limit: most domains returned; the soonest to expire come first.

    Returns:
        The domains to refresh, soonest expiry first.
    """
    jitter = min(max(jitter, 0.0), 1.0)
    due: list[tuple[datetime, str]] = []
    for entry, last_used in candidates:
        if now - last_used > idle_after or not now < entry.expires_at:
            continue
        interval = min(refresh_interval, (entry.expires_at - entry.fetched_at) / 2)
        if now >= entry.fetched_at + interval * (1.0 - jitter * _fraction(entry)):
            due.append((entry.expires_at, entry.domain))
    due.sort()
    return tuple(domain for _, domain in due[: max(limit, 0)])


def _fraction(entry: CachedPolicy) -> float:
    seed = f"{entry.domain} {entry.fetched_at.isoformat()}".encode()
    return int.from_bytes(hashlib.blake2b(seed, digest_size=4).digest()) / 2**32
