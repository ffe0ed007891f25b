"""Local DNSSEC validation (RFC 4033 §5, RFC 4035 §5, RFC 5155 §8, RFC 6840).

Zones are signed at test time with dnspython and served by the in-memory
server of ``tests/dnssec_world.py``; no sockets.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import cast

import dns.dnssec
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from dns.rdtypes.ANY.DNSKEY import DNSKEY
from dns.rdtypes.ANY.DS import DS
from dns.rdtypes.ANY.RRSIG import RRSIG
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mtasecure.dnssec as mod
from mtasecure.dnssec import (
    ROOT_TRUST_ANCHOR,
    ChainResult,
    ChainValidator,
    Security,
    TrustAnchor,
    TrustCache,
    parse_trust_anchor,
)
from mtasecure.errors import ParseError, UsageError
from tests.dnssec_world import NOW, Key, World, anchor_for, build_zone, name, run, standard_world

T = dns.rdatatype

# The IANA root KSKs (KSK-2017 and KSK-2024), to check the shipped DS digests.
ROOT_KEYS = {
    20326: "257 3 8 AwEAAaz/tAm8yTn4Mfeh5eyI96WSVexTBAvkMgJzkKTOiW1vkIbzxeF3+/4RgWOq7HrxRixHlFl"
    "ExOLAJr5emLvN7SWXgnLh4+B5xQlNVz8Og8kvArMtNROxVQuCaSnIDdD5LKyWbRd2n9WGe2R8PzgCmr3EgVLr"
    "jyBxWezF0jLHwVN8efS3rCj/EWgvIWgb9tarpVUDK/b58Da+sqqls3eNbuv7pr+eoZG+SrDK6nWeL3c6H5Apxz"
    "7LjVc1uTIdsIXxuOLYA4/ilBmSVIzuDWfdRUfhHdY6+cn8HFRm+2hM8AnXGXws9555KrUB5qihylGa8subX2N"
    "n6UwNR1AkUTV74bU=",
    38696: "257 3 8 AwEAAa96jeuknZlaeSrvyAJj6ZHv28hhOKkx3rLGXVaC6rXTsDc449/cidltpkyGwCJNnOAlFNK"
    "F2jBosZBU5eeHspaQWOmOElZsjICMQMC3aeHbGiShvZsx4wMYSjH8e7Vrhbu6irwCzVBApESjbUdpWWmEnhath"
    "Wu1jo+siFUiRAAxm9qyJNg/wOZqqzL/dL/q8PkcRU5oUKEpUge71M3ej2/7CPqpdVwuMoTvoB+ZOT4YeGyxMv"
    "HmbrxlFzGOHOijtzN+u1TQNatX2XBuzZNQ1K+s2CXkPIZo7s6JgZyvaBevYtxPvYLw4z9mR7K2vaF18UYH9Z9"
    "GNUUeayffKC73PYc=",
}


@pytest.fixture(scope="module", params=["nsec", "nsec3"])
def std(request: pytest.FixtureRequest) -> tuple[World, TrustAnchor, dict]:
    return standard_world(nsec3=request.param == "nsec3")


# -- the trust anchor ---------------------------------------------------------


def test_root_anchor_ds_digests_match_the_iana_root_ksks() -> None:
    shipped = {
        cast(DS, dns.rdata.from_text("IN", "DS", text)).key_tag: text
        for text in ROOT_TRUST_ANCHOR.ds
    }
    assert set(shipped) == {20326, 38696}
    for tag, key_text in ROOT_KEYS.items():
        key = cast(DNSKEY, dns.rdata.from_text("IN", "DNSKEY", key_text))
        assert dns.dnssec.key_id(key) == tag
        made = dns.dnssec.make_ds(dns.name.root, key, "SHA256")
        assert made.to_text().upper() == shipped[tag].upper()


def test_parse_trust_anchor_reads_ds_and_dnskey_lines() -> None:
    text = (
        "; the root\n"
        ". IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n"
        f". 172800 IN DNSKEY {ROOT_KEYS[38696]} ; keytag 38696\n"
    )
    anchor = parse_trust_anchor(text)
    assert anchor.zone == "."
    assert len(anchor.ds) == 1
    assert len(anchor.dnskeys) == 1
    assert parse_trust_anchor("example. DS " + ROOT_TRUST_ANCHOR.ds[0]).zone == "example"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "; only a comment",
        ". IN A 192.0.2.1",
        ". IN DS nonsense",
        "a. DS " + ROOT_TRUST_ANCHOR.ds[0] + "\nb. DS " + ROOT_TRUST_ANCHOR.ds[1],
        "justoneword",
    ],
)
def test_parse_trust_anchor_rejects_bad_input(text: str) -> None:
    with pytest.raises(ParseError):
        parse_trust_anchor(text)


@given(st.text(max_size=200))
def test_parse_trust_anchor_only_raises_parse_error(text: str) -> None:
    with contextlib.suppress(ParseError):
        parse_trust_anchor(text)


def test_anchor_given_as_dnskey_validates(std: tuple[World, TrustAnchor, dict]) -> None:
    world, _, zones = std
    key = zones["root"].rrsets[(dns.name.root, T.DNSKEY)][0]
    anchor = TrustAnchor(zone=".", dnskeys=(key.to_text(),))
    assert run(world, anchor, "example.test", "MX").security is Security.SECURE


def test_private_tree_anchor_below_the_root(std: tuple[World, TrustAnchor, dict]) -> None:
    world, _, zones = std
    anchor = anchor_for(zones["example"])
    assert run(world, anchor, "mx.example.test", "A").security is Security.SECURE
    result = run(world, anchor, "mx.other.test", "A")
    assert result.security is Security.INDETERMINATE
    assert "no trust anchor" in result.why


# -- positive answers, denials, wildcards, CNAMEs ------------------------------


@pytest.mark.parametrize(
    ("qname", "rdtype", "records", "nxdomain", "chain"),
    [
        ("example.test", "MX", ("10 mx.example.test.",), False, ()),
        ("_25._tcp.mx.example.test", "TLSA", ("3 1 1 " + "ab" * 32,), False, ()),
        ("alias.example.test", "A", ("192.0.2.25",), False, ("mx.example.test",)),
        ("www.example.test", "A", ("192.0.2.26",), False, ("mx.other.test",)),
        ("x.wild.example.test", "TXT", ('"wildcard"',), False, ()),
        ("x.wild.example.test", "A", (), False, ()),  # wildcard NODATA
        ("nope.example.test", "A", (), True, ()),  # NXDOMAIN
        ("mx.example.test", "AAAA", (), False, ()),  # NODATA
        ("sub.example.test", "A", (), False, ()),  # empty non-terminal
        ("nope.test", "A", (), True, ()),
        ("x.b.wild.example.test", "TXT", (), True, ()),  # closer encloser than the wildcard
        ("example.test", "DS", None, False, ()),
        ("insecure.test", "DS", (), False, ()),  # NODATA from the parent's delegation NSEC
        ("mx.dn.example.test", "A", ("192.0.2.26",), False, ("mx.other.test",)),  # DNAME
    ],
)
def test_secure_answers(  # noqa: PLR0917
    std: tuple[World, TrustAnchor, dict],
    qname: str,
    rdtype: str,
    records: tuple[str, ...] | None,
    nxdomain: bool,
    chain: tuple[str, ...],
) -> None:
    world, anchor, _ = std
    result = run(world, anchor, qname, rdtype)
    assert result.security is Security.SECURE, result.why
    assert not result.failed
    if records is not None:
        assert result.records == records
    else:
        assert len(result.records) == 1
    assert result.nxdomain is nxdomain
    assert result.cname_chain == chain
    answer = result.answer(qname, rdtype)
    assert answer.security is Security.SECURE
    assert answer.nxdomain is nxdomain


def test_ttl_is_capped_by_signature_and_negative_ttl(std: tuple[World, TrustAnchor, dict]) -> None:
    world, anchor, _ = std
    assert run(world, anchor, "mx.example.test", "A").ttl == 300
    assert run(world, anchor, "nope.example.test", "A").ttl == 300  # min(SOA TTL, MINIMUM)
    soon = NOW + timedelta(days=7) - timedelta(seconds=100)
    assert run(world, anchor, "mx.example.test", "A", now=soon).ttl == 100


@pytest.mark.parametrize(
    ("qname", "rdtype", "nxdomain"),
    [
        ("insecure.test", "MX", False),
        ("mx.insecure.test", "A", False),
        ("nope.insecure.test", "A", True),
    ],
)
def test_insecure_delegation(
    std: tuple[World, TrustAnchor, dict], qname: str, rdtype: str, nxdomain: bool
) -> None:
    world, anchor, _ = std
    result = run(world, anchor, qname, rdtype)
    assert result.security is Security.INSECURE
    assert "insecure.test" in result.why
    assert result.nxdomain is nxdomain
    assert not result.failed


def test_cname_into_an_insecure_zone_is_insecure() -> None:
    world2, anchor2, _ = _world_with_example(["x 300 CNAME mx.insecure.test."])
    result = run(world2, anchor2, "x.example.test", "A")
    assert result.security is Security.INSECURE
    assert result.records == ("192.0.2.99",)
    assert result.cname_chain == ("mx.insecure.test",)


def test_cname_loop_fails(std: tuple[World, TrustAnchor, dict]) -> None:
    world, anchor, _ = std
    result = run(world, anchor, "loop.other.test", "A")
    assert result.failed
    assert "loop" in result.why


def test_cname_chain_limit() -> None:
    links = [f"c{i} 300 CNAME c{i + 1}" for i in range(mod.MAX_CNAME_CHAIN + 1)]
    world, anchor, _ = _world_with_example([*links, f"c{mod.MAX_CNAME_CHAIN + 1} 300 A 192.0.2.1"])
    assert run(world, anchor, "c1.example.test", "A").security is Security.SECURE
    result = run(world, anchor, "c0.example.test", "A")
    assert result.failed
    assert "MAX_CNAME_CHAIN" in result.why


# -- bogus --------------------------------------------------------------------


def _world_with_example(
    records: list[str],
    *,
    nsec3: bool = False,
    ds_text: str | None = None,
    tld_records: list[str] | None = None,
    **example_kwargs: object,
) -> tuple[World, TrustAnchor, dict]:
    example, _ = build_zone(
        "example.test.",
        ["mx 300 A 192.0.2.25", *records],
        nsec3=nsec3,
        **example_kwargs,  # type: ignore[arg-type]
    )
    insecure, _ = build_zone("insecure.test.", ["mx 300 A 192.0.2.99"], signed=False)
    ds = ds_text if ds_text is not None else example.ds().to_text()
    tld, _ = build_zone(
        "test.",
        [
            "example 3600 NS ns.example.test.",
            f"example 3600 DS {ds}",
            "insecure 3600 NS ns.insecure.test.",
            *(tld_records or []),
        ],
        nsec3=nsec3,
    )
    root, _ = build_zone(".", ["test. 3600 NS ns.test.", f"test. 3600 DS {tld.ds().to_text()}"])
    zones = {"root": root, "test": tld, "example": example, "insecure": insecure}
    return World(*zones.values()), anchor_for(root), zones


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"expiration": NOW - timedelta(hours=1), "inception": NOW - timedelta(days=2)}, "expired"),
        ({"inception": NOW + timedelta(hours=1)}, "not yet valid"),
        ({"signing_key": Key.generate()}, "no DNSKEY matches"),
    ],
    ids=["expired", "not-yet-valid", "wrong-key"],
)
@pytest.mark.parametrize("qname", ["mx.example.test", "nope.example.test"])
def test_bogus_signatures(kwargs: dict, needle: str, qname: str) -> None:
    world, anchor, _ = _world_with_example([], **kwargs)
    result = run(world, anchor, qname, "A")
    assert result.security is Security.BOGUS
    assert result.failed
    assert result.records == ()
    assert needle in result.why or "key" in result.why


def test_records_signed_by_a_key_not_in_the_dnskey_set() -> None:
    """The DNSKEY RRset is good but the answer is signed by another key."""
    world, anchor, zones = _world_with_example([])
    stranger = Key.generate()
    example = zones["example"]
    rrset = example.rrsets[(name("mx.example.test."), T.A)]
    sig = dns.dnssec.sign(
        rrset,
        stranger.private,
        example.origin,
        stranger.dnskey,
        inception=NOW - timedelta(days=1),
        expiration=NOW + timedelta(days=1),
    )
    example.sigs[(rrset.name, T.A)] = dns.rrset.from_rdata(rrset.name, 300, sig)
    result = run(world, anchor, "mx.example.test", "A")
    assert result.security is Security.BOGUS
    assert f"key {stranger.tag}" in result.why


def test_bad_ds_digest_is_bogus() -> None:
    _, _, zones = _world_with_example([])
    ds = cast(DS, zones["example"].ds())
    bad = ds.replace(digest=bytes(b ^ 0xFF for b in ds.digest))
    world, anchor, _ = _world_with_example([], ds_text=bad.to_text())
    result = run(world, anchor, "mx.example.test", "A")
    assert result.security is Security.BOGUS
    assert "no DNSKEY matches the DS" in result.why


def _strip(kind: int, section: str = "answer"):  # type: ignore[no-untyped-def]
    def mutate(message: dns.message.Message) -> dns.message.Message:
        rrsets = getattr(message, section)
        rrsets[:] = [
            r
            for r in rrsets
            if not (r.rdtype == kind or (r.rdtype == T.RRSIG and r.covers == kind))
            and not (kind == -1 and r.rdtype == T.RRSIG)
        ]
        return message

    return mutate


def test_missing_rrsig_is_bogus(std: tuple[World, TrustAnchor, dict]) -> None:
    world, anchor, _ = std
    world.mutate = _strip(-1)
    try:
        result = run(world, anchor, "mx.example.test", "A")
    finally:
        world.mutate = None
    assert result.security is Security.BOGUS


def test_missing_denial_is_bogus(std: tuple[World, TrustAnchor, dict]) -> None:
    world, anchor, _ = std
    for kind in (T.NSEC, T.NSEC3):
        world.mutate = _strip(kind, "authority")
        try:
            for qname in ("nope.example.test", "mx.example.test"):
                rdtype = "A" if qname.startswith("nope") else "AAAA"
                result = run(world, anchor, qname, rdtype)
                zone_uses = (kind == T.NSEC3) == world.zones[name("example.test.")].nsec3
                if zone_uses:
                    assert result.security is Security.BOGUS, qname
                else:
                    assert result.security is Security.SECURE
        finally:
            world.mutate = None


def test_wildcard_without_nonexistence_proof_is_bogus(std: tuple[World, TrustAnchor, dict]) -> None:
    world, anchor, _ = std
    world.mutate = lambda m: (
        _strip(T.NSEC, "authority")(_strip(T.NSEC3, "authority")(m))
        if m.question[0].name == name("x.wild.example.test.")
        else m
    )
    try:
        result = run(world, anchor, "x.wild.example.test", "TXT")
    finally:
        world.mutate = None
    assert result.security is Security.BOGUS
    assert "wildcard" in result.why


def test_nxdomain_rcode_with_a_nodata_proof_is_bogus(std: tuple[World, TrustAnchor, dict]) -> None:
    world, anchor, _ = std

    def lie(message: dns.message.Message) -> dns.message.Message:
        if message.question[0].name == name("mx.example.test."):
            message.set_rcode(dns.rcode.NXDOMAIN)
        return message

    world.mutate = lie
    try:
        result = run(world, anchor, "mx.example.test", "AAAA")
    finally:
        world.mutate = None
    assert result.security is Security.BOGUS


def test_unsigned_answer_spliced_into_a_signed_zone_is_bogus(
    std: tuple[World, TrustAnchor, dict],
) -> None:
    world, anchor, _ = std

    def forge(message: dns.message.Message) -> dns.message.Message:
        if (
            message.question[0].name == name("mx.example.test.")
            and message.question[0].rdtype == T.A
        ):
            message.answer[:] = [
                dns.rrset.from_text("mx.example.test.", 300, "IN", "A", "203.0.113.66")
            ]
        return message

    world.mutate = forge
    try:
        result = run(world, anchor, "mx.example.test", "A")
    finally:
        world.mutate = None
    assert result.security is Security.BOGUS
    assert "has no RRSIG" in result.why


def _on(question: tuple[str, int], change):  # type: ignore[no-untyped-def]
    def mutate(message: dns.message.Message) -> dns.message.Message:
        if (message.question[0].name, message.question[0].rdtype) == (
            name(question[0]),
            question[1],
        ):
            change(message)
        return message

    return mutate


def _resign(zone, rrset: dns.rrset.RRset, key: Key) -> dns.rrset.RRset:  # type: ignore[no-untyped-def]
    sig = dns.dnssec.sign(
        rrset,
        key.private,
        zone.origin,
        key.dnskey,
        inception=NOW - timedelta(days=1),
        expiration=NOW + timedelta(days=1),
    )
    return dns.rrset.from_rdata(rrset.name, rrset.ttl, sig)


def test_ds_signed_by_the_child_is_not_secure() -> None:
    """RFC 4035 §5.2: a DS RRset is authenticated with the parent's keys only."""
    example_key = Key.generate()
    world, anchor, zones = _world_with_example([], key=example_key)
    tld = zones["test"]
    ds = tld.rrsets[(name("example.test."), T.DS)]
    tld.sigs[(ds.name, T.DS)] = _resign(zones["example"], ds, example_key)
    for rdtype in ("DS", "A"):
        result = run(world, anchor, "example.test" if rdtype == "DS" else "mx.example.test", rdtype)
        assert result.security is Security.BOGUS, rdtype


