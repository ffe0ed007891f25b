"""DANE for SMTP: the state of an MX (RFC 7672 §2.2) and chain matching (RFC 7672 §3, RFC 7671 §5).

Each matching vector is a TLSA RRset, a presented chain (minted at test time),
the reference identifiers, the expected RFC 8460 §4.3 result, and its rule.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import pytest
from cryptography import x509
from hypothesis import given
from hypothesis import strategies as st

import mtasecure.dane
from mtasecure.dane import (
    MAX_TLSA_RECORDS,
    DanePolicy,
    DaneState,
    TlsaRecord,
    check_dane,
    match_tlsa,
    plan_dane,
    reference_names,
    render_tlsa,
)
from mtasecure.dnssec import DnsAnswer, Security
from mtasecure.errors import NameSyntaxError, UsageError
from mtasecure.results import FailureReason
from tests.pki import CLIENT_AUTH, DAY, NOW, Issued, mint, pki

PKI = pki("dane")
OTHER = pki("dane other")
LEAF, INTER, ROOT = PKI.leaf.cert, PKI.inter.cert, PKI.root.cert
MX = ("mx.example.com",)
MX_AND_DOMAIN = ("mx.example.com", "example.com")

OK = None
MISMATCH = FailureReason.CERTIFICATE_HOST_MISMATCH
EXPIRED = FailureReason.CERTIFICATE_EXPIRED
FAILURE = FailureReason.VALIDATION_FAILURE
TLSA_INVALID = FailureReason.TLSA_INVALID


def rr(usage: int, selector: int, mtype: int, cert: x509.Certificate) -> TlsaRecord:
    return TlsaRecord.for_certificate(cert, usage=usage, selector=selector, mtype=mtype)


def _forged_leaf() -> list[x509.Certificate]:
    # Names the intermediate as issuer but is signed by another key.
    impostor = Issued(INTER, OTHER.inter.key)
    return [mint("forged", impostor, key_role="forged").cert, INTER]


@cache
def _expired_inter() -> list[x509.Certificate]:
    inter = mint("dane old intermediate", PKI.root, ca=True, not_after=NOW - DAY)
    return [mint("leaf", inter).cert, inter.cert]


@cache
def _not_ca() -> list[x509.Certificate]:
    issuer = mint("dane not a ca", PKI.root, sans=None, eku=None)
    return [mint("leaf", issuer).cert, issuer.cert]


@cache
def _constrained(permitted: str) -> list[x509.Certificate]:
    constraint = x509.NameConstraints(
        permitted_subtrees=[x509.DNSName(permitted)], excluded_subtrees=None
    )
    inter = mint(
        f"dane constrained {permitted}", PKI.root, ca=True, extensions=((constraint, True),)
    )
    return [mint("leaf", inter).cert, inter.cert]


@cache
def _path_length_zero() -> list[x509.Certificate]:
    first = mint("dane pathlen 0", PKI.root, ca=True, path_length=0)
    second = mint("dane below pathlen 0", first, ca=True)
    return [mint("leaf", second).cert, second.cert, first.cert]


# (id, records, chain factory, reference names, expected, rule)
Vector = tuple[
    str,
    Callable[[], list[TlsaRecord]],
    Callable[[], list[x509.Certificate]],
    tuple[str, ...],
    FailureReason | None,
    str,
]
VECTORS: list[Vector] = [
    # DANE-EE(3)
    ("3 1 1 leaf", lambda: [rr(3, 1, 1, LEAF)], lambda: PKI.chain, MX, OK, "RFC 7672 §3.1.1"),
    ("3 0 1 leaf", lambda: [rr(3, 0, 1, LEAF)], lambda: PKI.chain, MX, OK, "RFC 6698 §2.1.2 selector 0"),
    ("3 1 2 leaf", lambda: [rr(3, 1, 2, LEAF)], lambda: PKI.chain, MX, OK, "RFC 6698 §2.1.3 SHA2-512"),
    ("3 0 0 leaf", lambda: [rr(3, 0, 0, LEAF)], lambda: PKI.chain, MX, OK, "RFC 6698 §2.1.3 Full"),
    ("3 1 0 leaf", lambda: [rr(3, 1, 0, LEAF)], lambda: PKI.chain, MX, OK, "RFC 6698 §2.1.3 Full"),
    ("3 1 1 other key", lambda: [rr(3, 1, 1, OTHER.leaf.cert)], lambda: PKI.chain, MX, FAILURE, "RFC 6698 §4.1"),
    ("3 1 1 of the intermediate", lambda: [rr(3, 1, 1, INTER)], lambda: PKI.chain, MX, FAILURE, "RFC 7672 §3.1.1: the leaf"),
    ("3 1 1 expired leaf", lambda: [rr(3, 1, 1, LEAF)], lambda: [mint("x", PKI.inter, key_role="dane leaf", not_after=NOW - DAY).cert], MX, OK, "RFC 7672 §3.1.1: expiry ignored"),
    ("3 1 1 wrong name", lambda: [rr(3, 1, 1, LEAF)], lambda: PKI.chain, ("other.example.net",), OK, "RFC 7672 §3.2.1: no name checks"),
    ("3 1 1 self-signed alone", lambda: [rr(3, 1, 1, mint("ss", key_role="ss").cert)], lambda: [mint("ss", key_role="ss").cert], MX, OK, "RFC 7672 §3.1.1: no chain"),
    ("3 1 1 mismatch, 2 0 1 match", lambda: [rr(3, 1, 1, OTHER.leaf.cert), rr(2, 0, 1, INTER)], lambda: PKI.chain, MX, OK, "RFC 6698 §4.1: any record"),
    # DANE-TA(2)
    ("2 0 1 intermediate", lambda: [rr(2, 0, 1, INTER)], lambda: PKI.chain, MX, OK, "RFC 7672 §3.1.2"),
    ("2 1 1 intermediate", lambda: [rr(2, 1, 1, INTER)], lambda: PKI.chain, MX, OK, "RFC 7671 §5.2.2"),
    ("2 0 1 root sent", lambda: [rr(2, 0, 1, ROOT)], lambda: [*PKI.chain, ROOT], MX, OK, "RFC 7672 §3.1.2: TA in the chain"),
    ("2 0 1 root not sent", lambda: [rr(2, 0, 1, ROOT)], lambda: PKI.chain, MX, FAILURE, "RFC 7671 §5.2.2: TA MUST be sent"),
    ("2 1 1 root not sent", lambda: [rr(2, 1, 1, ROOT)], lambda: PKI.chain, MX, FAILURE, "RFC 7671 §5.2.2"),
    ("2 0 0 root not sent", lambda: [rr(2, 0, 0, ROOT)], lambda: PKI.chain, MX, OK, "RFC 7671 §5.2.2: '2 0 0' TA may be absent"),
    ("2 1 0 root key not sent", lambda: [rr(2, 1, 0, ROOT)], lambda: PKI.chain, MX, OK, "RFC 7671 §5.2.3: key signed the top"),
    ("2 1 0 other key", lambda: [rr(2, 1, 0, OTHER.root.cert)], lambda: PKI.chain, MX, FAILURE, "RFC 7671 §5.2.3"),
    ("2 1 0 intermediate key, leaf alone", lambda: [rr(2, 1, 0, INTER)], lambda: [LEAF], MX, OK, "RFC 7671 §5.2.3"),
    ("2 0 1 of the leaf", lambda: [rr(2, 0, 1, LEAF)], lambda: PKI.chain, MX, FAILURE, "RFC 6698 §2.1.1: usage 2 is an anchor above the leaf"),
    ("2 0 1 wrong name", lambda: [rr(2, 0, 1, INTER)], lambda: PKI.issue(sans=("other.example.net",)), MX, MISMATCH, "RFC 7672 §3.2.2"),
    ("2 0 1 next-hop name, secure MX", lambda: [rr(2, 0, 1, INTER)], lambda: PKI.issue(sans=("example.com",)), MX_AND_DOMAIN, OK, "RFC 7672 §3.2.2: second reference identifier"),
    ("2 0 1 next-hop name, insecure MX", lambda: [rr(2, 0, 1, INTER)], lambda: PKI.issue(sans=("example.com",)), MX, MISMATCH, "RFC 7672 §3.2.2: MX host only"),
    ("2 0 1 wildcard", lambda: [rr(2, 0, 1, INTER)], lambda: PKI.issue(sans=("*.example.com",)), MX, OK, "RFC 7672 §3.2.3"),
    ("2 0 1 wildcard two labels", lambda: [rr(2, 0, 1, INTER)], lambda: PKI.issue(sans=("*.com",)), MX, MISMATCH, "RFC 7672 §3.2.3, RFC 6125 §7.2"),
    ("2 0 1 CN without SAN", lambda: [rr(2, 0, 1, INTER)], lambda: PKI.issue("mx.example.com", sans=None), MX, OK, "RFC 7672 §3.2.3: CN-ID when no DNS-ID"),
    ("2 0 1 CN ignored beside SAN", lambda: [rr(2, 0, 1, INTER)], lambda: PKI.issue("mx.example.com", sans=("other.example.net",)), MX, MISMATCH, "RFC 7672 §3.2.3"),
    ("2 0 1 IDN", lambda: [rr(2, 0, 1, INTER)], lambda: PKI.issue(sans=("xn--mx-hia.example.com",)), ("mxß.example.com",), OK, "RFC 6125 §6.4.2"),
    ("2 0 1 expired leaf", lambda: [rr(2, 0, 1, INTER)], lambda: PKI.issue(not_after=NOW - DAY), MX, EXPIRED, "RFC 6698 §2.1.1 usage 2: PKIX path validation"),
    ("2 0 1 expired TA", lambda: [rr(2, 0, 1, _expired_inter()[1])], _expired_inter, MX, EXPIRED, "RFC 5280 §6.1.3"),
    ("2 0 1 TA name constraints kept", lambda: [rr(2, 0, 1, _constrained("example.com")[1])], lambda: _constrained("example.com"), MX, OK, "RFC 7672 §3.1.2"),
    ("2 0 1 TA name constraints broken", lambda: [rr(2, 0, 1, _constrained("example.org")[1])], lambda: _constrained("example.org"), MX, FAILURE, "RFC 7672 §3.1.2: apply the TA's constraints"),
    ("2 0 1 TA path length broken", lambda: [rr(2, 0, 1, _path_length_zero()[2])], _path_length_zero, MX, FAILURE, "RFC 7671 §5.2.1: path length constraints"),
    ("2 0 1 issuer not a CA", lambda: [rr(2, 0, 1, _not_ca()[1])], _not_ca, MX, FAILURE, "RFC 5280 §4.2.1.9"),
    ("2 0 1 client-auth leaf", lambda: [rr(2, 0, 1, INTER)], lambda: PKI.issue(eku=(CLIENT_AUTH,)), MX, FAILURE, "RFC 5280 §4.2.1.12"),
    ("2 0 1 forged signature", lambda: [rr(2, 0, 1, INTER)], _forged_leaf, MX, FAILURE, "RFC 5280 §6.1.3 (a)(1)"),
    ("2 0 1 private CA, no EKU", lambda: [rr(2, 0, 1, INTER)], lambda: PKI.issue(eku=None), MX, OK, "RFC 7671 §5.2: private CAs"),
    # nothing usable
    ("PKIX only", lambda: [rr(0, 0, 1, ROOT), rr(1, 1, 1, LEAF)], lambda: PKI.chain, MX, TLSA_INVALID, "RFC 7672 §3.1.3, RFC 8460 §4.3.2.1"),
    ("malformed only", lambda: [TlsaRecord(usage=3, selector=1, mtype=1, data=b"\x01")], lambda: PKI.chain, MX, TLSA_INVALID, "RFC 6698 §4.1"),
    ("no records", list, lambda: PKI.chain, MX, TLSA_INVALID, "RFC 8460 §4.3.2.1"),
    ("empty chain", lambda: [rr(3, 1, 1, LEAF)], list, MX, FAILURE, "RFC 7672 §3.2"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("records", "chain", "names", "expected", "rule"),
    [v[1:] for v in VECTORS],
    ids=[v[0] for v in VECTORS],
)
def test_match_vectors(
    records: Callable[[], list[TlsaRecord]],
    chain: Callable[[], list[x509.Certificate]],
    names: tuple[str, ...],
    expected: FailureReason | None,
    rule: str,
) -> None:
    result = match_tlsa(records(), chain(), now=NOW, reference_names=names)
    assert result.reason == expected, f"{rule}: {result.detail}"
    assert result.detail


def test_host_mismatch_wins_over_other_anchors_failures() -> None:
    # Two anchors: the root is not sent (no match), the intermediate matches but the name is wrong.
    chain = PKI.issue(sans=("other.example.net",))
    result = match_tlsa([rr(2, 0, 1, ROOT), rr(2, 0, 1, INTER)], chain, now=NOW, reference_names=MX)
    assert result.reason is MISMATCH


@pytest.mark.parametrize(
    ("position", "ok"), [(MAX_TLSA_RECORDS, True), (MAX_TLSA_RECORDS + 1, False)]
)
def test_records_past_the_limit_are_not_tried(position: int, ok: bool) -> None:
    decoys = [
        TlsaRecord(usage=3, selector=1, mtype=1, data=bytes([i % 256, i // 256]) * 16)
        for i in range(position - 1)
    ]
    for match in (rr(3, 1, 1, LEAF), rr(2, 0, 1, INTER)):
        result = match_tlsa([*decoys, match], PKI.chain, now=NOW, reference_names=MX)
        assert result.ok is ok, result.detail
        if not ok:
            assert "MAX_TLSA_RECORDS" in result.detail


def test_dane_ta_needs_reference_names() -> None:
    with pytest.raises(UsageError):
        match_tlsa([rr(2, 0, 1, INTER)], PKI.chain, now=NOW, reference_names=())


def test_dane_ee_needs_no_reference_names() -> None:
    assert match_tlsa([rr(3, 1, 1, LEAF)], PKI.chain, now=NOW, reference_names=()).ok


def test_naive_now_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        match_tlsa([rr(3, 1, 1, LEAF)], PKI.chain, now=NOW.replace(tzinfo=None), reference_names=MX)


MATCHING = [
    rr(3, 1, 1, LEAF),
    rr(3, 0, 1, LEAF),
    rr(3, 1, 2, LEAF),
    rr(2, 0, 1, INTER),
    rr(2, 1, 2, INTER),
]


@given(st.sampled_from(MATCHING), st.data())
def test_a_flipped_byte_never_matches(record: TlsaRecord, data: st.DataObject) -> None:
    """RFC 6698 §2.1.4: the association must match exactly."""
    index = data.draw(st.integers(0, len(record.data) - 1))
    mask = data.draw(st.integers(1, 255))
    flipped = bytearray(record.data)
    flipped[index] ^= mask
    tampered = record.model_copy(update={"data": bytes(flipped)})
    assert match_tlsa([record], PKI.chain, now=NOW, reference_names=MX).ok
    result = match_tlsa([tampered], PKI.chain, now=NOW, reference_names=MX)
    assert result.reason is FAILURE


@given(st.binary(min_size=1, max_size=200))
def test_a_full_record_of_other_bytes_never_matches(data: bytes) -> None:
    """RFC 6698 §4.1: malformed Full data is unusable; well-formed other data does not match."""
    for usage, selector in ((3, 0), (3, 1), (2, 0), (2, 1)):
        record = TlsaRecord(usage=usage, selector=selector, mtype=0, data=data)
        result = match_tlsa([record], PKI.chain, now=NOW, reference_names=MX)
        assert not result.ok


# -- the state of an MX (RFC 7672 §2.2) -------------------------------------------

GOOD = render_tlsa(rr(3, 1, 1, LEAF))
PKIX = render_tlsa(rr(1, 1, 1, LEAF))
SHORT = "3 1 1 0102"  # wrong digest length: unusable, not an error (RFC 6698 §4.1)
GARBAGE = "not a tlsa record"
RECORD_SETS = [(), (GOOD,), (PKIX,), (SHORT,), (GARBAGE,), (GOOD, PKIX, GARBAGE), (PKIX, SHORT)]


def answer(records: tuple[str, ...] = (GOOD,), **fields: object) -> DnsAnswer:
    return DnsAnswer(
        name="_25._tcp.mx.example.com",
        rdtype="TLSA",
        records=records,
        security=fields.pop("security", Security.SECURE),
        **fields,  # type: ignore[arg-type]
    )


@given(
    st.sampled_from(list(Security)),
    st.sampled_from(RECORD_SETS),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_plan_for_every_answer(
    security: Security, records: tuple[str, ...], nxdomain: bool, failed: bool, mx_secure: bool
) -> None:
    """RFC 7672 §2.1.1, §2.1.2, §2.2: every (status × records) pair has exactly one state."""
    if nxdomain or failed:
        records = ()
    policy = plan_dane(
        answer(records, security=security, nxdomain=nxdomain, failed=failed),
        mx_secure,
        next_hop="example.com",
    )
    assert policy.base_domain == "mx.example.com"
    assert policy.port == 25
    if failed or security in (Security.BOGUS, Security.INDETERMINATE):
        expected = DaneState.FAILED
    elif not records:
        expected = DaneState.NO_TLSA
    elif security is Security.INSECURE:
        expected = DaneState.INSECURE
    elif GOOD in records:
        expected = DaneState.USABLE
    else:
        expected = DaneState.UNUSABLE
    assert policy.state is expected
    assert policy.may_connect is (expected is not DaneState.FAILED)
    assert policy.requires_tls is (expected in (DaneState.USABLE, DaneState.UNUSABLE))
    assert policy.requires_authentication is (expected is DaneState.USABLE)
    assert policy.applies is (expected not in (DaneState.NO_TLSA, DaneState.INSECURE))
    assert (policy.reason is FailureReason.DNSSEC_INVALID) is (expected is DaneState.FAILED)
    assert bool(policy.records) is (expected is DaneState.USABLE)
    if expected in (DaneState.USABLE, DaneState.UNUSABLE):
        assert len(policy.unusable) == sum(r != GOOD for r in records)
    assert policy.reference_names == (MX_AND_DOMAIN if mx_secure else MX)


def test_plan_keeps_the_base_domain_through_a_cname() -> None:
    """RFC 7672 §2.2.3: a CNAME at the TLSA name does not change the base domain."""
    policy = plan_dane(
        answer(cname_chain=("tlsa201._dane.example.com",)), True, next_hop="example.com"
    )
    assert policy.base_domain == "mx.example.com"
    assert policy.reference_names[0] == "mx.example.com"


def test_plan_reads_the_port() -> None:
    policy = plan_dane(
        DnsAnswer(name="_2525._tcp.relay.example.", rdtype="TLSA", security=Security.SECURE),
        False,
    )
    assert (policy.port, policy.base_domain, policy.state) == (
        2525,
        "relay.example",
        DaneState.NO_TLSA,
    )


@pytest.mark.parametrize(
    ("name", "rdtype"),
    [
        ("mx.example.com", "TLSA"),
        ("_25._udp.mx.example.com", "TLSA"),
        ("_25._tcp.mx.example.com", "MX"),
        ("_25._tcp.a..b", "TLSA"),
    ],
)
def test_plan_rejects_answers_that_are_not_tlsa_lookups(name: str, rdtype: str) -> None:
    with pytest.raises(UsageError):
        plan_dane(DnsAnswer(name=name, rdtype=rdtype), True)


def test_plan_applies_digest_agility() -> None:
    """RFC 7671 §9: the weaker SHA2-256 record is dropped beside a SHA2-512 one."""
    strong, weak = render_tlsa(rr(3, 1, 2, LEAF)), render_tlsa(rr(3, 1, 1, OTHER.leaf.cert))
    policy = plan_dane(answer((weak, strong)), True)
    assert [r.mtype for r in policy.records] == [2]


def test_reference_names() -> None:
    """RFC 7672 §3.2.2: base domain, then next-hop and its expansion after a secure MX lookup."""
    assert reference_names("MX.example.com.", mx_secure=False, next_hop="example.com") == MX
    assert reference_names(
        "mx.example.com",
        mx_secure=True,
        next_hop="exchange.example.org",
        next_hop_expanded="example.com",
    ) == ("mx.example.com", "exchange.example.org", "example.com")
    assert reference_names("mx.example.com", mx_secure=True, next_hop="mx.example.com") == MX
    with pytest.raises(NameSyntaxError):
        reference_names("not a name", mx_secure=True)


# -- judging a session against the policy -------------------------------------------


def _policy(records: tuple[str, ...], **fields: object) -> DanePolicy:
    return plan_dane(answer(records, **fields), True, next_hop="example.com")


@pytest.mark.parametrize(
    ("policy", "chain", "expected"),
    [
        (_policy((GOOD,)), PKI.chain, None),
        (_policy((GOOD,)), OTHER.chain, FAILURE),
        (_policy((GOOD,)), None, FailureReason.STARTTLS_NOT_SUPPORTED),
        (_policy((PKIX,)), OTHER.chain, None),
        (_policy((PKIX,)), None, FailureReason.STARTTLS_NOT_SUPPORTED),
        (_policy((GOOD,), security=Security.BOGUS), PKI.chain, FailureReason.DNSSEC_INVALID),
        (_policy((), failed=True), PKI.chain, FailureReason.DNSSEC_INVALID),
        (_policy((GOOD,), security=Security.INSECURE), None, None),
        (_policy(()), None, None),
    ],
    ids=[
        "usable, matching",
        "usable, not matching",
        "usable, no TLS",
        "unusable, any chain",
        "unusable, no TLS",
        "bogus",
        "lookup failed",
        "insecure, cleartext",
        "no TLSA, cleartext",
    ],
)
def test_check_dane(
    policy: DanePolicy, chain: list[x509.Certificate] | None, expected: FailureReason | None
) -> None:
    """RFC 7672 §2.2's four actions."""
    assert check_dane(policy, chain, now=NOW).reason == expected


