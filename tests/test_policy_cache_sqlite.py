"""The SQLite policy cache beyond the shared suite: files, schema, limits, crashes (RFC 8461 §3.3, §5.1)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mtasecure import StoreError
from mtasecure.sts import CachedPolicy, StsPolicy, parse_policy
from mtasecure.transport import sqlite_cache
from mtasecure.transport.sqlite_cache import (
    BUSY_TIMEOUT,
    DEFAULT_PATH,
    MAX_ENTRY_BYTES,
    SCHEMA_VERSION,
    SqlitePolicyCache,
    read_row,
    write_row,
)
from tests.policy_cache_suite import NOW, make_entry

ROOT = Path(__file__).resolve().parent.parent


def test_public_names_and_limits() -> None:
    assert sqlite_cache.__all__ == sorted(sqlite_cache.__all__, key=lambda n: (not n.isupper(), n))
    assert set(sqlite_cache.__all__) == {
        "BUSY_TIMEOUT",
        "DEFAULT_PATH",
        "MAX_ENTRY_BYTES",
        "SCHEMA_VERSION",
        "SqlitePolicyCache",
    }
    assert SCHEMA_VERSION == 1
    assert BUSY_TIMEOUT == 5.0
    assert MAX_ENTRY_BYTES == 256 * 1024
    assert DEFAULT_PATH == "/var/lib/mtasecure/sts-policies.sqlite3"


async def test_entries_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    entry = make_entry(mode="testing")
    async with SqlitePolicyCache(path) as cache:
        await cache.put(entry)
    async with SqlitePolicyCache(path) as cache:
        assert await cache.get("example.com") == entry


async def test_the_file_is_versioned_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    async with SqlitePolicyCache(path) as cache:
        await cache.put(make_entry())
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        (text,) = db.execute("SELECT entry FROM sts_policies").fetchone()
    assert CachedPolicy.from_json(text) == make_entry()  # an operator can read the row


def test_a_newer_schema_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match=r"newer mtasecure \(schema 2; this one reads schema 1\)"):
        SqlitePolicyCache(path)


@pytest.mark.parametrize("kind", ["missing-no-create", "not-a-database", "a-directory", "no-dir"])
def test_unusable_files_raise_store_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "cache.sqlite3"
    create = True
    if kind == "missing-no-create":
        create = False
    elif kind == "not-a-database":
        path.write_bytes(b"this is not SQLite " * 100)
    elif kind == "a-directory":
        path.mkdir()
    else:
        path = tmp_path / "nowhere" / "cache.sqlite3"
    with pytest.raises(StoreError, match=r"cannot open the policy cache .*cache\.sqlite3"):
        SqlitePolicyCache(path, create=create)
    if kind == "missing-no-create":
        assert not path.exists()


def test_read_row_limit_is_exact() -> None:
    text = make_entry().to_json()
    padded = text + " " * (MAX_ENTRY_BYTES - len(text))
    assert read_row("example.com", padded) == make_entry()
    assert read_row("example.com", padded.encode()) == make_entry()
    assert read_row("example.com", padded + " ") is None
    assert read_row("example.com", (padded + " ").encode()) is None
    assert read_row("example.com", 42) is None


async def test_an_entry_over_the_limit_is_refused_and_the_old_one_kept(tmp_path: Path) -> None:
    mx = tuple(f"mx{i:04d}{'a' * 55}.example.com" for i in range(4000))
    huge = make_entry().model_copy(
        update={"policy": StsPolicy.model_validate({**make_entry().policy.model_dump(), "mx": mx})}
    )
    async with SqlitePolicyCache(tmp_path / "cache.sqlite3") as cache:
        await cache.put(make_entry(policy_id="old"))
        with pytest.raises(StoreError, match="larger than 262144 bytes"):
            await cache.put(huge)
        got = await cache.get("example.com")
        assert got is not None
        assert got.policy_id == "old"


async def test_a_locked_file_fails_after_busy_timeout_without_blocking_the_loop(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cache.sqlite3"
    async with SqlitePolicyCache(path, busy_timeout=0.5) as cache:
        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        try:
            with pytest.raises(StoreError, match="database is locked"):
                await cache.put(make_entry())
        finally:
            task.cancel()
            locker.execute("ROLLBACK")
            locker.close()
        # The put waited half a second in the store's thread; the loop kept running.
        assert ticks >= 10
        await cache.put(make_entry())
        assert await cache.get("example.com") == make_entry()


async def test_a_closed_store_raises_store_error(tmp_path: Path) -> None:
    cache = SqlitePolicyCache(tmp_path / "cache.sqlite3")
    await cache.aclose()
    with pytest.raises(StoreError, match="is closed"):
        await cache.get("example.com")
    with pytest.raises(StoreError, match="is closed"):
        await cache.put(make_entry())


async def test_rows_show_unreadable_entries_and_purge_removes_them(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    async with SqlitePolicyCache(path) as cache:
        await cache.put(make_entry("fresh.example"))
        await cache.put(make_entry("old.example", fetched_at=NOW - timedelta(days=30)))
        with sqlite3.connect(path) as db:
            db.execute("INSERT INTO sts_policies VALUES ('bad.example', '{oops')")
        rows = dict(await cache.rows())
        assert sorted(rows) == ["bad.example", "fresh.example", "old.example"]
        assert rows["bad.example"] is None
        assert [e.domain for e in await cache.entries()] == ["fresh.example", "old.example"]
        assert await cache.purge(expired_at=NOW) == 2
        assert [d for d, _ in await cache.rows()] == ["fresh.example"]
        assert await cache.purge() == 1
        assert await cache.rows() == ()


_WRITER = """
import asyncio, sys
from datetime import UTC, datetime
from mtasecure.sts import CachedPolicy, parse_policy
from mtasecure.transport.sqlite_cache import SqlitePolicyCache