def test_child_apex_nsec_cannot_deny_its_own_ds() -> None:
    world, anchor, zones = _world_with_example([])
    example = zones["example"]

    def child_side(message: dns.message.Message) -> None:
        message.answer.clear()
        message.authority[:] = [
            example.rrsets[(example.origin, T.SOA)],
            example.sigs[(example.origin, T.SOA)],
            example.rrsets[(example.origin, T.NSEC)],
            example.sigs[(example.origin, T.NSEC)],
        ]

    world.mutate = _on(("example.test.", T.DS), child_side)
    for qname, rdtype in (("example.test", "DS"), ("mx.example.test", "A")):
        result = run(world, anchor, qname, rdtype)
        assert result.security is Security.BOGUS, (qname, result.why)


def test_wildcard_answer_for_a_name_with_a_closer_encloser_is_bogus(
    std: tuple[World, TrustAnchor, dict],
) -> None:
    """x.b.wild cannot be synthesized from *.wild: b.wild exists (RFC 4592 §3.3.1)."""
    world, anchor, zones = std
    example = zones["example"]
    wildcard = name("*.wild.example.test.")
    qname = name("x.b.wild.example.test.")

    def forge(message: dns.message.Message) -> None:
        message.set_rcode(dns.rcode.NOERROR)
        for kind in (T.TXT, T.RRSIG):
            source = (
                example.rrsets[(wildcard, T.TXT)]
                if kind == T.TXT
                else example.sigs[(wildcard, T.TXT)]
            )
            message.answer.append(dns.rrset.from_rdata_list(qname, 300, list(source)))

    world.mutate = _on(("x.b.wild.example.test.", T.TXT), forge)
    try:
        result = run(world, anchor, "x.b.wild.example.test", "TXT")
    finally:
        world.mutate = None
    assert result.security is Security.BOGUS
    assert result.records == ()


