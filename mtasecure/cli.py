"""The ``mtasecure`` command.

Subcommands:

* ``mtasecure demo`` — run the whole pipeline on the bundled world
  (``mtasecure/_demo/world.toml``, no network): for each example domain the MX
  set and its DNSSEC status, TLSA and DANE state, MTA-STS discovery, the
  requirement per MX, a probe of each MX judged for an ordinary and a
  REQUIRETLS message (with the bounce's status), and the TLS report's
  session results; then the offline evaluation of the bundled policy files.
* ``mtasecure check DOMAIN [--probe] [--json] ...`` — the same explanation
  for a real domain, over the network.
* ``mtasecure sts check-policy FILE [--mx HOST ...]`` — parse and lint a
  local policy file (``-`` reads standard input).
* ``mtasecure sts check-record TEXT`` — parse and lint a ``_mta-sts`` TXT
  record value.
* ``mtasecure cache list|show|delete|purge`` — the SQLite policy cache
  (:mod:`mtasecure._cli_cache`).
* ``mtasecure tlsrpt read FILE... [--json]`` — summarise received TLS
  reports; ``mtasecure tlsrpt check-record TEXT`` — parse a ``_smtp._tls``
  record (:mod:`mtasecure._cli_tlsrpt`).

Exit status: 0 when nothing is wrong (``check``: mail to the domain is
protected), 1 when the input is invalid or has error findings (``check``: not
protected, or a failure was seen), 2 for a usage error (bad arguments,
unreadable file).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from importlib.resources.abc import Traversable
from typing import TYPE_CHECKING, TextIO

from mtasecure import __version__
from mtasecure._cli_cache import add_cache_parser, run_cache
from mtasecure._cli_tlsrpt import add_tlsrpt_parser, run_tlsrpt
from mtasecure.decision import RequirementKind, SessionOutcome, TransportRequirement
from mtasecure.errors import ParseError
from mtasecure.results import CheckResult
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

if TYPE_CHECKING:
    from mtasecure._explain import AddressResult, DomainExplanation, MxExplanation
    from mtasecure._world import World
    from mtasecure.client import MtaSecure
    from mtasecure.tlsrpt import BuiltReport

__all__ = ["DemoDomain", "load_demo", "main"]

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2

CHECK_FETCH_TIMEOUT = 30.0
"""Default seconds ``mtasecure check`` allows one MTA-STS policy fetch (``--timeout``)."""


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
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)
        return EXIT_OK


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, out: TextIO) -> int:
    if args.command == "cache":
        return run_cache(args, out)
    if args.command == "tlsrpt":
        return run_tlsrpt(args, out)
    if args.command == "demo":
        return _run_demo(out)
    if args.command == "check":
        return _run_check(args, out)
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
        "demo", help="run the whole pipeline on the bundled example world (no network)"
    ).description = (
        "Run MX/DNSSEC, DANE, MTA-STS, the delivery decision, SMTP probes and REQUIRETLS "
        "on the bundled example world, then evaluate the bundled policy files."
    )
    check = commands.add_parser(
        "check",
        help="explain why mail to a domain is or is not protected (network)",
        description="Look up DOMAIN's MX hosts, DNSSEC, TLSA/DANE and MTA-STS over the "
        "network and explain what each MX session must prove; with --probe, open a "
        "STARTTLS session to every MX address and judge it. Exit status: 0 protected, "
        "1 not protected or a failure seen, 2 usage error.",
    )
    check.add_argument("domain", metavar="DOMAIN", help="the recipient domain")
    check.add_argument(
        "--resolver",
        metavar="ADDR[:PORT]",
        action="append",
        help="a (validating) resolver to ask, instead of the system's; repeatable",
    )
    check.add_argument(
        "--trust-resolver",
        action="store_true",
        help="believe the AD bit of the resolver(s) even when not on loopback",
    )
    check.add_argument(
        "--dnssec",
        choices=("validator", "local"),
        default="validator",
        help="validator: believe the AD bit of a trusted validating resolver (default); "
        "local: validate DNSSEC here, from the trust anchor, asking any resolver",
    )
    check.add_argument(
        "--trust-anchor",
        metavar="FILE",
        help="with --dnssec local: DS or DNSKEY records (root.key style) to start the "
        "chain of trust from, instead of the IANA root KSKs",
    )
    check.add_argument("--probe", action="store_true", help="probe each MX with STARTTLS")
    check.add_argument("--port", type=_port, default=25, metavar="N", help="SMTP port (default 25)")
    check.add_argument(
        "--policy-port",
        type=_port,
        default=443,
        metavar="N",
        help="HTTPS port of the MTA-STS policy host (default 443)",
    )
    check.add_argument(
        "--ca-file",
        metavar="PEM",
        help="trust anchors for WebPKI checks instead of the system's",
    )
    check.add_argument(
        "--allow-private",
        action="store_true",
        help="allow connections to loopback, private and other non-public addresses",
    )
    check.add_argument(
        "--timeout",
        type=_seconds,
        default=CHECK_FETCH_TIMEOUT,
        metavar="SECONDS",
        help=f"time limit of the policy fetch (default {CHECK_FETCH_TIMEOUT:g})",
    )
    check.add_argument("--json", action="store_true", help="print JSON instead of text")
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
    add_tlsrpt_parser(commands)
    return parser


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"{value} is not 1-65535")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{value:g} is not a positive number of seconds")
    return value


# --- demo, part 2: the bundled policy files --------------------------------------


def _demo(out: TextIO) -> int:
    domains = load_demo()
    out.write(f"Policy files: {len(domains)} example domains, evaluated offline (RFC 8461)\n")
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


# --- demo and check: the whole decision, explained ------------------------------


def _run_demo(out: TextIO) -> int:
    from mtasecure._world import World  # noqa: PLC0415 - only the demo needs the fakes

    world = World.default()
    explanations, refetched, reports = asyncio.run(_explain_world(world))
    out.write(
        f"mtasecure {__version__} demo: {len(explanations)} example domains on the bundled "
        f"world ({world.name}), no network; the clock reads {_time(world.clock.now())}\n"
        "For each domain: MX lookup and DNSSEC, TLSA and DANE, MTA-STS discovery, the\n"
        "requirement per MX, a STARTTLS probe judged for an ordinary and a REQUIRETLS\n"
        "message, and what the day's TLS report would record.\n"
    )
    for explanation in explanations:
        out.write("\n")
        _write_explanation(explanation, out, world.domains.get(explanation.domain, ""))
    out.write(
        f"\nMTA-STS cache: looking up all {len(explanations)} domains again made "
        f"{refetched} new policy fetch(es): policies and _mta-sts answers are reused "
        "(RFC 8461 §3.3, §5.1)\n\n"
    )
    _write_demo_reports(reports, world.clock.now(), out)
    return _demo(out)


async def _explain_world(world: World) -> tuple[list[DomainExplanation], int, DemoReports]:
    from mtasecure._explain import (  # noqa: PLC0415
        DEMO_SENDING_IP,
        explain_domain,
        record_explanation,
    )

    found = []
    async with world.client() as client:
        for domain in world.domains:
            found.append(await explain_domain(client, domain, probe=True, trust=world.trust))
        # A second lookup is answered from the cache: no DNS query, no fetch.
        before = len(world.http.requests)
        for domain in world.domains:
            await client.sts_lookup(domain)
        refetched = len(world.http.requests) - before
        # The sending MTA's side of TLS-RPT: every judged session is recorded,
        # then the day's reports are built (not sent: no network, and the day
        # is not over).
        recorded = sum(record_explanation(client, e, sending_ip=DEMO_SENDING_IP) for e in found)
        reports = await _demo_reports(client, world.clock.now())
    return found, refetched, DemoReports(recorded=recorded, reports=reports)


# --- demo, part 3: the day's TLS reports ---------------------------------------

DEMO_REPORT_OPTIONS_FIELDS = {
    "organization_name": "Sender Example",
    "contact_info": "tlsrpt@sender.example",
}
"""Who the demo's sending MTA says it is in its reports (RFC 8460 §4.4)."""


