"""RFC 8461 §5.1 when the persistent policy store cannot be read: defer, never downgrade.

A cached policy stays in force when the TXT record disappears or the fetch
fails (§5.1, §3.3). A store that raises ``StoreError`` on ``get`` may hold
such a policy, so the lookup's answer is *unknown* (not "no policy") unless a
policy is fetched in the same lookup; the delivery is deferred (4.4.3) and
nothing stored is deleted or overwritten.

The stores used are real: an SQLite file whose table another connection has
hidden, an SQLite file whose table pages are corrupt, a Redis store whose
server is not there (a closed loopback port), and a small ``PolicyCache`` of
its own (not a subclass of the in-memory cache, which the
client would use as its front and never reach through ``get``).
"""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtasecure import StoreError, TransportTimeout
from mtasecure._explain import explain_domain, record_explanation
from mtasecure.cli import _explanation_json, _write_explanation
from mtasecure.client import MtaSecure, StsLookup, StsSettings
from mtasecure.dane import DaneState
from mtasecure.decision import (
    MxCandidate,
    RequirementKind,
    SessionObservation,
    StsState,
    Verdict,
    conclude,
    judge,
    plan,
)
from mtasecure.dnssec import Security
from mtasecure.errors import UsageError
from mtasecure.requiretls import MessageFlags
from mtasecure.results import CheckResult, FailureReason
from mtasecure.sts import (
    FETCH_RETRY_DELAY,
    CachedPolicy,
    FetchFailure,
    MxTls,
    PolicyMode,
    StepAction,
    StsPolicy,
    StsRecord,
    TxtOutcome,
    TxtState,
    apply_policy,
    plan_after_fetch,
    plan_refresh,
)
from mtasecure.sts._cache import STORE_RETRY_DELAY
from mtasecure.testing import FakeHttpClient, FakeResolver, FrozenClock
from mtasecure.tlsrpt import plan_session_record
from mtasecure.transport.redis_cache import RedisPolicyCache
from mtasecure.transport.sqlite_cache import SqlitePolicyCache

DOMAIN = "example.com"
MX = "mx.example.com"
URL = f"https://mta-sts.{DOMAIN}/.well-known/mta-sts.txt"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
STORED = CachedPolicy.from_fetch(
    DOMAIN,
    StsPolicy(mode=PolicyMode.ENFORCE, mx=(MX,), max_age=30 * 86400),
    "1",
    NOW - timedelta(hours=1),
)
# Long-lived, so that no policy expires within a property run (an expired newer
# policy rightly means "no policy", whatever older one a store still holds).
FRESH_TEXT = f"version: STSv1\nmode: testing\nmx: {MX}\nmax_age: 2592000\n"
FAIL = CheckResult.failed(FailureReason.STS_POLICY_FETCH_ERROR, "timed out")


# --- the planners (pure) ---------------------------------------------------------------


def _txt(kind: str) -> TxtOutcome:
    later = NOW + timedelta(minutes=5)
    if kind == "record":
        return TxtOutcome(TxtState.RECORD, StsRecord(id="1"), later)
    return TxtOutcome(TxtState(kind), None, later)


FAILURES = {
    "none": None,
    "recent": FetchFailure("1", NOW - timedelta(minutes=1), FAIL),
    "old": FetchFailure("1", NOW - timedelta(hours=1), FAIL),
}


@pytest.mark.parametrize(
    ("txt", "failure", "force"),
    list(itertools.product(("record", "absent", "failed"), FAILURES, (False, True))),
)
def test_plan_refresh_says_unknown_wherever_it_would_say_no_policy(
    txt: str, failure: str, force: bool
) -> None:
    plain = plan_refresh(None, _txt(txt), NOW, failure=FAILURES[failure], force=force)
    failed = plan_refresh(
        None, _txt(txt), NOW, failure=FAILURES[failure], force=force, store_failed=True
    )
    assert failed.action is not StepAction.NO_POLICY
    if plain.action is StepAction.NO_POLICY:
        assert (failed.action, failed.result, failed.drop) == (
            StepAction.UNKNOWN,
            plain.result,
            False,  # nothing stored is deleted
        )
    else:
        assert failed == plain  # a fetch is still planned: its policy would be known
    # The rows, from §5.1: no record (absent or failed) or a held-back retry -> unknown.
    held = failure == "recent" and txt == "record"
    assert (failed.action is StepAction.UNKNOWN) == (txt != "record" or held)