def test_dname_with_a_forged_cname_is_bogus(std: tuple[World, TrustAnchor, dict]) -> None:
    world, anchor, _ = std

    def forge(message: dns.message.Message) -> None:
        for position, rrset in enumerate(message.answer):
            if rrset.rdtype == T.CNAME:
                message.answer[position] = dns.rrset.from_text(
                    rrset.name, 300, "IN", "CNAME", "mx.example.test."
                )

    world.mutate = _on(("mx.dn.example.test.", T.A), forge)
    try:
        result = run(world, anchor, "mx.dn.example.test", "A")
    finally:
        world.mutate = None
    assert result.security is Security.BOGUS
    assert "DNAME" in result.why


def test_denial_with_a_bad_soa_signature_is_bogus(std: tuple[World, TrustAnchor, dict]) -> None:
    world, anchor, _ = std

    def damage(message: dns.message.Message) -> None:
        for position, rrset in enumerate(message.authority):
            if rrset.rdtype == T.RRSIG and rrset.covers == T.SOA:
                sig = cast(RRSIG, rrset[0])
                bad = sig.replace(signature=bytes(b ^ 1 for b in sig.signature))
                message.authority[position] = dns.rrset.from_rdata(rrset.name, rrset.ttl, bad)

    world.mutate = _on(("nope.example.test.", T.A), damage)
    try:
        result = run(world, anchor, "nope.example.test", "A")
    finally:
        world.mutate = None
    assert result.security is Security.BOGUS