@dataclass(frozen=True)
class DemoReports:
    """What the demo recorded and built: sessions counted, and each report with its ``rua``."""

    recorded: int
    reports: tuple[tuple[BuiltReport, tuple[str, ...]], ...]


async def _demo_reports(
    client: MtaSecure, now: datetime
) -> tuple[tuple[BuiltReport, tuple[str, ...]], ...]:
    from mtasecure.errors import TransportError  # noqa: PLC0415
    from mtasecure.tlsrpt import ReportOptions  # noqa: PLC0415
    from mtasecure.transport.report_submit import resolve_rua  # noqa: PLC0415

    built = await client.build_daily_reports(now, ReportOptions(**DEMO_REPORT_OPTIONS_FIELDS))
    found = []
    for report in built:
        try:
            rua = await resolve_rua(report.policy_domain, resolver=client.resolver)
        except TransportError:
            rua = ()
        found.append((report, rua))
    return tuple(found)


def _write_demo_reports(demo: DemoReports, now: datetime, out: TextIO) -> None:
    w = out.write
    day = now.astimezone(UTC).date().isoformat()
    published = [(r, rua) for r, rua in demo.reports if rua]
    silent = [r.policy_domain for r, rua in demo.reports if not rua]
    w(
        f"TLS reports for {day} (RFC 8460): {demo.recorded} judged session(s) recorded with "
        f"MtaSecure.record_session\nand aggregated into {len(demo.reports)} report(s), one per "
        f"policy domain; {len(published)} of those domains publish _smtp._tls.\n"
        "The day is not over and the demo has no network: the reports are built, not sent.\n"
    )
    for report, rua in published:
        w(f"\n== {report.policy_domain}\n")
        w(f"file     {report.filename} ({len(report.gzip)} bytes gzip, RFC 8460 §5.1)\n")
        for uri in rua:
            w(f"rua      {uri}  (would be sent to; RFC 8460 §3: every rua)\n")
        pretty = json.dumps(json.loads(report.report.to_json()), indent=2, ensure_ascii=False)
        w(pretty + "\n")
    if silent:
        w(f"\nNo _smtp._tls record, so no report is sent for: {', '.join(silent)}\n")
    w("\n")


