"""A private DNS tree served by a real Knot and validated by a real Unbound.

The tree is built at test time in a temporary directory: a root zone we control
(``.``), one TLD (``example.``) and one child zone per DNSSEC situation. Zones
are signed with ``ldns-signzone`` (keys from ``ldns-keygen``), so broken
signatures (expired, not yet valid) can be made on purpose; Knot serves the
signed files as they are (it does no signing of its own here), and Unbound
validates from the root's DS, reaching every zone through ``stub-zone``
entries that point at Knot's port.

Reuse it:

* in a test, take the session-scoped fixture ``dnsworld`` (registered in
  ``tests/integration/conftest.py``): a :class:`DnsWorld` with the addresses
  of both servers, the trust anchor and :data:`EXPECTED_SECURITY`;
* to add records (e.g. TLSA records for a certificate minted at test time),
  start your own world with :func:`run_dnsworld` and ``extra_records``::

      with run_dnsworld(tmp, extra_records={"signed.example": ["_25._tcp.mx.signed.example. 300 IN TLSA 3 1 1 ..."]}) as world:
          ...

The fixed data set (:data:`ZONES`) is stable: other tests rely on it. Add to it,
never change what is there.

Zones and what a validator must say about them (RFC 4033 §5):

=======================  ==============  ===========================================
zone                     security        how
=======================  ==============  ===========================================
``.``, ``example.``      secure          signed, NSEC; the root DS is the trust anchor
``signed.example.``      secure          signed, NSEC, DS in ``example.``
``nsec3.example.``       secure          signed, NSEC3 (0 iterations, no salt)
``unsigned.example.``    insecure        no DS; ``example.``'s NSEC proves it
``unknownalgo.example.`` insecure        DS with an unassigned algorithm (RFC 4035 §5.2)
``expired.example.``     bogus           signatures expired in 2020
``notyet.example.``      bogus           signatures valid only from 2100
=======================  ==============  ===========================================

Every A record points at 127.0.0.1 and every AAAA at ::1, so nothing ever
leaves loopback.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

import pytest

from tests.integration.servers import (
    LOOPBACK,
    free_port,
    require_binary,
    stop_process,
    wait_for_port,
)

__all__ = [
    "EXPECTED_SECURITY",
    "TLSA_DIGEST",
    "ZONES",
    "DnsWorld",
    "ZoneKind",
    "ZoneSpec",
    "run_dnsworld",
]

TTL = 300
"""TTL of every record in the tree, and the negative TTL (SOA minimum)."""

START_TIMEOUT = 15.0
"""Seconds each server gets to start listening."""


class ZoneKind(StrEnum):
    """How a zone is signed, and so what a validator must conclude."""

    SIGNED = "signed"
    NSEC3 = "nsec3"
    UNSIGNED = "unsigned"
    UNKNOWN_ALGORITHM = "unknown-algorithm"
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"


_SECURITY_OF_KIND = {
    ZoneKind.SIGNED: "secure",
    ZoneKind.NSEC3: "secure",
    ZoneKind.UNSIGNED: "insecure",
    ZoneKind.UNKNOWN_ALGORITHM: "insecure",
    ZoneKind.EXPIRED: "bogus",
    ZoneKind.NOT_YET_VALID: "bogus",
}

UNKNOWN_DS_ALGORITHM = 100
"""An unassigned DNSSEC algorithm number, for the ``unknownalgo`` zone's DS."""

TLSA_DIGEST = hashlib.sha256(b"mtasecure dnsworld fixed TLSA").hexdigest()
"""The digest in the fixed data set's ``3 1 1`` TLSA records (it matches no real key)."""


@dataclass(frozen=True)
class ZoneSpec:
    """One zone of the tree: its name, how it is signed, its records.

    ``records`` are zone-file lines with absolute owner names; SOA, NS and the
    DNSSEC records are added by the builder.
    """

    name: str
    kind: ZoneKind
    records: tuple[str, ...] = ()


def _r(*lines: str) -> tuple[str, ...]:
    return lines