@pytest.mark.parametrize("rdtype", ["ANY", "RRSIG", "OPT", "AXFR", "TSIG"])
def test_meta_types_are_refused(rdtype: str) -> None:
    with pytest.raises(UsageError):
        ChainValidator(ROOT_TRUST_ANCHOR, "example.com", rdtype, now=NOW)


@given(qname=st.text(max_size=300), rdtype=st.text(max_size=12))
def test_constructor_only_raises_usage_error(qname: str, rdtype: str) -> None:
    with contextlib.suppress(UsageError):
        validator = ChainValidator(ROOT_TRUST_ANCHOR, qname, rdtype, now=NOW)
        assert validator.next_query() is not None


@pytest.mark.parametrize(
    "question", [("mx.example.test.", T.A), ("example.test.", T.DNSKEY)], ids=["answer", "dnskey"]
)
def test_a_referral_is_a_failed_fetch_not_a_verdict(
    std: tuple[World, TrustAnchor, dict], question: tuple[str, int]
) -> None:
    world, anchor, zones = std
    tld = zones["test"]
    cut = name("example.test.")

    def refer(message: dns.message.Message) -> None:
        message.answer.clear()
        message.authority[:] = [
            tld.rrsets[(cut, T.NS)],
            tld.rrsets[(cut, T.DS)],
            tld.sigs[(cut, T.DS)],
        ]

    world.mutate = _on(question, refer)
    try:
        result = run(world, anchor, "mx.example.test", "A")
    finally:
        world.mutate = None
    assert result.security is Security.INDETERMINATE
    assert result.failed
    assert "referral" in result.why