def _run_check(args: argparse.Namespace, out: TextIO) -> int:
    from pydantic import ValidationError  # noqa: PLC0415

    from mtasecure._explain import explain_domain  # noqa: PLC0415
    from mtasecure.certs import TrustStore  # noqa: PLC0415
    from mtasecure.client import MtaSecure, StsSettings  # noqa: PLC0415
    from mtasecure.errors import MtaSecureError, UsageError  # noqa: PLC0415
    from mtasecure.transport import (  # noqa: PLC0415
        DnssecMode,
        DnsSettings,
        Nameserver,
        resolver_from_settings,
        system_nameservers,
    )
    from mtasecure.transport.http import HttpsClient  # noqa: PLC0415
    from mtasecure.transport.smtp import AsyncioSmtpConnector  # noqa: PLC0415
    from mtasecure.transport.trust import load_system_trust_store  # noqa: PLC0415

    def dns_settings() -> DnsSettings:
        mode = DnssecMode(args.dnssec)
        servers = tuple(args.resolver) if args.resolver else None
        anchor = None
        if args.trust_anchor:
            if mode is not DnssecMode.LOCAL:
                raise UsageError("--trust-anchor needs --dnssec local")
            try:
                with open(args.trust_anchor, encoding="utf-8") as handle:
                    anchor = handle.read()
            except (OSError, UnicodeDecodeError) as exc:
                why = getattr(exc, "strerror", None) or exc
                raise UsageError(f"cannot read {args.trust_anchor}: {why}") from exc
        trusted = None
        if args.trust_resolver:
            if mode is DnssecMode.LOCAL:
                raise UsageError("--trust-resolver means nothing with --dnssec local")
            # The operator vouches for the path to the validator (RFC 4035 §4.9.3).
            trusted = servers or tuple(str(ns) for ns in system_nameservers())
        try:
            return DnsSettings(
                dnssec=mode, nameservers=servers, trusted=trusted, trust_anchor=anchor
            )
        except ValidationError as exc:
            problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            raise UsageError(problems) from exc

    def dnssec_source(dns: DnsSettings, nameservers: Sequence[Nameserver]) -> _DnssecSource:
        servers = tuple(str(ns) for ns in nameservers)
        if dns.dnssec is DnssecMode.LOCAL:
            anchor = dns.trust_anchor
            return _DnssecSource(
                mode=dns.dnssec.value,
                servers=servers,
                trust_anchor=args.trust_anchor or BUILTIN_ROOT_ANCHOR,
                anchor_zone=anchor.zone if anchor is not None else ".",
            )
        trusted = tuple(str(ns) for ns in nameservers if ns.trusted)
        return _DnssecSource(mode=dns.dnssec.value, servers=servers, trusted=trusted)

    async def run() -> tuple[DomainExplanation, _DnssecSource]:
        dns = dns_settings()
        resolver = resolver_from_settings(dns)
        source = dnssec_source(dns, resolver.nameservers)
        if args.ca_file:
            try:
                with open(args.ca_file, "rb") as handle:
                    trust = TrustStore.from_pem(handle.read())
            except OSError as exc:
                raise UsageError(f"cannot read {args.ca_file}: {exc.strerror or exc}") from exc
        else:
            trust = load_system_trust_store()
        settings = StsSettings(policy_port=args.policy_port, fetch_timeout=args.timeout)
        http = HttpsClient(resolver=resolver, trust=trust, public_only=not args.allow_private)
        async with (
            resolver,
            http,
            MtaSecure(
                resolver=resolver, http=http, smtp=AsyncioSmtpConnector(), sts=settings
            ) as client,
        ):
            explanation = await explain_domain(
                client,
                args.domain,
                probe=args.probe,
                port=args.port,
                trust=trust,
                public_only=not args.allow_private,
            )
            return explanation, source

    try:
        explanation, source = asyncio.run(run())
    except (UsageError, ParseError) as exc:
        sys.stderr.write(f"mtasecure check: {exc}\n")
        return EXIT_USAGE
    except MtaSecureError as exc:  # I/O that did not complete and was not a DNS answer
        sys.stderr.write(f"mtasecure check: {exc}\n")
        return EXIT_INVALID
    if args.json:
        json.dump(_explanation_json(explanation, dnssec=source), out, indent=2)
        out.write("\n")
    else:
        _write_explanation(explanation, out, "", dnssec=source)
    return EXIT_OK if explanation.protected else EXIT_INVALID


