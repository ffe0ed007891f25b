"""``mtasecure cache``: list, show, delete, purge and edit the SQLite MTA-STS policy cache.

The operator's view of :class:`~mtasecure.transport.sqlite_cache.SqlitePolicyCache`
(RFC 8461 §3.3, §5.1)::

    mtasecure cache list              [--db PATH] [--json]
    mtasecure cache show DOMAIN       [--db PATH] [--json]
    mtasecure cache delete DOMAIN     [--db PATH] [--json]
    mtasecure cache purge [--expired] [--db PATH] [--json]
    mtasecure cache edit DOMAIN [--policy FILE] [--id ID] [--expires-in SECONDS]
                                [--db PATH] [--json]

``--db`` defaults to :data:`~mtasecure.transport.sqlite_cache.DEFAULT_PATH`;
the file must exist (the CLI never creates one). Deleting a domain's entry
makes the MTA fetch its policy again on next use; it does not remove a
policy from an MTA's memory until that MTA restarts. ``purge --expired``
also removes rows that cannot be read (they count as absent anyway).

``edit`` replaces a domain's entry with what the operator gives: a policy file
(parsed with the same strict parser as a fetched one, RFC 8461 §3.2), a record
id, and how long the entry is kept from now. Unset parts keep the cached
values; without a cached entry ``--policy`` is required, the id defaults to
:data:`OPERATOR_ID` and the entry is kept for the policy's ``max_age``. The
entry is written like any fetched one: an MTA re-fetches when the domain's
``_mta-sts`` id differs from the edited id (RFC 8461 §5.1), so pinning a
policy for a broken peer means giving the id the domain publishes.

Exit status: 0 on success, 1 when the domain has no (readable) entry, 2 for
a usage error (bad arguments, a bad domain name, a file that cannot be
opened or was written by a newer mtasecure).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from mtasecure.errors import NameSyntaxError, ParseError, StoreError, UsageError
from mtasecure.sts import CachedPolicy, StsPolicy, parse_policy, render_policy, render_record
from mtasecure.sts._match import cached_host
from mtasecure.transport.sqlite_cache import DEFAULT_PATH, SqlitePolicyCache

__all__ = ["add_cache_parser", "run_cache"]

OPERATOR_ID = "operator"
"""The record id ``cache edit`` gives a new entry when ``--id`` is not given."""
MAX_EDIT_SECONDS = 31557600
"""Longest ``--expires-in``: the ``max_age`` limit of RFC 8461 §3.2."""

EXIT_OK = 0
EXIT_MISSING = 1
EXIT_USAGE = 2


def add_cache_parser(commands: Any) -> None:
    """Add ``cache`` and its subcommands to the ``mtasecure`` parser's subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--db",
        metavar="PATH",
        default=DEFAULT_PATH,
        help=f"the SQLite policy cache (default {DEFAULT_PATH})",
    )
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    cache = commands.add_parser(
        "cache", help="list, show, delete, purge and edit cached MTA-STS policies (SQLite)"
    )
    cache.description = "Inspect and edit the SQLite MTA-STS policy cache (RFC 8461 §3.3, §5.1)."
    sub = cache.add_subparsers(dest="cache_command", metavar="SUBCOMMAND")
    sub.add_parser("list", parents=[common], help="one line per cached policy")
    show = sub.add_parser("show", parents=[common], help="a domain's cached policy in full")
    show.add_argument("domain", metavar="DOMAIN")
    delete = sub.add_parser("delete", parents=[common], help="forget a domain's cached policy")
    delete.add_argument("domain", metavar="DOMAIN")
    purge = sub.add_parser("purge", parents=[common], help="forget every cached policy")
    purge.add_argument(
        "--expired",
        action="store_true",
        help="only the expired ones (and rows that cannot be read)",
    )
    edit = sub.add_parser(
        "edit", parents=[common], help="replace a domain's policy, id or expiry by hand"
    )
    edit.add_argument("domain", metavar="DOMAIN")
    edit.add_argument("--policy", metavar="FILE", help="a policy file ('-' reads standard input)")
    edit.add_argument("--id", dest="policy_id", metavar="ID", help="the _mta-sts record id")
    edit.add_argument(
        "--expires-in",
        metavar="SECONDS",
        type=int,
        help=f"keep the entry this long from now (0..{MAX_EDIT_SECONDS})",
    )