@pytest.mark.parametrize("outcome", [FAIL, CheckResult.failed(FailureReason.STS_WEBPKI_INVALID)])
def test_a_failed_fetch_with_the_store_unread_is_unknown(outcome: CheckResult) -> None:
    step = plan_after_fetch(DOMAIN, None, "1", outcome, NOW, store_failed=True)
    assert (step.action, step.entry, step.drop, step.result) == (
        StepAction.UNKNOWN,
        None,
        False,
        outcome,
    )
    plain = plan_after_fetch(DOMAIN, None, "1", outcome, NOW)
    assert plain.action is StepAction.NO_POLICY  # the old answer, without store_failed


def test_a_fetched_or_held_policy_is_known_whatever_the_store_did() -> None:
    fetched = StsPolicy(mode=PolicyMode.TESTING, mx=(MX,), max_age=86400)
    step = plan_after_fetch(DOMAIN, None, "2", fetched, NOW, store_failed=True)
    assert step.action is StepAction.STORE
    assert step.entry is not None
    assert step.entry.policy == fetched
    step = plan_after_fetch(DOMAIN, STORED, "2", FAIL, NOW, store_failed=True)
    assert (step.action, step.entry) == (StepAction.USE_CACHED, STORED)


# --- apply_policy (pure) --------------------------------------------------------------


def test_apply_policy_with_a_store_error_leaves_no_mx_usable() -> None:
    decision = apply_policy(
        DOMAIN, None, [MX, "Other.Example.", "not a host"], failure=FAIL, store_error="locked"
    )
    assert decision.unknown
    assert decision.store_error == "locked"
    assert decision.usable_hosts == ()
    assert [(d.host, d.usable, d.tls) for d in decision.mx] == [
        (MX, False, MxTls.UNKNOWN),
        ("other.example", False, MxTls.UNKNOWN),
        ("not a host", False, MxTls.UNKNOWN),
    ]
    assert all(d.result.ok for d in decision.mx)  # nothing to report: no session
    plain = apply_policy(DOMAIN, None, [MX])
    assert not plain.unknown
    assert plain.usable_hosts == (MX,)


def test_apply_policy_refuses_a_policy_and_a_store_error_together() -> None:
    with pytest.raises(UsageError, match="not unknown"):
        apply_policy(DOMAIN, STORED.policy, [MX], store_error="locked")


# --- the decision engine (pure) ---------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"mode": PolicyMode.ENFORCE},
        {"mx": (MX,)},
        {"failure": FailureReason.STS_POLICY_FETCH_ERROR},
    ],
)
def test_an_unknown_state_carries_no_policy_and_no_failure(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="unknown MTA-STS state"):
        StsState(unknown=True, **fields)  # type: ignore[arg-type]


def test_unknown_defers_with_4_4_3_and_reports_nothing() -> None:
    delivery = plan(
        DOMAIN,
        mx_security=Security.INSECURE,
        mx=[MxCandidate(host=MX, preference=10)],
        sts=StsState(unknown=True),
        flags=MessageFlags(requiretls=True),
    )
    (requirement,) = delivery.requirements
    assert (requirement.kind, requirement.sts_unknown, requirement.reason) == (
        RequirementKind.UNUSABLE,
        True,
        None,
    )
    assert requirement.requiretls is None  # step 2 cannot be judged: no bounce from it
    assert delivery.sts_failure is None
    outcome = judge(requirement, SessionObservation(host=MX, tls_established=True))
    assert not outcome.deliver
    conclusion = conclude(delivery, {MX: None})
    assert (conclusion.verdict, conclusion.status) == (Verdict.DEFER, "4.4.3")
    assert plan_session_record(DOMAIN, requirement, outcome) is None


def test_tls_required_no_sets_an_unknown_state_aside_and_records_nothing() -> None:
    delivery = plan(
        DOMAIN,
        mx_security=Security.INSECURE,
        mx=[MxCandidate(host=MX)],
        sts=StsState(unknown=True),
        flags=MessageFlags(tls_required_no=True),
    )
    (requirement,) = delivery.requirements
    assert (requirement.kind, requirement.policy_ignored) == (RequirementKind.OPPORTUNISTIC, True)
    assert plan_session_record(DOMAIN, requirement, None) is None


