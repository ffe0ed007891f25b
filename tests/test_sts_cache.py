"""RFC 8461 §3.3, §5.1, §10.2: the cached policy and the refresh planner, over every (state × input)."""

from __future__ import annotations

import contextlib
import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mtasecure import CheckResult, FailureReason, ParseError
from mtasecure.sts import (
    DEFAULT_REFRESH_INTERVAL,
    FETCH_RETRY_DELAY,
    CachedPolicy,
    FetchFailure,
    PolicyMode,
    StepAction,
    StsPolicy,
    StsRecord,
    TxtOutcome,
    TxtState,
    plan_after_fetch,
    plan_proactive,
    plan_refresh,
    txt_expiry,
)
from mtasecure.sts._cache import MAX_TXT_TTL, MIN_TXT_TTL
from mtasecure.transport import MemoryPolicyCache, PolicyCache

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
FAIL = CheckResult.failed(FailureReason.STS_POLICY_FETCH_ERROR, "HTTP status 500")


def policy(mode: PolicyMode = PolicyMode.ENFORCE, max_age: int = 7 * 86400) -> StsPolicy:
    mx = () if mode is PolicyMode.NONE else ("mx.example.com",)
    return StsPolicy(mode=mode, mx=mx, max_age=max_age)


def entry(
    policy_id: str = "a",
    *,
    age: timedelta = timedelta(hours=1),
    mode: PolicyMode = PolicyMode.ENFORCE,
    max_age: int = 7 * 86400,
    domain: str = "example.com",
) -> CachedPolicy:
    return CachedPolicy.from_fetch(domain, policy(mode, max_age), policy_id, NOW - age)


def txt(policy_id: str | None, state: TxtState | None = None) -> TxtOutcome:
    if policy_id is not None:
        return TxtOutcome(TxtState.RECORD, StsRecord(id=policy_id), NOW + timedelta(minutes=5))
    return TxtOutcome(state or TxtState.ABSENT, None, NOW + timedelta(minutes=5))


# --- the value type -----------------------------------------------------------


def test_entry_expires_after_max_age() -> None:
    cached = CachedPolicy.from_fetch("example.com", policy(max_age=3600), "a", NOW)
    assert cached.expires_at == NOW + timedelta(hours=1)
    assert cached.valid_at(NOW + timedelta(minutes=59))
    assert not cached.valid_at(NOW + timedelta(hours=1))


def test_json_round_trip_is_readable() -> None:
    cached = entry(mode=PolicyMode.TESTING)
    text = cached.to_json()
    assert "mode: testing" in text
    assert CachedPolicy.from_json(text) == cached
    assert CachedPolicy.from_json(text.encode()) == cached


@given(
    mode=st.sampled_from(list(PolicyMode)),
    max_age=st.integers(min_value=0, max_value=31557600),
    policy_id=st.text(alphabet="abcXYZ019", min_size=1, max_size=32),
    seconds=st.integers(min_value=0, max_value=10**9),
)
def test_json_round_trip_property(
    mode: PolicyMode, max_age: int, policy_id: str, seconds: int
) -> None:
    cached = CachedPolicy.from_fetch(
        "example.com",
        policy(mode, max_age),
        policy_id,
        datetime(2000, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds),
    )
    assert CachedPolicy.from_json(cached.to_json()) == cached


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        '{"format": 2}',
        '{"format": 1}',
        '{"format": 1, "policy": "version: STSv1"}',
        '{"format": 1, "policy": "version: STSv1\\nmode: none\\nmax_age: 1\\n", "domain": "x"}',
        '{"format": 1, "policy": "version: STSv1\\nmode: none\\nmax_age: 1\\n", "domain": "x",'
        ' "policy_id": "a", "fetched_at": "2025-01-01T00:00:00", "expires_at": "2025-01-01T00:00:00"}',
    ],
)
def test_bad_json_raises_parse_error(text: str) -> None:
    with pytest.raises(ParseError, match="cache entry"):
        CachedPolicy.from_json(text)