def run_cache(args: argparse.Namespace, out: TextIO, err: TextIO | None = None) -> int:
    """Run ``mtasecure cache …``; returns the exit status."""
    err = err if err is not None else sys.stderr
    command = getattr(args, "cache_command", None)
    if command is None:
        err.write("mtasecure cache: say list, show DOMAIN, delete DOMAIN, edit DOMAIN or purge\n")
        return EXIT_USAGE
    domain = None
    if command in ("show", "delete", "edit"):
        try:
            domain = cached_host(args.domain)
        except NameSyntaxError as exc:
            err.write(f"mtasecure cache {command}: {exc}\n")
            return EXIT_USAGE
    now = datetime.now(UTC)
    edited: _Edit | None = None
    if command == "edit":
        try:
            edited = _read_edit(args)
        except (ParseError, OSError, ValueError) as exc:
            err.write(f"mtasecure cache edit: {exc}\n")
            return EXIT_USAGE
    handlers: dict[str, Callable[[SqlitePolicyCache], Awaitable[int]]] = {
        "list": lambda c: _list(c, now, args.json, out),
        "show": lambda c: _show(c, domain or "", now, as_json=args.json, out=out, err=err),
        "delete": lambda c: _delete(c, domain or "", args.json, out, err),
        "purge": lambda c: _purge(c, now if args.expired else None, args.json, out),
        "edit": lambda c: _edit(c, domain or "", edited, now, as_json=args.json, out=out, err=err),
    }
    try:
        return asyncio.run(_with_cache(args.db, handlers[command]))
    except StoreError as exc:
        err.write(f"mtasecure cache {command}: {exc}\n")
        return EXIT_USAGE


async def _with_cache(path: str, work: Callable[[SqlitePolicyCache], Awaitable[int]]) -> int:
    async with SqlitePolicyCache(path, create=False) as cache:
        return await work(cache)