def test_a_dane_mx_is_still_used_when_the_sts_state_is_unknown() -> None:
    delivery = plan(
        DOMAIN,
        mx_security=Security.SECURE,
        mx=[
            MxCandidate(host=MX, preference=10, tlsa=DaneState.USABLE, tlsa_records=("3 1 1 aa",)),
            MxCandidate(host="mx2.example.com", preference=20),
        ],
        sts=StsState(unknown=True),
    )
    kinds = [(r.host, r.kind, r.sts_unknown) for r in delivery.requirements]
    assert kinds == [
        (MX, RequirementKind.DANE, False),  # DANE before MTA-STS (RFC 8461 §2)
        ("mx2.example.com", RequirementKind.UNUSABLE, True),
    ]
    conclusion = conclude(delivery, {MX: None})
    assert (conclusion.verdict, conclusion.status) == (Verdict.DEFER, "4.4.3")


SECURITIES = [Security.SECURE, Security.INSECURE, Security.BOGUS, Security.INDETERMINATE]


@given(
    security=st.sampled_from(SECURITIES),
    tlsa=st.lists(st.sampled_from(list(DaneState)), min_size=1, max_size=3),
    requiretls=st.booleans(),
    tls_required_no=st.booleans(),
    bounce=st.booleans(),
    implicit=st.booleans(),
    delivered=st.lists(st.booleans(), min_size=3, max_size=3),
)
def test_property_an_unknown_state_never_delivers_as_no_policy_and_never_bounces(
    *,
    security: Security,
    tlsa: list[DaneState],
    requiretls: bool,
    tls_required_no: bool,
    bounce: bool,
    implicit: bool,
    delivered: list[bool],
) -> None:
    flags = MessageFlags(
        requiretls=requiretls, tls_required_no=tls_required_no, null_reverse_path=bounce
    )
    candidates = [
        MxCandidate(host=f"mx{i}.example.com", preference=i, tlsa=state, tlsa_records=("3 1 1 aa",))
        for i, state in enumerate(tlsa)
    ]
    delivery = plan(
        DOMAIN, mx_security=security, mx=candidates, sts=StsState(unknown=True), flags=flags
    )
    for candidate, requirement in zip(candidates, delivery.requirements, strict=True):
        dane = security is Security.SECURE and candidate.tlsa is DaneState.USABLE
        # Only DANE or the sender's own TLS-Required: No may carry the message on.
        if requirement.kind is RequirementKind.OPPORTUNISTIC:
            assert flags.tls_optional
        assert requirement.kind not in (RequirementKind.STS_ENFORCE, RequirementKind.STS_TESTING)
        if requirement.usable:
            assert dane or flags.tls_optional
        if requirement.sts_unknown:
            assert requirement.kind is RequirementKind.UNUSABLE
    if not any(r.sts_unknown for r in delivery.requirements):
        return
    # Whatever happened on the other MX hosts, a message nobody took is deferred.
    outcomes = {
        r.host: judge(r, SessionObservation(host=r.host, tls_established=ok))
        for r, ok in zip(delivery.requirements, delivered, strict=False)
        if r.usable
    }
    if any(o.deliver for o in outcomes.values()):
        return
    assert conclude(delivery, outcomes).verdict is Verdict.DEFER


# --- stores that fail on get ------------------------------------------------------------


class RaisingCache:
    """A persistent ``PolicyCache`` of its own whose reads (and writes) can fail."""

    def __init__(self) -> None:
        self.entries_by_domain: dict[str, CachedPolicy] = {}
        self.calls: list[str] = []
        self.reads_fail = False
        self.writes_fail = False

    async def get(self, domain: str) -> CachedPolicy | None:
        self.calls.append(f"get {domain}")
        if self.reads_fail:
            raise StoreError("policy store unreachable")
        return self.entries_by_domain.get(domain)

    async def put(self, entry: CachedPolicy) -> None:
        self.calls.append(f"put {entry.domain}")
        if self.writes_fail:
            raise StoreError("policy store unreachable")
        self.entries_by_domain[entry.domain] = entry

    async def delete(self, domain: str) -> bool:
        self.calls.append(f"delete {domain}")
        if self.writes_fail:
            raise StoreError("policy store unreachable")
        return self.entries_by_domain.pop(domain, None) is not None

    async def entries(self) -> tuple[CachedPolicy, ...]:
        return tuple(self.entries_by_domain.values())

    async def aclose(self) -> None:
        return None