@given(st.text(max_size=200) | st.binary(max_size=200))
def test_from_json_fuzz_only_parse_error_escapes(text: str | bytes) -> None:
    with contextlib.suppress(ParseError):
        CachedPolicy.from_json(text)


@pytest.mark.parametrize(
    ("ttl", "seconds"),
    [
        (0, MIN_TXT_TTL),
        (-5, MIN_TXT_TTL),
        (300, 300),
        (10**9, MAX_TXT_TTL),
        (MAX_TXT_TTL, MAX_TXT_TTL),
    ],
)
def test_txt_ttl_is_clamped(ttl: int, seconds: int) -> None:
    assert txt_expiry(ttl, NOW) == NOW + timedelta(seconds=seconds)


# --- plan_refresh: the table, row by row ------------------------------------------


def test_nothing_cached_and_a_record_fetches() -> None:
    step = plan_refresh(None, txt("a"), NOW)
    assert (step.action, step.policy_id, step.entry) == (StepAction.FETCH, "a", None)


def test_same_id_keeps_the_cached_policy() -> None:
    cached = entry("a")
    step = plan_refresh(cached, txt("a"), NOW)
    assert (step.action, step.entry) == (StepAction.USE_CACHED, cached)


def test_same_id_is_fetched_again_once_the_refresh_interval_passed() -> None:
    cached = entry("a", age=DEFAULT_REFRESH_INTERVAL)
    step = plan_refresh(cached, txt("a"), NOW)
    assert (step.action, step.policy_id, step.entry) == (StepAction.FETCH, "a", cached)


def test_new_id_fetches_and_carries_the_fallback() -> None:
    cached = entry("a")
    step = plan_refresh(cached, txt("b"), NOW)
    assert (step.action, step.policy_id, step.entry) == (StepAction.FETCH, "b", cached)


@pytest.mark.parametrize("state", [TxtState.ABSENT, TxtState.FAILED])
def test_missing_record_never_drops_a_valid_policy(state: TxtState) -> None:
    cached = entry("a")
    step = plan_refresh(cached, txt(None, state), NOW)
    assert (step.action, step.entry, step.drop) == (StepAction.USE_CACHED, cached, False)


@pytest.mark.parametrize("state", [TxtState.ABSENT, TxtState.FAILED])
def test_missing_record_and_nothing_cached_is_no_policy(state: TxtState) -> None:
    step = plan_refresh(None, txt(None, state), NOW)
    assert step.action is StepAction.NO_POLICY
    assert step.result.ok


def test_expired_policy_is_dropped() -> None:
    cached = entry("a", age=timedelta(days=2), max_age=86400)
    step = plan_refresh(cached, txt(None), NOW)
    assert (step.action, step.drop) == (StepAction.NO_POLICY, True)
    step = plan_refresh(cached, txt("a"), NOW)
    assert (step.action, step.drop, step.entry) == (StepAction.FETCH, True, None)


def test_expiry_is_exact() -> None:
    cached = entry("a", age=timedelta(seconds=86400), max_age=86400)
    assert plan_refresh(cached, txt(None), NOW).drop
    cached = entry("a", age=timedelta(seconds=86399), max_age=86400)
    assert not plan_refresh(cached, txt(None), NOW).drop


def test_recent_failure_for_the_same_id_is_not_retried() -> None:
    failure = FetchFailure("b", NOW - FETCH_RETRY_DELAY + timedelta(seconds=1), FAIL)
    cached = entry("a")
    step = plan_refresh(cached, txt("b"), NOW, failure=failure)
    assert (step.action, step.entry, step.result) == (StepAction.USE_CACHED, cached, FAIL)
    step = plan_refresh(None, txt("b"), NOW, failure=failure)
    assert (step.action, step.result) == (StepAction.NO_POLICY, FAIL)


