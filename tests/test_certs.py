"""WebPKI checks of MX certificates (RFC 8461 §4.2, RFC 6125 §6.4, RFC 5280 §6).

Every vector is a chain minted at test time, a host name, the expected RFC 8460
§4.3.1 result, and the rule it exercises. The same vectors are cross-checked
against cryptography's own server verifier: mtasecure may differ from it only in
the reason, never in the verdict.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import verification
from hypothesis import given
from hypothesis import strategies as st

import mtasecure.certs
from mtasecure._names import normalize_host
from mtasecure.certs import (
    MAX_CHAIN_LENGTH,
    MAX_SAN_NAMES,
    TrustStore,
    certificate_names,
    check_certificate,
    match_host,
)
from mtasecure.errors import NameSyntaxError, UsageError
from mtasecure.results import FailureReason
from mtasecure.transport import trust as shell_trust
from tests.pki import CLIENT_AUTH, DAY, NOW, SERVER_AUTH, mint, pki

PKI = pki("certs")
TRUST = TrustStore([PKI.root.cert])
OTHER = pki("other")

EXPIRED = FailureReason.CERTIFICATE_EXPIRED
UNTRUSTED = FailureReason.CERTIFICATE_NOT_TRUSTED
MISMATCH = FailureReason.CERTIFICATE_HOST_MISMATCH
INVALID = FailureReason.VALIDATION_FAILURE


def _expired_inter() -> list[x509.Certificate]:
    inter = mint("old intermediate", PKI.root, ca=True, not_after=NOW - DAY)
    return [mint("leaf", inter).cert, inter.cert]


def _not_ca_inter() -> list[x509.Certificate]:
    inter = mint("not a ca", PKI.root, sans=None, eku=None)
    return [mint("leaf", inter).cert, inter.cert]


def _path_length() -> list[x509.Certificate]:
    first = mint("pathlen 0", PKI.root, ca=True, path_length=0)
    second = mint("below pathlen 0", first, ca=True)
    return [mint("leaf", second).cert, second.cert, first.cert]


def _no_key_cert_sign() -> list[x509.Certificate]:
    inter = mint("no keyCertSign", PKI.root, ca=True, key_cert_sign=False)
    return [mint("leaf", inter).cert, inter.cert]


def _ca_eku(*usages: x509.ObjectIdentifier) -> list[x509.Certificate]:
    inter = mint(f"eku {len(usages)} {usages[0].dotted_string}", PKI.root, ca=True, ca_eku=usages)
    return [mint("leaf", inter).cert, inter.cert]


def _name_constrained(permitted: str) -> list[x509.Certificate]:
    constraint = x509.NameConstraints(
        permitted_subtrees=[x509.DNSName(permitted)], excluded_subtrees=None
    )
    inter = mint(f"constrained to {permitted}", PKI.root, ca=True, extensions=((constraint, True),))
    return [mint("leaf", inter).cert, inter.cert]


def _trustme() -> list[x509.Certificate]:
    ca = trustme.CA()
    issued = ca.issue_cert("mx.example.com")
    return [x509.load_pem_x509_certificate(b.bytes()) for b in issued.cert_chain_pems]


def _many_sans(position: int) -> list[x509.Certificate]:
    names = (*tuple(f"n{i}.example.net" for i in range(position - 1)), "mx.example.com")
    return PKI.issue(sans=names)


def _ip_san() -> list[x509.Certificate]:
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(PKI.inter.cert.subject)
        .public_key(PKI.leaf.key.public_key())
        .serial_number(7)
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + DAY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(PKI.inter.key.public_key()),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("192.0.2.1"))]),
            critical=True,
        )
        .sign(PKI.inter.key, hashes.SHA256())
    )
    return [leaf, PKI.inter.cert]


# (id, chain factory, host, expected reason or None, rule)
VECTORS: list[tuple[str, Callable[[], list[x509.Certificate]], str, FailureReason | None, str]] = [
    ("good chain", lambda: PKI.chain, "mx.example.com", None, "RFC 8461 §4.2"),
    ("root sent too", lambda: [*PKI.chain, PKI.root.cert], "mx.example.com", None, "RFC 5246 §7.4.2"),
    ("chain out of order", lambda: [PKI.leaf.cert, PKI.root.cert, PKI.inter.cert], "mx.example.com", None, "RFC 8446 §4.4.2: order tolerated"),
    ("missing intermediate", lambda: [PKI.leaf.cert], "mx.example.com", UNTRUSTED, "RFC 8461 §4.2: MUST chain to a trusted root"),
    ("unknown root", lambda: OTHER.chain, "mx.example.com", UNTRUSTED, "RFC 8461 §4.2: MUST chain to a trusted root"),
    ("self-signed leaf", lambda: [mint("mx.example.com", key_role="self").cert], "mx.example.com", UNTRUSTED, "RFC 8461 §4.2"),
    ("expired leaf", lambda: PKI.issue(not_after=NOW - DAY), "mx.example.com", EXPIRED, "RFC 8461 §4.2: MUST not be expired"),
    ("not yet valid leaf", lambda: PKI.issue(not_before=NOW + DAY), "mx.example.com", EXPIRED, "RFC 5280 §4.1.2.5"),
    ("expired intermediate", _expired_inter, "mx.example.com", EXPIRED, "RFC 5280 §6.1.3 (a)(2)"),
    ("expired leaf and wrong name", lambda: PKI.issue(not_after=NOW - DAY, sans=("x.example.org",)), "mx.example.com", EXPIRED, "path before name, RFC 6125 §6.1"),
    ("wrong name", lambda: PKI.chain, "other.example.com", MISMATCH, "RFC 8461 §4.2: SAN DNS-ID matching the hostname"),
    ("wildcard covers one label", lambda: PKI.issue(sans=("*.example.com",)), "mx.example.com", None, "RFC 8461 §4.1"),
    ("wildcard not two labels", lambda: PKI.issue(sans=("*.example.com",)), "a.mx.example.com", MISMATCH, "RFC 8461 §4.1"),
    ("wildcard not the parent", lambda: PKI.issue(sans=("*.example.com",)), "example.com", MISMATCH, "RFC 8461 §4.1"),
    ("partial-label wildcard", lambda: PKI.issue(sans=("mx*.example.com",)), "mx1.example.com", MISMATCH, "RFC 8461 §4.1: '*' is the whole left-most label"),
    ("wildcard inside", lambda: PKI.issue(sans=("mx.*.com",)), "mx.example.com", MISMATCH, "RFC 6125 §6.4.3"),
    ("case-insensitive", lambda: PKI.issue(sans=("MX.Example.COM",)), "mx.EXAMPLE.com", None, "RFC 6125 §6.4.1"),
    ("host with root dot", lambda: PKI.chain, "mx.example.com.", None, "RFC 6125 §6.4.1"),
    ("IDN host as U-label", lambda: PKI.issue(sans=("xn--bcher-kva.example",)), "Bücher.example", None, "RFC 6125 §6.4.2: compare A-labels"),
    ("IDN wildcard", lambda: PKI.issue(sans=("*.xn--bcher-kva.example",)), "mx.bücher.example", None, "RFC 6125 §6.4.2, §6.4.3"),
    ("IDN SAN vs ASCII look-alike", lambda: PKI.issue(sans=("xn--bcher-kva.example",)), "bucher.example", MISMATCH, "RFC 6125 §6.4.2"),
    ("no SAN, CN only", lambda: PKI.issue("mx.example.com", sans=None), "mx.example.com", MISMATCH, "RFC 8461 §4.2: MUST have a SAN DNS-ID"),
    ("IP SAN only", _ip_san, "mx.example.com", MISMATCH, "RFC 6125 §6.4: DNS-ID only"),
    ("client-auth EKU", lambda: PKI.issue(eku=(CLIENT_AUTH,)), "mx.example.com", UNTRUSTED, "RFC 5280 §4.2.1.12"),
    ("no EKU", lambda: PKI.issue(eku=None), "mx.example.com", None, "RFC 5280 §4.2.1.12"),
    ("intermediate EKU serverAuth+clientAuth", lambda: _ca_eku(SERVER_AUTH, CLIENT_AUTH), "mx.example.com", None, "RFC 5280 §4.2.1.12 (CA/B Forum)"),
    ("intermediate EKU clientAuth only", lambda: _ca_eku(CLIENT_AUTH), "mx.example.com", UNTRUSTED, "RFC 5280 §4.2.1.12 (CA/B Forum)"),
    ("inside name constraints", lambda: _name_constrained("example.com"), "mx.example.com", None, "RFC 5280 §4.2.1.10"),
    ("outside name constraints", lambda: _name_constrained("example.org"), "mx.example.com", UNTRUSTED, "RFC 5280 §4.2.1.10, RFC 8460 §4.3.1"),
    ("issuer not a CA", _not_ca_inter, "mx.example.com", UNTRUSTED, "RFC 5280 §4.2.1.9"),
    ("path length exceeded", _path_length, "mx.example.com", UNTRUSTED, "RFC 5280 §4.2.1.9"),
    ("CA key without keyCertSign", _no_key_cert_sign, "mx.example.com", UNTRUSTED, "RFC 5280 §4.2.1.3"),
    ("critical SAN with a subject", lambda: PKI.issue(san_critical=True), "mx.example.com", UNTRUSTED, "RFC 5280 §4.2.1.6"),
    ("trustme certificate", _trustme, "mx.example.com", UNTRUSTED, "RFC 5280 §4.2.1.6 (critical SAN, unknown root)"),
    ("name at the SAN limit", lambda: _many_sans(MAX_SAN_NAMES), "mx.example.com", None, "MAX_SAN_NAMES"),
    ("name past the SAN limit", lambda: _many_sans(MAX_SAN_NAMES + 1), "mx.example.com", MISMATCH, "MAX_SAN_NAMES"),
    ("empty chain", list, "mx.example.com", INVALID, "RFC 5246 §7.4.2"),
    ("chain at the limit", lambda: [*PKI.chain, *[PKI.inter.cert] * (MAX_CHAIN_LENGTH - 2)], "mx.example.com", None, "MAX_CHAIN_LENGTH"),
    ("chain past the limit", lambda: [*PKI.chain, *[PKI.inter.cert] * (MAX_CHAIN_LENGTH - 1)], "mx.example.com", INVALID, "MAX_CHAIN_LENGTH"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("make", "host", "expected", "rule"), [v[1:] for v in VECTORS], ids=[v[0] for v in VECTORS]
)
def test_vectors(
    make: Callable[[], list[x509.Certificate]],
    host: str,
    expected: FailureReason | None,
    rule: str,
) -> None:
    chain = make()
    trust = TRUST if "trustme" not in rule else TrustStore([PKI.root.cert])
    result = check_certificate(chain, host, now=NOW, trust=trust)
    assert result.reason == expected, f"{rule}: {result.detail}"
    assert result.detail


@pytest.mark.parametrize(
    ("make", "host", "expected"),
    [v[1:4] for v in VECTORS if not v[4].startswith("MAX_") and v[0] != "empty chain"],
    ids=[v[0] for v in VECTORS if not v[4].startswith("MAX_") and v[0] != "empty chain"],
)
def test_verdict_agrees_with_cryptography_server_verifier(
    make: Callable[[], list[x509.Certificate]], host: str, expected: FailureReason | None
) -> None:
    chain = make()
    ours = check_certificate(chain, host, now=NOW, trust=TRUST)
    builder = verification.PolicyBuilder().store(TRUST.store).time(NOW)
    try:
        builder.build_server_verifier(x509.DNSName(normalize_host(host))).verify(
            chain[0], chain[1:]
        )
        theirs = True
    except verification.VerificationError:
        theirs = False
    assert ours.ok == theirs, ours.detail


def test_ok_result_is_truthy_and_names_the_match() -> None:
    result = check_certificate(PKI.chain, "mx.example.com", now=NOW, trust=TRUST)
    assert result
    assert "mx.example.com" in result.detail


def test_now_is_an_argument() -> None:
    chain = PKI.issue(not_after=NOW + DAY)
    assert check_certificate(chain, "mx.example.com", now=NOW, trust=TRUST).ok
    later = check_certificate(chain, "mx.example.com", now=NOW + 2 * DAY, trust=TRUST)
    assert later.reason is EXPIRED


def test_now_in_another_zone_is_the_same_instant() -> None:
    chain = PKI.issue(not_after=NOW + dt.timedelta(hours=1))
    zone = dt.timezone(dt.timedelta(hours=-5))
    assert check_certificate(chain, "mx.example.com", now=NOW.astimezone(zone), trust=TRUST).ok


def test_naive_now_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        check_certificate(PKI.chain, "mx.example.com", now=NOW.replace(tzinfo=None), trust=TRUST)


@pytest.mark.parametrize("host", ["", "192.0.2.1", "[192.0.2.1]", "a..b", "*.example.com"])
def test_host_that_is_not_a_host_name_raises(host: str) -> None:
    with pytest.raises(NameSyntaxError):
        check_certificate(PKI.chain, host, now=NOW, trust=TRUST)


def test_chain_of_non_certificates_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        check_certificate([b"not a cert"], "mx.example.com", now=NOW, trust=TRUST)  # type: ignore[list-item]


@given(st.text(max_size=80))
def test_any_host_string_gives_a_result_or_a_name_error(host: str) -> None:
    try:
        result = check_certificate(PKI.chain, host, now=NOW, trust=TRUST)
    except NameSyntaxError:
        return
    assert result.reason in (None, MISMATCH)


# -- names ----------------------------------------------------------------------


def test_certificate_names_are_normalised_and_bad_entries_dropped() -> None:
    [leaf, _] = PKI.issue(sans=("MX.Example.COM.", "bad_name.example", "*.Example.org", "a*.x.y"))
    assert certificate_names(leaf) == ("mx.example.com", "*.example.org")


def test_cn_is_a_fallback_only_without_dns_ids() -> None:
    [no_san, _] = PKI.issue("cn.example.com", sans=None)
    [with_san, _] = PKI.issue("cn.example.com", sans=("mx.example.com",))
    assert certificate_names(no_san) == ()
    assert certificate_names(no_san, cn_fallback=True) == ("cn.example.com",)
    assert certificate_names(with_san, cn_fallback=True) == ("mx.example.com",)
    assert match_host(no_san, ["cn.example.com"], cn_fallback=True).ok
    assert match_host(with_san, ["cn.example.com"], cn_fallback=True).reason is MISMATCH


def test_match_host_accepts_any_reference_and_skips_bad_ones() -> None:
    [leaf, _] = PKI.issue(sans=("example.com",))
    result = match_host(leaf, ["not a name!", "mx.example.com", "example.com"])
    assert result.ok
    assert match_host(leaf, ["not a name!"]).reason is MISMATCH


# -- trust stores ---------------------------------------------------------------


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def test_trust_store_from_pem() -> None:
    store = TrustStore.from_pem(_pem(PKI.root.cert, OTHER.root.cert))
    assert len(store) == 2
    assert PKI.root.cert in store
    assert check_certificate(OTHER.chain, "mx.example.com", now=NOW, trust=store).ok
    assert "2 certificates" in repr(store)


@pytest.mark.parametrize("data", [b"", b"garbage", b"-----BEGIN CERTIFICATE-----\nAAAA\n"])
def test_trust_store_from_bad_pem_is_a_usage_error(data: bytes) -> None:
    with pytest.raises(UsageError):
        TrustStore.from_pem(data)


def test_trust_store_rejects_non_certificates() -> None:
    with pytest.raises(UsageError):
        TrustStore.from_certificates([b"x"])  # type: ignore[list-item]


def test_system_trust_store_reads_the_openssl_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(_pem(PKI.root.cert))
    paths = ssl.DefaultVerifyPaths(str(bundle), None, "", "", "", "")  # type: ignore[call-arg]
    monkeypatch.setattr(shell_trust.ssl, "get_default_verify_paths", lambda: paths)
    monkeypatch.setattr(shell_trust, "BUNDLE_CANDIDATES", ())
    shell_trust.load_system_trust_store.cache_clear()
    try:
        store = shell_trust.load_system_trust_store()
    finally:
        shell_trust.load_system_trust_store.cache_clear()
    assert store.certificates == (PKI.root.cert,)


def test_system_trust_store_reads_a_hashed_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.0").write_bytes(_pem(PKI.root.cert))
    (tmp_path / "b.pem").write_bytes(_pem(OTHER.root.cert))
    (tmp_path / "link.0").symlink_to(tmp_path / "a.0")
    (tmp_path / "README").write_bytes(b"not a certificate")
    paths = ssl.DefaultVerifyPaths(None, str(tmp_path), "", "", "", "")  # type: ignore[call-arg]
    monkeypatch.setattr(shell_trust.ssl, "get_default_verify_paths", lambda: paths)
    monkeypatch.setattr(shell_trust, "BUNDLE_CANDIDATES", ())
    shell_trust.load_system_trust_store.cache_clear()
    try:
        store = shell_trust.load_system_trust_store()
    finally:
        shell_trust.load_system_trust_store.cache_clear()
    assert len(store) == 2


def test_no_system_bundle_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = ssl.DefaultVerifyPaths(str(tmp_path / "none.pem"), None, "", "", "", "")  # type: ignore[call-arg]
    monkeypatch.setattr(shell_trust.ssl, "get_default_verify_paths", lambda: paths)
    monkeypatch.setattr(shell_trust, "BUNDLE_CANDIDATES", (str(tmp_path / "missing.crt"),))
    shell_trust.load_system_trust_store.cache_clear()
    try:
        with pytest.raises(UsageError):
            shell_trust.load_system_trust_store()
    finally:
        shell_trust.load_system_trust_store.cache_clear()


def test_public_names_are_pinned() -> None:
    assert mtasecure.certs.__all__ == [
        "MAX_CHAIN_LENGTH",
        "MAX_SAN_NAMES",
        "TrustStore",
        "certificate_names",
        "check_certificate",
        "match_host",
    ]
    assert shell_trust.__all__ == [
        "BUNDLE_CANDIDATES",
        "MAX_BUNDLE_BYTES",
        "load_system_trust_store",
    ]
