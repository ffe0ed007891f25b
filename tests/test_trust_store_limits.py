"""The system trust-store loader's limits: MAX_BUNDLE_BYTES for a file and a directory."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtasecure.errors import UsageError
from mtasecure.transport import trust as shell_trust
from tests.pki import pki

ONE = pki("trust-one")
TWO = pki("trust-two")


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    shell_trust.load_system_trust_store.cache_clear()
    yield
    shell_trust.load_system_trust_store.cache_clear()


def _point_at(monkeypatch: pytest.MonkeyPatch, *, cafile: Path | None, capath: Path | None) -> None:
    paths = ssl.DefaultVerifyPaths(  # type: ignore[call-arg]
        str(cafile) if cafile else None, str(capath) if capath else None, "", "", "", ""
    )
    monkeypatch.setattr(shell_trust.ssl, "get_default_verify_paths", lambda: paths)
    monkeypatch.setattr(shell_trust, "BUNDLE_CANDIDATES", ())


def test_the_limit_is_sixteen_mebibytes() -> None:
    assert shell_trust.MAX_BUNDLE_BYTES == 16 * 1024 * 1024


def test_a_bundle_over_the_limit_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(_pem(ONE.root.cert))
    monkeypatch.setattr(shell_trust, "MAX_BUNDLE_BYTES", bundle.stat().st_size - 1)
    _point_at(monkeypatch, cafile=bundle, capath=None)
    with pytest.raises(UsageError, match="no system CA bundle found"):
        shell_trust.load_system_trust_store()


def test_a_bundle_at_the_limit_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(_pem(ONE.root.cert))
    monkeypatch.setattr(shell_trust, "MAX_BUNDLE_BYTES", bundle.stat().st_size)
    _point_at(monkeypatch, cafile=bundle, capath=None)
    assert shell_trust.load_system_trust_store().certificates == (ONE.root.cert,)


def test_a_directory_stops_reading_at_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.pem").write_bytes(_pem(ONE.root.cert))
    (tmp_path / "b.pem").write_bytes(_pem(TWO.root.cert))
    first = (tmp_path / "a.pem").stat().st_size
    _point_at(monkeypatch, cafile=None, capath=tmp_path)
    assert len(shell_trust.load_system_trust_store()) == 2
    shell_trust.load_system_trust_store.cache_clear()
    # Room for the first file only: the second is not read.
    monkeypatch.setattr(shell_trust, "MAX_BUNDLE_BYTES", first + 10)
    assert shell_trust.load_system_trust_store().certificates == (ONE.root.cert,)


def test_an_unreadable_bundle_falls_through_to_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    good = tmp_path / "good.pem"
    good.write_bytes(_pem(TWO.root.cert))
    _point_at(monkeypatch, cafile=garbage, capath=None)
    monkeypatch.setattr(shell_trust, "BUNDLE_CANDIDATES", (str(good),))
    assert shell_trust.load_system_trust_store().certificates == (TWO.root.cert,)