def test_naive_now_is_refused() -> None:
    with pytest.raises(UsageError):
        ChainValidator(ROOT_TRUST_ANCHOR, "example.com", "MX", now=NOW.replace(tzinfo=None))


# -- unknown algorithms and digests: insecure (RFC 4035 §5.2, RFC 6840 §5.2) --


@pytest.mark.parametrize(
    "ds_text", ["12345 253 2 " + "00" * 32, "12345 13 99 " + "00" * 32], ids=["algorithm", "digest"]
)
def test_unsupported_ds_makes_the_zone_insecure(ds_text: str) -> None:
    world, anchor, _ = _world_with_example([], ds_text=ds_text)
    result = run(world, anchor, "mx.example.test", "A")
    assert result.security is Security.INSECURE
    assert "no supported algorithm" in result.why
    assert result.records == ("192.0.2.25",)


def test_sha1_ds_is_ignored_next_to_sha256() -> None:
    _, _, zones = _world_with_example([])
    real = cast(DS, zones["example"].ds())
    sha1 = cast(DS, dns.rdata.from_text("IN", "DS", f"{real.key_tag} 13 1 " + "00" * 20))
    assert mod._usable_ds([sha1, real]) == [real]
    assert mod._usable_ds([sha1]) == [sha1]


def test_ed25519_zone_validates() -> None:
    world, anchor, _ = _world_with_example([], key=Key.generate("ED25519"))
    assert run(world, anchor, "mx.example.test", "A").security is Security.SECURE


# -- NSEC3 specifics ------------------------------------------------------------


def test_nsec3_opt_out_delegation_is_insecure() -> None:
    example, _ = build_zone("example.test.", ["mx 300 A 192.0.2.25"], nsec3=True)
    insecure, _ = build_zone("insecure.test.", ["mx 300 A 192.0.2.99"], signed=False)
    tld, _ = build_zone(
        "test.",
        [
            "example 3600 NS ns.example.test.",
            f"example 3600 DS {example.ds().to_text()}",
            "insecure 3600 NS ns.insecure.test.",
        ],
        nsec3=True,
        opt_out=True,
    )
    root, _ = build_zone(".", ["test. 3600 NS ns.test.", f"test. 3600 DS {tld.ds().to_text()}"])
    world = World(root, tld, example, insecure)
    anchor = anchor_for(root)
    assert run(world, anchor, "mx.example.test", "A").security is Security.SECURE
    result = run(world, anchor, "mx.insecure.test", "A")
    assert result.security is Security.INSECURE
    assert "opt-out" in result.why


@pytest.mark.parametrize(
    ("iterations", "expected"),
    [
        (mod.MAX_NSEC3_ITERATIONS, Security.SECURE),
        (mod.MAX_NSEC3_ITERATIONS + 1, Security.INSECURE),
    ],
)
def test_nsec3_iteration_limit(iterations: int, expected: Security) -> None:
    world, anchor, _ = _world_with_example([], nsec3=True, iterations=iterations, salt=b"\xab\xcd")
    result = run(world, anchor, "nope.example.test", "A")
    assert result.security is expected
    if expected is Security.INSECURE:
        assert "RFC 9276" in result.why


def test_nsec3_hashes_each_name_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """CVE-2023-50868: hashing is per name, not per NSEC3 record of the response."""
    world, anchor, _ = _world_with_example(["a 300 A 192.0.2.1", "b 300 A 192.0.2.2"], nsec3=True)
    replies = {}
    validator = ChainValidator(anchor, "nope.example.test", "A", now=NOW)
    while (query := validator.next_query()) is not None:
        replies[query] = world.query(*query)
        validator.feed(replies[query])
    calls: list[object] = []
    real = dns.dnssec.nsec3_hash

    def counting(*args: object) -> str:
        calls.append(args[0])
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(dns.dnssec, "nsec3_hash", counting)
    mod._nsec3_hash.cache_clear()
    validator = ChainValidator(anchor, "nope.example.test", "A", now=NOW)
    while (query := validator.next_query()) is not None:
        validator.feed(replies[query])
    result = validator.result()
    assert result.security is Security.SECURE
    assert result.nxdomain
    assert len(calls) == len(set(calls))


# -- limits ---------------------------------------------------------------------


def test_dnskey_set_size_limit() -> None:
    main = Key.generate()
    world, anchor, zones = _world_with_example([], key=main)
    example = zones["example"]
    keys = example.rrsets[(example.origin, T.DNSKEY)]
    for _ in range(mod.MAX_KEYS_PER_DNSKEY_SET - 1):
        keys.add(Key.generate(flags=256).dnskey)
    resigned = dns.dnssec.sign(
        keys,
        main.private,
        example.origin,
        main.dnskey,
        inception=NOW - timedelta(days=1),
        expiration=NOW + timedelta(days=1),
    )
    example.sigs[(example.origin, T.DNSKEY)] = dns.rrset.from_rdata(example.origin, 3600, resigned)
    assert run(world, anchor, "mx.example.test", "A").security is Security.SECURE
    keys.add(Key.generate(flags=256).dnskey)
    resigned = dns.dnssec.sign(
        keys,
        main.private,
        example.origin,
        main.dnskey,
        inception=NOW - timedelta(days=1),
        expiration=NOW + timedelta(days=1),
    )
    example.sigs[(example.origin, T.DNSKEY)] = dns.rrset.from_rdata(example.origin, 3600, resigned)
    result = run(world, anchor, "mx.example.test", "A")
    assert result.security is Security.BOGUS
    assert "MAX_KEYS_PER_DNSKEY_SET" in result.why