ZONES: tuple[ZoneSpec, ...] = (
    ZoneSpec(
        "signed.example",
        ZoneKind.SIGNED,
        _r(
            "signed.example. A 127.0.0.1",
            "signed.example. MX 10 mx.signed.example.",
            'signed.example. TXT "v=spf1 -all"',
            "mx.signed.example. A 127.0.0.1",
            "mx.signed.example. AAAA ::1",
            f"_25._tcp.mx.signed.example. TLSA 3 1 1 {TLSA_DIGEST}",
            "mta-sts.signed.example. A 127.0.0.1",
            '_mta-sts.signed.example. TXT "v=STSv1; id=20240101T000000;"',
            '_smtp._tls.signed.example. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@signed.example"',
            # CNAME chains: alias1 -> alias2 -> www -> signed.example (3 links)
            "www.signed.example. CNAME signed.example.",
            "alias1.signed.example. CNAME alias2.signed.example.",
            "alias2.signed.example. CNAME www.signed.example.",
            "loop1.signed.example. CNAME loop2.signed.example.",
            "loop2.signed.example. CNAME loop1.signed.example.",
            "dangling.signed.example. CNAME nothing.signed.example.",
            "tounsigned.signed.example. CNAME unsigned.example.",
            "toexpired.signed.example. CNAME expired.example.",
            # MX variants (RFC 5321 §5.1, RFC 7505)
            "multi.signed.example. MX 20 b.mx.signed.example.",
            "multi.signed.example. MX 10 a.mx.signed.example.",
            "multi.signed.example. MX 10 c.mx.signed.example.",
            "a.mx.signed.example. A 127.0.0.1",
            "b.mx.signed.example. A 127.0.0.1",
            "c.mx.signed.example. A 127.0.0.1",
            "nullmx.signed.example. MX 0 .",
            "implicit.signed.example. A 127.0.0.1",
            "mxalias.signed.example. MX 10 mxcname.signed.example.",
            "mxcname.signed.example. CNAME mx.signed.example.",
            'multitxt.signed.example. TXT "first" "second"',
            'multitxt.signed.example. TXT "third"',
        ),
    ),
    ZoneSpec(
        "nsec3.example",
        ZoneKind.NSEC3,
        _r(
            "nsec3.example. A 127.0.0.1",
            "nsec3.example. MX 10 mx.nsec3.example.",
            'nsec3.example. TXT "v=spf1 -all"',
            "mx.nsec3.example. A 127.0.0.1",
            f"_25._tcp.mx.nsec3.example. TLSA 3 1 1 {TLSA_DIGEST}",
            '_mta-sts.nsec3.example. TXT "v=STSv1; id=1;"',
            "www.nsec3.example. CNAME nsec3.example.",
        ),
    ),
    ZoneSpec(
        "unsigned.example",
        ZoneKind.UNSIGNED,
        _r(
            "unsigned.example. A 127.0.0.1",
            "unsigned.example. MX 10 mx.unsigned.example.",
            'unsigned.example. TXT "v=spf1 -all"',
            "mx.unsigned.example. A 127.0.0.1",
            f"_25._tcp.mx.unsigned.example. TLSA 3 1 1 {TLSA_DIGEST}",
            "mta-sts.unsigned.example. A 127.0.0.1",
            '_mta-sts.unsigned.example. TXT "v=STSv1; id=20240101T000000;"',
            '_smtp._tls.unsigned.example. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@unsigned.example"',
            "tosigned.unsigned.example. CNAME signed.example.",
        ),
    ),
    ZoneSpec(
        "unknownalgo.example",
        ZoneKind.UNKNOWN_ALGORITHM,
        _r(
            "unknownalgo.example. A 127.0.0.1",
            "unknownalgo.example. MX 10 mx.unknownalgo.example.",
            "mx.unknownalgo.example. A 127.0.0.1",
        ),
    ),
    ZoneSpec(
        "expired.example",
        ZoneKind.EXPIRED,
        _r(
            "expired.example. A 127.0.0.1",
            "expired.example. MX 10 mx.expired.example.",
            'expired.example. TXT "v=spf1 -all"',
            "mx.expired.example. A 127.0.0.1",
            f"_25._tcp.mx.expired.example. TLSA 3 1 1 {TLSA_DIGEST}",
        ),
    ),
    ZoneSpec(
        "notyet.example",
        ZoneKind.NOT_YET_VALID,
        _r(
            "notyet.example. A 127.0.0.1",
            "notyet.example. MX 10 mx.notyet.example.",
            "mx.notyet.example. A 127.0.0.1",
        ),
    ),
)
"""The fixed data set: the child zones of ``example.``."""