BUILTIN_ROOT_ANCHOR = "built-in root"
"""What ``check`` names as the trust anchor of ``--dnssec local`` without ``--trust-anchor``:
the IANA root KSKs (:data:`mtasecure.dnssec.ROOT_TRUST_ANCHOR`)."""


@dataclass(frozen=True)
class _DnssecSource:
    """Who vouched for the DNSSEC statuses ``check`` shows (RFC 4033 §5, RFC 4035 §4.9.3, §5).

    ``validator``: a validating resolver's AD bit, believed only from the
    ``trusted`` nameservers (none trusted: nothing is ``secure``). ``local``:
    mtasecure validated the chain itself from ``trust_anchor`` (a file, or
    :data:`BUILTIN_ROOT_ANCHOR`), whose zone is ``anchor_zone``. ``servers``
    are the nameservers asked, in order.
    """

    mode: str
    servers: tuple[str, ...]
    trusted: tuple[str, ...] = ()
    trust_anchor: str | None = None
    anchor_zone: str | None = None

    def json(self) -> dict[str, object]:
        found: dict[str, object] = {"mode": self.mode, "servers": list(self.servers)}
        if self.mode == "local":
            found |= {"trust_anchor": self.trust_anchor, "anchor_zone": self.anchor_zone}
        else:
            found["trusted"] = list(self.trusted)
        return found

    def line(self) -> str:
        asked = ", ".join(self.servers)
        if self.mode == "local":
            return (
                f"DNSSEC   validated here from trust anchor {self.trust_anchor} "
                f"(zone {self.anchor_zone}), asking {asked} (RFC 4035 §5)\n"
            )
        believed = ", ".join(self.trusted) or "no nameserver (nothing can be secure)"
        return (
            f"DNSSEC   validator: AD bit believed from {believed}; asking {asked} "
            "(RFC 4035 §4.9.3)\n"
        )


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_explanation(
    exp: DomainExplanation, out: TextIO, description: str, *, dnssec: _DnssecSource | None = None
) -> None:
    w = out.write
    w(f"--- {exp.domain}" + (f": {description}" if description else "") + "\n")
    if dnssec is not None:
        w(dnssec.line())
    mx = exp.mx
    if mx.failed:
        w(
            f"MX       lookup failed, DNSSEC {mx.security.value}: {mx.why or 'no answer'}\n"
            "         every MX is unusable and delivery is deferred (RFC 7672 §2.1.1)\n"
        )
    elif mx.null:
        w(f"MX       null MX (DNSSEC {mx.security.value}): the domain accepts no mail (RFC 7505)\n")
    else:
        hosts = ", ".join(f"{h.preference} {h.host}" for h in mx.hosts) or "(none)"
        implicit = " (implicit: no MX records, RFC 5321 §5.1)" if mx.implicit else ""
        w(f"MX       DNSSEC {mx.security.value}: {hosts}{implicit}\n")
    _write_sts(exp, w)
    for host in exp.hosts:
        _write_host(host, exp, w)
    _write_verdict(exp, w)
    _write_report(exp, w)