def test_failure_is_retried_after_the_delay_or_for_another_id() -> None:
    old = FetchFailure("b", NOW - FETCH_RETRY_DELAY, FAIL)
    assert plan_refresh(None, txt("b"), NOW, failure=old).action is StepAction.FETCH
    other = FetchFailure("c", NOW, FAIL)
    assert plan_refresh(None, txt("b"), NOW, failure=other).action is StepAction.FETCH


def test_force_fetches_for_an_unchanged_id_and_without_a_record() -> None:
    cached = entry("a")
    step = plan_refresh(cached, txt("a"), NOW, force=True)
    assert (step.action, step.policy_id) == (StepAction.FETCH, "a")
    step = plan_refresh(cached, txt(None, TxtState.FAILED), NOW, force=True)
    assert (step.action, step.policy_id) == (StepAction.FETCH, "a")
    assert plan_refresh(None, txt(None), NOW, force=True).action is StepAction.NO_POLICY


def test_after_fetch_success_stores_a_fresh_entry() -> None:
    new = policy(PolicyMode.TESTING, 3600)
    step = plan_after_fetch("example.com", entry("a"), "b", new, NOW)
    assert step.action is StepAction.STORE
    assert step.entry == CachedPolicy.from_fetch("example.com", new, "b", NOW)


def test_after_fetch_none_mode_replaces_enforce() -> None:
    step = plan_after_fetch("example.com", entry("a"), "b", policy(PolicyMode.NONE), NOW)
    assert step.action is StepAction.STORE
    assert step.entry is not None
    assert step.entry.policy.mode is PolicyMode.NONE


def test_after_fetch_failure_keeps_enforce() -> None:
    cached = entry("a")
    step = plan_after_fetch("example.com", cached, "b", FAIL, NOW)
    assert (step.action, step.entry, step.result) == (StepAction.USE_CACHED, cached, FAIL)
    step = plan_after_fetch("example.com", None, "b", FAIL, NOW)
    assert (step.action, step.result) == (StepAction.NO_POLICY, FAIL)


def test_after_fetch_a_passed_result_counts_as_a_failure() -> None:
    step = plan_after_fetch("example.com", None, "b", CheckResult.passed(), NOW)
    assert step.action is StepAction.NO_POLICY
    assert step.result.reason is FailureReason.STS_POLICY_FETCH_ERROR


# --- plan_refresh: every (state × input) -------------------------------------------

CACHED_STATES = {
    "none": None,
    "fresh-a": entry("a"),
    "due-a": entry("a", age=DEFAULT_REFRESH_INTERVAL + timedelta(seconds=1)),
    "expired-a": entry("a", age=timedelta(days=8)),
    "fresh-a-testing": entry("a", mode=PolicyMode.TESTING),
    "fresh-a-none": entry("a", mode=PolicyMode.NONE),
}
TXT_INPUTS = {
    "record-a": txt("a"),
    "record-b": txt("b"),
    "absent": txt(None, TxtState.ABSENT),
    "failed": txt(None, TxtState.FAILED),
}
FAILURES = {
    "no-failure": None,
    "recent-a": FetchFailure("a", NOW - timedelta(minutes=1), FAIL),
    "recent-b": FetchFailure("b", NOW - timedelta(minutes=1), FAIL),
    "old-b": FetchFailure("b", NOW - timedelta(hours=1), FAIL),
}
OUTCOMES = {
    "ok": policy(PolicyMode.ENFORCE, 86400),
    "ok-none": policy(PolicyMode.NONE, 86400),
    "fetch-error": FAIL,
    "invalid": CheckResult.failed(FailureReason.STS_POLICY_INVALID, "bad"),
    "webpki": CheckResult.failed(FailureReason.STS_WEBPKI_INVALID, "expired"),
}