@asynccontextmanager
async def broken_store(
    kind: str, tmp_path: Path
) -> AsyncIterator[tuple[object, Callable[[], object] | None]]:
    """A store holding STORED whose reads fail; yields it and ``mend``.

    ``mend()`` repairs the store where it can and returns what it holds for
    the domain (for the corrupt file: STORED if no byte of it was written);
    ``None`` for a Redis server that is not there, which holds nothing to see.
    """
    if kind == "redis-unreachable":
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        async with RedisPolicyCache(f"redis://127.0.0.1:{port}/0", timeout=0.5) as redis:
            yield redis, None
        return
    if kind == "raising":
        raising = RaisingCache()
        raising.entries_by_domain[DOMAIN] = STORED
        raising.reads_fail = raising.writes_fail = True

        def mend_raising() -> object:
            raising.reads_fail = raising.writes_fail = False
            return raising.entries_by_domain.get(DOMAIN)

        yield raising, mend_raising
        return
    path = tmp_path / "sts.sqlite3"
    async with SqlitePolicyCache(path) as seed:
        await seed.put(STORED)
    if kind == "sqlite-hidden-table":
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("ALTER TABLE sts_policies RENAME TO hidden_by_another_process")
        store = SqlitePolicyCache(path)

        def mend_sqlite() -> object:
            other.execute("ALTER TABLE hidden_by_another_process RENAME TO sts_policies")
            row = other.execute("SELECT entry FROM sts_policies WHERE domain = ?", (DOMAIN,))
            text = row.fetchone()[0]
            return CachedPolicy.from_json(text)

        try:
            yield store, mend_sqlite
        finally:
            await store.aclose()
            other.close()
        return
    # sqlite-corrupt: the table's pages are garbage; the file still opens.
    original = path.read_bytes()
    with path.open("r+b") as raw:
        raw.seek(4096)
        raw.write(b"\xff" * (len(original) - 4096))
    store = SqlitePolicyCache(path)

    def files() -> dict[str, bytes]:  # the database and its WAL, where writes go first
        return {p.name: p.read_bytes() for p in tmp_path.glob("sts.sqlite3*")}

    corrupt = files()

    def unchanged() -> object:
        return STORED if files() == corrupt else "the file was written"

    try:
        yield store, unchanged
    finally:
        await store.aclose()


STORE_KINDS = ("raising", "sqlite-hidden-table", "sqlite-corrupt", "redis-unreachable")
TXT_KINDS = ("present", "absent", "failed")
FETCH_KINDS = ("ok", "failed")


def _resolver(txt: str) -> FakeResolver:
    resolver = FakeResolver(default_security=Security.INSECURE)
    resolver.add(DOMAIN, "MX", [f"10 {MX}."])
    resolver.add(MX, "A", ["192.0.2.25"])
    if txt == "present":
        resolver.add(f"_mta-sts.{DOMAIN}", "TXT", ['"v=STSv1; id=2;"'])
    elif txt == "failed":
        resolver.add_failure(f"_mta-sts.{DOMAIN}", security=Security.INDETERMINATE)
    return resolver


def _http(fetch: str) -> FakeHttpClient:
    http = FakeHttpClient()
    if fetch == "ok":
        http.add(URL, FRESH_TEXT)
    else:
        http.fail(URL, TransportTimeout("timed out"))
    return http


def _expected(txt: str, fetch: str) -> tuple[str, str | None]:
    """(lookup answer, deferral status) from §5.1 and the decision above, written out."""
    if txt == "present" and fetch == "ok":
        return "fresh-policy", None  # a policy fetched in this lookup is known: delivered
    return "unknown", "4.4.3"  # no record, or the fetch failed: the store's policy may be in force