def _write_sts(exp: DomainExplanation, w: Callable[[str], object]) -> None:
    name = f"_mta-sts.{exp.domain}"
    if exp.sts.excluded:
        w("MTA-STS  skipped: the domain is on the exclusion list\n")
        return
    if exp.sts_txt is None or exp.sts_txt.failed:
        why = exp.sts_txt.why if exp.sts_txt is not None else ""
        w(f"MTA-STS  record {name}: lookup failed{': ' + why if why else ''}\n")
    elif exp.sts_record is not None:
        security = f" (DNSSEC {exp.sts_txt.security.value})" if exp.sts_txt else ""
        w(f"MTA-STS  record {name}: id {exp.sts_record.id}{security}\n")
    else:
        w(f"MTA-STS  record {name}: none usable (RFC 8461 §3.1)\n")
    policy = exp.sts.policy
    if policy is not None:
        w(f"         policy {policy_url(exp.domain)}: {_describe(policy)}\n")
    result = exp.sts.result
    if exp.sts.store_error:
        w(
            f"         unknown: the policy store could not be read ({exp.sts.store_error}); "
            "delivery is deferred, not downgraded (RFC 8461 §5.1)\n"
        )
    if not result.ok and result.reason is not None:
        w(f"         failure {result.reason.value}: {result.detail}\n")
    elif policy is None and exp.sts_record is not None and not exp.sts.store_error:
        w(f"         no policy: {result.detail or 'none fetched'}\n")
    entry = exp.sts.entry
    if entry is not None:
        w(
            f"         cache: policy id {entry.policy_id}, fetched {_time(entry.fetched_at)}, "
            f"kept until {_time(entry.expires_at)}\n"
        )