def entry(i):
    mx = "".join(f"mx: mx{k}.n{i}.example\\n" for k in range(i % 30 + 1))
    policy = parse_policy(f"version: STSv1\\nmode: enforce\\n{mx}max_age: 86400\\n")
    return CachedPolicy.from_fetch(f"d{i % 50}.example", policy, str(i), datetime.now(UTC))

async def main(path):
    entries = [entry(i) for i in range(300)]  # built first, so the loop is all puts
    async with SqlitePolicyCache(path) as cache:
        i = 0
        while True:
            await cache.put(entries[i % 300])
            if i == 100:
                print("ready", flush=True)
            i += 1

asyncio.run(main(sys.argv[1]))
"""


def test_a_crash_mid_write_never_corrupts_the_file(tmp_path: Path) -> None:
    """SIGKILL a process in a tight put loop, five times; the file stays whole."""
    path = tmp_path / "cache.sqlite3"
    rng = random.Random(8461)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in range(5):
        writer = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path)],
            stdout=subprocess.PIPE,
            cwd=ROOT,
            env=env,
        )
        try:
            assert writer.stdout is not None
            assert writer.stdout.readline() == b"ready\n"
            # Sleep a random while, so the kill lands anywhere in a put.
            subprocess.run(["sleep", f"{rng.uniform(0.01, 0.15):.3f}"], check=True)
            os.kill(writer.pid, signal.SIGKILL)
        finally:
            writer.kill()
            writer.wait()
            if writer.stdout is not None:
                writer.stdout.close()
        assert writer.returncode == -signal.SIGKILL
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            rows = db.execute("SELECT domain, entry FROM sts_policies").fetchall()
        assert len(rows) == 50
        for domain, text in rows:
            entry = read_row(domain, text)
            assert entry is not None, f"unreadable row for {domain}"
            i = int(entry.policy_id)
            assert domain == f"d{i % 50}.example"
            assert entry.policy.mx == tuple(f"mx{k}.n{i}.example" for k in range(i % 30 + 1))


async def test_two_stores_on_one_file_see_each_others_writes(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    async with SqlitePolicyCache(path) as a, SqlitePolicyCache(path) as b:
        await a.put(make_entry(policy_id="from-a"))
        got = await b.get("example.com")
        assert got is not None
        assert got.policy_id == "from-a"
        await asyncio.gather(*(b.put(make_entry(f"d{i}.example")) for i in range(20)))
        assert len(await a.entries()) == 21
        assert await a.delete("d3.example") is True
        assert await b.get("d3.example") is None


@given(st.one_of(st.binary(max_size=512), st.text(max_size=512)))
def test_read_row_never_raises(value: bytes | str) -> None:
    entry = read_row("example.com", value)  # any stored value: an entry or None, no exception
    assert entry is None or entry.domain == "example.com"


@given(
    domain=st.from_regex(r"[a-z0-9]{1,20}(\.[a-z0-9]{1,20}){1,3}", fullmatch=True),
    policy_id=st.from_regex(r"[A-Za-z0-9]{1,32}", fullmatch=True),
    seconds=st.integers(min_value=0, max_value=31557600),
    offset=st.integers(min_value=-(10**8), max_value=10**8),
    mode=st.sampled_from(["enforce", "testing", "none"]),
)
def test_read_row_reads_back_what_write_row_wrote(
    domain: str, policy_id: str, seconds: int, offset: int, mode: str
) -> None:
    entry = make_entry(
        domain, policy_id, mode=mode, fetched_at=NOW + timedelta(seconds=offset), max_age=seconds
    )
    text = write_row(entry)
    assert read_row(domain, text) == entry
    assert read_row(domain, text.encode()) == entry
    assert read_row(domain + "x", text) is None
    # Any cut of the text is not a whole entry: never read as one.
    cut = len(text) * 2 // 3
    assert read_row(domain, text[:cut]) is None


async def test_a_full_disk_raises_store_error_and_keeps_the_old_entry(tmp_path: Path) -> None:
    async with SqlitePolicyCache(tmp_path / "cache.sqlite3") as cache:
        await cache.put(make_entry(policy_id="old"))
        # Cap the file at its current size, as a full disk would (SQLITE_FULL).
        pages = cache._file._db.execute("PRAGMA page_count").fetchone()[0]
        cache._file._db.execute(f"PRAGMA max_page_count = {pages}")
        big_mx = "".join(f"mx: mx{i}.{'b' * 50}.example\n" for i in range(200))
        policy = parse_policy(f"version: STSv1\nmode: enforce\n{big_mx}max_age: 86400\n")
        big = make_entry(policy_id="new").model_copy(update={"policy": policy})
        with pytest.raises(StoreError, match="database or disk is full"):
            await cache.put(big)
        assert await cache.get("example.com") == make_entry(policy_id="old")