@pytest.mark.parametrize(
    ("store_kind", "txt", "fetch"), list(itertools.product(STORE_KINDS, TXT_KINDS, FETCH_KINDS))
)
async def test_store_read_failure_matrix(
    store_kind: str, txt: str, fetch: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    answer, status = _expected(txt, fetch)
    resolver, http, clock = _resolver(txt), _http(fetch), FrozenClock(NOW)
    async with broken_store(store_kind, tmp_path) as (store, mend):
        with caplog.at_level(logging.WARNING, logger="mtasecure.sts"):
            async with MtaSecure(
                resolver=resolver,
                http=http,
                clock=clock,
                cache=store,  # type: ignore[arg-type]
            ) as client:
                lookup = await client.sts_lookup(DOMAIN)
                decision = await client.sts_decision(DOMAIN, [MX])
                delivery = await client.plan_delivery(DOMAIN)
        # The failing read was reached (not bypassed by the in-memory front).
        assert f"policy cache read for {DOMAIN} failed" in caplog.text
        if isinstance(store, RaisingCache):
            assert store.calls[0] == f"get {DOMAIN}"
        # The TXT answer decides whether anything was fetched at all.
        assert http.requests == ([URL] if txt == "present" else [])
        if answer == "fresh-policy":
            assert lookup.policy is not None
            assert lookup.policy.mode is PolicyMode.TESTING
            assert (lookup.store_error, lookup.state.unknown) == ("", False)
            assert decision.usable_hosts == (MX,)
            (requirement,) = delivery.requirements
            assert requirement.kind is RequirementKind.STS_TESTING
            outcome = judge(requirement, SessionObservation(host=MX, tls_established=True))
            assert outcome.deliver
            # The fresh policy could not be written either: logged, and used all the same.
            assert f"policy cache write for {DOMAIN} failed" in caplog.text
        else:
            assert lookup.policy is None
            assert lookup.entry is None
            assert lookup.store_error  # the reason, e.g. "no such table"
            assert lookup.state == StsState(unknown=True)
            if fetch == "failed" and txt == "present":
                assert lookup.result.reason is FailureReason.STS_POLICY_FETCH_ERROR
            assert decision.unknown
            assert decision.store_error == lookup.store_error
            assert decision.usable_hosts == ()
            (requirement,) = delivery.requirements
            assert (requirement.kind, requirement.sts_unknown) == (RequirementKind.UNUSABLE, True)
            conclusion = conclude(delivery, {})
            assert (conclusion.verdict, conclusion.status) == (Verdict.DEFER, status)
            assert f"MTA-STS state of {DOMAIN} unknown, deferring" in caplog.text
            # Nothing stored was deleted or written over.
            if isinstance(store, RaisingCache):
                assert not [c for c in store.calls if not c.startswith("get")]
            if mend is not None:
                assert mend() == STORED


async def test_a_fresh_policy_is_written_when_only_reads_fail() -> None:
    store = RaisingCache()
    store.entries_by_domain[DOMAIN] = STORED
    store.reads_fail = True
    async with MtaSecure(
        resolver=_resolver("present"),
        http=_http("ok"),
        clock=FrozenClock(NOW),
        cache=store,
    ) as client:
        lookup = await client.sts_lookup(DOMAIN)
    assert lookup.policy is not None
    assert lookup.policy.mode is PolicyMode.TESTING
    assert store.calls == [f"get {DOMAIN}", f"put {DOMAIN}"]
    assert store.entries_by_domain[DOMAIN].policy_id == "2"


async def test_the_unknown_answer_is_reused_briefly_then_the_store_is_read_again() -> None:
    store = RaisingCache()
    store.entries_by_domain[DOMAIN] = STORED
    store.reads_fail = True
    clock = FrozenClock(NOW)
    async with MtaSecure(
        resolver=_resolver("absent"), http=_http("failed"), clock=clock, cache=store
    ) as client:
        assert (await client.sts_lookup(DOMAIN)).store_error
        clock.advance(STORE_RETRY_DELAY - timedelta(seconds=1))
        assert (await client.sts_lookup(DOMAIN)).store_error
        assert store.calls == [f"get {DOMAIN}"]  # the short memo held
        store.reads_fail = False
        clock.advance(timedelta(seconds=1))
        lookup = await client.sts_lookup(DOMAIN)
    assert store.calls == [f"get {DOMAIN}", f"get {DOMAIN}"]
    # The mended store's policy is in force although the TXT record is gone (§5.1).
    assert (lookup.policy, lookup.store_error) == (STORED.policy, "")
    assert lookup.state.mode is PolicyMode.ENFORCE


def test_the_store_retry_delay_is_short_and_below_the_fetch_retry_delay() -> None:
    assert timedelta(0) < STORE_RETRY_DELAY <= timedelta(minutes=1)
    assert STORE_RETRY_DELAY < FETCH_RETRY_DELAY


async def test_on_store_error_ignore_restores_the_old_downgrade() -> None:
    store = RaisingCache()
    store.entries_by_domain[DOMAIN] = STORED
    store.reads_fail = True
    async with MtaSecure(
        resolver=_resolver("absent"),
        http=_http("failed"),
        clock=FrozenClock(NOW),
        cache=store,
        sts=StsSettings(on_store_error="ignore"),
    ) as client:
        lookup = await client.sts_lookup(DOMAIN)
        delivery = await client.plan_delivery(DOMAIN)
    assert (lookup.policy, lookup.store_error, lookup.state) == (None, "", StsState())
    assert delivery.requirements[0].kind is RequirementKind.OPPORTUNISTIC
    assert StsSettings().on_store_error == "defer"
    with pytest.raises(ValueError, match="on_store_error"):
        StsSettings(on_store_error="bounce")  # type: ignore[arg-type]


async def test_an_excluded_domain_never_reads_the_store() -> None:
    store = RaisingCache()
    store.reads_fail = True
    async with MtaSecure(
        resolver=_resolver("present"),
        http=_http("failed"),
        clock=FrozenClock(NOW),
        cache=store,
        sts=StsSettings(exclude=(DOMAIN,)),
    ) as client:
        lookup = await client.sts_lookup(DOMAIN)
        decision = await client.sts_decision(DOMAIN, [MX])
    assert (lookup.excluded, lookup.store_error, lookup.state) == (True, "", StsState())
    assert decision.usable_hosts == (MX,)
    assert store.calls == []


def test_an_unknown_lookup_has_the_unknown_state() -> None:
    lookup = StsLookup(domain=DOMAIN, store_error="locked", result=FAIL)
    assert lookup.state == StsState(unknown=True)  # the fetch failure is not reported
    assert StsLookup(domain=DOMAIN, result=FAIL).state == StsState(
        failure=FailureReason.STS_POLICY_FETCH_ERROR
    )


# --- the property: a stored policy is never downgraded by a store fault ------------------

STEP = st.one_of(
    st.tuples(st.just("txt"), st.sampled_from(["same", "new", "absent", "failed"])),
    st.tuples(st.just("fetch"), st.sampled_from(["ok", "failed", "invalid"])),
    st.tuples(st.just("store"), st.booleans()),
    st.tuples(st.just("advance"), st.integers(min_value=0, max_value=6 * 3600)),
    st.tuples(st.just("restart"), st.none()),
    st.tuples(st.just("lookup"), st.none()),
)


def _set_txt(resolver: FakeResolver, kind: str) -> None:
    name = f"_mta-sts.{DOMAIN}"
    resolver._rrsets.pop((name, "TXT"), None)
    resolver._fail.pop(name, None)
    if kind in ("same", "new"):
        resolver.add(name, "TXT", [f'"v=STSv1; id={1 if kind == "same" else 2};"'], ttl=60)
    elif kind == "failed":
        resolver.add_failure(name)


def _set_fetch(http: FakeHttpClient, kind: str) -> None:
    if kind == "ok":
        http.add(URL, FRESH_TEXT)
    elif kind == "invalid":
        http.add(URL, "version: STSv1\nmode: enfore\n")
    else:
        http.fail(URL, TransportTimeout("timed out"))


async def _run_steps(steps: list[tuple[str, object]]) -> None:
    store = RaisingCache()
    store.entries_by_domain[DOMAIN] = STORED  # valid for 30 days: longer than any run
    resolver, http, clock = _resolver("present"), _http("failed"), FrozenClock(NOW)
    client = MtaSecure(resolver=resolver, http=http, clock=clock, cache=store)
    try:
        for action, value in [*steps, ("lookup", None)]:
            if action == "txt":
                _set_txt(resolver, str(value))
            elif action == "fetch":
                _set_fetch(http, str(value))
            elif action == "store":
                store.reads_fail = store.writes_fail = bool(value)
            elif action == "advance":
                clock.advance(int(value))  # type: ignore[call-overload]
            elif action == "restart":
                await client.aclose()
                client = MtaSecure(resolver=resolver, http=http, clock=clock, cache=store)
            else:
                lookup = await client.sts_lookup(DOMAIN)
                # Some valid policy is stored: "no policy" would be a downgrade.
                assert lookup.policy is not None or lookup.state.unknown, lookup
                if lookup.state.unknown:
                    assert lookup.store_error
                    delivery = await client.plan_delivery(DOMAIN)
                    assert delivery.usable == ()
                    assert conclude(delivery, {}).verdict is Verdict.DEFER
    finally:
        await client.aclose()
    assert STORED.domain in store.entries_by_domain  # never deleted


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(STEP, max_size=12))
def test_property_a_store_fault_never_turns_a_stored_policy_into_no_policy(
    steps: list[tuple[str, object]],
) -> None:
    asyncio.run(_run_steps(steps))