def _write_host(host: MxExplanation, exp: DomainExplanation, w: Callable[[str], object]) -> None:
    w(f"{host.host} (preference {host.preference})\n")
    addresses = []
    for label, answer in (("A", host.a), ("AAAA", host.aaaa)):
        if answer is None:
            continue
        if answer.failed:
            addresses.append(f"{label} failed ({answer.security.value})")
        elif answer.records:
            addresses.append(f"{label} {' '.join(answer.records)} ({answer.security.value})")
    w(f"  address  {', '.join(addresses) or 'none'}\n")
    if host.dane is None:
        w("  DANE     not used: the MX set is not DNSSEC-secure (RFC 7672 §2.2.1)\n")
    else:
        w(f"  DANE     {host.dane.state.value}: {host.dane.detail}\n")
        for record in host.requirement.tlsa_records:
            w(f"           TLSA {_short(record)}\n")
    req = host.requirement
    reason = f" ({req.reason.value})" if req.reason else ""
    w(f"  require  {req.kind.value}{reason}: {req.detail}\n")
    rt = host.requirement_requiretls
    if rt.requiretls is not None:
        validated = "yes" if rt.requiretls.mx_validated else "NO"
        w(
            f"  REQUIRETLS needs: MX name validated {validated}, certificate by "
            f"{rt.requiretls.authentication.value}, REQUIRETLS after STARTTLS (RFC 8689 §4.2.1)\n"
        )
    for address in host.addresses:
        _write_address(
            address,
            w,
            dane_applies=host.dane is not None and host.dane.applies,
            webpki=req.kind in (RequirementKind.STS_ENFORCE, RequirementKind.STS_TESTING)
            or (rt.requiretls is not None and rt.requiretls.authentication.value == "webpki"),
        )


def _write_address(
    address: AddressResult, w: Callable[[str], object], *, dane_applies: bool, webpki: bool
) -> None:
    if address.skipped:
        w(f"  probe    {address.address}: skipped, {address.skipped}\n")
        return
    check = address.check
    assert check is not None
    probe = check.probe
    if probe.tls_established:
        keywords = probe.ehlo_tls.names if probe.ehlo_tls is not None else ()
        rt = "REQUIRETLS offered" if "REQUIRETLS" in keywords else "no REQUIRETLS"
        w(f"  probe    {address.address}: STARTTLS, {probe.tls_version}, {rt}\n")
        if check.webpki is not None:
            label = "certificate (WebPKI)" if webpki else "certificate (WebPKI, not required)"
            w(f"           {label}: {_result(check.webpki)}\n")
        if dane_applies:
            w(f"           DANE: {_result(check.dane)}\n")
    else:
        w(f"  probe    {address.address}: {probe.outcome.value}: {probe.detail}\n")
    for label, outcome in (
        ("message", address.outcome),
        ("REQUIRETLS", address.outcome_requiretls),
    ):
        if outcome is None:
            continue
        if outcome.deliver:
            extra = " with MAIL FROM REQUIRETLS" if outcome.use_requiretls_parameter else ""
            note = f", reported as {outcome.reason.value}" if outcome.reason else ""
            w(f"  judged   {label}: deliver{extra}{note}\n")
        else:
            why = outcome.reason.value if outcome.reason else ""
            if outcome.requiretls_failure is not None:
                failure = outcome.requiretls_failure
                why = f"{failure.value} ({failure.status})"
            w(f"  judged   {label}: NOT SENT, {why}: {outcome.detail}\n")


