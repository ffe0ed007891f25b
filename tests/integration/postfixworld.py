"""Real Postfix instances on loopback, each in its own temporary configuration.

A :class:`PostfixWorld` starts Debian's Postfix ``master`` in the foreground
(``master -d -c DIR``) for each instance, with only the services a STARTTLS
session needs: ``smtpd`` on ``127.0.0.1:PORT``, ``anvil`` (connection
accounting), ``tlsmgr`` (TLS session cache and PRNG) and ``postlogd`` (so
that ``maillog_file = /dev/stdout`` lands in the instance's log file). The
queue and data directories are created by hand with the ownership Postfix
checks, which skips ``postfix start``'s ``postfix-script`` checks and keeps a
start-up well under a second.

Each ``master`` runs in a new session, so stopping an instance signals its
whole process group (``master`` forwards SIGTERM to its children only when it
leads the group). Postfix must run as root; elsewhere the tests are skipped
(or fail in CI, like a missing binary).

Other branches may use this harness for any test that needs a real MTA: start
an instance with :meth:`PostfixWorld.start` and probe ``127.0.0.1:port``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.servers import LOOPBACK, free_port, in_ci, require_binary, wait_for_port

__all__ = ["PostfixInstance", "PostfixWorld", "postfix_master"]

START_TIMEOUT = 15.0
"""Seconds an instance may take to accept connections."""

STOP_TIMEOUT = 10.0
"""Seconds an instance may take to exit after SIGTERM before it is killed."""

MAIL_OWNER = "postfix"
"""The unprivileged account Debian's postfix package creates."""

_MASTER_CF = """\
{address}:{port} inet n - n - - smtpd
postlog unix-dgram n - n - 1 postlogd
anvil unix - - n - 1 anvil
tlsmgr unix - - n 1000? 1 tlsmgr
"""

_MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = {owner}
myhostname = {hostname}
mydestination =
mynetworks = 127.0.0.0/8
inet_interfaces = {address}
inet_protocols = ipv4
maillog_file = /dev/stdout
local_recipient_maps =
relay_recipient_maps =
alias_maps =
alias_database =
smtpd_relay_restrictions = reject
smtpd_banner = $myhostname ESMTP
smtpd_tls_loglevel = 1
smtpd_tls_security_level = {security_level}
"""


def postfix_master() -> Path:
    """The path of Postfix's ``master`` daemon; skip locally / fail in CI when absent or not root."""
    postconf = require_binary("postconf")
    require_binary("postfix")
    daemon_directory = subprocess.run(
        [postconf, "-h", "daemon_directory"], capture_output=True, text=True, check=True
    ).stdout.strip()
    master = Path(daemon_directory) / "master"
    if not master.exists():
        message = f"Postfix master not found at {master}"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    if os.geteuid() != 0:
        message = "Postfix's master must run as root"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return master


@dataclass
class PostfixInstance:
    """One running Postfix: its name, port, configuration directory and log."""

    name: str
    hostname: str
    port: int
    root: Path
    process: subprocess.Popen[bytes]
    address: str = LOOPBACK

    @property
    def log(self) -> Path:
        """The instance's mail log (what ``maillog_file`` writes)."""
        return self.root / "maillog"

    def log_text(self) -> str:
        """The mail log so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def terminate(self) -> None:
        """Send SIGTERM to the instance's process group (``master`` and its children)."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)

    def stop(self) -> None:
        """Stop the instance: SIGTERM, wait for ``master``, then clear its group.

        ``master`` exits at once; its children notice a second or so later.
        They hold no state worth keeping here, so what is left of the group
        (which is ours alone: ``master`` leads its own session) is killed.
        """
        self.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