# --- what `mtasecure check` prints -------------------------------------------------------


async def test_check_output_shows_the_unknown_state_in_one_line() -> None:
    store = RaisingCache()
    store.reads_fail = True
    resolver = _resolver("absent")
    async with MtaSecure(
        resolver=resolver, http=_http("failed"), clock=FrozenClock(NOW), cache=store
    ) as client:
        await client.sts_lookup(DOMAIN)  # unknown, and reused for a few seconds
        # A record appears meanwhile: the explanation's own TXT lookup sees it, and
        # must not call the (still unknown) state "no policy".
        _set_txt(resolver, "new")
        explanation = await explain_domain(client, DOMAIN)
    assert explanation.sts_record is not None
    out = io.StringIO()
    _write_explanation(explanation, out, "")
    text = out.getvalue()
    assert [line for line in text.splitlines() if "store" in line] == [
        "         unknown: the policy store could not be read (policy store unreachable); "
        "delivery is deferred, not downgraded (RFC 8461 §5.1)",
        "  require  unusable: MTA-STS state unknown: the policy store could not be read and "
        "no policy was fetched; delivery is delayed (RFC 8461 §5.1)",
    ]
    assert "no policy:" not in text
    assert "verdict  NOT PROTECTED: no MX may be used now: the MTA-STS state is unknown" in text
    assert explanation.sts_state == StsState(unknown=True)
    mta_sts = _explanation_json(explanation)["mta_sts"]
    assert isinstance(mta_sts, dict)
    assert mta_sts["store_error"] == "policy store unreachable"


