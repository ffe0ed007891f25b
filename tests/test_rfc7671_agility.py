"""Digest algorithm agility (RFC 7671 §9) and the trust-anchor forms of RFC 7671 §5.2."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mtasecure.dane import (
    DIGEST_PREFERENCE,
    MatchingType,
    TlsaRecord,
    match_tlsa,
    select_tlsa,
)
from mtasecure.results import FailureReason
from tests.pki import NOW, pki

PKI = pki("agility")
OTHER = pki("agility other")
LEAF, INTER = PKI.leaf.cert, PKI.inter.cert
MX = ("mx.example.com",)


def rr(usage: int, selector: int, mtype: int, cert: object = LEAF) -> TlsaRecord:
    return TlsaRecord.for_certificate(cert, usage=usage, selector=selector, mtype=mtype)  # type: ignore[arg-type]


def params(records: tuple[TlsaRecord, ...]) -> list[str]:
    return [f"{r.usage} {r.selector} {r.mtype}" for r in records]


# (id, records, kept, rule)
SELECTION = [
    ("RFC 7671 §9 example", [rr(3, 1, 1), rr(3, 1, 2), rr(3, 1, 0)], ["3 1 2", "3 1 0"], "keep Full(0) and the strongest digest"),
    ("one digest only", [rr(3, 1, 1), rr(3, 1, 1, OTHER.leaf.cert)], ["3 1 1", "3 1 1"], "nothing stronger to prefer"),
    ("per usage and selector", [rr(3, 1, 1), rr(3, 0, 2), rr(2, 0, 1, INTER)], ["3 1 1", "3 0 2", "2 0 1"], "groups are (usage, selector)"),
    ("strong digest malformed", [rr(3, 1, 1), TlsaRecord(usage=3, selector=1, mtype=2, data=b"\x00" * 32)], ["3 1 1"], "discard unusable records first"),
    ("unknown matching type", [rr(3, 1, 1), TlsaRecord(usage=3, selector=1, mtype=7, data=b"\x00" * 32)], ["3 1 1"], "unknown types are unusable"),
    ("PKIX dropped", [rr(1, 1, 2), rr(3, 1, 1)], ["3 1 1"], "RFC 7672 §3.1.3"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("records", "kept", "rule"), [s[1:] for s in SELECTION], ids=[s[0] for s in SELECTION]
)
def test_selection(records: list[TlsaRecord], kept: list[str], rule: str) -> None:
    assert params(select_tlsa(records)) == kept, rule


def test_weak_digest_is_not_accepted_beside_a_strong_one() -> None:
    """RFC 7671 §9: "SHOULD NOT accept keys that match only the weaker '3 1 1' record"."""
    records = [rr(3, 1, 1), rr(3, 1, 2, OTHER.leaf.cert)]
    result = match_tlsa(records, PKI.chain, now=NOW, reference_names=MX)
    assert result.reason is FailureReason.VALIDATION_FAILURE
    assert match_tlsa([rr(3, 1, 1)], PKI.chain, now=NOW, reference_names=MX).ok


def test_full_records_are_never_avoided() -> None:
    """RFC 7671 §9: "this protocol never avoids RRs with a DANE matching type of Full(0)"."""
    records = [rr(3, 1, 0), rr(3, 1, 2, OTHER.leaf.cert)]
    assert match_tlsa(records, PKI.chain, now=NOW, reference_names=MX).ok


def test_the_order_is_configurable() -> None:
    """RFC 7671 §9: "This order SHOULD be configurable"."""
    records = [rr(3, 1, 1), rr(3, 1, 2, OTHER.leaf.cert)]
    prefer_256 = (MatchingType.SHA2_256, MatchingType.SHA2_512)
    assert params(select_tlsa(records, digest_preference=prefer_256)) == ["3 1 1"]
    assert match_tlsa(
        records, PKI.chain, now=NOW, reference_names=MX, digest_preference=prefer_256
    ).ok
    assert DIGEST_PREFERENCE == (MatchingType.SHA2_512, MatchingType.SHA2_256)


@given(
    st.lists(
        st.tuples(st.sampled_from([2, 3]), st.sampled_from([0, 1]), st.sampled_from([0, 1, 2])),
        max_size=8,
    )
)
def test_selection_keeps_full_and_one_digest_per_group(shape: list[tuple[int, int, int]]) -> None:
    records = [rr(u, s, m, INTER if u == 2 else LEAF) for u, s, m in shape]
    kept = select_tlsa(records)
    assert all(r in records for r in kept)
    assert [r for r in records if r.mtype == 0] == [r for r in kept if r.mtype == 0]
    for usage, selector in {(u, s) for u, s, _ in shape}:
        digests = {r.mtype for r in kept if (r.usage, r.selector) == (usage, selector) and r.mtype}
        present = {m for u, s, m in shape if (u, s) == (usage, selector) and m}
        assert digests == ({max(present)} if present else set())


# -- RFC 7671 §5.2: where the trust anchor comes from ----------------------------------

ROOT = PKI.root.cert


@pytest.mark.parametrize(
    ("record", "chain", "ok", "rule"),
    [
        (rr(2, 0, 1, ROOT), [LEAF, INTER, ROOT], True, "§5.2: TA certificate sent"),
        (rr(2, 0, 1, ROOT), [LEAF, INTER], False, "§5.2.2: a digest needs the TA sent"),
        (rr(2, 1, 2, ROOT), [LEAF, INTER], False, "§5.2.2: SPKI digests too"),
        (rr(2, 0, 0, ROOT), [LEAF, INTER], True, "§5.2.2: '2 0 0' TA may come from DNS"),
        (rr(2, 1, 0, ROOT), [LEAF, INTER], True, "§5.2.3: '2 1 0' key signed the top certificate"),
        (rr(2, 1, 0, ROOT), [LEAF, INTER, ROOT], True, "§5.2.3: '2 1 0' with the TA sent"),
        (rr(2, 1, 0, OTHER.root.cert), [LEAF, INTER], False, "§5.2.3: another key"),
        (rr(2, 1, 1, INTER), [LEAF, INTER], True, "§5.2.1: SPKI TA in the chain"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_trust_anchor_forms(record: TlsaRecord, chain: list[object], ok: bool, rule: str) -> None:
    result = match_tlsa([record], chain, now=NOW, reference_names=MX)  # type: ignore[arg-type]
    assert result.ok is ok, f"RFC 7671 {rule}: {result.detail}"