def test_public_names_are_pinned() -> None:
    assert mtasecure.dane.__all__ == [
        "CertUsage",
        "DIGEST_PREFERENCE",
        "DaneLookup",
        "DanePolicy",
        "DaneState",
        "DaneStep",
        "MAX_DANE_LOOKUPS",
        "MAX_TLSA_CANDIDATES",
        "MAX_TLSA_DATA_LENGTH",
        "MAX_TLSA_RECORDS",
        "MatchingType",
        "Selector",
        "TlsaRecord",
        "association_data",
        "check_dane",
        "match_tlsa",
        "parse_tlsa",
        "plan_dane",
        "plan_dane_lookup",
        "reference_names",
        "render_tlsa",
        "select_tlsa",
        "spki_der",
    ]
    for name in mtasecure.dane.__all__:
        assert getattr(mtasecure.dane, name).__doc__ or name.isupper()


_POOL = [LEAF, INTER, ROOT, OTHER.leaf.cert, OTHER.inter.cert, OTHER.root.cert]


@st.composite
def _records(draw: st.DrawFn) -> TlsaRecord:
    usage = draw(st.sampled_from([2, 3]))
    selector = draw(st.sampled_from([0, 1]))
    mtype = draw(st.sampled_from([0, 1, 2]))
    source = draw(st.one_of(st.sampled_from(_POOL), st.binary(min_size=1, max_size=80)))
    if isinstance(source, bytes):
        return TlsaRecord(usage=usage, selector=selector, mtype=mtype, data=source)
    return rr(usage, selector, mtype, source)