@dataclass
class PostfixWorld:
    """Starts and stops Postfix instances in a fresh temporary directory.

    The directory is made with ``tempfile.mkdtemp`` and opened to ``o+x``:
    Postfix's daemons drop to ``mail_owner`` and must be able to traverse to
    their queue and data directories, which pytest's own ``tmp_path`` (mode
    0700, owned by root) does not allow. :meth:`stop_all` removes it.
    """

    root: Path = field(init=False)
    instances: list[PostfixInstance] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.master = postfix_master()
        self.root = Path(tempfile.mkdtemp(prefix="mtasecure-postfix-"))
        self.root.chmod(0o711)

    def start(
        self,
        name: str,
        *,
        hostname: str,
        chain_pem: bytes | None = None,
        wait: bool = True,
    ) -> PostfixInstance:
        """Start instance ``name``.

        Args:
            name: a directory name for the instance.
            hostname: ``myhostname``, shown in the banner and the EHLO reply.
            chain_pem: the private key then the certificate chain, leaf first
                (``smtpd_tls_chain_files``); ``None`` starts an instance without
                STARTTLS (``smtpd_tls_security_level = none``).
            wait: wait until the port accepts connections (pass ``False`` to
                start several instances, then call :meth:`wait`).
        """
        root = self.root / name
        conf = root / "conf"
        for sub in ("conf", "queue/pid", "queue/private", "queue/public", "data"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        for sub in ("queue/private", "queue/public", "data"):
            shutil.chown(root / sub, user=MAIL_OWNER)
        port = free_port()
        main_cf = _MAIN_CF.format(
            root=root,
            owner=MAIL_OWNER,
            hostname=hostname,
            address=LOOPBACK,
            security_level="may" if chain_pem is not None else "none",
        )
        if chain_pem is not None:
            chain_file = conf / "chain.pem"
            chain_file.write_bytes(chain_pem)
            chain_file.chmod(0o600)
            main_cf += f"smtpd_tls_chain_files = {chain_file}\n"
        (conf / "main.cf").write_text(main_cf)
        (conf / "master.cf").write_text(_MASTER_CF.format(address=LOOPBACK, port=port))
        # Postfix re-reads a table file until its mtime is over a second old
        # (it might still be being written); back-date ours to skip the wait.
        past = time.time() - 10
        for written in conf.iterdir():
            os.utime(written, (past, past))
        log = (root / "maillog").open("wb")
        process = subprocess.Popen(
            [str(self.master), "-d", "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        instance = PostfixInstance(
            name=name, hostname=hostname, port=port, root=root, process=process
        )
        self.instances.append(instance)
        if wait:
            self.wait(instance)
        return instance

    def wait(self, instance: PostfixInstance) -> None:
        """Wait until ``instance`` accepts connections; fail with its log if it does not."""
        wait_for_port(
            instance.port, timeout=START_TIMEOUT, process=instance.process, log=instance.log
        )

    def stop_all(self) -> None:
        """Stop every instance started by this world."""
        for instance in self.instances:
            instance.terminate()
        for instance in self.instances:
            instance.stop()
        self.instances.clear()
        shutil.rmtree(self.root, ignore_errors=True)


# ---- posttls-finger with a private validating resolver --------------------------

RESOLVER_ADDRESS = "127.0.53.1"
"""Where :func:`unbound_for_postfix` listens: Postfix reads ``/etc/resolv.conf``,
which cannot name a port, so the resolver must answer on port 53 of a loopback
address nobody else uses."""

FINGER_TIMEOUT = 60.0
"""Seconds one ``posttls-finger`` run may take."""


def require_mount_namespace() -> str:
    """``unshare``'s path, after checking that a private mount namespace can be made.

    ``posttls-finger`` must see a ``resolv.conf`` that points at the test
    resolver; it gets one bind-mounted in its own mount namespace, so the
    host's file is never touched. Skips locally (fails in CI) when that is
    not possible.
    """
    unshare = require_binary("unshare")
    probe = subprocess.run([unshare, "-m", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        message = f"cannot create a mount namespace: {probe.stderr.decode(errors='replace')}"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return unshare


def posttls_finger(
    host: str,
    port: int,
    *,
    resolv_conf: Path,
    level: str = "dane",
    extra: tuple[str, ...] = (),
) -> str:
    """Run ``posttls-finger -l LEVEL [host]:port`` with ``resolv_conf`` as its resolver.

    Returns its whole output. Postfix's verdict is the line ``Verified TLS
    connection established`` (the peer was authenticated), ``Untrusted TLS
    connection established`` (encrypted, not authenticated) or neither.
    """
    finger = require_binary("posttls-finger")
    unshare = require_mount_namespace()
    script = (
        f'mount --bind "{resolv_conf}" /etc/resolv.conf && exec "{finger}" -t 10 -T 10 '
        f'-l {level} {" ".join(extra)} "[{host}]:{port}"'
    )
    done = subprocess.run(
        [unshare, "-m", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=FINGER_TIMEOUT,
        check=False,
    )
    return done.stdout + done.stderr