def _junk_sigs(count: int, good: RRSIG) -> list[RRSIG]:
    return [good.replace(signature=bytes([i + 1]) * len(good.signature)) for i in range(count)]


@pytest.mark.parametrize(
    ("junk", "expected"),
    [(mod.MAX_RRSIGS_PER_RRSET - 1, Security.SECURE), (mod.MAX_RRSIGS_PER_RRSET, Security.BOGUS)],
)
def test_rrsigs_per_rrset_limit(junk: int, expected: Security) -> None:
    world, anchor, zones = _world_with_example([])
    example = zones["example"]
    key = (name("mx.example.test."), T.A)
    good = cast(RRSIG, example.sigs[key][0])
    sigs = dns.rrset.RRset(key[0], dns.rdataclass.IN, T.RRSIG, T.A)
    for sig in [*_junk_sigs(junk, good), good]:
        sigs.add(sig, 300)
    example.sigs[key] = sigs
    assert run(world, anchor, "mx.example.test", "A").security is expected


@pytest.mark.parametrize(
    ("limit", "needle"),
    [
        ("MAX_SIGNATURE_CHECKS", "MAX_SIGNATURE_CHECKS"),
        ("MAX_QUERIES", "MAX_QUERIES"),
        ("MAX_DELEGATION_DEPTH", "MAX_DELEGATION_DEPTH"),
    ],
)
def test_work_limits(
    std: tuple[World, TrustAnchor, dict], monkeypatch: pytest.MonkeyPatch, limit: str, needle: str
) -> None:
    world, anchor, _ = std
    assert run(world, anchor, "www.example.test", "A").security is Security.SECURE
    monkeypatch.setattr(mod, limit, 1)
    result = run(world, anchor, "www.example.test", "A")
    assert result.security is Security.BOGUS
    assert needle in result.why


# -- the driving interface --------------------------------------------------------


def test_planner_protocol_misuse() -> None:
    with pytest.raises(UsageError):
        ChainValidator(ROOT_TRUST_ANCHOR, "a..b", "A", now=NOW)
    with pytest.raises(UsageError):
        ChainValidator(ROOT_TRUST_ANCHOR, "example.com", "NOTATYPE", now=NOW)
    validator = ChainValidator(ROOT_TRUST_ANCHOR, "example.com", "MX", now=NOW)
    assert validator.next_query() == (name("example.com."), T.MX)
    with pytest.raises(UsageError):
        validator.result()
    validator.feed_failure("timed out")
    assert validator.next_query() is None
    result = validator.result()
    assert result.security is Security.INDETERMINATE
    assert result.failed
    assert "timed out" in result.why
    with pytest.raises(UsageError):
        validator.feed(dns.message.make_query("example.com", "MX"))
    with pytest.raises(UsageError):
        validator.feed_failure("again")


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        (("mx.example.test.", T.A), Security.INDETERMINATE),
        (("example.test.", T.DS), Security.BOGUS),
    ],
)
def test_servfail(
    std: tuple[World, TrustAnchor, dict], question: tuple[str, int], expected: Security
) -> None:
    world, anchor, _ = std

    def fail(message: dns.message.Message) -> dns.message.Message:
        if (message.question[0].name, message.question[0].rdtype) == (
            name(question[0]),
            question[1],
        ):
            message.set_rcode(dns.rcode.SERVFAIL)
            message.answer.clear()
        return message

    world.mutate = fail
    try:
        result = run(world, anchor, "mx.example.test", "A")
    finally:
        world.mutate = None
    assert result.security is expected
    assert result.failed
    assert "SERVFAIL" in result.why


# -- property: no forged or damaged data is ever secure -----------------------------