EXPECTED_SECURITY: dict[str, str] = {
    ".": "secure",
    "example": "secure",
    **{z.name: _SECURITY_OF_KIND[z.kind] for z in ZONES},
}
"""What a validator must say about names in each zone (``Security`` values)."""

EXPIRED_WINDOW = ("20200101000000", "20200201000000")
"""Inception and expiration of the ``expired`` zone's signatures."""
NOT_YET_DELAY = timedelta(days=365)
"""The ``notyet`` zone's signatures become valid this long after the tree is built
(kept well inside RFC 4034 §3.1.5's 68-year serial-arithmetic window)."""


@dataclass
class DnsWorld:
    """A running tree: where to ask, and what to trust.

    Attributes:
        knot: (address, port) of the authoritative server, which serves every
            zone of the tree (ask it directly for local validation).
        unbound: (address, port) of the validating resolver.
        trust_anchor: the root's DS records, presentation format with owner.
        root_dnskey: the root's DNSKEY records, presentation format with owner.
        zones: the child zones served, with any extra records.
        directory: where configs, keys, zone files and logs live.
    """

    knot: tuple[str, int]
    unbound: tuple[str, int]
    trust_anchor: tuple[str, ...]
    root_dnskey: tuple[str, ...]
    zones: tuple[ZoneSpec, ...]
    directory: Path
    expected_security: dict[str, str] = field(default_factory=lambda: dict(EXPECTED_SECURITY))

    def security_of(self, name: str) -> str:
        """The security a validator must give a name, by its closest enclosing zone."""
        labels = name.rstrip(".").lower().split(".")
        for i in range(len(labels)):
            zone = ".".join(labels[i:])
            if zone in self.expected_security:
                return self.expected_security[zone]
        return self.expected_security["."]


def _soa_ns(zone: str) -> list[str]:
    apex = f"{zone}." if zone != "." else "."
    return [
        f"{apex} {TTL} IN SOA ns.example. hostmaster.example. 1 3600 900 604800 {TTL}",
        f"{apex} {TTL} IN NS ns.example.",
    ]


def _with_ttl(line: str) -> str:
    owner, rest = line.split(None, 1)
    return f"{owner} {TTL} IN {rest}"


def _run(args: Sequence[str], cwd: Path) -> str:
    done = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(args)} failed: {done.stderr or done.stdout}")
    return done.stdout


