"""Shared plumbing for integration tests that start real servers on loopback.

A test that needs a server starts it itself. Where the server's binary is
missing, the test is skipped on a developer machine and *fails* in CI
(``CI=true``), so a broken install step can never pass as a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

__all__ = ["free_port", "in_ci", "require_binary", "stop_process", "wait_for_port"]

LOOPBACK = "127.0.0.1"


def in_ci() -> bool:
    """Whether this run is CI, where a missing server is a failure."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_binary(name: str, *extra_dirs: str) -> str:
    """Return the path of executable ``name``; skip locally, fail in CI, when missing."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", *extra_dirs])
    found = shutil.which(name, path=search)
    if found:
        return found
    message = f"{name} is not installed (.ci/run installs it with apt-get)"
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def free_port(host: str = LOOPBACK, kind: int = socket.SOCK_STREAM) -> int:
    """A port on ``host`` that is free right now for TCP (and, for DNS, UDP)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        # DNS servers need the same number free for both TCP and UDP.
        other = socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM
        with socket.socket(socket.AF_INET, other) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port found on loopback")


def wait_for_port(
    port: int,
    host: str = LOOPBACK,
    *,
    timeout: float = 15.0,
    process: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Wait until a TCP ``port`` accepts connections; fail with the log if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            break
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    detail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    pytest.fail(f"server on {host}:{port} did not start within {timeout}s\n{detail}")


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Terminate ``process`` and wait for it; kill it if it does not stop."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)