def _write_verdict(exp: DomainExplanation, w: Callable[[str], object]) -> None:
    if exp.probed:
        delivered = "delivered" if exp.delivered else "not delivered (deferred)"
        w(f"verdict  message: {delivered}")
        if exp.delivered_requiretls:
            w("; REQUIRETLS message: delivered\n")
        elif exp.conclusion is not None:
            c = exp.conclusion
            w(f"; REQUIRETLS message: {c.verdict.value} {c.status}\n")
            if exp.dsn is not None:
                status = _dsn_status(exp.dsn.content)
                w(f"         bounce: DSN to {exp.dsn.envelope_to}, Status: {status}, {c.detail}\n")
        else:
            w("\n")
    protected = "PROTECTED" if exp.protected else "NOT PROTECTED"
    w(f"verdict  {protected}: {_protection_reason(exp)}\n")


def _protection_reason(exp: DomainExplanation) -> str:
    if exp.mx.failed:
        return "the MX lookup failed or is not trustworthy"
    usable = exp.plan.usable
    if not usable:
        if exp.sts_state.unknown:
            return "no MX may be used now: the MTA-STS state is unknown; deferred"
        return "no MX may be used"
    kinds = sorted({r.kind.value for r in usable})
    if not exp.protected and all(
        r.kind in (RequirementKind.DANE, RequirementKind.STS_ENFORCE) for r in usable
    ):
        return f"required {', '.join(kinds)}, but a session failed it"
    return f"usable MX hosts require {', '.join(kinds)}"


def _dsn_status(content: bytes) -> str:
    for line in content.decode("ascii", "replace").splitlines():
        if line.lower().startswith("status:"):
            return line.split(":", 1)[1].strip()
    return "?"


def _report_rows(exp: DomainExplanation) -> list[tuple[str, str, str, str]]:
    """(policy-type, result-type or 'successful', mx, address) per session the sender would record."""
    rows = []
    for host in exp.hosts:
        for address in host.addresses:
            outcome = address.outcome
            if outcome is None:
                continue
            result = outcome.reason.value if outcome.reason else "successful"
            rows.append((outcome.policy_type.value, result, host.host, address.address))
    return rows


def _write_report(exp: DomainExplanation, w: Callable[[str], object]) -> None:
    if not exp.probed:
        return
    rows = _report_rows(exp)
    failure = exp.plan.sts_failure  # what is reported: none for an unknown state
    if failure is not None:
        w(f"TLS-RPT  policy-type sts: discovery failure {failure.value} (RFC 8460 §4.3.2.2)\n")
    for policy_type in sorted({r[0] for r in rows}):
        mine = [r for r in rows if r[0] == policy_type]
        ok = sum(1 for r in mine if r[1] == "successful")
        w(
            f"TLS-RPT  policy-type {policy_type}: {ok} successful, "
            f"{len(mine) - ok} failed session(s)\n"
        )
        for _, result, mx_host, address in mine:
            if result != "successful":
                w(f"           {result}: receiving-mx-hostname {mx_host}, receiving-ip {address}\n")
    if not rows and failure is None:
        w("TLS-RPT  no session to record (no MX was tried)\n")


def _short(text: str, limit: int = 72) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _result(result: CheckResult) -> str:
    if result.ok:
        return "ok" + (f" ({result.detail})" if result.detail else "")
    reason = result.reason.value if result.reason else "failed"
    return f"{reason}: {result.detail}"


def _check_json(result: CheckResult | None) -> dict[str, object] | None:
    if result is None:
        return None
    return {
        "ok": result.ok,
        "reason": result.reason.value if result.reason else None,
        "detail": result.detail,
    }


def _outcome_json(outcome: SessionOutcome | None) -> dict[str, object] | None:
    if outcome is None:
        return None
    return {
        "deliver": outcome.deliver,
        "reason": outcome.reason.value if outcome.reason else None,
        "policy_type": outcome.policy_type.value,
        "requiretls_failure": (
            outcome.requiretls_failure.value if outcome.requiretls_failure else None
        ),
        "status": outcome.requiretls_failure.status if outcome.requiretls_failure else None,
        "use_requiretls_parameter": outcome.use_requiretls_parameter,
        "detail": outcome.detail,
    }