async def test_the_sts_policy_shorthand_raises_rather_than_say_no_policy() -> None:
    store = RaisingCache()
    store.reads_fail = True
    clock = FrozenClock(NOW)
    async with MtaSecure(
        resolver=_resolver("absent"), http=_http("failed"), clock=clock, cache=store
    ) as client:
        with pytest.raises(StoreError, match=r"MTA-STS policy of example\.com unknown: .*§5\.1"):
            await client.sts_policy(DOMAIN)
        store.reads_fail = False  # mended, and it holds nothing: now that is no policy
        clock.advance(STORE_RETRY_DELAY)
        assert await client.sts_policy(DOMAIN) is None


async def test_check_reports_nothing_for_tls_rpt_when_the_state_is_unknown() -> None:
    store = RaisingCache()
    store.reads_fail = True
    async with MtaSecure(
        resolver=_resolver("present"), http=_http("failed"), clock=FrozenClock(NOW), cache=store
    ) as client:
        explanation = await explain_domain(client, DOMAIN, probe=True)
        assert record_explanation(client, explanation) == 0
    out = io.StringIO()
    _write_explanation(explanation, out, "")
    text = out.getvalue()
    # The fetch failure is shown as what the lookup saw, but not as something to report.
    assert "failure sts-policy-fetch-error" in text
    assert "discovery failure" not in text
    assert "TLS-RPT  no session to record (no MX was tried)" in text
    assert explanation.plan.sts_failure is None
    assert "verdict  message: not delivered (deferred)" in text
