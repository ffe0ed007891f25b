"""The conformance suite every :class:`~mtasecure.transport.PolicyCache` passes (RFC 8461 §3.3, §5.1).

Each store's test module subclasses :class:`PolicyCacheSuite` and provides a
``cache`` fixture (a fresh, empty store) plus the hooks its store supports:
``raw_put`` (write bytes under a domain, as a hand edit or a bug would) and
``break_store`` / ``mend_store`` (make writes fail, then work again). A store
without a hook skips those tests, saying why.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import pytest

from mtasecure import StoreError
from mtasecure.client import MtaSecure
from mtasecure.sts import CachedPolicy, PolicyMode, parse_policy
from mtasecure.testing import FakeHttpClient, FakeResolver, FrozenClock
from mtasecure.transport import PolicyCache

NOW = datetime(2025, 6, 1, tzinfo=UTC)
URL = "https://mta-sts.example.com/.well-known/mta-sts.txt"


def policy_text(mode: str = "enforce", mx: str = "mx.example.com", max_age: int = 604800) -> str:
    return f"version: STSv1\nmode: {mode}\nmx: {mx}\nmax_age: {max_age}\n"


def make_entry(
    domain: str = "example.com",
    policy_id: str = "1",
    *,
    mode: str = "enforce",
    mx: str = "mx.example.com",
    fetched_at: datetime = NOW,
    max_age: int = 604800,
) -> CachedPolicy:
    policy = parse_policy(policy_text(mode, mx, max_age))
    return CachedPolicy.from_fetch(domain, policy, policy_id, fetched_at)


UNREADABLE: dict[str, bytes] = {
    "not-json": b"{not json",
    "not-utf8": b"\xff\xfe\x00garbage",
    "empty": b"",
    "json-list": b"[1, 2, 3]",
    "other-format": make_entry().to_json().replace('"format": 1', '"format": 99').encode(),
    "bad-policy": make_entry().to_json().replace("mode: enforce", "mode: enfore").encode(),
    "naive-time": make_entry().to_json().replace("+00:00", "").encode(),
    "other-domain": make_entry("example.org").to_json().encode(),
    "huge": b'{"format": 1, "pad": "' + b"x" * (300 * 1024) + b'"}',
}


class PolicyCacheSuite:
    """Behaviour shared by every policy store; subclasses provide ``cache``."""

    #: whether a store that failed and came back still holds what it held
    survives_outage = True

    async def raw_put(self, cache: PolicyCache, domain: str, value: bytes) -> None:
        pytest.skip("this store holds objects, not text: nothing can be unreadable")

    async def break_store(self, cache: PolicyCache) -> None:
        pytest.skip("this store cannot fail")

    async def mend_store(self, cache: PolicyCache) -> None:
        raise NotImplementedError

    # --- put / get / replace / delete / entries --------------------------------

    async def test_it_is_a_policy_cache(self, cache: PolicyCache) -> None:
        assert isinstance(cache, PolicyCache)

    async def test_get_of_an_unknown_domain_is_none(self, cache: PolicyCache) -> None:
        assert await cache.get("example.com") is None
        assert await cache.entries() == ()

    async def test_put_then_get_gives_the_same_entry(self, cache: PolicyCache) -> None:
        entry = make_entry(mode="testing", mx="*.example.com")
        await cache.put(entry)
        got = await cache.get("example.com")
        assert got == entry
        assert got is not None
        assert got.policy.mode is PolicyMode.TESTING
        assert got.fetched_at.tzinfo is not None
        assert got.expires_at == entry.expires_at

    async def test_put_replaces_the_entry_of_the_same_domain(self, cache: PolicyCache) -> None:
        await cache.put(make_entry(policy_id="1"))
        await cache.put(make_entry(policy_id="2", mode="none"))
        got = await cache.get("example.com")
        assert got is not None
        assert got.policy_id == "2"
        assert got.policy.mode is PolicyMode.NONE
        assert [e.policy_id for e in await cache.entries()] == ["2"]

    async def test_domains_are_kept_apart(self, cache: PolicyCache) -> None:
        await cache.put(make_entry("example.com", "a"))
        await cache.put(make_entry("xn--bcher-kva.example", "b"))
        await cache.put(make_entry("mail.example.com", "c"))
        got = await cache.get("xn--bcher-kva.example")
        assert got is not None
        assert got.policy_id == "b"
        assert await cache.get("example.org") is None
        assert await cache.get("EXAMPLE.COM") is None  # keys are the client's normalised names

    async def test_delete_removes_and_says_whether_there_was_an_entry(
        self, cache: PolicyCache
    ) -> None:
        await cache.put(make_entry("example.com"))
        await cache.put(make_entry("example.org"))
        assert await cache.delete("example.com") is True
        assert await cache.delete("example.com") is False
        assert await cache.get("example.com") is None
        assert [e.domain for e in await cache.entries()] == ["example.org"]

    async def test_entries_lists_every_entry_once(self, cache: PolicyCache) -> None:
        domains = [f"d{i}.example" for i in range(600)]
        for domain in domains:
            await cache.put(make_entry(domain))
        await cache.put(make_entry("d7.example", "again"))
        listed = await cache.entries()
        assert sorted(e.domain for e in listed) == sorted(domains)
        assert {e.policy_id for e in listed if e.domain == "d7.example"} == {"again"}

    async def test_expired_entries_are_kept(self, cache: PolicyCache) -> None:
        # Deciding what an expired entry means is the planner's job, not the store's.
        old = make_entry(fetched_at=NOW - timedelta(days=3), max_age=86400)
        assert not old.valid_at(NOW)
        await cache.put(old)
        assert await cache.get("example.com") == old
        assert await cache.entries() == (old,)

    async def test_close_is_idempotent(self, cache: PolicyCache) -> None:
        await cache.put(make_entry())
        await cache.aclose()
        await cache.aclose()

    # --- unreadable entries ------------------------------------------------------

    @pytest.mark.parametrize("kind", sorted(UNREADABLE))
    async def test_an_unreadable_entry_counts_as_absent(
        self, cache: PolicyCache, kind: str
    ) -> None:
        await cache.put(make_entry("example.org"))
        await self.raw_put(cache, "example.com", UNREADABLE[kind])
        assert await cache.get("example.com") is None
        assert [e.domain for e in await cache.entries()] == ["example.org"]
        await cache.put(make_entry("example.com", "fresh"))  # a new fetch replaces it
        got = await cache.get("example.com")
        assert got is not None
        assert got.policy_id == "fresh"

    # --- concurrency -----------------------------------------------------------

    async def test_many_tasks_putting_and_getting(self, cache: PolicyCache) -> None:
        domains = [f"c{i}.example" for i in range(10)]
        rng = random.Random(8461)
        written: dict[str, set[str]] = {d: set() for d in domains}

        async def worker(n: int) -> None:
            for step in range(20):
                domain = rng.choice(domains)
                if step % 3:
                    got = await cache.get(domain)
                    if got is not None:  # a whole entry, one that was put for this domain
                        assert got.domain == domain
                        assert got.policy_id in written[domain]
                else:
                    policy_id = f"{n}x{step}"
                    written[domain].add(policy_id)
                    await cache.put(make_entry(domain, policy_id))

        await asyncio.gather(*(worker(n) for n in range(20)))
        for domain in domains:
            got = await cache.get(domain)
            if written[domain]:
                assert got is not None
                assert got.policy_id in written[domain]
        listed = await cache.entries()
        assert len({e.domain for e in listed}) == len(listed)

    # --- failures ----------------------------------------------------------------

    async def test_a_failed_put_raises_store_error_and_drops_nothing(
        self, cache: PolicyCache
    ) -> None:
        old = make_entry(policy_id="old")
        await cache.put(old)
        await self.break_store(cache)
        try:
            with pytest.raises(StoreError):
                await cache.put(make_entry(policy_id="new"))
            with pytest.raises(StoreError):
                await cache.delete("example.com")
            try:  # reading may still work (SQLite readers are not blocked by a writer)
                seen = await cache.get("example.com")
            except StoreError:
                pass
            else:
                assert seen == old
        finally:
            await self.mend_store(cache)
        if self.survives_outage:
            assert await cache.get("example.com") == old

    async def test_the_client_keeps_serving_its_memory_copy_when_the_store_fails(
        self, cache: PolicyCache
    ) -> None:
        resolver = FakeResolver()
        resolver.add("_mta-sts.example.com", "TXT", ['"v=STSv1; id=1;"'], ttl=60)
        http = FakeHttpClient()
        http.add(URL, policy_text())
        clock = FrozenClock(NOW)
        async with MtaSecure(resolver=resolver, http=http, clock=clock, cache=cache) as client:
            first = await client.sts_policy("example.com")
            assert first is not None
            assert first.mode is PolicyMode.ENFORCE
            await self.break_store(cache)
            try:
                # A new id whose fetch fails: the cached enforce policy stays.
                resolver._rrsets.pop(("_mta-sts.example.com", "TXT"))
                resolver.add("_mta-sts.example.com", "TXT", ['"v=STSv1; id=2;"'], ttl=60)
                http.add(URL, "", status=404)
                clock.advance(120)
                kept = await client.sts_policy("example.com")
                assert kept == first
                # A later fetch succeeds: served from memory although the store write fails.
                http.add(URL, policy_text(mx="mx2.example.com"))
                clock.advance(600)
                fresh = await client.sts_policy("example.com")
                assert fresh is not None
                assert fresh.mx == ("mx2.example.com",)
                requests = len(http.requests)
                assert await client.sts_policy("example.com") == fresh
                assert len(http.requests) == requests
            finally:
                await self.mend_store(cache)