def check_invariants(
    cached: CachedPolicy | None,
    outcome_txt: TxtOutcome,
    failure: FetchFailure | None,
    force: bool,
    now: datetime,
) -> None:
    step = plan_refresh(cached, outcome_txt, now, failure=failure, force=force)
    valid = cached is not None and now < cached.expires_at
    # A store that could not be read turns "no policy" into "unknown", and nothing else
    # (RFC 8461 §5.1: what it may hold stays in force).
    unread = plan_refresh(cached, outcome_txt, now, failure=failure, force=force, store_failed=True)
    if step.action is StepAction.NO_POLICY:
        assert (unread.action, unread.result, unread.drop) == (
            StepAction.UNKNOWN,
            step.result,
            step.drop,
        )
    else:
        assert unread == step
    record = outcome_txt.record if outcome_txt.state is TxtState.RECORD else None
    # An expired entry is always dropped and never applied.
    assert step.drop == (cached is not None and not valid)
    if step.entry is not None:
        assert step.entry is cached
        assert now < step.entry.expires_at
    # Never downgrade: a valid policy is never replaced by "no policy" before a fetch.
    if valid:
        assert step.action in {StepAction.USE_CACHED, StepAction.FETCH}
        assert step.entry is cached
    if step.action is StepAction.FETCH:
        wanted = record.id if record is not None else (cached.policy_id if cached else None)
        assert step.policy_id == wanted
        assert record is not None or (force and valid)
        assert not (
            failure is not None
            and failure.policy_id == wanted
            and now < failure.at + FETCH_RETRY_DELAY
        )
    elif record is not None:
        # A record and no fetch: the id is current and fresh, or a retry is held back.
        same = valid and cached is not None and cached.policy_id == record.id
        fresh = same and cached is not None and now < cached.fetched_at + DEFAULT_REFRESH_INTERVAL
        held = (
            failure is not None
            and failure.policy_id == record.id
            and now < failure.at + FETCH_RETRY_DELAY
        )
        assert (fresh and not force) or held
    if step.action is StepAction.NO_POLICY:
        assert not valid
    if step.action is not StepAction.FETCH:
        return
    for outcome in OUTCOMES.values():
        after = plan_after_fetch("example.com", step.entry, step.policy_id or "", outcome, now)
        if isinstance(outcome, StsPolicy):
            assert after.action is StepAction.STORE
            assert after.entry is not None
            assert after.entry.policy == outcome
            assert after.entry.policy_id == step.policy_id
            assert after.entry.expires_at == now + timedelta(seconds=outcome.max_age)
        else:
            assert after.result == outcome
            if valid:
                assert (after.action, after.entry) == (StepAction.USE_CACHED, cached)
            else:
                assert after.action is StepAction.NO_POLICY
        unread_after = plan_after_fetch(
            "example.com", step.entry, step.policy_id or "", outcome, now, store_failed=True
        )
        if after.action is StepAction.NO_POLICY:
            assert (unread_after.action, unread_after.result) == (StepAction.UNKNOWN, outcome)
        else:
            assert unread_after == after


@pytest.mark.parametrize(
    ("cached_name", "txt_name", "failure_name", "force"),
    list(itertools.product(CACHED_STATES, TXT_INPUTS, FAILURES, [False, True])),
)
def test_every_state_and_input(
    cached_name: str, txt_name: str, failure_name: str, force: bool
) -> None:
    check_invariants(
        CACHED_STATES[cached_name], TXT_INPUTS[txt_name], FAILURES[failure_name], force, NOW
    )