def _time(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _span(delta: timedelta) -> str:
    seconds = int(abs(delta).total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {rest // 60}m" if hours else f"{rest // 60}m {rest % 60}s"


def _state(entry: CachedPolicy, now: datetime) -> str:
    if entry.valid_at(now):
        return f"valid for {_span(entry.expires_at - now)}"
    return f"expired {_span(now - entry.expires_at)} ago"


def _as_json(entry: CachedPolicy, now: datetime) -> dict[str, object]:
    return {
        "domain": entry.domain,
        "policy_id": entry.policy_id,
        "mode": entry.policy.mode.value,
        "mx": list(entry.policy.mx),
        "max_age": entry.policy.max_age,
        "fetched_at": _time(entry.fetched_at),
        "expires_at": _time(entry.expires_at),
        "expired": not entry.valid_at(now),
        "policy": render_policy(entry.policy),
    }


def _dump(data: object, out: TextIO) -> None:
    out.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


async def _list(cache: SqlitePolicyCache, now: datetime, as_json: bool, out: TextIO) -> int:
    rows = await cache.rows()
    if as_json:
        _dump(
            [
                _as_json(entry, now) if entry else {"domain": domain, "unreadable": True}
                for domain, entry in rows
            ],
            out,
        )
        return EXIT_OK
    table = [("DOMAIN", "MODE", "ID", "FETCHED", "EXPIRES", "STATE")]
    for domain, entry in rows:
        if entry is None:
            table.append((domain, "-", "-", "-", "-", "unreadable (counts as absent)"))
        else:
            table.append(
                (
                    domain,
                    entry.policy.mode.value,
                    entry.policy_id,
                    _time(entry.fetched_at),
                    _time(entry.expires_at),
                    _state(entry, now),
                )
            )
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    for row in table:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        out.write("  ".join([*cells, row[5]]) + "\n")
    expired = sum(1 for _, e in rows if e is not None and not e.valid_at(now))
    unreadable = sum(1 for _, e in rows if e is None)
    out.write(f"{len(rows)} entries ({expired} expired, {unreadable} unreadable)\n")
    return EXIT_OK


async def _show(
    cache: SqlitePolicyCache, domain: str, now: datetime, *, as_json: bool, out: TextIO, err: TextIO
) -> int:
    rows = dict(await cache.rows())
    if domain not in rows:
        err.write(f"mtasecure cache show: no cached policy for {domain}\n")
        return EXIT_MISSING
    entry = rows[domain]
    if entry is None:
        err.write(
            f"mtasecure cache show: the entry for {domain} cannot be read (it counts as "
            f"absent); 'mtasecure cache delete {domain}' removes it\n"
        )
        return EXIT_MISSING
    if as_json:
        _dump(_as_json(entry, now), out)
        return EXIT_OK
    out.write(
        f"domain      {entry.domain}\n"
        f"policy id   {entry.policy_id}\n"
        f"mode        {entry.policy.mode.value}\n"
        f"fetched at  {_time(entry.fetched_at)}\n"
        f"expires at  {_time(entry.expires_at)} ({_state(entry, now)})\n"
        f"\n{render_policy(entry.policy).replace(chr(13), '')}"
    )
    return EXIT_OK


async def _delete(
    cache: SqlitePolicyCache, domain: str, as_json: bool, out: TextIO, err: TextIO
) -> int:
    deleted = await cache.delete(domain)
    if as_json:
        _dump({"domain": domain, "deleted": deleted}, out)
    elif deleted:
        out.write(f"deleted the cached policy for {domain}\n")
    else:
        err.write(f"mtasecure cache delete: no cached policy for {domain}\n")
    return EXIT_OK if deleted else EXIT_MISSING


async def _purge(
    cache: SqlitePolicyCache, expired_at: datetime | None, as_json: bool, out: TextIO
) -> int:
    count = await cache.purge(expired_at=expired_at)
    if as_json:
        _dump({"purged": count, "expired_only": expired_at is not None}, out)
    else:
        which = "expired or unreadable " if expired_at is not None else ""
        out.write(f"purged {count} {which}entries\n")
    return EXIT_OK


class _Edit:
    """What ``cache edit`` was asked to change; ``None`` keeps the cached value."""

    def __init__(
        self, policy: StsPolicy | None, policy_id: str | None, expires_in: int | None
    ) -> None:
        self.policy = policy
        self.policy_id = policy_id
        self.expires_in = expires_in


def _read_edit(args: argparse.Namespace) -> _Edit:
    policy = None
    if args.policy is not None:
        if args.policy == "-":
            body = sys.stdin.buffer.read()
        else:
            with open(args.policy, "rb") as file:
                body = file.read()
        policy = parse_policy(body)
    if args.policy_id is not None:
        try:  # the core's id rule, through the record renderer
            render_record(args.policy_id)
        except UsageError as exc:
            raise ValueError(str(exc)) from exc
    if args.expires_in is not None and not 0 <= args.expires_in <= MAX_EDIT_SECONDS:
        raise ValueError(f"--expires-in must lie in 0..{MAX_EDIT_SECONDS} seconds")
    if policy is None and args.policy_id is None and args.expires_in is None:
        raise ValueError("nothing to change: give --policy, --id or --expires-in")
    return _Edit(policy, args.policy_id, args.expires_in)


async def _edit(
    cache: SqlitePolicyCache,
    domain: str,
    edit: _Edit | None,
    now: datetime,
    *,
    as_json: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    assert edit is not None  # set by run_cache for this subcommand
    old = await cache.get(domain)
    policy = edit.policy or (old.policy if old else None)
    if policy is None:
        err.write(f"mtasecure cache edit: no cached policy for {domain}; give --policy FILE\n")
        return EXIT_MISSING
    if edit.expires_in is not None:
        expires_at = now + timedelta(seconds=edit.expires_in)
    elif old is not None and edit.policy is None:
        expires_at = old.expires_at
    else:
        expires_at = now + timedelta(seconds=policy.max_age)
    entry = CachedPolicy(
        domain=domain,
        policy=policy,
        policy_id=edit.policy_id or (old.policy_id if old else OPERATOR_ID),
        fetched_at=old.fetched_at if old is not None and edit.policy is None else now,
        expires_at=expires_at,
    )
    await cache.put(entry)
    if as_json:
        _dump(_as_json(entry, now), out)
    else:
        out.write(
            f"{'edited' if old else 'added'} the cached policy for {domain}: id "
            f"{entry.policy_id}, mode {policy.mode.value}, {_state(entry, now)}\n"
        )
    return EXIT_OK
