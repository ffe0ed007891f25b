"""MtaSecure.sts_policy / sts_lookup / sts_decision over the public fakes (RFC 8461 §3-§5)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from mtasecure import FailureReason, HttpError, NameSyntaxError, StoreError, TransportTimeout
from mtasecure._http import HttpResponse
from mtasecure.client import MtaSecure, StsSettings
from mtasecure.sts import CachedPolicy, MxTls, PolicyMode, StsPolicy
from mtasecure.testing import FakeHttpClient, FakeResolver, FrozenClock
from mtasecure.transport import MemoryPolicyCache

URL = "https://mta-sts.example.com/.well-known/mta-sts.txt"
ENFORCE = "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 604800\n"
TESTING = "version: STSv1\nmode: testing\nmx: *.example.com\nmax_age: 604800\n"


def world(record: str | None = "v=STSv1; id=1;", ttl: int = 300) -> FakeResolver:
    resolver = FakeResolver()
    resolver.add("example.com", "MX", ["10 mx.example.com."])
    if record is not None:
        resolver.add("_mta-sts.example.com", "TXT", [f'"{record}"'], ttl=ttl)
    return resolver


def set_record(resolver: FakeResolver, record: str | None, ttl: int = 300) -> None:
    resolver._rrsets.pop(("_mta-sts.example.com", "TXT"), None)
    if record is not None:
        resolver.add("_mta-sts.example.com", "TXT", [f'"{record}"'], ttl=ttl)


def txt_queries(resolver: FakeResolver) -> int:
    return sum(1 for q in resolver.queries if q == ("_mta-sts.example.com", "TXT"))


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock("2025-06-01T00:00:00Z")


@pytest.fixture
def http() -> FakeHttpClient:
    fake = FakeHttpClient()
    fake.add(URL, ENFORCE)
    return fake


def client_for(
    resolver: FakeResolver, http: FakeHttpClient, clock: FrozenClock, **settings: object
) -> MtaSecure:
    return MtaSecure(resolver=resolver, http=http, clock=clock, sts=StsSettings(**settings))  # type: ignore[arg-type]


async def test_discovers_and_caches(http: FakeHttpClient, clock: FrozenClock) -> None:
    resolver = world()
    async with client_for(resolver, http, clock) as client:
        policy = await client.sts_policy("Example.COM.")
        assert isinstance(policy, StsPolicy)
        assert policy.mode is PolicyMode.ENFORCE
        lookup = await client.sts_lookup("example.com")
        assert lookup.entry is not None
        assert (lookup.entry.policy_id, lookup.entry.fetched_at) == ("1", clock.now())
        assert lookup.result.ok
    assert http.requests == [URL]
    assert txt_queries(resolver) == 1


async def test_single_flight(clock: FrozenClock) -> None:
    resolver = world()
    http = FakeHttpClient(delay=0.05)
    http.add(URL, ENFORCE)
    async with client_for(resolver, http, clock) as client:
        results = await asyncio.gather(*(client.sts_lookup("example.com") for _ in range(50)))
    assert {r.policy for r in results} == {results[0].policy}
    assert results[0].policy is not None
    assert http.requests == [URL]
    assert txt_queries(resolver) == 1


async def test_txt_answer_reused_for_its_ttl_then_rechecked(
    http: FakeHttpClient, clock: FrozenClock
) -> None:
    resolver = world(ttl=600)
    async with client_for(resolver, http, clock) as client:
        await client.sts_policy("example.com")
        clock.advance(599)
        await client.sts_policy("example.com")
        assert txt_queries(resolver) == 1
        clock.advance(1)
        await client.sts_policy("example.com")
        assert txt_queries(resolver) == 2
    assert http.requests == [URL]  # same id: no second fetch


async def test_new_id_fetches_the_new_policy(http: FakeHttpClient, clock: FrozenClock) -> None:
    resolver = world()
    async with client_for(resolver, http, clock) as client:
        assert (await client.sts_policy("example.com")).mode is PolicyMode.ENFORCE  # type: ignore[union-attr]
        set_record(resolver, "v=STSv1; id=2;")
        http.add(URL, TESTING)
        clock.advance(300)
        lookup = await client.sts_lookup("example.com")
    assert lookup.policy is not None
    assert lookup.policy.mode is PolicyMode.TESTING
    assert lookup.entry is not None
    assert lookup.entry.policy_id == "2"
    assert http.requests == [URL, URL]


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (lambda h: h.add(URL, "oops", status=500), FailureReason.STS_POLICY_FETCH_ERROR),
        (
            lambda h: h.add(URL, "<html>", content_type="text/html"),
            FailureReason.STS_POLICY_FETCH_ERROR,
        ),
        (lambda h: h.add(URL, "garbage"), FailureReason.STS_POLICY_INVALID),
        (
            lambda h: h.fail(URL, HttpError("expired", certificate=True)),
            FailureReason.STS_WEBPKI_INVALID,
        ),
        (lambda h: h.fail(URL, HttpError("refused")), FailureReason.STS_POLICY_FETCH_ERROR),
        (lambda h: h.fail(URL, TransportTimeout("slow")), FailureReason.STS_POLICY_FETCH_ERROR),
    ],
)
async def test_failed_fetch_never_downgrades_enforce(
    http: FakeHttpClient, clock: FrozenClock, failure: object, reason: FailureReason
) -> None:
    resolver = world()
    async with client_for(resolver, http, clock) as client:
        await client.sts_policy("example.com")
        set_record(resolver, "v=STSv1; id=2;")
        failure(http)  # type: ignore[operator]
        clock.advance(300)
        lookup = await client.sts_lookup("example.com")
        assert lookup.policy is not None
        assert lookup.policy.mode is PolicyMode.ENFORCE
        assert lookup.result.reason is reason
        decision = await client.sts_decision("example.com", ["mx.example.com", "other.example.net"])
        assert [d.usable for d in decision.mx] == [True, False]
        assert decision.failure is reason


async def test_failed_fetch_without_cache_is_no_policy_and_retried_after_five_minutes(
    clock: FrozenClock,
) -> None:
    resolver = world(ttl=60)
    http = FakeHttpClient()
    http.add(URL, "oops", status=503)
    async with client_for(resolver, http, clock) as client:
        lookup = await client.sts_lookup("example.com")
        assert lookup.policy is None
        assert lookup.result.reason is FailureReason.STS_POLICY_FETCH_ERROR
        clock.advance(120)  # TXT expired, but the retry delay (RFC 8461 §3.3) has not
        again = await client.sts_lookup("example.com")
        assert again.result.reason is FailureReason.STS_POLICY_FETCH_ERROR
        assert len(http.requests) == 1
        http.add(URL, ENFORCE)
        clock.advance(180)
        fixed = await client.sts_lookup("example.com")
        assert fixed.policy is not None
        assert fixed.result.ok
        assert len(http.requests) == 2


@pytest.mark.parametrize("change", ["remove", "fail", "garbage"])
async def test_missing_txt_keeps_the_policy_until_it_expires(
    http: FakeHttpClient, clock: FrozenClock, change: str
) -> None:
    resolver = world()
    async with client_for(resolver, http, clock) as client:
        await client.sts_policy("example.com")
        if change == "remove":
            set_record(resolver, None)
        elif change == "fail":
            resolver.add_failure("_mta-sts.example.com")
        else:
            set_record(resolver, "v=STSv1; id=bad id;")
        clock.advance(timedelta(days=6, hours=23))
        lookup = await client.sts_lookup("example.com")
        assert lookup.policy is not None
        assert lookup.policy.mode is PolicyMode.ENFORCE
        clock.advance(timedelta(hours=1))
        gone = await client.sts_lookup("example.com")
        assert gone.policy is None
        assert len(await client._front.entries()) == 0  # the expired entry was dropped
    assert http.requests == [URL]


async def test_refresh_interval_fetches_again_for_the_same_id(
    http: FakeHttpClient, clock: FrozenClock
) -> None:
    resolver = world()
    async with client_for(resolver, http, clock, refresh_interval=timedelta(hours=6)) as client:
        await client.sts_policy("example.com")
        clock.advance(timedelta(hours=6))
        lookup = await client.sts_lookup("example.com")
    assert len(http.requests) == 2
    assert lookup.entry is not None
    assert lookup.entry.fetched_at == clock.now()


async def test_no_record_means_no_fetch(http: FakeHttpClient, clock: FrozenClock) -> None:
    resolver = world(record=None)
    async with client_for(resolver, http, clock) as client:
        lookup = await client.sts_lookup("example.com")
        decision = await client.sts_decision("example.com", ["mx.example.com"])
    assert lookup.policy is None
    assert lookup.result.ok
    assert decision.mx[0].tls is MxTls.NONE
    assert http.requests == []


async def test_exclusions_skip_everything(http: FakeHttpClient, clock: FrozenClock) -> None:
    resolver = world()
    async with client_for(
        resolver, http, clock, exclude=("example.com", "*.example.org")
    ) as client:
        lookup = await client.sts_lookup("EXAMPLE.com")
        sub = await client.sts_lookup("a.b.example.org")
        decision = await client.sts_decision("example.com", ["other.example.net"])
    assert lookup.excluded
    assert lookup.policy is None
    assert sub.excluded
    assert decision.mx[0].usable
    assert decision.mx[0].tls is MxTls.NONE
    assert resolver.queries == []
    assert http.requests == []


async def test_bad_domain_is_a_name_error(http: FakeHttpClient, clock: FrozenClock) -> None:
    async with client_for(world(), http, clock) as client:
        with pytest.raises(NameSyntaxError):
            await client.sts_lookup("exa mple.com")


async def test_policy_port_goes_into_the_url(clock: FrozenClock) -> None:
    http = FakeHttpClient()
    url = http.add_policy("example.com", ENFORCE, port=8443)
    assert url == "https://mta-sts.example.com:8443/.well-known/mta-sts.txt"
    async with client_for(world(), http, clock, policy_port=8443) as client:
        assert await client.sts_policy("example.com") is not None
    assert http.requests == [url]


async def test_size_cap_setting_is_passed_and_checked(clock: FrozenClock) -> None:
    http = FakeHttpClient()
    http.add(URL, ENFORCE + "x: " + "y" * 100 + "\n")
    async with client_for(world(), http, clock, max_policy_bytes=64) as client:
        lookup = await client.sts_lookup("example.com")
    assert lookup.result.reason is FailureReason.STS_POLICY_FETCH_ERROR
    assert "larger than 64" in lookup.result.detail


class BackStore:
    """A working persistent store: a PolicyCache that is not a MemoryPolicyCache.

    (The client uses a given MemoryPolicyCache, or a subclass, as its own
    front cache and never calls its async methods; these stores must be
    reached through the async protocol to test the client's error paths.)
    """

    def __init__(self) -> None:
        self.memory = MemoryPolicyCache()
        self.calls: list[str] = []

    async def get(self, domain: str) -> CachedPolicy | None:
        self.calls.append(f"get {domain}")
        return self.memory.peek(domain)

    async def put(self, entry: CachedPolicy) -> None:
        self.calls.append(f"put {entry.domain}")
        self.memory.store(entry)

    async def delete(self, domain: str) -> bool:
        self.calls.append(f"delete {domain}")
        return self.memory.discard(domain)

    async def entries(self) -> tuple[CachedPolicy, ...]:
        return await self.memory.entries()

    async def aclose(self) -> None:
        self.calls.append("aclose")


class FailingStore(BackStore):
    """A persistent store that is down."""

    async def get(self, domain: str) -> CachedPolicy | None:
        self.calls.append(f"get {domain}")
        raise StoreError("down")

    async def put(self, entry: CachedPolicy) -> None:
        self.calls.append(f"put {entry.domain}")
        raise StoreError("down")

    async def delete(self, domain: str) -> bool:
        self.calls.append(f"delete {domain}")
        raise StoreError("down")


async def test_a_failing_store_does_not_stop_discovery(
    http: FakeHttpClient, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = FailingStore()
    async with MtaSecure(resolver=world(), http=http, clock=clock, cache=store) as client:
        with caplog.at_level("WARNING", logger="mtasecure.sts"):
            assert await client.sts_policy("example.com") is not None
            assert await client.sts_policy("example.com") is not None
    assert http.requests == [URL]
    assert store.calls == ["get example.com", "put example.com"]  # the failures were reached
    assert "policy cache read for example.com failed: down" in caplog.text
    assert "policy cache write for example.com failed: down" in caplog.text


async def test_a_persistent_store_is_read_after_a_restart(
    http: FakeHttpClient, clock: FrozenClock
) -> None:
    store = BackStore()
    async with MtaSecure(resolver=world(), http=http, clock=clock, cache=store) as client:
        await client.sts_policy("example.com")
    assert (await store.get("example.com")) is not None
    async with MtaSecure(resolver=world(), http=http, clock=clock, cache=store) as client:
        assert await client.sts_policy("example.com") is not None
    assert http.requests == [URL]  # the second process did not fetch


async def test_the_given_memory_cache_is_used_directly(
    http: FakeHttpClient, clock: FrozenClock
) -> None:
    cache = MemoryPolicyCache()
    async with MtaSecure(resolver=world(), http=http, clock=clock, cache=cache) as client:
        await client.sts_policy("example.com")
    assert [e.domain for e in await cache.entries()] == ["example.com"]


class CountingHttp(FakeHttpClient):
    def __init__(self) -> None:
        super().__init__(delay=0.02)
        self.active = 0
        self.peak = 0

    async def get(self, url: str, *, max_bytes: int, timeout: float) -> HttpResponse:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            return await super().get(url, max_bytes=max_bytes, timeout=timeout)
        finally:
            self.active -= 1


async def test_proactive_refresh_only_busy_domains_with_bounded_concurrency(
    clock: FrozenClock,
) -> None:
    resolver = FakeResolver()
    http = CountingHttp()
    domains = [f"d{i}.example" for i in range(12)]
    for domain in [*domains, "idle.example"]:
        resolver.add(f"_mta-sts.{domain}", "TXT", ['"v=STSv1; id=1;"'])
        http.add_policy(domain, ENFORCE.replace("mx.example.com", f"mx.{domain}"))
    settings = {"refresh_concurrency": 3, "idle_after": timedelta(days=2), "refresh_jitter": 0.0}
    async with client_for(resolver, http, clock, **settings) as client:
        await asyncio.gather(*(client.sts_policy(d) for d in [*domains, "idle.example"]))
        assert await client.refresh_sts_policies() == ()  # nothing due yet
        clock.advance(timedelta(hours=23))
        for domain in domains:  # traffic for all but idle.example
            await client.sts_policy(domain)
        clock.advance(timedelta(days=1, hours=2))
        http.requests.clear()
        http.peak = 0
        refreshed = await client.refresh_sts_policies()
        assert sorted(refreshed) == sorted(domains)
        assert len(http.requests) == len(domains)
        assert http.peak == 3
        lookup = await client.sts_lookup("d0.example")
        assert lookup.entry is not None
        assert lookup.entry.fetched_at == clock.now()


async def test_proactive_refresh_failure_keeps_policy_and_logs(
    http: FakeHttpClient, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with client_for(world(), http, clock, refresh_jitter=0.0) as client:
        await client.sts_policy("example.com")
        clock.advance(timedelta(hours=23))
        await client.sts_policy("example.com")  # traffic, and nothing due yet
        clock.advance(timedelta(hours=2))
        http.add(URL, "down", status=500)
        with caplog.at_level("WARNING", logger="mtasecure.sts"):
            assert await client.refresh_sts_policies() == ("example.com",)
        assert "refresh of example.com failed" in caplog.text
        lookup = await client.sts_lookup("example.com")
        assert lookup.policy is not None
        assert lookup.policy.mode is PolicyMode.ENFORCE


async def test_background_refresh_task_runs_and_stops(http: FakeHttpClient) -> None:
    clock = FrozenClock("2025-06-01T00:00:00Z")
    async with client_for(world(), http, clock, refresh_every=0.01, refresh_jitter=0.0) as client:
        await client.sts_policy("example.com")
        clock.advance(timedelta(days=1))
        client._used["example.com"] = clock.now()
        client.start_sts_refresh()
        client.start_sts_refresh()  # idempotent
        for _ in range(200):
            if len(http.requests) >= 2:
                break
            await asyncio.sleep(0.01)
        assert len(http.requests) >= 2
    assert client._refresher is None


async def test_default_http_client_is_built_lazily_and_closed(clock: FrozenClock) -> None:
    resolver = world()
    client = MtaSecure(resolver=resolver, clock=clock)
    assert client._http is None
    built = client.http
    assert client.http is built
    await client.aclose()
    assert client._owned == []


async def test_default_http_client_takes_public_only(clock: FrozenClock) -> None:
    async with MtaSecure(
        resolver=world(), clock=clock, sts=StsSettings(public_only=True)
    ) as client:
        assert client.http.public_only  # type: ignore[attr-defined]
    async with MtaSecure(resolver=world(), clock=clock) as client:
        assert not client.http.public_only  # type: ignore[attr-defined]


async def test_an_old_failure_does_not_disable_the_fast_path(clock: FrozenClock) -> None:
    resolver = world(ttl=3600)
    http = FakeHttpClient()
    http.add(URL, ENFORCE)
    async with client_for(resolver, http, clock) as client:
        await client.sts_policy("example.com")
        set_record(resolver, "v=STSv1; id=2;", ttl=3600)
        http.add(URL, "down", status=500)
        clock.advance(3600)
        failed = await client.sts_lookup("example.com")  # id 2 cannot be fetched
        assert failed.result.reason is FailureReason.STS_POLICY_FETCH_ERROR
        set_record(resolver, "v=STSv1; id=1;", ttl=3600)  # the owner rolls back
        clock.advance(3600)
        back = await client.sts_lookup("example.com")
        assert back.result.ok
        queries = txt_queries(resolver)
        clock.advance(60)
        again = await client.sts_lookup("example.com")
        assert again is back  # answered from memory: no new lookup, no new model
        assert txt_queries(resolver) == queries


async def test_in_memory_tables_are_bounded(
    http: FakeHttpClient, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mtasecure.client as client_module

    monkeypatch.setattr(client_module, "MAX_TRACKED_DOMAINS", 20)
    resolver = FakeResolver()  # no records: every domain has no policy
    async with client_for(resolver, http, clock) as client:
        for i in range(100):
            await client.sts_lookup(f"d{i}.example")
        assert len(client._answers) <= 20
        assert len(client._txt) <= 20
        assert len(client._used) <= 20
        assert (await client.sts_lookup("d99.example")).policy is None


def test_default_settings_follow_the_rfc() -> None:
    settings = StsSettings()
    assert settings.fetch_timeout == 60.0  # RFC 8461 §3.3: "one minute"
    assert settings.max_policy_bytes == 65536  # RFC 8461 §3.3: 64 KiB
    assert settings.refresh_interval == timedelta(days=1)  # §3.3: "once per day"
    assert settings.policy_port == 443


class RecordingStore(BackStore):
    """A working persistent store whose reads can be made to fail."""

    def __init__(self) -> None:
        super().__init__()
        self.reads_fail = False

    async def get(self, domain: str) -> CachedPolicy | None:
        if self.reads_fail:
            self.calls.append(f"get {domain}")
            raise StoreError("down")
        return await super().get(domain)

    @property
    def deleted(self) -> list[str]:
        return [c for c in self.calls if c.startswith("delete")]


async def test_a_failed_fetch_after_a_restart_keeps_the_stored_policy(
    http: FakeHttpClient, clock: FrozenClock
) -> None:
    store = RecordingStore()
    resolver = world()
    async with MtaSecure(resolver=resolver, http=http, clock=clock, cache=store) as client:
        await client.sts_policy("example.com")
    before = await store.get("example.com")
    assert before is not None
    # The next process sees a new id and cannot fetch: the stored enforce
    # policy is used and stays in the store, untouched (RFC 8461 §5.1).
    set_record(resolver, "v=STSv1; id=2;")
    http.fail(URL, TransportTimeout("timed out"))
    clock.advance(3600)
    async with MtaSecure(resolver=resolver, http=http, clock=clock, cache=store) as client:
        lookup = await client.sts_lookup("example.com")
        assert lookup.policy is not None
        assert lookup.policy.mode is PolicyMode.ENFORCE
        assert lookup.result.reason is FailureReason.STS_POLICY_FETCH_ERROR
    assert store.deleted == []
    assert await store.get("example.com") == before


async def test_a_failed_store_read_and_fetch_never_delete_the_stored_policy(
    http: FakeHttpClient, clock: FrozenClock
) -> None:
    store = RecordingStore()
    resolver = world()
    async with MtaSecure(resolver=resolver, http=http, clock=clock, cache=store) as client:
        await client.sts_policy("example.com")
    before = await store.get("example.com")
    store.reads_fail = True
    http.fail(URL, TransportTimeout("timed out"))
    store.calls.clear()
    async with MtaSecure(resolver=resolver, http=http, clock=clock, cache=store) as client:
        await client.sts_lookup("example.com")
    assert store.calls == ["get example.com"]  # the failing read was reached, nothing else
    store.reads_fail = False
    assert store.deleted == []
    assert await store.get("example.com") == before


async def test_a_failed_store_write_keeps_the_new_policy_in_use(
    http: FakeHttpClient, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = RecordingStore()
    resolver = world()
    async with MtaSecure(resolver=resolver, http=http, clock=clock, cache=store) as client:
        await client.sts_policy("example.com")
        old = await store.get("example.com")

        async def put_fails(entry: CachedPolicy) -> None:
            raise StoreError("disk full")

        store.put = put_fails  # type: ignore[method-assign]
        set_record(resolver, "v=STSv1; id=2;")
        http.add(URL, TESTING)
        clock.advance(3600)
        with caplog.at_level("WARNING", logger="mtasecure.sts"):
            lookup = await client.sts_lookup("example.com")
        assert lookup.policy is not None
        assert lookup.policy.mode is PolicyMode.TESTING  # the new policy is used
        assert lookup.entry is not None
        assert lookup.entry.policy_id == "2"
    assert "policy cache write for example.com failed: disk full" in caplog.text
    assert await store.get("example.com") == old  # the store kept its last good entry
    assert store.deleted == []


async def test_a_memory_cache_subclass_is_reached_through_its_async_methods(
    http: FakeHttpClient, clock: FrozenClock
) -> None:
    class Persisting(MemoryPolicyCache):
        def __init__(self) -> None:
            super().__init__()
            self.saved: list[str] = []

        async def put(self, entry: CachedPolicy) -> None:
            self.saved.append(entry.domain)
            await super().put(entry)

    cache = Persisting()
    async with MtaSecure(resolver=world(), http=http, clock=clock, cache=cache) as client:
        assert await client.sts_policy("example.com") is not None
    assert cache.saved == ["example.com"]  # the override ran: it was not bypassed


async def test_an_expired_front_entry_yields_to_a_newer_one_in_the_shared_store(
    clock: FrozenClock,
) -> None:
    # Two members of a fleet share one store. A caches a one-hour policy; B
    # later fetches its successor (new id, one week). When A's copy expires,
    # A must take B's policy from the store, not drop the store's entry.
    short = ENFORCE.replace("max_age: 604800", "max_age: 3600")
    store = RecordingStore()
    resolver_a, http_a = world(ttl=60), FakeHttpClient()
    http_a.add(URL, short)
    async with MtaSecure(resolver=resolver_a, http=http_a, clock=clock, cache=store) as a:
        first = await a.sts_lookup("example.com")
        assert first.policy is not None
        assert first.policy.max_age == 3600
        clock.advance(1800)
        resolver_b, http_b = world("v=STSv1; id=2;"), FakeHttpClient()
        http_b.add(URL, ENFORCE)
        async with MtaSecure(resolver=resolver_b, http=http_b, clock=clock, cache=store) as b:
            assert (await b.sts_policy("example.com")).max_age == 604800  # type: ignore[union-attr]
        set_record(resolver_a, "v=STSv1; id=2;")
        http_a.fail(URL, TransportTimeout("timed out"))  # A could not fetch it itself
        clock.advance(3600)  # A's own copy has expired; B's has not
        second = await a.sts_lookup("example.com")
    assert second.policy is not None
    assert second.policy.max_age == 604800
    assert store.deleted == []
    assert (await store.get("example.com")) is not None
