"""The ``mtasecure`` command.

Subcommands:

* ``mtasecure demo`` — evaluate the bundled example domains (their
  ``_mta-sts`` records, policy files and MX lists) with no network: the
  parsed policy or the exact error, the lint findings, and for each MX
  whether the policy allows it.
* ``mtasecure sts check-policy FILE [--mx HOST ...]`` — parse and lint a
  local policy file (``-`` reads standard input).
* ``mtasecure sts check-record TEXT`` — parse and lint a ``_mta-sts`` TXT
  record value.
* ``mtasecure cache list|show|delete|purge`` — the SQLite policy cache
  (:mod:`mtasecure._cli_cache`).

Exit status: 0 when nothing is wrong, 1 when the input is invalid or has
error findings, 2 for a usage error (bad arguments, unreadable file).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import TextIO

from mtasecure import __version__
from mtasecure._cli_cache import add_cache_parser, run_cache
from mtasecure.errors import ParseError
from mtasecure.sts import (
    Finding,
    PolicyMode,
    Severity,
    StsPolicy,
    lint_policy,
    lint_record,
    parse_policy,
    policy_url,
    record_name,
    select_record,
)

__all__ = ["DemoDomain", "load_demo", "main"]

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2


@dataclass(frozen=True)
class DemoDomain:
    """One bundled example domain: what DNS and the policy host would return."""

    domain: str
    txt: tuple[str, ...]
    policy: bytes
    mx: tuple[tuple[int, str], ...]


def load_demo() -> list[DemoDomain]:
    """Read the example domains shipped in ``mtasecure/_demo/sts/``, sorted by name."""
    root = resources.files("mtasecure._demo") / "sts"
    return [_load_domain(entry) for entry in sorted(root.iterdir(), key=lambda e: e.name)]


def _load_domain(folder: Traversable) -> DemoDomain:
    txt = tuple(_lines((folder / "record.txt").read_text(encoding="utf-8")))
    mx = []
    for line in _lines((folder / "mx.txt").read_text(encoding="utf-8")):
        preference, _, host = line.partition(" ")
        mx.append((int(preference), host.strip()))
    return DemoDomain(
        domain=folder.name,
        txt=txt,
        policy=(folder / "policy.txt").read_bytes(),
        mx=tuple(sorted(mx)),
    )


def _lines(text: str) -> Iterable[str]:
    return (line for line in text.splitlines() if line.strip() and not line.startswith("#"))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mtasecure`` command; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return _run(parser, args, sys.stdout)
    except BrokenPipeError:
        # The reader went away (``mtasecure demo | head``); that is not a
        # failure. Point stdout at devnull so the interpreter's final flush
        # does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, out: TextIO) -> int:
    if args.command == "cache":
        return run_cache(args, out)
    if args.command == "demo":
        return _demo(out)
    if args.command == "sts" and args.sts_command == "check-policy":
        return _check_policy(args.file, args.mx, out)
    if args.command == "sts" and args.sts_command == "check-record":
        return _check_record(args.text, out)
    parser.print_help(out)
    return EXIT_USAGE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtasecure", description="Secure mail transport decisions (MTA-STS, DANE, TLS-RPT)."
    )
    parser.add_argument("--version", action="version", version=f"mtasecure {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "demo", help="evaluate the bundled example domains (no network)"
    ).description = "Evaluate the bundled example MTA-STS records, policies and MX lists."
    sts = commands.add_parser("sts", help="MTA-STS tools for local files (no network)")
    sts_commands = sts.add_subparsers(dest="sts_command", metavar="SUBCOMMAND")
    check_policy = sts_commands.add_parser(
        "check-policy", help="parse and lint a policy file (RFC 8461 §3.2)"
    )
    check_policy.add_argument("file", metavar="FILE", help="the policy file, or - for stdin")
    check_policy.add_argument(
        "--mx",
        metavar="HOST",
        nargs="+",
        action="extend",
        help="the domain's MX hosts, to check that the policy covers each of them",
    )
    check_record = sts_commands.add_parser(
        "check-record", help="parse and lint a _mta-sts TXT record value (RFC 8461 §3.1)"
    )
    check_record.add_argument("text", metavar="TEXT", help='e.g. "v=STSv1; id=20260101"')
    add_cache_parser(commands)
    return parser


# --- demo ----------------------------------------------------------------------


def _demo(out: TextIO) -> int:
    domains = load_demo()
    out.write(
        f"mtasecure {__version__} demo: {len(domains)} example domains, "
        "evaluated offline (RFC 8461)\n"
    )
    for example in domains:
        out.write("\n")
        _demo_domain(example, out)
    return EXIT_OK


def _demo_domain(example: DemoDomain, out: TextIO) -> None:
    out.write(f"== {example.domain}\n")
    record = select_record(example.txt)
    candidates = sum(1 for t in example.txt if t.startswith("v=STSv1"))
    name = record_name(example.domain)
    if record is None:
        out.write(
            f"record   {name}: no usable MTA-STS record ({len(example.txt)} TXT string(s), "
            f"{candidates} starting with v=STSv1): senders skip MTA-STS discovery (§3.1)\n"
        )
    else:
        out.write(f"record   {name}: id {record.id}\n")
    out.write(f"policy   {policy_url(example.domain)}\n")
    policy: StsPolicy | None = None
    try:
        policy = parse_policy(example.policy)
    except ParseError as exc:
        out.write(f"         invalid: {exc}\n")
        out.write("         senders treat the domain as having no MTA-STS policy\n")
    else:
        out.write(f"         {_describe(policy)}\n")
    findings = lint_policy(example.policy, mx_hosts=[host for _, host in example.mx])
    _write_findings("lint", findings, out)
    out.write("mx\n")
    width = max(len(host) for _, host in example.mx)
    for preference, host in example.mx:
        out.write(f"  {preference:>3} {host:<{width}}  {_verdict(policy, host)}\n")


def _describe(policy: StsPolicy) -> str:
    days = policy.max_age / 86400
    age = f"{policy.max_age}s"
    if days >= 1:
        age += f" ({days:g} day{'' if days == 1 else 's'})"
    patterns = ", ".join(policy.mx) if policy.mx else "(none)"
    return f"mode {policy.mode.value}, max_age {age}, mx {patterns}"


def _verdict(policy: StsPolicy | None, host: str) -> str:
    if policy is None:
        return "no valid policy: opportunistic TLS"
    if policy.mode is PolicyMode.NONE:
        return "mode none: no MTA-STS requirement"
    if policy.matches(host):
        if policy.mode is PolicyMode.ENFORCE:
            return "allowed (enforce: deliver only over TLS with a valid certificate)"
        return "allowed (testing: check TLS, report failures, deliver anyway)"
    if policy.mode is PolicyMode.ENFORCE:
        return "REFUSED (enforce: no mx pattern covers it)"
    return "not covered (testing: deliver anyway, report the failure)"


def _write_findings(label: str, findings: list[Finding], out: TextIO) -> None:
    if not findings:
        out.write(f"{label:<8} nothing to fix\n")
        return
    for index, finding in enumerate(findings):
        out.write(f"{label if index == 0 else '':<8} {finding}\n")


# --- sts check-policy / check-record ----------------------------------------------


def _check_policy(path: str, mx_hosts: list[str] | None, out: TextIO) -> int:
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as handle:
                data = handle.read()
    except OSError as exc:
        sys.stderr.write(f"mtasecure: cannot read {path}: {exc.strerror or exc}\n")
        return EXIT_USAGE
    status = EXIT_OK
    try:
        policy = parse_policy(data)
    except ParseError as exc:
        out.write(f"invalid: {exc}\n")
        status = EXIT_INVALID
    else:
        out.write(f"valid: {_describe(policy)}\n")
        for host in mx_hosts or ():
            out.write(f"mx {host}: {_verdict(policy, host)}\n")
    findings = lint_policy(data, mx_hosts=mx_hosts)
    _write_findings("findings", findings, out)
    if any(f.severity is Severity.ERROR for f in findings):
        status = EXIT_INVALID
    return status


def _check_record(text: str, out: TextIO) -> int:
    record = select_record([text])
    findings = lint_record(text)
    if record is None:
        reason = next((str(f) for f in findings if f.code == "syntax"), "")
        if not reason:
            reason = "does not begin with 'v=STSv1;' and would be discarded (RFC 8461 §3.1)"
        out.write(f"invalid: {reason}\n")
        return EXIT_INVALID
    out.write(f"valid: id {record.id}")
    if record.extensions:
        out.write(", extensions " + ", ".join(f"{k}={v}" for k, v in record.extensions))
    out.write("\n")
    _write_findings("findings", findings, out)
    return EXIT_INVALID if any(f.severity is Severity.ERROR for f in findings) else EXIT_OK