@given(
    st.lists(_records(), max_size=5),
    st.lists(st.sampled_from(_POOL), min_size=1, max_size=5),
    st.sampled_from([NOW, NOW - 60 * DAY, NOW + 60 * DAY]),
)
def test_match_never_raises_and_only_passes_on_a_real_match(
    records: list[TlsaRecord], chain: list[x509.Certificate], now: object
) -> None:
    """Security failures are values (ARCHITECTURE.md); a pass needs a matching record."""
    result = match_tlsa(records, chain, now=now, reference_names=MX)  # type: ignore[arg-type]
    assert result.reason in (None, *FailureReason)
    if result.ok:
        assert any(r.usable for r in records)


@pytest.mark.parametrize(
    ("state", "applies"),
    [
        (DaneState.USABLE, True),
        (DaneState.UNUSABLE, True),  # TLS still mandatory (RFC 7672 §2.2)
        (DaneState.FAILED, True),  # the MX must not be used (RFC 7672 §2.1.2)
        (DaneState.NO_TLSA, False),
        (DaneState.INSECURE, False),  # RFC 6698 §4.1
    ],
)
def test_which_states_make_dane_apply(state: DaneState, applies: bool) -> None:
    assert state.applies is applies


@pytest.mark.parametrize("state", list(DaneState))
def test_server_name_is_the_tlsa_base_domain_under_dane(state: DaneState) -> None:
    # RFC 7672 §8.1: SNI carries the TLSA base domain; it differs from the MX
    # name only after a secure CNAME (§2.2.3).
    policy = DanePolicy(state=state, base_domain="mx.hosting.example")
    expected = (
        "mx.hosting.example"
        if state in (DaneState.USABLE, DaneState.UNUSABLE)
        else "mx.example.com"
    )
    assert policy.server_name("mx.example.com") == expected
