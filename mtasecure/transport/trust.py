"""Loading the system's CA bundle into a :class:`~mtasecure.certs.TrustStore` (shell).

The core never reads files or the environment; this module does it once. The
bundle is found the way OpenSSL would find it: :func:`ssl.get_default_verify_paths`
(which honours ``SSL_CERT_FILE`` and ``SSL_CERT_DIR``), then the usual bundle
locations of Debian, Fedora/RHEL, Alpine, macOS (Homebrew) and the BSDs.
"""

from __future__ import annotations

import ssl
from functools import lru_cache
from pathlib import Path

from mtasecure.certs import TrustStore
from mtasecure.errors import UsageError

__all__ = ["BUNDLE_CANDIDATES", "MAX_BUNDLE_BYTES", "load_system_trust_store"]

BUNDLE_CANDIDATES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/usr/local/etc/openssl/cert.pem",
    "/usr/local/share/certs/ca-root-nss.crt",
)
"""Bundle files tried after OpenSSL's own default, in order."""
MAX_BUNDLE_BYTES = 16 * 1024 * 1024
"""Largest bundle file or directory total read (a full public bundle is ~250 kB)."""


@lru_cache(maxsize=1)
def load_system_trust_store() -> TrustStore:
    """The system's trust anchors, read once per process and cached.

    Raises:
        UsageError: no readable bundle was found; build a
            :class:`~mtasecure.certs.TrustStore` with ``TrustStore.from_pem`` and
            pass it explicitly.
    """
    paths = ssl.get_default_verify_paths()
    files = [p for p in (paths.cafile, paths.openssl_cafile) if p]
    files += BUNDLE_CANDIDATES
    for name in dict.fromkeys(files):
        data = _read(Path(name))
        if data:
            try:
                return TrustStore.from_pem(data)
            except UsageError:
                continue
    for directory in dict.fromkeys(p for p in (paths.capath, paths.openssl_capath) if p):
        data = _read_dir(Path(directory))
        if data:
            try:
                return TrustStore.from_pem(data)
            except UsageError:
                continue
    raise UsageError(
        "no system CA bundle found (tried OpenSSL's default paths and "
        f"{len(BUNDLE_CANDIDATES)} usual locations); pass TrustStore.from_pem(...)"
    )


def _read(path: Path) -> bytes:
    try:
        if not path.is_file() or path.stat().st_size > MAX_BUNDLE_BYTES:
            return b""
        return path.read_bytes()
    except OSError:
        return b""


def _read_dir(directory: Path) -> bytes:
    chunks: list[bytes] = []
    total = 0
    try:
        entries = sorted(directory.iterdir())
    except OSError:
        return b""
    for entry in entries:
        if entry.is_symlink():  # c_rehash links repeat the files beside them
            continue
        chunk = _read(entry)
        if b"-----BEGIN CERTIFICATE-----" not in chunk:
            continue
        total += len(chunk)
        if total > MAX_BUNDLE_BYTES:
            break
        chunks.append(chunk)
    return b"\n".join(chunks)