class _Signer:
    """Signs zone files with ldns, one combined signing key (flags 257) per zone."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.keygen = require_binary("ldns-keygen")
        self.signzone = require_binary("ldns-signzone")

    def sign(
        self,
        zone: str,
        lines: list[str],
        *,
        nsec3: bool = False,
        window: tuple[str, str] | None = None,
    ) -> tuple[Path, list[str], list[str]]:
        """Write and sign ``zone``; return the signed file, its DS and DNSKEY records."""
        origin = f"{zone}." if zone != "." else "."
        stem = "root" if zone == "." else zone
        unsigned = self.directory / f"{stem}.zone"
        unsigned.write_text("\n".join(lines) + "\n")
        key = _run(
            [self.keygen, "-a", "ECDSAP256SHA256", "-k", "-r", "/dev/urandom", origin],
            self.directory,
        ).strip()
        signed = self.directory / f"{stem}.zone.signed"
        args = [self.signzone, "-o", origin, "-f", str(signed)]
        if window is not None:
            args += ["-i", window[0], "-e", window[1]]
        if nsec3:
            args += ["-n", "-t", "0"]
        _run([*args, str(unsigned), key], self.directory)
        ds = [
            line.strip()
            for line in (self.directory / f"{key}.ds").read_text().splitlines()
            if line.strip()
        ]
        dnskey = [
            line.split(";")[0].strip()
            for line in (self.directory / f"{key}.key").read_text().splitlines()
            if line.strip() and not line.startswith(";")
        ]
        return signed, ds, dnskey


def _build_zones(
    directory: Path, zones: Sequence[ZoneSpec]
) -> tuple[dict[str, Path], list[str], list[str]]:
    """Build and sign every zone, children first; return files and the root's DS/DNSKEY."""
    signer = _Signer(directory)
    start = datetime.now(UTC) + NOT_YET_DELAY
    not_yet = (f"{start:%Y%m%d%H%M%S}", f"{start + timedelta(days=30):%Y%m%d%H%M%S}")
    files: dict[str, Path] = {}
    delegations: list[str] = []
    for spec in zones:
        lines = _soa_ns(spec.name) + [_with_ttl(r) for r in spec.records]
        delegations.append(f"{spec.name}. {TTL} IN NS ns.example.")
        if spec.kind in (ZoneKind.UNSIGNED, ZoneKind.UNKNOWN_ALGORITHM):
            path = directory / f"{spec.name}.zone"
            path.write_text("\n".join(lines) + "\n")
            files[spec.name] = path
            if spec.kind is ZoneKind.UNKNOWN_ALGORITHM:
                digest = hashlib.sha256(spec.name.encode()).hexdigest()
                delegations.append(
                    f"{spec.name}. {TTL} IN DS 4242 {UNKNOWN_DS_ALGORITHM} 2 {digest}"
                )
            continue
        window = {ZoneKind.EXPIRED: EXPIRED_WINDOW, ZoneKind.NOT_YET_VALID: not_yet}.get(spec.kind)
        path, ds, _ = signer.sign(
            spec.name, lines, nsec3=spec.kind is ZoneKind.NSEC3, window=window
        )
        files[spec.name] = path
        delegations += [_ds_with_ttl(d) for d in ds]
    tld = [*_soa_ns("example"), *delegations, f"ns.example. {TTL} IN A {LOOPBACK}"]
    files["example"], tld_ds, _ = signer.sign("example", tld)
    root = [
        *_soa_ns("."),
        f"example. {TTL} IN NS ns.example.",
        f"ns.example. {TTL} IN A {LOOPBACK}",
        *(_ds_with_ttl(d) for d in tld_ds),
    ]
    files["."], root_ds, root_dnskey = signer.sign(".", root)
    return files, [_ds_with_ttl(d) for d in root_ds], root_dnskey


def _ds_with_ttl(line: str) -> str:
    owner, _, rest = line.split(None, 2)  # "<owner> IN DS ..." -> add the TTL
    return f"{owner} {TTL} IN {rest}"


def _knot_config(directory: Path, port: int, files: Mapping[str, Path]) -> Path:
    zones = "".join(
        f'  - domain: "{name if name == "." else name + "."}"\n    file: "{path}"\n'
        for name, path in files.items()
    )
    config = directory / "knot.conf"
    config.write_text(
        "server:\n"
        f'  rundir: "{directory}"\n'
        f"  listen: {LOOPBACK}@{port}\n"
        "  udp-workers: 2\n"
        "  tcp-workers: 1\n"
        "  background-workers: 1\n"
        "log:\n"
        f'  - target: "{directory / "knot.log"}"\n'
        "    any: info\n"
        "database:\n"
        f'  storage: "{directory / "knot-db"}"\n'
        "control:\n"
        f'  listen: "{directory / "knot.sock"}"\n'
        "template:\n"
        "  - id: default\n"
        "    semantic-checks: off\n"
        "    zonefile-sync: -1\n"
        "    zonefile-load: whole\n"
        "    journal-content: none\n"
        "zone:\n" + zones
    )
    return config


