"""The decision matrix: every combination that matters, each row checked against its RFC rule.

The expectations are computed by the small rule tables below, written from the
RFC text and independently of ``mtasecure.decision``: an ordered list of
``(rule, citation, predicate)`` for the recipient policy, then the REQUIRETLS
steps of RFC 8689 §4.2.1 laid over it. The code under test is only called to
produce the *actual* values.

Dimensions: DNSSEC status of the MX set × TLSA state × MTA-STS state (with
discovery failures, with and without a cached policy, and unknown because the
policy store could not be read) × REQUIRETLS (off / on / on with an empty
return path, i.e. a bounce) × ``TLS-Required: No`` × STARTTLS × certificate ×
REQUIRETLS at the next hop: 25920 rows. Each row's verdict and, for a message
no MX took, its status code (bounce or deferral) are checked.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass

import pytest

from mtasecure.dane import DaneState
from mtasecure.decision import (
    MxCandidate,
    RequirementKind,
    SessionObservation,
    StsState,
    Verdict,
    conclude,
    judge,
    plan,
)
from mtasecure.dnssec import Security
from mtasecure.requiretls import MessageFlags, RequireTlsFailure
from mtasecure.results import CheckResult, FailureReason
from mtasecure.sts import PolicyMode

HOST = "mx.example.net"
DOMAIN = "example.net"

MX_STATES = ("secure", "insecure", "bogus", "indeterminate")
TLSA_STATES = ("usable", "unusable", "no-tlsa", "insecure", "failed")
STS_STATES = (
    "enforce",
    "enforce-mismatch",
    "testing",
    "testing-mismatch",
    "none",
    "fetch-failed",
    "webpki-invalid",
    "fetch-failed-cached-enforce",
    "webpki-invalid-cached-enforce",
    "invalid-cached-testing",
    "absent",
    "store-unknown",  # the policy store could not be read, nothing fetched (RFC 8461 §5.1)
)
TLS_STATES = ("ok", "no-starttls", "handshake-failed")
CERT_STATES = ("ok", "bad", "dane-only")  # dane-only: TLSA matches, WebPKI does not


@dataclass(frozen=True)
class Row:
    mx: str
    tlsa: str
    sts: str
    requiretls: bool
    tls_required_no: bool
    tls: str
    cert: str
    advertised: bool
    bounce: bool = False  # empty return path (RFC 8689 §4.2.1 binds only non-empty ones)

    def __str__(self) -> str:
        return (
            f"mx={self.mx} tlsa={self.tlsa} sts={self.sts} requiretls={self.requiretls} "
            f"tls-required-no={self.tls_required_no} tls={self.tls} cert={self.cert} "
            f"next-hop-requiretls={self.advertised} null-return-path={self.bounce}"
        )


# ---------------------------------------------------------------------------
# MTA-STS discovery failures (RFC 8461 §3.3, §5.1; RFC 8460 §4.3.2.2): a fetch
# that fails (transport error, invalid policy, or a policy host whose
# certificate fails WebPKI validation) keeps a cached policy in force; with
# nothing cached the sender acts as though the domain has no policy. Either
# way the failure is reported, except when TLS-Required: No set the recipient
# policies aside (RFC 8689 §4.2.2).
# ---------------------------------------------------------------------------

DISCOVERY_RULES = {
    # state: (policy in force, failure reported)
    "fetch-failed": ("absent", FailureReason.STS_POLICY_FETCH_ERROR),
    "webpki-invalid": ("absent", FailureReason.STS_WEBPKI_INVALID),
    "fetch-failed-cached-enforce": ("enforce", FailureReason.STS_POLICY_FETCH_ERROR),
    "webpki-invalid-cached-enforce": ("enforce", FailureReason.STS_WEBPKI_INVALID),
    "invalid-cached-testing": ("testing", FailureReason.STS_POLICY_INVALID),
}
DISCOVERY_CITATION = "RFC 8461 §3.3/§5.1: failed fetch -> cached policy, else none; reported"


def in_force(sts: str) -> str:
    """The policy state the rules below see once discovery failures are applied."""
    return DISCOVERY_RULES[sts][0] if sts in DISCOVERY_RULES else sts


def reported_failure(row: Row) -> FailureReason | None:
    if row.sts not in DISCOVERY_RULES or (row.tls_required_no and not row.requiretls):
        return None
    return DISCOVERY_RULES[row.sts][1]


# ---------------------------------------------------------------------------
# The rules, from the RFC text. First match wins.
# Each returns (kind, tls_required, authentication) for the recipient policy.
# ---------------------------------------------------------------------------

POLICY_RULES = [
    (
        "dns-failure",
        "RFC 7672 §2.1.1/§2.1.2: bogus or indeterminate MX answer -> delay",
        lambda r: r.mx in ("bogus", "indeterminate"),
        ("unusable", False, "none"),
    ),
    (
        "tls-required-no",
        "RFC 8689 §4.1/§4.2.2/§8.4: TLS-Required: No (without REQUIRETLS) ignores DANE and MTA-STS",
        lambda r: r.tls_required_no and not r.requiretls,
        ("opportunistic", False, "none"),
    ),
    (
        "tlsa-lookup-failed",
        "RFC 7672 §2.1.2: TLSA lookup failure for a secure MX -> MX unreachable; RFC 8461 §2",
        lambda r: r.mx == "secure" and r.tlsa == "failed",
        ("unusable", False, "none"),
    ),
    (
        "dane",
        "RFC 7672 §2.2: secure usable TLSA -> TLS + DANE authentication mandatory; DANE before MTA-STS",
        lambda r: r.mx == "secure" and r.tlsa == "usable",
        ("dane", True, "dane"),
    ),
    (
        "sts-unknown",
        "RFC 8461 §5.1: a cached policy stays in force, and the store that may hold it could "
        "not be read -> the policy is unknown, not absent: delay as for a failed lookup "
        "(RFC 7672 §2.1.2), never downgrade; after DANE (RFC 8461 §2)",
        lambda r: r.sts == "store-unknown",
        ("unusable", False, "none"),
    ),
    (
        "sts-enforce-mismatch",
        "RFC 8461 §4.1/§5: enforce and MX not in policy -> must not deliver to it",
        lambda r: in_force(r.sts) == "enforce-mismatch",
        ("unusable", False, "none"),
    ),
    (
        "sts-enforce",
        "RFC 8461 §4.2/§5: enforce -> STARTTLS + WebPKI certificate for the MX",
        lambda r: in_force(r.sts) == "enforce",
        ("sts-enforce", True, "webpki"),
    ),
    (
        "sts-testing",
        "RFC 8461 §5: testing -> deliver as if no failure, report; RFC 7672 §2.2 unusable TLSA -> TLS",
        lambda r: in_force(r.sts) in ("testing", "testing-mismatch"),
        ("sts-testing", None, "none"),  # None: TLS required iff secure unusable TLSA
    ),
    (
        "dane-unusable",
        "RFC 7672 §2.2: secure TLSA, none usable -> TLS mandatory, no authentication",
        lambda r: r.mx == "secure" and r.tlsa == "unusable",
        ("dane", True, "none"),
    ),
    (
        "opportunistic",
        "RFC 8461 §3.3/§5 (none, no policy, fetch failed with nothing cached); RFC 7672 §2.2",
        lambda r: True,
        ("opportunistic", False, "none"),
    ),
]

WEBPKI_BAD = FailureReason.CERTIFICATE_NOT_TRUSTED
DANE_BAD = FailureReason.CERTIFICATE_HOST_MISMATCH


@dataclass(frozen=True)
class Expected:
    rule: str
    citation: str
    kind: str
    deliver: bool
    reason: FailureReason | None
    requiretls_failure: RequireTlsFailure | None
    use_parameter: bool
    verdict: Verdict | None  # when not delivered: bounce or defer
    status: str | None
    sts_failure: FailureReason | None  # the discovery failure the plan reports
    sts_unknown: bool  # the MX was left out for an unknown MTA-STS state


def _policy(row: Row) -> tuple[str, str, str, bool, str]:
    for name, citation, applies, (kind, tls_rule, auth) in POLICY_RULES:
        if applies(row):
            tls_required = (
                row.mx == "secure" and row.tlsa == "unusable" if tls_rule is None else tls_rule
            )
            return name, citation, kind, tls_required, auth
    raise AssertionError("the last rule always applies")


def expected(row: Row) -> Expected:
    rule, citation, kind, tls_required, auth = _policy(row)
    webpki_ok = row.cert == "ok"
    dane_ok = row.cert in ("ok", "dane-only")
    tls_ok = row.tls == "ok"

    # The recipient policy (RFC 7672 §2.2, RFC 8461 §5).
    reason: FailureReason | None = None
    if kind == "unusable":
        deliver = False
        reason = {
            "sts-enforce-mismatch": FailureReason.VALIDATION_FAILURE,
            # RFC 8460 §4.3 names no result type for the sender's own store failing.
            "sts-unknown": None,
        }.get(rule, FailureReason.DNSSEC_INVALID)
    elif not tls_ok:
        deliver = not tls_required
        reason = (
            FailureReason.STARTTLS_NOT_SUPPORTED
            if row.tls == "no-starttls"
            else FailureReason.VALIDATION_FAILURE
        )
    elif auth == "dane":
        deliver = dane_ok
        reason = None if dane_ok else DANE_BAD
    elif auth == "webpki":
        deliver = webpki_ok
        reason = None if webpki_ok else WEBPKI_BAD
    else:
        deliver = True
        if kind == "sts-testing" and in_force(row.sts) == "testing-mismatch":
            reason = FailureReason.VALIDATION_FAILURE  # RFC 8461 §4.1 failure, reported
        elif kind == "sts-testing" and not webpki_ok:
            reason = WEBPKI_BAD  # RFC 8461 §4.2 failure, reported
    if kind == "opportunistic":
        reason = None  # no recipient policy to report against

    # REQUIRETLS (RFC 8689 §4.2.1): the steps, in order, for enforced messages.
    rt_failure: RequireTlsFailure | None = None
    # §4.2.1 is "for which the MAIL FROM return-path is not empty"; §5: bounces not discarded.
    # Step 2 cannot be judged when the MX list or the MTA-STS policy is not known: delay.
    requiretls_applies = (
        row.requiretls and not row.bounce and rule not in ("dns-failure", "sts-unknown")
    )
    if requiretls_applies and rule != "tlsa-lookup-failed":
        sts_match = in_force(row.sts) in ("enforce", "testing")  # RFC 8461 §4.1: enforce or testing
        mx_validated = row.mx == "secure" or sts_match  # step 2
        cert_auth = dane_ok if rule == "dane" else webpki_ok  # step 4: DANE or trusted chain
        if not mx_validated:
            rt_failure = RequireTlsFailure.MX_NOT_VALIDATED
            if kind != "unusable":
                reason = None  # never connected (step 2 fails first): no session to report
        elif kind == "unusable":
            rt_failure = None  # never connected: the recipient policy already ruled it out
        elif not tls_ok:
            rt_failure = RequireTlsFailure.TLS_NOT_ESTABLISHED
        elif not cert_auth:
            rt_failure = RequireTlsFailure.CERTIFICATE_NOT_AUTHENTICATED
        elif not row.advertised:  # step 5
            rt_failure = RequireTlsFailure.REQUIRETLS_NOT_ADVERTISED
    if rt_failure is not None:
        deliver = False

    verdict: Verdict | None = None
    status: str | None = None
    if not deliver:
        if rt_failure is not None and kind != "unusable":
            verdict = Verdict.BOUNCE  # RFC 8689 §4.2.1: no MX left -> non-delivery notification
            status = (
                "5.7.30" if rt_failure is RequireTlsFailure.REQUIRETLS_NOT_ADVERTISED else "5.7.10"
            )
        else:
            # RFC 7672 §2.1.2/§2.2 delay; RFC 8461 §5 transient, re-check the policy first
            verdict = Verdict.DEFER
            if rt_failure is not None:
                status = "4.7.10"  # RFC 8689 §4.2.1's X.7.10, while another try may succeed
            elif rule in ("dns-failure", "tlsa-lookup-failed", "sts-unknown"):
                # RFC 3463 §3.5 X.4.3: a directory the sender needs (DNS, the policy store)
                # is unavailable; "the inability to connect to an Internet DNS server"
                status = "4.4.3"
            else:
                status = "4.4.0"  # RFC 3463 X.4.0: other network or routing status
    discovery = row.sts in DISCOVERY_RULES
    return Expected(
        rule=rule
        + ("+requiretls" if requiretls_applies else "")
        + ("+discovery" if discovery else ""),
        citation=citation
        + ("; RFC 8689 §4.2.1 steps 2-5" if requiretls_applies else "")
        + (f"; {DISCOVERY_CITATION}" if discovery else ""),
        kind=kind,
        deliver=deliver,
        reason=reason,
        requiretls_failure=rt_failure,
        # A bounce carries the parameter where the hop offers it (§5); an enforced message always.
        use_parameter=deliver
        and row.requiretls
        and (not row.bounce or (row.tls == "ok" and row.advertised)),
        verdict=verdict,
        status=status,
        sts_failure=reported_failure(row),
        sts_unknown=rule == "sts-unknown",
    )


# ---------------------------------------------------------------------------
# Building the inputs and running the code under test.
# ---------------------------------------------------------------------------


def _sts(state: str) -> StsState:
    listed = (HOST,)
    other = ("mx.elsewhere.example",)
    return {
        "enforce": StsState(mode=PolicyMode.ENFORCE, mx=listed),
        "enforce-mismatch": StsState(mode=PolicyMode.ENFORCE, mx=other),
        "testing": StsState(mode=PolicyMode.TESTING, mx=("*.example.net",)),
        "testing-mismatch": StsState(mode=PolicyMode.TESTING, mx=other),
        "none": StsState(mode=PolicyMode.NONE, mx=listed),
        "fetch-failed": StsState(failure=FailureReason.STS_POLICY_FETCH_ERROR),
        "webpki-invalid": StsState(failure=FailureReason.STS_WEBPKI_INVALID),
        "fetch-failed-cached-enforce": StsState(
            mode=PolicyMode.ENFORCE, mx=listed, failure=FailureReason.STS_POLICY_FETCH_ERROR
        ),
        "webpki-invalid-cached-enforce": StsState(
            mode=PolicyMode.ENFORCE, mx=listed, failure=FailureReason.STS_WEBPKI_INVALID
        ),
        "invalid-cached-testing": StsState(
            mode=PolicyMode.TESTING, mx=("*.example.net",), failure=FailureReason.STS_POLICY_INVALID
        ),
        "absent": StsState(),
        "store-unknown": StsState(unknown=True),
    }[state]


def _session(row: Row) -> SessionObservation:
    tls_ok = row.tls == "ok"
    return SessionObservation(
        host=HOST,
        starttls_offered=row.tls != "no-starttls",
        tls_established=tls_ok,
        webpki=(CheckResult.passed() if row.cert == "ok" else CheckResult.failed(WEBPKI_BAD))
        if tls_ok
        else None,
        dane=(
            CheckResult.passed()
            if row.cert in ("ok", "dane-only")
            else CheckResult.failed(DANE_BAD)
        )
        if tls_ok
        else None,
        requiretls_advertised=tls_ok and row.advertised,
    )


def run(row: Row) -> dict[str, object]:
    flags = MessageFlags(
        requiretls=row.requiretls, tls_required_no=row.tls_required_no, null_reverse_path=row.bounce
    )
    delivery_plan = plan(
        DOMAIN,
        mx_security=Security(row.mx),
        mx=[
            MxCandidate(
                host=HOST, preference=10, tlsa=DaneState(row.tlsa), tlsa_records=("3 1 1 aa",)
            )
        ],
        sts=_sts(row.sts),
        flags=flags,
    )
    (requirement,) = delivery_plan.requirements
    # An MX ruled out before connecting is never sessioned (RFC 8461 §8.4: as if unreachable).
    outcome = judge(requirement, _session(row)) if requirement.usable else None
    deliver = bool(outcome and outcome.deliver)
    got: dict[str, object] = {
        "kind": requirement.kind.value,
        "deliver": deliver,
        "reason": outcome.reason if outcome else requirement.reason,
        "requiretls_failure": outcome.requiretls_failure
        if outcome
        else requirement.requiretls_failure,
        "use_parameter": bool(outcome and outcome.use_requiretls_parameter),
        "verdict": None,
        "status": None,
        "sts_failure": delivery_plan.sts_failure,
        "sts_unknown": requirement.sts_unknown,
    }
    if not deliver:
        conclusion = conclude(delivery_plan, {HOST: outcome})
        got["verdict"] = conclusion.verdict
        got["status"] = conclusion.status
    return got


def _rows(mx: str, sts: str) -> list[Row]:
    return [
        Row(mx, tlsa, sts, rt, no, tls, cert, adv, bounce)
        for tlsa, (rt, bounce), no, tls, cert, adv in itertools.product(
            TLSA_STATES,
            ((False, False), (True, False), (True, True)),
            (False, True),
            TLS_STATES,
            CERT_STATES,
            (False, True),
        )
    ]


@pytest.mark.parametrize(("mx", "sts"), list(itertools.product(MX_STATES, STS_STATES)))
def test_matrix(mx: str, sts: str) -> None:
    mismatches = []
    for row in _rows(mx, sts):
        want = expected(row)
        got = run(row)
        wanted = {
            "kind": want.kind,
            "deliver": want.deliver,
            "reason": want.reason,
            "requiretls_failure": want.requiretls_failure,
            "use_parameter": want.use_parameter,
            "verdict": want.verdict,
            "status": want.status,
            "sts_failure": want.sts_failure,
            "sts_unknown": want.sts_unknown,
        }
        if got != wanted:
            diff = {k: (got[k], wanted[k]) for k in wanted if got[k] != wanted[k]}
            mismatches.append(f"{row}\n    rule {want.rule} ({want.citation})\n    got/want {diff}")
    assert mismatches == [], f"{len(mismatches)} rows disagree:\n" + "\n".join(mismatches[:20])


def test_every_rule_is_exercised() -> None:
    seen: Counter[str] = Counter()
    verdicts: Counter[tuple[Verdict | None, str | None]] = Counter()
    for mx, sts in itertools.product(MX_STATES, STS_STATES):
        for row in _rows(mx, sts):
            want = expected(row)
            seen[want.rule.split("+")[0]] += 1
            seen["reported:" + str(want.sts_failure)] += 1
            verdicts[(want.verdict, want.status)] += 1
    assert {k for k in seen if not k.startswith("reported:")} == {n for n, *_ in POLICY_RULES}
    reported = {k.removeprefix("reported:") for k in seen if k.startswith("reported:")}
    assert reported == {"None", *(str(f) for _, f in DISCOVERY_RULES.values())}
    assert set(verdicts) == {
        (None, None),  # delivered
        (Verdict.BOUNCE, "5.7.30"),
        (Verdict.BOUNCE, "5.7.10"),
        (Verdict.DEFER, "4.4.0"),
        (Verdict.DEFER, "4.4.3"),
        (Verdict.DEFER, "4.7.10"),
    }


def test_an_unknown_sts_state_is_never_delivered_as_no_policy_nor_bounced() -> None:
    rows = [r for mx in MX_STATES for r in _rows(mx, "store-unknown")]
    for row in rows:
        got = run(row)
        # Only DANE, or the sender's own TLS-Required: No, may carry the message on (RFC 8461
        # §2, RFC 8689 §4.2.2), or fail it for good (a REQUIRETLS step under DANE).
        free = got["kind"] == "dane" or (row.tls_required_no and not row.requiretls)
        if got["deliver"] or got["verdict"] is Verdict.BOUNCE:
            assert free, row
        if not free:
            # The store, or else a DNS or TLSA lookup (DANE ruling first), was unavailable.
            assert (got["kind"], got["verdict"], got["status"]) == (
                "unusable",
                Verdict.DEFER,
                "4.4.3",
            ), row


def test_matrix_size() -> None:
    rows = sum(len(_rows(mx, sts)) for mx, sts in itertools.product(MX_STATES, STS_STATES))
    assert rows == 4 * 5 * 12 * 3 * 2 * 3 * 3 * 2 == 25920


def test_requirement_kind_values_are_the_issue_spelling() -> None:
    assert {k.value for k in RequirementKind} == {
        "dane",
        "sts-enforce",
        "sts-testing",
        "opportunistic",
        "unusable",
    }
