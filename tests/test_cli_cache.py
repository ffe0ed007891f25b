"""``mtasecure cache list|show|delete|purge|edit`` on a SQLite file written through the store."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mtasecure.cli import main
from mtasecure.sts import CachedPolicy
from mtasecure.transport.sqlite_cache import SCHEMA_VERSION, SqlitePolicyCache
from tests.policy_cache_suite import make_entry

NOW = datetime.now(UTC).replace(microsecond=0)
FRESH = make_entry("example.com", "20250601", mx="*.mx.example.com", fetched_at=NOW)
TESTING = make_entry("xn--bcher-kva.example", "t1", mode="testing", fetched_at=NOW)
OLD = make_entry("old.example", "9", fetched_at=NOW - timedelta(days=30), max_age=86400)


def write(path: Path, *entries: CachedPolicy) -> None:
    async def go() -> None:
        async with SqlitePolicyCache(path) as cache:
            for entry in entries:
                await cache.put(entry)

    asyncio.run(go())


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "policies.sqlite3"
    write(path, FRESH, TESTING, OLD)
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO sts_policies VALUES ('bad.example', 'not json')")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["cache", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def stamp(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_list_shows_every_row(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "list", "--db", str(db))
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split() == ["DOMAIN", "MODE", "ID", "FETCHED", "EXPIRES", "STATE"]
    assert [line.split()[0] for line in lines[1:-1]] == [
        "bad.example",
        "example.com",
        "old.example",
        "xn--bcher-kva.example",
    ]
    row = next(line for line in lines if line.startswith("example.com"))
    assert row.split()[:5] == [
        "example.com",
        "enforce",
        "20250601",
        stamp(NOW),
        stamp(NOW + timedelta(days=7)),
    ]
    assert "valid for 6d 23h" in row or "valid for 7d 0h" in row
    assert "expired 29d 0h ago" in next(line for line in lines if line.startswith("old."))
    assert "unreadable (counts as absent)" in lines[1]
    assert lines[-1] == "4 entries (1 expired, 1 unreadable)"


def test_list_json(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "list", "--db", str(db), "--json")
    assert status == 0
    data = json.loads(out)
    assert data[0] == {"domain": "bad.example", "unreadable": True}
    com = data[1]
    assert com == {
        "domain": "example.com",
        "policy_id": "20250601",
        "mode": "enforce",
        "mx": ["*.mx.example.com"],
        "max_age": 604800,
        "fetched_at": stamp(NOW),
        "expires_at": stamp(NOW + timedelta(days=7)),
        "expired": False,
        "policy": "version: STSv1\r\nmode: enforce\r\nmx: *.mx.example.com\r\nmax_age: 604800\r\n",
    }
    assert data[2]["expired"] is True
    assert data[3]["mode"] == "testing"


def test_list_of_an_empty_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "empty.sqlite3"
    write(path)
    status, out, _ = run(capsys, "list", "--db", str(path))
    assert (status, out.splitlines()[-1]) == (0, "0 entries (0 expired, 0 unreadable)")
    assert run(capsys, "list", "--db", str(path), "--json") == (0, "[]\n", "")


def test_show_renders_the_policy(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The name is normalised as the client does: case, trailing dot, U-labels.
    status, out, _ = run(capsys, "show", "Example.COM.", "--db", str(db))
    assert status == 0
    assert out.startswith(
        "domain      example.com\n"
        "policy id   20250601\n"
        "mode        enforce\n"
        f"fetched at  {stamp(NOW)}\n"
        f"expires at  {stamp(NOW + timedelta(days=7))} (valid for "
    )
    assert out.endswith(
        "\n\nversion: STSv1\nmode: enforce\nmx: *.mx.example.com\nmax_age: 604800\n"
    )
    status, out, _ = run(capsys, "show", "bücher.example", "--db", str(db))
    assert status == 0
    assert "mode        testing\n" in out
    status, out, _ = run(capsys, "show", "old.example", "--db", str(db), "--json")
    assert status == 0
    assert json.loads(out)["expired"] is True
    assert json.loads(out)["policy_id"] == "9"


def test_show_of_missing_and_unreadable_entries(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "show", "example.org", "--db", str(db)) == (
        1,
        "",
        "mtasecure cache show: no cached policy for example.org\n",
    )
    status, out, err = run(capsys, "show", "bad.example", "--db", str(db))
    assert (status, out) == (1, "")
    assert "cannot be read (it counts as absent)" in err
    assert "'mtasecure cache delete bad.example' removes it" in err


def test_delete(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "delete", "EXAMPLE.com", "--db", str(db)) == (
        0,
        "deleted the cached policy for example.com\n",
        "",
    )
    assert run(capsys, "delete", "example.com", "--db", str(db)) == (
        1,
        "",
        "mtasecure cache delete: no cached policy for example.com\n",
    )
    status, out, _ = run(capsys, "delete", "bad.example", "--db", str(db), "--json")
    assert status == 0
    assert json.loads(out) == {"domain": "bad.example", "deleted": True}
    status, out, _ = run(capsys, "list", "--db", str(db), "--json")
    assert [row["domain"] for row in json.loads(out)] == ["old.example", "xn--bcher-kva.example"]


def test_purge_expired_then_all(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "purge", "--expired", "--db", str(db)) == (
        0,
        "purged 2 expired or unreadable entries\n",
        "",
    )
    status, out, _ = run(capsys, "list", "--db", str(db), "--json")
    assert [row["domain"] for row in json.loads(out)] == ["example.com", "xn--bcher-kva.example"]
    status, out, _ = run(capsys, "purge", "--db", str(db), "--json")
    assert status == 0
    assert json.loads(out) == {"purged": 2, "expired_only": False}
    assert run(capsys, "list", "--db", str(db), "--json")[1] == "[]\n"


@pytest.mark.parametrize("kind", ["missing", "not-a-database", "directory", "newer-schema"])
def test_a_bad_db_path_is_a_clear_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    path = tmp_path / "x.sqlite3"
    if kind == "not-a-database":
        path.write_text("hello " * 500)
    elif kind == "directory":
        path.mkdir()
    elif kind == "newer-schema":
        with sqlite3.connect(path) as conn:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    status, out, err = run(capsys, "list", "--db", str(path))
    assert (status, out) == (2, "")
    assert err.startswith("mtasecure cache list: ")
    assert "Traceback" not in err
    if kind == "newer-schema":
        assert "written by a newer mtasecure" in err
    else:
        assert f"cannot open the policy cache {path}" in err
    assert kind != "missing" or not path.exists()  # the CLI never creates a cache


def test_a_bad_domain_is_a_usage_error(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "show", "exa mple..com", "--db", str(db))
    assert (status, out) == (2, "")
    assert err.startswith("mtasecure cache show: ")


def test_cache_without_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys)
    assert status == 2
    assert "list, show DOMAIN, delete DOMAIN, edit DOMAIN or purge" in err


def test_the_default_path_is_documented_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["cache", "list", "--help"])
    assert exit_info.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split()).replace("sts- policies", "sts-policies")
    assert "(default /var/lib/mtasecure/sts-policies.sqlite3)" in help_text


def test_the_installed_command_reports_a_bad_path_without_a_traceback(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-m", "mtasecure", "cache", "show", "example.com", "--db", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=root,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(f"mtasecure cache show: cannot open the policy cache {tmp_path}")
    assert "Traceback" not in done.stderr


def read(path: Path, domain: str) -> CachedPolicy | None:
    async def go() -> CachedPolicy | None:
        async with SqlitePolicyCache(path, create=False) as cache:
            return await cache.get(domain)

    return asyncio.run(go())


POLICY = "version: STSv1\r\nmode: enforce\r\nmx: mx.pinned.example\r\nmax_age: 604800\r\n"


def test_edit_changes_only_what_is_given(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "edit", "example.com", "--id", "pinned1", "--db", str(db))
    assert status == 0
    assert "edited the cached policy for example.com: id pinned1" in out
    entry = read(db, "example.com")
    assert entry is not None
    assert entry.policy_id == "pinned1"
    assert entry.policy == FRESH.policy
    assert entry.expires_at == FRESH.expires_at
    assert entry.fetched_at == FRESH.fetched_at


def test_edit_replaces_the_policy_and_expiry(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "policy.txt"
    file.write_text(POLICY)
    before = datetime.now(UTC)
    status, out, _ = run(
        capsys,
        "edit",
        "Example.COM.",
        "--policy",
        str(file),
        "--expires-in",
        "3600",
        "--json",
        "--db",
        str(db),
    )
    assert status == 0
    shown = json.loads(out)
    assert shown["mx"] == ["mx.pinned.example"]
    entry = read(db, "example.com")
    assert entry is not None
    assert entry.policy.mx == ("mx.pinned.example",)
    assert entry.policy_id == FRESH.policy_id
    assert (
        before + timedelta(seconds=3599)
        <= entry.expires_at
        <= datetime.now(UTC) + timedelta(seconds=3600)
    )


def test_edit_adds_an_entry_only_with_a_policy(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(capsys, "edit", "new.example", "--id", "x1", "--db", str(db))
    assert status == 1
    assert "give --policy FILE" in err
    assert read(db, "new.example") is None
    file = tmp_path / "policy.txt"
    file.write_text(POLICY)
    status, out, _ = run(capsys, "edit", "new.example", "--policy", str(file), "--db", str(db))
    assert status == 0
    assert "added the cached policy for new.example: id operator" in out
    entry = read(db, "new.example")
    assert entry is not None
    assert entry.expires_at - entry.fetched_at == timedelta(seconds=604800)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--id", "bad id!"], "is not 1 to 32 letters and digits"),
        (["--id", "a" * 33], "is not 1 to 32 letters and digits"),
        (["--id", "é" * 3], "is not 1 to 32 letters and digits"),
        (["--id", ""], "is not 1 to 32 letters and digits"),
        (["--expires-in", "-1"], "must lie in 0..31557600"),
        (["--expires-in", "31557601"], "must lie in 0..31557600"),
        ([], "nothing to change"),
    ],
)
def test_edit_rejects_bad_values_without_writing(
    db: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    status, _, err = run(capsys, "edit", "example.com", *argv, "--db", str(db))
    assert status == 2
    assert message in err
    assert read(db, "example.com") == FRESH


def test_edit_rejects_an_invalid_policy_file(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "policy.txt"
    file.write_text("version: STSv1\nmode: enforcing\nmx: a.example\nmax_age: 1\n")
    status, _, err = run(capsys, "edit", "example.com", "--policy", str(file), "--db", str(db))
    assert status == 2
    assert "mode 'enforcing' is not one of enforce, testing, none" in err
    assert read(db, "example.com") == FRESH