def _requirement_json(req: TransportRequirement) -> dict[str, object]:
    return {
        "kind": req.kind.value,
        "usable": req.usable,
        "reason": req.reason.value if req.reason else None,
        "tls_required": req.tls_required,
        "authentication": req.authentication.value,
        "policy_type": req.policy_type.value,
        "sts_mx_match": req.sts_mx_match,
        "detail": req.detail,
    }


def _explanation_json(
    exp: DomainExplanation, *, dnssec: _DnssecSource | None = None
) -> dict[str, object]:
    policy = exp.sts.policy
    entry = exp.sts.entry
    hosts = []
    for host in exp.hosts:
        rt = host.requirement_requiretls
        hosts.append(
            {
                "host": host.host,
                "preference": host.preference,
                "addresses": list(host.address_list),
                "address_security": [
                    a.security.value for a in (host.a, host.aaaa) if a is not None
                ],
                "dane": None
                if host.dane is None
                else {
                    "state": host.dane.state.value,
                    "detail": host.dane.detail,
                    "records": list(host.requirement.tlsa_records),
                },
                "requirement": _requirement_json(host.requirement),
                "requiretls": None
                if rt.requiretls is None
                else {
                    "mx_validated": rt.requiretls.mx_validated,
                    "authentication": rt.requiretls.authentication.value,
                },
                "probes": [
                    {
                        "address": a.address,
                        "skipped": a.skipped or None,
                        "outcome": a.probe.outcome.value if a.probe else None,
                        "tls_version": a.probe.tls_version if a.probe else None,
                        "requiretls_offered": a.probe.requiretls_offered if a.probe else None,
                        "webpki": _check_json(a.check.webpki) if a.check else None,
                        "dane": _check_json(a.check.dane) if a.check else None,
                        "judged": _outcome_json(a.outcome),
                        "judged_requiretls": _outcome_json(a.outcome_requiretls),
                    }
                    for a in host.addresses
                ],
            }
        )
    conclusion = exp.conclusion
    return {
        "domain": exp.domain,
        "checked_at": _time(exp.now),
        "protected": exp.protected,
        "why": _protection_reason(exp),
        "dnssec": dnssec.json() if dnssec is not None else None,
        "mx": {
            "security": exp.mx.security.value,
            "failed": exp.mx.failed,
            "null": exp.mx.null,
            "implicit": exp.mx.implicit,
            "why": exp.mx.why or None,
            "hosts": [{"preference": h.preference, "host": h.host} for h in exp.mx.hosts],
        },
        "mta_sts": {
            "record": None if exp.sts_record is None else {"id": exp.sts_record.id},
            "policy": None
            if policy is None
            else {
                "mode": policy.mode.value,
                "mx": list(policy.mx),
                "max_age": policy.max_age,
                "url": policy_url(exp.domain),
            },
            "failure": _check_json(exp.sts.result) if not exp.sts.result.ok else None,
            "store_error": exp.sts.store_error or None,
            "cached": None
            if entry is None
            else {
                "policy_id": entry.policy_id,
                "fetched_at": _time(entry.fetched_at),
                "expires_at": _time(entry.expires_at),
            },
        },
        "hosts": hosts,
        "probed": exp.probed,
        "delivered": exp.delivered,
        "delivered_requiretls": exp.delivered_requiretls,
        "requiretls_conclusion": None
        if conclusion is None
        else {
            "verdict": conclusion.verdict.value,
            "status": conclusion.status,
            "dsn_status": _dsn_status(exp.dsn.content) if exp.dsn is not None else None,
            "detail": conclusion.detail,
        },
        "tls_report_sessions": [
            {"policy_type": p, "result_type": r, "mx_host": m, "receiving_ip": a}
            for p, r, m, a in _report_rows(exp)
        ],
    }