@given(
    cached_id=st.none() | st.sampled_from(["a", "b"]),
    age=st.integers(min_value=0, max_value=10 * 86400),
    max_age=st.integers(min_value=0, max_value=8 * 86400),
    mode=st.sampled_from(list(PolicyMode)),
    txt_id=st.none() | st.sampled_from(["a", "b", "c"]),
    txt_state=st.sampled_from([TxtState.ABSENT, TxtState.FAILED]),
    failure_id=st.none() | st.sampled_from(["a", "b", "c"]),
    failure_age=st.integers(min_value=0, max_value=3600),
    force=st.booleans(),
)
def test_random_times_keep_the_invariants(
    *,
    cached_id: str | None,
    age: int,
    max_age: int,
    mode: PolicyMode,
    txt_id: str | None,
    txt_state: TxtState,
    failure_id: str | None,
    failure_age: int,
    force: bool,
) -> None:
    cached = (
        None
        if cached_id is None
        else entry(cached_id, age=timedelta(seconds=age), mode=mode, max_age=max_age)
    )
    failure = (
        None
        if failure_id is None
        else FetchFailure(failure_id, NOW - timedelta(seconds=failure_age), FAIL)
    )
    check_invariants(cached, txt(txt_id, txt_state), failure, force, NOW)


# --- plan_proactive -------------------------------------------------------------------


def test_proactive_refreshes_busy_domains_that_are_due() -> None:
    busy_due = entry("a", age=timedelta(days=2), domain="due.example")
    busy_fresh = entry("a", age=timedelta(hours=1), domain="fresh.example")
    idle_due = entry("a", age=timedelta(days=2), domain="idle.example")
    expired = entry("a", age=timedelta(days=8), domain="gone.example")
    plan = plan_proactive(
        [
            (busy_due, NOW - timedelta(hours=1)),
            (busy_fresh, NOW),
            (idle_due, NOW - timedelta(days=30)),
            (expired, NOW),
        ],
        NOW,
    )
    assert plan == ("due.example",)


def test_proactive_short_max_age_refreshes_at_half_life() -> None:
    short = entry("a", age=timedelta(minutes=29), max_age=3600, domain="short.example")
    assert plan_proactive([(short, NOW)], NOW, jitter=0) == ()
    short = entry("a", age=timedelta(minutes=30), max_age=3600, domain="short.example")
    assert plan_proactive([(short, NOW)], NOW, jitter=0) == ("short.example",)


def test_proactive_orders_by_expiry_and_bounds_the_batch() -> None:
    entries = [
        (entry("a", age=timedelta(days=2, hours=i), domain=f"d{i}.example"), NOW) for i in range(5)
    ]
    plan = plan_proactive(entries, NOW, limit=3)
    assert plan == ("d4.example", "d3.example", "d2.example")


def test_proactive_jitter_spreads_but_never_delays() -> None:
    # With jitter, a policy may be refreshed up to jitter x interval early, never late.
    entries = [(entry("a", age=DAY * 0.95, domain=f"d{i}.example"), NOW) for i in range(200)]
    early = plan_proactive(entries, NOW, jitter=0.1, limit=1000)
    assert 0 < len(early) < 200  # spread: some are due early, some not yet
    late = [(entry("a", age=DAY, domain=f"d{i}.example"), NOW) for i in range(50)]
    assert len(plan_proactive(late, NOW, jitter=0.1, limit=1000)) == 50
    assert plan_proactive(entries, NOW, jitter=0.1, limit=1000) == early  # pure


# --- the memory cache ------------------------------------------------------------------------


async def test_memory_cache_is_a_policy_cache_and_bounded() -> None:
    cache = MemoryPolicyCache(max_entries=2)
    assert isinstance(cache, PolicyCache)
    a, b, c = (entry(domain=f"{x}.example") for x in "abc")
    await cache.put(a)
    await cache.put(b)
    assert await cache.get("a.example") == a  # a is now the most recently used
    await cache.put(c)
    assert await cache.get("b.example") is None
    assert {e.domain for e in await cache.entries()} == {"a.example", "c.example"}
    assert await cache.delete("a.example")
    assert not await cache.delete("a.example")
    assert len(cache) == 1
    await cache.aclose()


def test_memory_cache_rejects_a_zero_bound() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        MemoryPolicyCache(max_entries=0)