QUESTIONS = [
    ("www.example.test", "A"),
    ("mx.dn.example.test", "A"),
    ("nope.example.test", "A"),
    ("mx.example.test", "AAAA"),
    ("x.wild.example.test", "TXT"),
    ("_25._tcp.mx.example.test", "TLSA"),
]


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    question=st.sampled_from(QUESTIONS),
    step=st.integers(0, 9),
    offset=st.integers(0, 200),
    bit=st.integers(0, 7),
)
def test_a_flipped_signature_bit_is_never_secure(
    std: tuple[World, TrustAnchor, dict],
    question: tuple[str, str],
    step: int,
    offset: int,
    bit: int,
) -> None:
    """RFC 4035 §5.3: any damaged RRSIG on a response the chain relies on defeats ``secure``."""
    world, anchor, _ = std
    count = [0]

    def flip(message: dns.message.Message) -> dns.message.Message:
        index = count[0]
        count[0] += 1
        if index != step:
            return message
        for section in (message.answer, message.authority):
            for position, rrset in enumerate(section):
                if rrset.rdtype != T.RRSIG:
                    continue
                damaged = dns.rrset.RRset(rrset.name, dns.rdataclass.IN, T.RRSIG, rrset.covers)
                for sig in cast(list[RRSIG], list(rrset)):
                    raw = bytearray(sig.signature)
                    raw[offset % len(raw)] ^= 1 << bit
                    damaged.add(sig.replace(signature=bytes(raw)), rrset.ttl)
                section[position] = damaged
        return message

    world.mutate = flip
    try:
        result = run(world, anchor, *question)
    finally:
        world.mutate = None
    if step < result.queries:
        assert result.security is not Security.SECURE


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    question=st.sampled_from(QUESTIONS),
    step=st.integers(0, 7),
    edits=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.none() | st.integers(12, 4000),
)
def test_mutated_responses_never_forge_a_secure_answer(
    std: tuple[World, TrustAnchor, dict],
    question: tuple[str, str],
    step: int,
    edits: list[tuple[int, int]],
    cut: int | None,
) -> None:
    """Random byte damage: no exception escapes, and ``secure`` only for the true records."""
    world, anchor, _ = std
    truth = run(world, anchor, *question)
    count = [0]

    def damage(message: dns.message.Message) -> dns.message.Message:
        index = count[0]
        count[0] += 1
        if index != step:
            return message
        wire = bytearray(message.to_wire())
        for position, value in edits:
            wire[position % len(wire)] = value
        if cut is not None:
            wire = wire[: max(12, cut % len(wire))]
        try:
            return dns.message.from_wire(bytes(wire))
        except dns.exception.DNSException:
            return message  # the shell turns unreadable wire into a failed fetch
        except (ValueError, IndexError, UnicodeError):
            return message

    world.mutate = damage
    try:
        result = run(world, anchor, *question)
    finally:
        world.mutate = None
    if result.security is Security.SECURE:
        assert [r.lower() for r in result.records] == [r.lower() for r in truth.records]
        assert result.nxdomain == truth.nxdomain


def test_public_names_are_pinned() -> None:
    assert set(mod.__all__) == {
        "MAX_CNAME_CHAIN",
        "MAX_DELEGATION_DEPTH",
        "MAX_KEYS_PER_DNSKEY_SET",
        "MAX_NSEC3_ITERATIONS",
        "MAX_QUERIES",
        "MAX_RRSIGS_PER_RRSET",
        "MAX_SIGNATURE_CHECKS",
        "MAX_TRUST_CACHE_ENTRIES",
        "MAX_TRUST_CACHE_TTL",
        "ROOT_TRUST_ANCHOR",
        "SUPPORTED_ALGORITHMS",
        "SUPPORTED_DIGESTS",
        "ChainResult",
        "ChainValidator",
        "DnsAnswer",
        "Query",
        "Security",
        "TrustAnchor",
        "TrustCache",
        "combine_security",
        "parse_trust_anchor",
    }


def _signed_pieces(zones: dict) -> list[tuple[dns.rrset.RRset, dns.rrset.RRset]]:
    return [
        (zone.rrsets[key], zone.sigs[key])
        for zone in zones.values()
        for key in zone.sigs
        if key in zone.rrsets
    ]


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), question=st.sampled_from(QUESTIONS), step=st.integers(0, 7))
def test_replayed_genuine_signatures_never_forge_a_secure_answer(
    std: tuple[World, TrustAnchor, dict], data: st.DataObject, question: tuple[str, str], step: int
) -> None:
    """A server answering with real, validly signed records of the tree, chosen at random,
    for the wrong questions: ``secure`` only ever comes with the true answer."""
    world, anchor, zones = std
    truth = run(world, anchor, *question)
    pieces = _signed_pieces(zones)
    picks = st.lists(st.sampled_from(pieces), max_size=4)
    answer, authority = data.draw(picks), data.draw(picks)
    rcode = data.draw(st.sampled_from([dns.rcode.NOERROR, dns.rcode.NXDOMAIN]))
    count = [0]

    def replay(message: dns.message.Message) -> dns.message.Message:
        index = count[0]
        count[0] += 1
        if index != step:
            return message
        message.answer[:] = [r for pair in answer for r in pair]
        message.authority[:] = [r for pair in authority for r in pair]
        message.set_rcode(rcode)
        return message

    world.mutate = replay
    try:
        result = run(world, anchor, *question)
    finally:
        world.mutate = None
    if result.security is Security.SECURE:
        assert result.records == truth.records
        assert result.nxdomain == truth.nxdomain
        assert result.cname_chain == truth.cname_chain


