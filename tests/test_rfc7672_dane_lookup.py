"""The DANE lookup planner: which lookups, in what order, and the state they give (RFC 7672 §2.2).

The table test drives :func:`plan_dane_lookup` over every combination of the
next hop's MX answer (or a configured relay), the address chain's status, a
CNAME or not, and the TLSA answers at the expanded and the original name.
Each dimension is a table whose rows cite the RFC 7672 rule they encode; the
expected outcome of a combination is those rules applied in RFC order.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mtasecure.dane import (
    MAX_DANE_LOOKUPS,
    MAX_TLSA_CANDIDATES,
    DaneLookup,
    DaneState,
    DaneStep,
    plan_dane_lookup,
)
from mtasecure.dnssec import DnsAnswer, Security
from mtasecure.errors import UsageError
from mtasecure.mx import MxHost, MxSet
from mtasecure.results import FailureReason

HOST = "mx.example.com"
ALIAS_TARGET = "real.example.net"
NEXT_HOP = "example.com"
USABLE_RECORD = "3 1 1 " + "ab" * 32  # DANE-EE SPKI SHA2-256
UNUSABLE_RECORD = "0 0 1 " + "ab" * 32  # PKIX-TA: unusable for SMTP (RFC 7672 §3.1.3)

S, N, B, D = Security.SECURE, Security.INSECURE, Security.BOGUS, Security.INDETERMINATE


def _mx(security: Security, *hosts: str, failed: bool = False) -> MxSet:
    return MxSet(
        domain=NEXT_HOP,
        hosts=tuple(MxHost(preference=10, host=h) for h in hosts),
        security=security,
        failed=failed,
    )


@dataclass(frozen=True)
class MxCase:
    mx_set: MxSet | None
    decides: DaneState | None  # the state when the MX answer alone decides
    relay: bool
    secure_listing: bool  # a secure MX set lists the host: next hop is a reference name
    rule: str


MX_CASES = {
    "mx-secure": MxCase(_mx(S, HOST), None, False, True, "§2.2.1: secure MX RRset, go on (§2.2.2)"),
    "mx-insecure": MxCase(_mx(N, HOST), DaneState.INSECURE, False, False, "§2.2.1: insecure MX"),
    "mx-bogus": MxCase(_mx(B, HOST), DaneState.FAILED, False, False, "§2.2.1, §2.1.1: bogus MX"),
    "mx-indeterminate": MxCase(_mx(D, HOST), DaneState.FAILED, False, False, "§2.1.1: as bogus"),
    "mx-failed": MxCase(_mx(S, failed=True), DaneState.FAILED, False, False, "§2.1.2: MX error"),
    "relay": MxCase(None, None, True, False, "§2.2.2: configured relay, no MX lookup"),
    "relay-unlisted": MxCase(
        _mx(S, "other.example.net"), None, True, False, "§2.2.2: not in the MX set: a relay"
    ),
    "relay-unlisted-insecure": MxCase(
        _mx(N, "other.example.net"), None, True, False, "§2.2.2: the relay's own lookups count"
    ),
    "relay-unlisted-bogus": MxCase(
        _mx(B, "other.example.net"), DaneState.FAILED, True, False, "§2.1.1: bogus next-hop MX"
    ),
}

# The address chain's status (both A and AAAA): the state it decides, or None to go to TLSA.
ADDRESS_CASES: dict[str, tuple[Security, bool, DaneState | None, str]] = {
    "secure": (S, False, None, "§2.2.2: secure addresses: TLSA lookups (§2.2.3)"),
    "insecure": (N, False, DaneState.INSECURE, "§2.2.2: insecure: no TLSA lookup"),
    "bogus": (B, False, DaneState.FAILED, "§2.2.2, §2.1.1: bogus: MX unusable"),
    "indeterminate": (D, False, DaneState.FAILED, "§2.1.1: indeterminate is bogus"),
    "failed": (S, True, DaneState.FAILED, "§2.2.2: any lookup error: MX unusable"),
}

# A TLSA answer at one candidate: (security, records, nxdomain, failed), its state,
# and whether it decides (True) or passes on to the next candidate (False).
TLSA_CASES: dict[str, tuple[Security, tuple[str, ...], bool, bool, DaneState, bool, str]] = {
    "usable": (S, (USABLE_RECORD,), False, False, DaneState.USABLE, True, "§2.2.3: secure"),
    "unusable": (
        S,
        (UNUSABLE_RECORD,),
        False,
        False,
        DaneState.UNUSABLE,
        True,
        "§2.2.3: secure even if not usable: TLS is required",
    ),
    "insecure": (N, (USABLE_RECORD,), False, False, DaneState.INSECURE, False, "§2.2.3: next"),
    "nodata": (S, (), False, False, DaneState.NO_TLSA, False, "§2.2.3: no records: next"),
    "nxdomain": (S, (), True, False, DaneState.NO_TLSA, False, "§2.2.3: no records: next"),
    "bogus": (B, (), False, False, DaneState.FAILED, True, "§2.1.2, §2.2.2: errors stop"),
    "indeterminate": (D, (), False, False, DaneState.FAILED, True, "§2.1.1: as bogus"),
    "failed": (S, (), False, True, DaneState.FAILED, True, "§2.1.2: lookup error stops"),
}


# The alias's own CNAME record, asked when its address chain ends insecure (§2.2.2,
# "Insecure CNAME"): (security, a record there, failed), the state it decides, or
# None to look TLSA up at the original name only.
CNAME_CASES: dict[str, tuple[Security, bool, bool, DaneState | None, str]] = {
    "secure": (S, True, False, None, "§2.2.2: secure first response: TLSA at the original name"),
    "insecure": (N, True, False, DaneState.INSECURE, "§2.2.2: initial CNAME insecure too"),
    "gone": (S, False, False, DaneState.INSECURE, "§2.2.2: no longer an alias: non-CNAME"),
    "bogus": (B, True, False, DaneState.FAILED, "§2.2.2: bogus results delay delivery"),
    "indeterminate": (D, True, False, DaneState.FAILED, "§2.2.2: indeterminate delays too"),
    "failed": (S, False, True, DaneState.FAILED, "§2.2.2: errors delay delivery"),
}


def _alias(kind: str) -> tuple[DaneLookup, DnsAnswer]:
    security, present, failed, _, _ = CNAME_CASES[kind]
    answer = DnsAnswer(
        name=HOST,
        rdtype="CNAME",
        records=(ALIAS_TARGET + ".",) if present else (),
        security=security,
        failed=failed,
    )
    return DaneLookup(HOST, "CNAME"), answer


def _addresses(kind: str, alias: bool) -> dict[DaneLookup, DnsAnswer]:
    security, failed, _, _ = ADDRESS_CASES[kind]
    chain = (ALIAS_TARGET,) if alias else ()
    found = {}
    for rdtype, record in (("A", "192.0.2.25"), ("AAAA", "2001:db8::25")):
        found[DaneLookup(HOST, rdtype)] = DnsAnswer(
            name=HOST,
            rdtype=rdtype,
            records=() if failed or security in (B, D) else (record,),
            security=security,
            cname_chain=chain,
            failed=failed,
        )
    return found


def _tlsa(base: str, kind: str) -> tuple[DaneLookup, DnsAnswer]:
    security, records, nxdomain, failed, _, _, _ = TLSA_CASES[kind]
    name = f"_25._tcp.{base}"
    answer = DnsAnswer(
        name=name,
        rdtype="TLSA",
        records=records,
        security=security,
        nxdomain=nxdomain,
        failed=failed,
    )
    return DaneLookup(name, "TLSA"), answer


def _drive(
    world: dict[DaneLookup, DnsAnswer], mx_set: MxSet | None
) -> tuple[DaneStep, list[DaneLookup]]:
    """Run the planner as the facade does, answering from ``world``."""
    asked: list[DaneLookup] = []
    answers: list[DnsAnswer] = []
    step = plan_dane_lookup(HOST, answers, mx_set=mx_set, next_hop=NEXT_HOP)
    while step.policy is None:
        assert step.lookups, "a step names lookups or gives the policy"
        assert len(asked) + len(step.lookups) <= MAX_DANE_LOOKUPS
        asked.extend(step.lookups)
        answers.extend(world[q] for q in step.lookups)
        step = plan_dane_lookup(HOST, answers, mx_set=mx_set, next_hop=NEXT_HOP)
    assert step.lookups == ()
    return step, asked


ADDRESS_LOOKUPS = [DaneLookup(HOST, "A"), DaneLookup(HOST, "AAAA")]


@pytest.mark.parametrize("cname", ["no-cname", "cname"])
@pytest.mark.parametrize("address", list(ADDRESS_CASES))
@pytest.mark.parametrize("mx", list(MX_CASES))
def test_every_combination_rfc7672_2_2(mx: str, address: str, cname: str) -> None:
    case = MX_CASES[mx]
    alias = cname == "cname"
    address_security, _, address_decides, _ = ADDRESS_CASES[address]
    # Only an alias whose address chain ends insecure asks for its own CNAME record.
    asks_alias = alias and address == "insecure"
    alias_kinds: list[str | None] = list(CNAME_CASES) if asks_alias else [None]
    candidates = [ALIAS_TARGET, HOST] if alias and not asks_alias else [HOST]
    for expanded_kind, original_kind, alias_kind in itertools.product(
        TLSA_CASES, TLSA_CASES, alias_kinds
    ):
        world = _addresses(address, alias)
        if alias_kind is not None:
            world.update([_alias(alias_kind)])
        kinds = [expanded_kind, original_kind] if len(candidates) == 2 else [original_kind]
        for base, kind in zip(candidates, kinds, strict=True):
            lookup, answer = _tlsa(base, kind)
            world[lookup] = answer
        step, asked = _drive(world, case.mx_set)
        where = f"{mx} / {address} / {cname} / alias {alias_kind} / TLSA {kinds}"

        # The expected walk: the MX answer (§2.2.1), the addresses (§2.2.2), the
        # alias's own CNAME record when they end insecure (§2.2.2), then each TLSA
        # candidate until one decides (§2.2.3).
        expected_lookups: list[DaneLookup] = []
        base = HOST
        walk_tlsa = False
        if case.decides is not None:
            state = case.decides
        elif alias_kind is not None:
            expected_lookups = [*ADDRESS_LOOKUPS, DaneLookup(HOST, "CNAME")]
            decided = CNAME_CASES[alias_kind][3]
            walk_tlsa = decided is None
            state = decided if decided is not None else DaneState.NO_TLSA
        elif address_decides is not None:
            expected_lookups = list(ADDRESS_LOOKUPS)
            state = address_decides
        else:
            expected_lookups = list(ADDRESS_LOOKUPS)
            walk_tlsa = True
        if walk_tlsa:
            for base, kind in zip(candidates, kinds, strict=True):
                expected_lookups.append(DaneLookup(f"_25._tcp.{base}", "TLSA"))
                state, decides = TLSA_CASES[kind][4], TLSA_CASES[kind][5]
                if decides:
                    break
        assert step.policy is not None
        assert asked == expected_lookups, where
        assert step.policy.state is state, f"{where}: {step.policy.detail}"
        assert step.policy.base_domain == base, where
        assert step.policy.port == 25
        assert (step.policy.reason is FailureReason.DNSSEC_INVALID) == (
            state is DaneState.FAILED
        ), where
        assert "RFC " in step.policy.detail, where
        # §3.2.2: the next hop is a reference name only after a secure MX lookup
        # that listed the host, and only once TLSA records were looked up.
        tlsa_decided = any(q.rdtype == "TLSA" for q in asked)
        hop = (NEXT_HOP,) if case.secure_listing and tlsa_decided else ()
        assert step.policy.reference_names == (base, *hop), where
        # §2.2.2: a relay's address answers stand in for the MX answer.
        assert step.relay is case.relay, where
        if case.relay:
            looked_up = bool(asked)
            assert step.mx_security is (address_security if looked_up else D), where
        else:
            assert case.mx_set is not None
            assert step.mx_security is case.mx_set.security, where
        assert (step.a is not None, step.aaaa is not None) == (bool(asked),) * 2, where


def test_the_bound_is_reached_and_named() -> None:
    """A secure alias whose expanded name has no TLSA: every lookup is made (§2.2.3)."""
    assert MAX_TLSA_CANDIDATES == 2
    assert MAX_DANE_LOOKUPS == 2 + MAX_TLSA_CANDIDATES
    world = _addresses("secure", alias=True)
    world.update([_tlsa(ALIAS_TARGET, "nodata"), _tlsa(HOST, "usable")])
    step, asked = _drive(world, _mx(S, HOST))
    assert len(asked) == MAX_DANE_LOOKUPS
    assert step.policy is not None
    assert step.policy.state is DaneState.USABLE
    assert step.policy.base_domain == HOST


@pytest.mark.parametrize(
    ("a", "aaaa", "expected"),
    [
        # §2.2.2 with RFC 4035 §4.3: the weaker of the two address answers counts.
        (S, N, DaneState.INSECURE),
        (N, S, DaneState.INSECURE),
        (S, B, DaneState.FAILED),
        (N, B, DaneState.FAILED),
        (N, D, DaneState.FAILED),
        (S, S, DaneState.NO_TLSA),
    ],
)
def test_the_weaker_address_answer_decides_rfc7672_2_2_2(
    a: Security, aaaa: Security, expected: DaneState
) -> None:
    answers = [
        DnsAnswer(name=HOST, rdtype="A", records=("192.0.2.25",), security=a),
        DnsAnswer(name=HOST, rdtype="AAAA", records=("2001:db8::25",), security=aaaa),
    ]
    step = plan_dane_lookup(HOST, answers, mx_set=_mx(S, HOST))
    if expected is DaneState.NO_TLSA:
        assert step.lookups == (DaneLookup(f"_25._tcp.{HOST}", "TLSA"),)
        answers.append(DnsAnswer(name=f"_25._tcp.{HOST}", rdtype="TLSA", security=S))
        step = plan_dane_lookup(HOST, answers, mx_set=_mx(S, HOST))
    assert step.policy is not None
    assert step.policy.state is expected


def test_a_and_aaaa_ending_at_different_names_try_only_the_host_rfc7672_2_2_3() -> None:
    answers = [
        DnsAnswer(
            name=HOST, rdtype="A", records=("192.0.2.25",), security=S, cname_chain=("a.net",)
        ),
        DnsAnswer(
            name=HOST, rdtype="AAAA", records=("2001:db8::25",), security=S, cname_chain=("b.net",)
        ),
    ]
    step = plan_dane_lookup(HOST, answers, mx_set=_mx(S, HOST))
    assert step.lookups == (DaneLookup(f"_25._tcp.{HOST}", "TLSA"),)


def test_only_the_fully_expanded_name_is_a_candidate_rfc7672_2_2_3() -> None:
    """Intermediate names of the CNAME chain are never candidate base domains."""
    chain = ("hop.example.org", ALIAS_TARGET)
    answers = [
        DnsAnswer(name=HOST, rdtype="A", records=("192.0.2.25",), security=S, cname_chain=chain),
        DnsAnswer(name=HOST, rdtype="AAAA", security=S, cname_chain=chain),  # NODATA
    ]
    step = plan_dane_lookup(HOST, answers, mx_set=_mx(S, HOST))
    assert step.lookups == (DaneLookup(f"_25._tcp.{ALIAS_TARGET}", "TLSA"),)


def test_the_expanded_base_is_the_reference_name_with_the_next_hop_rfc7672_3_2_2() -> None:
    world = _addresses("secure", alias=True)
    world.update([_tlsa(ALIAS_TARGET, "usable")])
    step, _ = _drive(world, _mx(S, HOST))
    assert step.policy is not None
    assert step.policy.reference_names == (ALIAS_TARGET, NEXT_HOP)
    assert step.policy.server_name(HOST) == ALIAS_TARGET  # the SNI, RFC 7672 §8.1


def test_addresses_given_up_front_are_kept_when_the_mx_answer_decides() -> None:
    """check_mx looks A and AAAA up with the MX set; nothing more is asked (§2.2.1)."""
    world = _addresses("secure", alias=False)
    a, aaaa = world[ADDRESS_LOOKUPS[0]], world[ADDRESS_LOOKUPS[1]]
    step = plan_dane_lookup(HOST, (a, aaaa), mx_set=_mx(N, HOST))
    assert step.policy is not None
    assert step.policy.state is DaneState.INSECURE
    assert (step.a, step.aaaa) == (a, aaaa)
    assert step.mx_security is N


def test_names_and_port_rfc7672_2_2_3() -> None:
    step = plan_dane_lookup("MX.Example.COM.", mx_set=_mx(S, HOST))
    assert step.lookups == tuple(ADDRESS_LOOKUPS)
    answers = [
        DnsAnswer(name=HOST + ".", rdtype="a", records=("192.0.2.25",), security=S),
        DnsAnswer(name=HOST.upper(), rdtype="AAAA", security=S),
    ]
    step = plan_dane_lookup(HOST, answers, mx_set=_mx(S, HOST), port=587)
    assert step.lookups == (DaneLookup(f"_587._tcp.{HOST}", "TLSA"),)
    answers.append(
        DnsAnswer(name=f"_587._tcp.{HOST}", rdtype="TLSA", records=(USABLE_RECORD,), security=S)
    )
    step = plan_dane_lookup(HOST, answers, mx_set=_mx(S, HOST), port=587)
    assert step.policy is not None
    assert (step.policy.port, step.policy.state) == (587, DaneState.USABLE)
    # next_hop defaults to the MX set's domain (RFC 7672 §3.2.2).
    assert step.policy.reference_names == (HOST, NEXT_HOP)


def _secure_address(rdtype: str) -> DnsAnswer:
    return DnsAnswer(name=HOST, rdtype=rdtype, records=("192.0.2.25",), security=S)


@pytest.mark.parametrize(
    "answers",
    [
        pytest.param([_secure_address("A")], id="A without AAAA"),
        pytest.param([_secure_address("AAAA"), _secure_address("A")], id="out of order"),
        pytest.param(
            [_secure_address("A"), _secure_address("AAAA").model_copy(update={"name": "x.net"})],
            id="another name",
        ),
        pytest.param(
            [
                _secure_address("A"),
                _secure_address("AAAA"),
                DnsAnswer(name="_25._tcp.other.net", rdtype="TLSA", security=S),
            ],
            id="TLSA at a name not asked",
        ),
        pytest.param(
            [
                _secure_address("A"),
                _secure_address("AAAA"),
                DnsAnswer(name=f"_25._tcp.{HOST}", rdtype="TLSA", security=S),
                DnsAnswer(name=f"_25._tcp.{HOST}", rdtype="TLSA", security=S),
            ],
            id="more answers than lookups",
        ),
    ],
)
def test_answers_that_were_not_asked_for_are_a_usage_error(answers: list[DnsAnswer]) -> None:
    with pytest.raises(UsageError):
        plan_dane_lookup(HOST, answers, mx_set=_mx(S, HOST))


def test_answers_after_the_mx_answer_decided_are_a_usage_error() -> None:
    answers = [_secure_address("A"), _secure_address("AAAA")]
    answers.append(DnsAnswer(name=f"_25._tcp.{HOST}", rdtype="TLSA", security=S))
    with pytest.raises(UsageError):
        plan_dane_lookup(HOST, answers, mx_set=_mx(N, HOST))


# --- every planner state x every answer: bounded, never repeats, always ends ----

_NAMES = st.sampled_from([HOST, ALIAS_TARGET, "hop.example.org", "other.example.net"])
_SECURITY = st.sampled_from(list(Security))


@st.composite
def _mx_sets(draw: st.DrawFn) -> MxSet | None:
    if draw(st.booleans()):
        return None
    hosts = draw(st.lists(_NAMES, max_size=3, unique=True))
    return MxSet(
        domain=NEXT_HOP,
        hosts=tuple(MxHost(preference=10, host=h) for h in hosts),
        security=draw(_SECURITY),
        failed=draw(st.booleans()),
    )


@st.composite
def _answer(draw: st.DrawFn, lookup: DaneLookup) -> DnsAnswer:
    records = {
        "A": st.just("192.0.2.25"),
        "AAAA": st.just("2001:db8::25"),
        "CNAME": st.sampled_from([ALIAS_TARGET + ".", "hop.example.org."]),
        "TLSA": st.sampled_from([USABLE_RECORD, UNUSABLE_RECORD, "3 1 1 00", "junk"]),
    }[lookup.rdtype]
    return DnsAnswer(
        name=lookup.name,
        rdtype=lookup.rdtype,
        records=tuple(draw(st.lists(records, max_size=2))),
        security=draw(_SECURITY),
        nxdomain=draw(st.booleans()),
        cname_chain=tuple(draw(st.lists(_NAMES, max_size=2))),
        failed=draw(st.booleans()),
    )


@given(mx_set=_mx_sets(), port=st.sampled_from([25, 587]), data=st.data())
def test_the_planner_always_ends_within_the_bound(
    mx_set: MxSet | None, port: int, data: st.DataObject
) -> None:
    answers: list[DnsAnswer] = []
    asked: list[DaneLookup] = []
    for _ in range(MAX_DANE_LOOKUPS + 1):
        step = plan_dane_lookup(HOST, answers, mx_set=mx_set, port=port)
        if step.policy is not None:
            break
        assert step.lookups
        assert not set(step.lookups) & set(asked), "a lookup is never asked twice"
        asked.extend(step.lookups)
        answers.extend(data.draw(_answer(q)) for q in step.lookups)
    else:
        pytest.fail(f"no policy after {MAX_DANE_LOOKUPS} lookups: {asked}")
    assert len(asked) <= MAX_DANE_LOOKUPS
    assert step.lookups == ()
    assert step.policy.port == port
    # Whatever the answers, a failed state always says dnssec-invalid (RFC 8460 §4.3.2.1).
    assert (step.policy.state is DaneState.FAILED) == (
        step.policy.reason is FailureReason.DNSSEC_INVALID
    )