def _unbound_config(
    directory: Path, port: int, knot_port: int, zones: Sequence[str], anchor: Sequence[str]
) -> Path:
    stubs = "".join(
        f'stub-zone:\n  name: "{z if z == "." else z + "."}"\n  stub-addr: {LOOPBACK}@{knot_port}\n'
        for z in zones
    )
    anchors = "".join(f'  trust-anchor: "{a}"\n' for a in anchor)
    config = directory / "unbound.conf"
    config.write_text(
        "server:\n"
        f"  interface: {LOOPBACK}\n"
        f"  port: {port}\n"
        "  do-ip6: no\n"
        "  do-not-query-localhost: no\n"
        '  chroot: ""\n'
        '  username: ""\n'
        f'  directory: "{directory}"\n'
        f'  pidfile: "{directory / "unbound.pid"}"\n'
        f'  logfile: "{directory / "unbound.log"}"\n'
        "  use-syslog: no\n"
        "  verbosity: 1\n"
        "  val-log-level: 2\n"
        "  num-threads: 1\n"
        "  so-reuseport: no\n"
        "  qname-minimisation: no\n"
        "  aggressive-nsec: no\n"
        "  prefetch: no\n"
        "  minimal-responses: yes\n"
        '  module-config: "validator iterator"\n'
        "  num-queries-per-thread: 1024\n"
        "  outgoing-range: 256\n"
        "  incoming-num-tcp: 64\n"
        f"{anchors}"
        "remote-control:\n"
        "  control-enable: no\n"
        f"{stubs}"
    )
    return config


@contextmanager
def run_dnsworld(
    directory: Path,
    *,
    extra_records: Mapping[str, Sequence[str]] | None = None,
    with_unbound: bool = True,
) -> Iterator[DnsWorld]:
    """Build the tree in ``directory``, start Knot (and Unbound), yield, stop both.

    Args:
        directory: an empty directory for keys, zones, configs and logs.
        extra_records: more zone-file lines (absolute owner names, no TTL or
            class: ``"x.signed.example. TXT \\"hi\\""``), keyed by the child zone
            of :data:`ZONES` they belong to.
        with_unbound: also start the validating resolver.
    """
    knotd = require_binary("knotd")
    unbound = require_binary("unbound") if with_unbound else ""
    extra = dict(extra_records or {})
    unknown = set(extra) - {z.name for z in ZONES}
    if unknown:
        raise ValueError(f"extra records for zones not in the tree: {sorted(unknown)}")
    zones = tuple(ZoneSpec(z.name, z.kind, z.records + tuple(extra.get(z.name, ()))) for z in ZONES)
    directory.mkdir(parents=True, exist_ok=True)
    files, anchor, root_dnskey = _build_zones(directory, zones)

    knot_port = free_port()
    knot_config = _knot_config(directory, knot_port, files)
    knot_log = directory / "knot.log"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with (directory / "knot.stderr").open("wb") as err:
            knot = subprocess.Popen([knotd, "-c", str(knot_config)], stdout=err, stderr=err)
        processes.append(knot)
        wait_for_port(knot_port, timeout=START_TIMEOUT, process=knot, log=knot_log)
        unbound_port = 0
        if with_unbound:
            unbound_port = free_port()
            config = _unbound_config(directory, unbound_port, knot_port, list(files), anchor)
            with (directory / "unbound.stderr").open("wb") as err:
                resolver = subprocess.Popen(
                    [unbound, "-d", "-c", str(config)], stdout=err, stderr=err
                )
            processes.append(resolver)
            wait_for_port(
                unbound_port,
                timeout=START_TIMEOUT,
                process=resolver,
                log=directory / "unbound.log",
            )
        yield DnsWorld(
            knot=(LOOPBACK, knot_port),
            unbound=(LOOPBACK, unbound_port),
            trust_anchor=tuple(anchor),
            root_dnskey=tuple(root_dnskey),
            zones=zones,
            directory=directory,
        )
    finally:
        for process in reversed(processes):
            stop_process(process)


@pytest.fixture(scope="session")
def dnsworld(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsWorld]:
    """The fixed tree (:data:`ZONES`), served by Knot and validated by Unbound."""
    with run_dnsworld(tmp_path_factory.mktemp("dnsworld")) as world:
        yield world