def test_a_dependency_error_while_judging_is_bogus_not_a_crash(
    std: tuple[World, TrustAnchor, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The planner's boundary: a dnspython error raised while reading a response fails closed."""
    world, anchor, _ = std

    def explode(*args: object) -> None:
        raise dns.name.NameTooLong

    monkeypatch.setattr(mod, "_prove_nsec", explode)
    monkeypatch.setattr(mod, "_prove_nsec3", explode)
    result = run(world, anchor, "nope.example.test", "A")
    assert result.security is Security.BOGUS
    assert result.failed
    assert "NameTooLong" in result.why


# -- the trust cache shared between validations ------------------------------------


def _run_cached(
    world: World,
    anchor: TrustAnchor,
    cache: TrustCache,
    qname: str,
    rdtype: str,
    *,
    now: datetime = NOW,
) -> ChainResult:
    validator = ChainValidator(anchor, qname, rdtype, now=now, cache=cache)
    while (query := validator.next_query()) is not None:
        validator.feed(world.query(*query))
    return validator.result()


def _anchor_key(anchor: TrustAnchor, owner: str) -> tuple[object, dns.name.Name]:
    return ((anchor.zone, anchor.ds, anchor.dnskeys), name(owner))


def test_trust_cache_saves_queries_and_checks(std: tuple[World, TrustAnchor, dict]) -> None:
    world, anchor, _ = std
    cache = TrustCache()
    first = _run_cached(world, anchor, cache, "mx.example.test", "A")
    second = _run_cached(world, anchor, cache, "example.test", "MX")
    third = _run_cached(world, anchor, cache, "insecure.test", "MX")
    fourth = _run_cached(world, anchor, cache, "mx.insecure.test", "A")
    assert (first.security, second.security) == (Security.SECURE, Security.SECURE)
    assert (third.security, fourth.security) == (Security.INSECURE, Security.INSECURE)
    assert first.queries == 6
    assert second.queries == 1
    assert fourth.queries == 1
    assert second.records == ("10 mx.example.test.",)


def test_trust_cache_entries_expire_and_do_not_apply_before_they_were_made(
    std: tuple[World, TrustAnchor, dict],
) -> None:
    world, anchor, _ = std
    cache = TrustCache()
    _run_cached(world, anchor, cache, "mx.example.test", "A")
    key = _anchor_key(anchor, "example.test.")
    stamp = NOW.timestamp()
    assert cache.get(key, stamp + 299) is not None  # the DS TTL is 3600, DNSKEY 3600
    assert cache.get(key, stamp - 1) is None
    assert (
        _run_cached(
            world, anchor, cache, "mx.example.test", "A", now=NOW + timedelta(hours=2)
        ).queries
        == 6
    )


def test_trust_cache_lifetime_is_bounded_by_signature_expiry() -> None:
    world, anchor, _ = _world_with_example([], expiration=NOW + timedelta(seconds=100))
    cache = TrustCache()
    assert _run_cached(world, anchor, cache, "mx.example.test", "A").security is Security.SECURE
    key = _anchor_key(anchor, "example.test.")
    assert cache.get(key, NOW.timestamp() + 99) is not None
    assert cache.get(key, NOW.timestamp() + 100) is None


def test_a_failed_validation_leaves_no_proof_behind() -> None:
    world, anchor, _ = _world_with_example([], ds_text="12345 13 2 " + "11" * 32)
    cache = TrustCache()
    result = _run_cached(world, anchor, cache, "mx.example.test", "A")
    assert result.security is Security.BOGUS
    assert cache.get(_anchor_key(anchor, "example.test."), NOW.timestamp()) is None
    assert cache.get(_anchor_key(anchor, "test."), NOW.timestamp()) is not None


def test_trust_cache_is_keyed_by_anchor(std: tuple[World, TrustAnchor, dict]) -> None:
    world, anchor, zones = std
    cache = TrustCache()
    _run_cached(world, anchor, cache, "mx.example.test", "A")
    private = anchor_for(zones["example"])
    result = _run_cached(world, private, cache, "mx.example.test", "A")
    assert result.security is Security.SECURE
    assert result.queries == 2  # its own DNSKEY fetch, then the answer


def test_trust_cache_is_bounded(std: tuple[World, TrustAnchor, dict]) -> None:
    world, anchor, _ = std
    with pytest.raises(UsageError):
        TrustCache(max_entries=0)
    cache = TrustCache(max_entries=2)
    _run_cached(world, anchor, cache, "www.example.test", "A")
    assert len(cache) == 2
    cache.clear()
    assert len(cache) == 0
    assert mod.MAX_TRUST_CACHE_TTL <= 86_400


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), question=st.sampled_from(QUESTIONS), step=st.integers(0, 7))
def test_replayed_signatures_never_poison_the_trust_cache(
    std: tuple[World, TrustAnchor, dict], data: st.DataObject, question: tuple[str, str], step: int
) -> None:
    """After a validation fed replayed data, the same cache still gives every true answer."""
    world, anchor, zones = std
    pieces = _signed_pieces(zones)
    picks = st.lists(st.sampled_from(pieces), max_size=4)
    answer, authority = data.draw(picks), data.draw(picks)
    rcode = data.draw(st.sampled_from([dns.rcode.NOERROR, dns.rcode.NXDOMAIN]))
    cache = TrustCache()
    count = [0]

    def replay(message: dns.message.Message) -> dns.message.Message:
        index = count[0]
        count[0] += 1
        if index == step:
            message.answer[:] = [r for pair in answer for r in pair]
            message.authority[:] = [r for pair in authority for r in pair]
            message.set_rcode(rcode)
        return message

    world.mutate = replay
    try:
        _run_cached(world, anchor, cache, *question)
    finally:
        world.mutate = None
    for qname, rdtype in QUESTIONS:
        truth = run(world, anchor, qname, rdtype)
        again = _run_cached(world, anchor, cache, qname, rdtype)
        assert (again.security, again.records, again.nxdomain) == (
            truth.security,
            truth.records,
            truth.nxdomain,
        ), (qname, rdtype)


@given(st.lists(st.sampled_from(list(Security)), max_size=6))
def test_combine_security_is_the_weakest_status(statuses: list[Security]) -> None:
    # RFC 4035 §5: an answer is as trustworthy as its weakest RRset.
    order = [Security.BOGUS, Security.INDETERMINATE, Security.INSECURE, Security.SECURE]
    combined = mod.combine_security(statuses)
    if not statuses:
        assert combined is Security.INDETERMINATE
        assert mod.combine_security(statuses, default=Security.SECURE) is Security.SECURE
        return
    assert combined is order[min(order.index(s) for s in statuses)]
    assert mod.combine_security(statuses, default=Security.SECURE) is combined
