"""The delivery decision: what each MX session must prove, and whether it did.

:func:`plan` combines what was resolved for one recipient domain — the MX set
and its DNSSEC status, the TLSA state of each MX, the MTA-STS state — with a
message's REQUIRETLS flags, and returns one :class:`TransportRequirement` per
MX in preference order. :func:`judge` holds a finished session against its
requirement. :func:`conclude` says what to do when no MX took the message.

The rules, in the order :func:`plan` applies them to each MX:

1. MX set ``bogus`` or ``indeterminate``, or the lookup failed: every MX is
   ``unusable`` (``dnssec-invalid``); delivery is delayed (RFC 7672 §2.1.1,
   §2.1.2). ``indeterminate`` is treated as ``bogus`` as RFC 7672 §2.1.1
   requires, never as ``insecure``. This holds even for ``TLS-Required: No``:
   that field waives recipient policies, not the integrity of the MX list.
2. ``TLS-Required: No`` in force (RFC 8689 §3, §4.2.2, §8.4): ``opportunistic``
   — try STARTTLS, deliver whatever happens; DANE and MTA-STS are not applied
   and their lookup failures do not matter.
3. MX set ``secure`` and the TLSA lookup failed (error, ``bogus``,
   ``indeterminate``): ``unusable`` (RFC 7672 §2.1.2, "MUST NOT deliver the
   message via that server"); MTA-STS may not override it (RFC 8461 §2).
4. MX set ``secure`` and a usable TLSA record: ``dane`` — TLS and DANE
   authentication are mandatory (RFC 7672 §2.2). DANE comes before MTA-STS.
5. MTA-STS state unknown (:attr:`StsState.unknown`: the store that may hold a
   cached policy could not be read and no policy was fetched; RFC 8461 §5.1
   keeps a cached policy in force): ``unusable``, ``sts_unknown`` set, no
   RFC 8460 reason. Like a failed lookup under rules 1 and 3 the delivery is
   delayed, never downgraded and never bounced; nothing is reported (no
   session is attempted, and RFC 8460 names no result type for a local fault).
6. MTA-STS ``enforce`` (fresh or cached, RFC 8461 §3.3): the MX must match the
   policy (§4.1) or it is ``unusable``; otherwise ``sts-enforce`` — TLS and a
   WebPKI certificate valid for the MX name (§4.2, §5).
7. MTA-STS ``testing``: ``sts-testing`` — failures are reported, delivery
   proceeds (RFC 8461 §5).
8. Otherwise (policy ``none``, no policy, or a fetch failure with nothing
   cached, RFC 8461 §3.3): ``opportunistic``.

A ``secure`` but unusable TLSA RRset makes TLS mandatory without
authentication (RFC 7672 §2.2): under rules 7 and 8 it sets
``tls_required``, and under 8 the kind is ``dane``. DANE is applied only to MX
hosts of a ``secure`` MX set (or a secure implicit MX); RFC 7672 §2.2.1 makes it
optional for an ``insecure`` set, and this library does not use it there.

For a REQUIRETLS message with a non-empty return path each requirement also
carries :class:`RequireTlsNeeds` (RFC 8689 §4.2.1): the MX name must be
validated — by a ``secure`` MX lookup, or by matching an MTA-STS policy in
``enforce`` *or* ``testing`` mode (RFC 8689 §2 and §4.2.1 step 2 point to RFC
8461 §4.1, *MX Host Validation*, which is the same for both modes; the mode
only governs what a sender does when validation fails, RFC 8461 §5; a
``none`` policy is "no active policy", §5 item 3) — and the session needs TLS,
a certificate authenticated by DANE (for ``dane``) or else by a trusted chain
for the MX name, and REQUIRETLS in the EHLO reply after STARTTLS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Annotated, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from mtasecure import _smtpwire
from mtasecure._names import normalize_host, normalize_pattern
from mtasecure.dane import DanePolicy, DaneState, render_tlsa
from mtasecure.dnssec import Security
from mtasecure.errors import ParseError, UsageError
from mtasecure.requiretls import (
    MessageFlags,
    RequireTlsFailure,
    check_requiretls_hop,
    choose_bounce_failure,
)
from mtasecure.results import CheckResult, FailureReason, PolicyType
from mtasecure.sts._match import pattern_index
from mtasecure.sts._policy import PolicyMode

__all__ = [
    "Authentication",
    "Conclusion",
    "DeliveryPlan",
    "MxCandidate",
    "PolicyType",
    "RequireTlsNeeds",
    "RequirementKind",
    "SessionObservation",
    "SessionOutcome",
    "StsState",
    "TransportRequirement",
    "Verdict",
    "conclude",
    "judge",
    "plan",
]


def _host_name(value: str) -> str:
    try:
        return normalize_host(value)
    except ParseError as exc:
        raise ValueError(str(exc)) from exc


HostName = Annotated[str, AfterValidator(_host_name)]
"""A host name field, normalised by the one normaliser (RFC 5890)."""


class RequirementKind(StrEnum):
    """What governs the session to one MX (RFC 7672 §2.2, RFC 8461 §5)."""

    DANE = "dane"
    """DANE TLSA records (RFC 7672 §2.2)."""
    STS_ENFORCE = "sts-enforce"
    """An MTA-STS policy in ``enforce`` mode (RFC 8461 §5)."""
    STS_TESTING = "sts-testing"
    """An MTA-STS policy in ``testing`` mode: deliver, report failures (RFC 8461 §5)."""
    OPPORTUNISTIC = "opportunistic"
    """Pre-DANE opportunistic TLS, cleartext allowed (RFC 7672 §2.2, RFC 3207)."""
    UNUSABLE = "unusable"
    """The MX must not be used; ``reason`` says why."""


class Authentication(StrEnum):
    """How the server certificate must be authenticated for delivery (RFC 7672 §3, RFC 8461 §4.2)."""

    NONE = "none"
    DANE = "dane"
    """By the TLSA records (RFC 7672 §3)."""
    WEBPKI = "webpki"
    """By a trusted chain and the MX host name (RFC 8461 §4.2, RFC 6125)."""


class Verdict(StrEnum):
    """What to do with a message no MX accepted (RFC 5321 §4.5.4.1, RFC 8689 §4.2.1)."""

    DEFER = "defer"
    """Keep it queued and try again later (RFC 5321 §4.5.4.1)."""
    BOUNCE = "bounce"
    """Give up now and send a DSN (RFC 8689 §4.2.1)."""


class MxCandidate(BaseModel):
    """One MX of the recipient domain, as resolved.

    Attributes:
        host: the MX host name (normalised on construction).
        preference: the MX preference; lower is tried first (RFC 5321 §5.1).
        tlsa: what the TLSA lookup found (RFC 7672 §2.2), as
            :func:`mtasecure.dane.plan_dane` reports it; ``no-tlsa`` (also
            when no lookup was made: an insecure MX or an address) and
            ``insecure`` both mean DANE does not apply.
        tlsa_records: the TLSA records in presentation form, for ``dane``.
        implicit: the domain has no MX record and its own name is the
            server (RFC 5321 §5.1); no MX lookup can have been forged.
    """

    model_config = ConfigDict(frozen=True)

    host: HostName
    preference: int = Field(default=0, ge=0, le=65535)
    tlsa: DaneState = DaneState.NO_TLSA
    tlsa_records: tuple[str, ...] = ()
    implicit: bool = False

    @classmethod
    def from_dane(
        cls, host: str, preference: int, policy: DanePolicy, *, implicit: bool = False
    ) -> MxCandidate:
        """The candidate for an MX whose TLSA lookup :func:`mtasecure.dane.plan_dane` judged (RFC 7672 §2.2)."""
        return cls(
            host=host,
            preference=preference,
            tlsa=policy.state,
            tlsa_records=tuple(render_tlsa(r) for r in policy.records),
            implicit=implicit,
        )


STS_DISCOVERY_FAILURES = frozenset(
    {
        FailureReason.STS_POLICY_FETCH_ERROR,
        FailureReason.STS_POLICY_INVALID,
        FailureReason.STS_WEBPKI_INVALID,
    }
)
"""The MTA-STS policy failures of RFC 8460 §4.3.2.2 that discovery can report."""


class _PolicyLike(Protocol):
    @property
    def mode(self) -> str: ...
    @property
    def mx(self) -> Sequence[str]: ...


class StsState(BaseModel):
    """The MTA-STS state of the recipient domain (RFC 8461 §3.3, §5).

    Attributes:
        mode: the mode of the policy in force (fresh or cached); ``None`` when
            the domain has no policy, or when a fetch failed and nothing
            valid is cached ("as though the domain has not implemented
            MTA-STS", §3.3).
        mx: the policy's ``mx`` patterns, normalised.
        failure: ``sts-policy-fetch-error``, ``sts-policy-invalid`` or
            ``sts-webpki-invalid`` (the policy host's certificate failed
            WebPKI validation) when discovery or fetching failed this time
            (RFC 8460 §4.3.2.2; reported, RFC 8461 §6), whether or not a
            cached policy is applied: a failed fetch keeps a cached policy
            in force (RFC 8461 §3.3, §5.1), and without one the domain is
            treated as having no policy.
        unknown: the policy in force could not be established: the store
            that may hold a cached policy could not be read and no policy
            was fetched in its place (RFC 8461 §5.1 keeps a cached policy in
            force even when the TXT record is gone or the fetch fails).
            :func:`plan` makes every MX that MTA-STS would govern unusable,
            and :func:`conclude` defers with 4.4.3. ``mode``, ``mx`` and
            ``failure`` are then empty: there is no policy to apply and,
            with no session attempted, nothing to report.
    """

    model_config = ConfigDict(frozen=True)

    mode: PolicyMode | None = None
    mx: tuple[str, ...] = ()
    failure: FailureReason | None = None
    unknown: bool = False

    @model_validator(mode="after")
    def _unknown_is_empty(self) -> StsState:
        if self.unknown and (self.mode is not None or self.mx or self.failure is not None):
            raise ValueError("an unknown MTA-STS state has no mode, mx patterns or failure")
        return self

    @field_validator("mx")
    @classmethod
    def _patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        try:
            return tuple(normalize_pattern(p) for p in value)
        except ParseError as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("failure")
    @classmethod
    def _failure(cls, value: FailureReason | None) -> FailureReason | None:
        if value is not None and value not in STS_DISCOVERY_FAILURES:
            raise ValueError(f"{value} is not an MTA-STS discovery failure (RFC 8460 §4.3.2.2)")
        return value

    @classmethod
    def of(cls, policy: _PolicyLike, *, failure: FailureReason | None = None) -> StsState:
        """The state for a policy object with ``mode`` and ``mx`` (e.g. an ``StsPolicy``)."""
        return cls(mode=policy.mode, mx=tuple(policy.mx), failure=failure)

    def matches(self, host: str) -> bool:
        """Whether ``host`` matches one of the ``mx`` patterns (RFC 8461 §4.1).

        The same index :meth:`mtasecure.sts.StsPolicy.matches` uses, so the
        decision and the policy cannot disagree about an MX.
        """
        return pattern_index(self.mx).covers(host)


class RequireTlsNeeds(BaseModel):
    """What a REQUIRETLS message additionally needs from one MX (RFC 8689 §4.2.1).

    Attributes:
        mx_validated: step 2 holds: the MX came from a ``secure`` lookup, is
            the implicit MX, or matches the MTA-STS policy (``enforce`` or
            ``testing``). When false the MX is not tried.
        authentication: how step 4 must authenticate the certificate:
            ``dane`` for a ``dane`` requirement, else ``webpki``.
    """

    model_config = ConfigDict(frozen=True)

    mx_validated: bool
    authentication: Authentication


class TransportRequirement(BaseModel):
    """What the session to one MX must prove before the message is sent.

    Attributes:
        host: the MX host name.
        preference: its MX preference.
        kind: what governs the session.
        reason: for ``unusable``, the RFC 8460 result type of why.
        detail: a sentence naming the rule applied.
        tls_required: the message must not go in cleartext to this MX.
        authentication: how the certificate must be authenticated for
            delivery (``none`` also for ``sts-testing``, where failures are
            only reported).
        tlsa_records: the TLSA set, for ``dane``.
        sts_mx_match: whether the MX matched the MTA-STS policy, when one applies.
        policy_type: how a TLS report files this session (RFC 8460 §4.4).
        policy_ignored: ``TLS-Required: No`` set aside a recipient policy
            (or an MTA-STS state that could not be established).
        sts_unknown: ``unusable`` because the MTA-STS state is unknown
            (:attr:`StsState.unknown`): a temporary, local fault; the
            delivery is deferred (4.4.3) and the MX is not reported.
        requiretls: the REQUIRETLS needs, for an enforced REQUIRETLS message.
        requiretls_parameter: the message is REQUIRETLS, so MAIL FROM carries
            the parameter wherever the hop offers it after STARTTLS (also
            for a bounce, RFC 8689 §5).
    """

    model_config = ConfigDict(frozen=True)

    host: str
    preference: int
    kind: RequirementKind
    reason: FailureReason | None = None
    detail: str = ""
    tls_required: bool = False
    authentication: Authentication = Authentication.NONE
    tlsa_records: tuple[str, ...] = ()
    sts_mx_match: bool | None = None
    policy_type: PolicyType = PolicyType.NO_POLICY_FOUND
    policy_ignored: bool = False
    sts_unknown: bool = False
    requiretls: RequireTlsNeeds | None = None
    requiretls_parameter: bool = False

    @property
    def requiretls_failure(self) -> RequireTlsFailure | None:
        """The REQUIRETLS step that already fails before connecting (step 2), if any."""
        if self.requiretls is not None and not self.requiretls.mx_validated:
            return RequireTlsFailure.MX_NOT_VALIDATED
        return None

    @property
    def usable(self) -> bool:
        """Whether a session to this MX should be attempted at all."""
        return self.kind is not RequirementKind.UNUSABLE and self.requiretls_failure is None


class DeliveryPlan(BaseModel):
    """:func:`plan`'s answer for one domain and one message.

    Attributes:
        domain: the recipient domain, normalised.
        flags: the message's flags.
        requirements: one per MX, in preference order (stable for equal
            preferences: the caller shuffles them if it wants, RFC 5321 §5.1).
        sts_failure: an MTA-STS discovery failure to report (RFC 8461 §6).
        mx_lookup_failed: the MX lookup failed, or its answer was bogus or
            indeterminate (RFC 7672 §2.1.1, §2.1.2): no MX can be trusted, so
            :func:`conclude` defers with 4.4.3 even when ``requirements`` is
            empty (the caller had no MX hosts to give).
    """

    model_config = ConfigDict(frozen=True)

    domain: str
    flags: MessageFlags
    requirements: tuple[TransportRequirement, ...]
    sts_failure: FailureReason | None = None
    mx_lookup_failed: bool = False

    @property
    def usable(self) -> tuple[TransportRequirement, ...]:
        """The requirements whose MX should be tried, in order."""
        return tuple(r for r in self.requirements if r.usable)


def plan(
    domain: str,
    *,
    mx_security: Security,
    mx: Sequence[MxCandidate],
    sts: StsState | None = None,
    flags: MessageFlags | None = None,
    mx_lookup_failed: bool = False,
) -> DeliveryPlan:
    """Decide what the session to each MX of ``domain`` must prove (module docstring rules).

    Args:
        domain: the recipient domain.
        mx_security: the DNSSEC status of the MX RRset (for an implicit MX,
            of the domain's address records), RFC 4033 §5.
        mx: the MX hosts with their TLSA state, in any order.
        sts: the MTA-STS state; ``None`` means no policy.
        flags: the message's flags; ``None`` means an ordinary message.
        mx_lookup_failed: the MX lookup gave no usable answer (SERVFAIL,
            timeout): every MX is unusable, as for ``bogus``.

    Raises:
        UsageError: ``domain`` is not a host name.
    """
    try:
        name = normalize_host(domain)
    except ParseError as exc:
        raise UsageError(f"domain: {exc}") from exc
    sts = sts or StsState()
    flags = flags or MessageFlags()
    ordered = sorted(mx, key=lambda m: m.preference)
    dns_failure = (
        "MX lookup failed"
        if mx_lookup_failed
        else f"MX answer {mx_security.value}"
        if mx_security in (Security.BOGUS, Security.INDETERMINATE)
        else ""
    )
    requirements = tuple(_plan_one(m, mx_security, dns_failure, sts, flags) for m in ordered)
    return DeliveryPlan(
        domain=name,
        flags=flags,
        requirements=requirements,
        sts_failure=None if flags.tls_optional else sts.failure,
        mx_lookup_failed=bool(dns_failure),
    )


def _plan_one(
    mx: MxCandidate, security: Security, dns_failure: str, sts: StsState, flags: MessageFlags
) -> TransportRequirement:
    base = {
        "host": mx.host,
        "preference": mx.preference,
        "requiretls_parameter": flags.requiretls,
    }
    if dns_failure:
        return TransportRequirement(
            **base,
            kind=RequirementKind.UNUSABLE,
            reason=FailureReason.DNSSEC_INVALID,
            detail=f"{dns_failure}: delivery is delayed (RFC 7672 §2.1.1, §2.1.2)",
        )
    if flags.tls_optional:
        return TransportRequirement(
            **base,
            kind=RequirementKind.OPPORTUNISTIC,
            policy_ignored=_has_policy(mx, security, sts),
            detail="TLS-Required: No: try STARTTLS, ignore DANE and MTA-STS (RFC 8689 §4.2.2)",
        )
    secure = security is Security.SECURE
    sts_active = sts.mode in (PolicyMode.ENFORCE, PolicyMode.TESTING)
    match = sts.matches(mx.host) if sts_active else None
    tlsa_unusable = secure and mx.tlsa is DaneState.UNUSABLE
    needs = None
    if flags.requiretls_enforced:
        validated = mx.implicit or secure or bool(match)
        dane = secure and mx.tlsa is DaneState.USABLE
        needs = RequireTlsNeeds(
            mx_validated=validated,
            authentication=Authentication.DANE if dane else Authentication.WEBPKI,
        )
    common = {**base, "requiretls": needs}

    if secure and mx.tlsa is DaneState.FAILED:
        return TransportRequirement(
            **common,
            kind=RequirementKind.UNUSABLE,
            reason=FailureReason.DNSSEC_INVALID,
            policy_type=PolicyType.TLSA,
            detail="TLSA lookup failed: the MX is treated as unreachable (RFC 7672 §2.1.2)",
        )
    if secure and mx.tlsa is DaneState.USABLE:
        return TransportRequirement(
            **common,
            kind=RequirementKind.DANE,
            tls_required=True,
            authentication=Authentication.DANE,
            tlsa_records=mx.tlsa_records,
            policy_type=PolicyType.TLSA,
            detail="usable secure TLSA records: DANE authentication is mandatory (RFC 7672 §2.2)",
        )
    if sts.unknown:
        # The MX-validation step of REQUIRETLS cannot be judged either: no needs, as
        # for a failed MX lookup, so that the message is deferred and never bounced.
        return TransportRequirement(
            **base,
            kind=RequirementKind.UNUSABLE,
            sts_unknown=True,
            detail="MTA-STS state unknown: the policy store could not be read and no policy "
            "was fetched; delivery is delayed (RFC 8461 §5.1)",
        )
    if sts.mode is PolicyMode.ENFORCE:
        if not match:
            return TransportRequirement(
                **common,
                kind=RequirementKind.UNUSABLE,
                reason=FailureReason.VALIDATION_FAILURE,
                sts_mx_match=False,
                policy_type=PolicyType.STS,
                detail="MX host not listed in the enforce MTA-STS policy (RFC 8461 §4.1, §5)",
            )
        return TransportRequirement(
            **common,
            kind=RequirementKind.STS_ENFORCE,
            tls_required=True,
            authentication=Authentication.WEBPKI,
            sts_mx_match=True,
            policy_type=PolicyType.STS,
            detail="MTA-STS enforce: TLS with a WebPKI certificate for the MX (RFC 8461 §4.2, §5)",
        )
    if sts.mode is PolicyMode.TESTING:
        return TransportRequirement(
            **common,
            kind=RequirementKind.STS_TESTING,
            tls_required=tlsa_unusable,
            sts_mx_match=match,
            policy_type=PolicyType.STS,
            detail="MTA-STS testing: deliver and report failures (RFC 8461 §5)"
            + (
                "; secure unusable TLSA makes TLS mandatory (RFC 7672 §2.2)"
                if tlsa_unusable
                else ""
            ),
        )
    if tlsa_unusable:
        return TransportRequirement(
            **common,
            kind=RequirementKind.DANE,
            tls_required=True,
            tlsa_records=mx.tlsa_records,
            policy_type=PolicyType.TLSA,
            detail="secure TLSA records, none usable: TLS without authentication (RFC 7672 §2.2)",
        )
    return TransportRequirement(
        **common,
        kind=RequirementKind.OPPORTUNISTIC,
        detail="no DANE and no active MTA-STS policy: opportunistic TLS (RFC 7672 §2.2, RFC 8461 §3.3)",
    )


def _has_policy(mx: MxCandidate, security: Security, sts: StsState) -> bool:
    dane = security is Security.SECURE and mx.tlsa.applies
    # An unknown MTA-STS state may hide an active policy: the session is not reported.
    return dane or sts.unknown or sts.mode in (PolicyMode.ENFORCE, PolicyMode.TESTING)


class SessionObservation(BaseModel):
    """What one SMTP session to an MX showed, as the caller's MTA or the probe saw it (RFC 3207 §4).

    Attributes:
        host: the MX host name the session was opened to.
        starttls_offered: the EHLO reply before TLS listed STARTTLS.
        tls_established: the STARTTLS handshake completed.
        tls_failure: why the handshake failed, when it was attempted and did
            not complete (defaults to ``validation-failure``).
        webpki: the WebPKI check of the chain for the MX host name
            (``mtasecure.certs``); ``None`` when not made.
        dane: the DANE check of the chain against the TLSA records
            (``mtasecure.dane``); ``None`` when not made.
        requiretls_advertised: the EHLO reply after STARTTLS listed REQUIRETLS.
    """

    model_config = ConfigDict(frozen=True)

    host: HostName
    starttls_offered: bool = False
    tls_established: bool = False
    tls_failure: FailureReason | None = None
    webpki: CheckResult | None = None
    dane: CheckResult | None = None
    requiretls_advertised: bool = False

    @classmethod
    def from_probe(
        cls,
        probe: _ProbeLike,
        *,
        webpki: CheckResult | None = None,
        dane: CheckResult | None = None,
    ) -> SessionObservation:
        """The observation of an SMTP probe (``mtasecure.transport.smtp``'s ``ProbeResult``).

        Args:
            probe: anything with ``host``, ``starttls_offered``,
                ``tls_established`` and ``ehlo_tls.keywords`` (``name``, ``params``).
            webpki: the :func:`mtasecure.certs.check_certificate` result for
                the presented chain.
            dane: the :func:`mtasecure.dane.check_dane` result.

        REQUIRETLS counts only in the EHLO reply inside TLS and only without
        parameters: the rule :func:`~mtasecure.requiretls.check_ehlo_requiretls`
        and the probe's ``requiretls_offered`` share (RFC 8689 §2).
        """
        return _observation_from_probe(probe, webpki=webpki, dane=dane)


class _KeywordLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def params(self) -> Sequence[str]: ...


class _EhloLike(Protocol):
    @property
    def keywords(self) -> Sequence[_KeywordLike]: ...


class _ProbeLike(Protocol):
    @property
    def host(self) -> str: ...
    @property
    def starttls_offered(self) -> bool: ...
    @property
    def tls_established(self) -> bool: ...
    @property
    def ehlo_tls(self) -> _EhloLike | None: ...


def _observation_from_probe(
    probe: _ProbeLike, *, webpki: CheckResult | None, dane: CheckResult | None
) -> SessionObservation:
    offered = probe.ehlo_tls is not None and _smtpwire.offers_requiretls(probe.ehlo_tls.keywords)
    return SessionObservation(
        host=probe.host,
        starttls_offered=probe.starttls_offered,
        tls_established=probe.tls_established,
        webpki=webpki,
        dane=dane,
        requiretls_advertised=probe.tls_established and offered,
    )


class SessionOutcome(BaseModel):
    """:func:`judge`'s verdict on one session.

    Attributes:
        deliver: send the message over this session.
        reason: the RFC 8460 result type of a recipient-policy failure seen in
            the session (also when ``sts-testing`` delivers anyway), else ``None``.
        policy_type: the ``policy-type`` to file it under (RFC 8460 §4.4).
        requiretls_failure: the RFC 8689 §4.2.1 step that failed, for a
            REQUIRETLS message.
        use_requiretls_parameter: put ``REQUIRETLS`` on MAIL FROM.
        detail: a sentence for logs and the TLS report's
            ``additional-information``.
    """

    model_config = ConfigDict(frozen=True)

    deliver: bool
    reason: FailureReason | None = None
    policy_type: PolicyType = PolicyType.NO_POLICY_FOUND
    requiretls_failure: RequireTlsFailure | None = None
    use_requiretls_parameter: bool = False
    detail: str = ""


def judge(requirement: TransportRequirement, session: SessionObservation) -> SessionOutcome:
    """Hold a session against its requirement (RFC 7672 §2.2, RFC 8461 §5, RFC 8689 §4.2.1).

    Args:
        requirement: the MX's entry of the :class:`DeliveryPlan`.
        session: what the session showed, up to the EHLO after STARTTLS.

    Raises:
        UsageError: the session was to another host than the requirement's.
    """
    if session.host != requirement.host:
        raise UsageError(f"session to {session.host} judged against {requirement.host}")
    policy = requirement.policy_type
    if requirement.kind is RequirementKind.UNUSABLE:
        return SessionOutcome(
            deliver=False,
            reason=requirement.reason,
            policy_type=policy,
            requiretls_failure=requirement.requiretls_failure,
            detail=requirement.detail,
        )
    tls_reason = _tls_reason(session)
    cert = _certificate_result(requirement, session)

    reason: FailureReason | None = None
    deliver = True
    detail = "session meets the requirement"
    if tls_reason is not None:
        reason = tls_reason
        deliver = not requirement.tls_required
        detail = "no TLS session" + ("" if deliver else ": TLS is required")
    elif requirement.authentication is not Authentication.NONE and not cert.ok:
        reason = cert.reason
        deliver = False
        detail = cert.detail or "certificate not authenticated"
    elif requirement.kind is RequirementKind.STS_TESTING:
        if requirement.sts_mx_match is False:
            reason = FailureReason.VALIDATION_FAILURE
            detail = "MX not listed in the testing policy: reported, delivered (RFC 8461 §5)"
        elif session.webpki is not None and not session.webpki.ok:
            reason = session.webpki.reason
            detail = "certificate failed the testing policy: reported, delivered (RFC 8461 §5)"
    if requirement.kind is RequirementKind.OPPORTUNISTIC:
        reason = None  # nothing of the recipient's to report (RFC 8460 §4.3: policy failures)

    needs = requirement.requiretls
    if needs is not None:
        authenticated = (
            session.dane is not None and session.dane.ok
            if needs.authentication is Authentication.DANE
            else session.webpki is not None and session.webpki.ok
        )
        failure = check_requiretls_hop(
            mx_validated=needs.mx_validated,
            tls_established=session.tls_established,
            certificate_authenticated=authenticated,
            requiretls_advertised=session.requiretls_advertised,
        )
        if failure is not None:
            return SessionOutcome(
                deliver=False,
                reason=reason,
                policy_type=policy,
                requiretls_failure=failure,
                detail=failure.text,
            )
        return SessionOutcome(
            deliver=deliver,
            reason=reason,
            policy_type=policy,
            use_requiretls_parameter=deliver,
            detail=detail,
        )
    bounce_param = (
        requirement.requiretls_parameter
        and session.tls_established
        and session.requiretls_advertised
    )
    return SessionOutcome(
        deliver=deliver,
        reason=reason,
        policy_type=policy,
        use_requiretls_parameter=deliver and bounce_param,
        detail=detail,
    )


def _tls_reason(session: SessionObservation) -> FailureReason | None:
    if session.tls_established:
        return None
    if not session.starttls_offered:
        return FailureReason.STARTTLS_NOT_SUPPORTED
    return session.tls_failure or FailureReason.VALIDATION_FAILURE


def _certificate_result(
    requirement: TransportRequirement, session: SessionObservation
) -> CheckResult:
    if requirement.authentication is Authentication.DANE:
        found = session.dane
    elif requirement.authentication is Authentication.WEBPKI:
        found = session.webpki
    else:
        return CheckResult.passed()
    if found is None:
        return CheckResult.failed(
            FailureReason.VALIDATION_FAILURE,
            f"the {requirement.authentication.value} check was not made",
        )
    return found


class Conclusion(BaseModel):
    """What to do with a message that no MX took (:func:`conclude`; RFC 7672 §2.1.1, RFC 8689 §4.2.1).

    Attributes:
        verdict: defer or bounce.
        status: the enhanced status code for the DSN or the log.
        requiretls_failure: for a REQUIRETLS bounce, the failure reported.
        detail: a sentence for the DSN's diagnostic or the log.
    """

    model_config = ConfigDict(frozen=True)

    verdict: Verdict
    status: str
    requiretls_failure: RequireTlsFailure | None = None
    detail: str = ""


def conclude(
    delivery_plan: DeliveryPlan, outcomes: Mapping[str, SessionOutcome | None]
) -> Conclusion:
    """Decide between deferring and bouncing once every MX of a plan failed.

    * A REQUIRETLS message (non-empty return path) whose every MX failed a
      REQUIRETLS step — step 2 before connecting, or steps 4-5 in a session —
      is bounced with 5.7.30 or 5.7.10 (RFC 8689 §4.2.1; see
      :func:`~mtasecure.requiretls.choose_bounce_failure`).
    * Anything else is deferred: a DNS or TLSA lookup failure (RFC 7672
      §2.1.2, "delayed"), an MX left out by an ``enforce`` policy (RFC 8461 §5:
      not failed permanently before checking for a new policy), an MTA-STS or
      DANE failure in a session (RFC 8461 §5, "SHOULD treat such failures as
      transient"), an unreachable MX (``None`` in ``outcomes``), an MX left
      out because the MTA-STS state is unknown (the policy store could not
      be read, RFC 8461 §5.1). One such MX defers a REQUIRETLS message too,
      since it may succeed later. The caller's queue lifetime ends a deferral.

    The status of a deferral: 4.7.10 when a REQUIRETLS step failed on some
    MX (RFC 8689 §4.2.1's X.7.10, transient); else 4.4.3 when an MX was left
    out because a lookup service was unavailable — a failed, bogus or
    indeterminate MX, address or TLSA lookup, or an MTA-STS policy store that
    could not be read: RFC 3463 §3.5 X.4.3 "Directory server failure" ("The
    inability to connect to an Internet DNS server is one example"), "useful
    only as a persistent transient error"; else 4.4.0 (X.4.0, other network
    or routing status: MX hosts that were unreachable, left out by an
    ``enforce`` policy, or failed MTA-STS or DANE in a session).

    Args:
        delivery_plan: the plan the sessions followed.
        outcomes: for each MX host tried, its outcome, or ``None`` when no
            session could be had (connection refused, timeout); MX hosts
            missing from the mapping count as not tried.

    Raises:
        UsageError: an outcome says the message was delivered.
    """
    if any(o is not None and o.deliver for o in outcomes.values()):
        raise UsageError("the message was delivered; there is nothing to conclude")
    failures: list[RequireTlsFailure] = []
    transient = False
    unknown = False
    lookup_failed = delivery_plan.mx_lookup_failed
    for requirement in delivery_plan.requirements:
        if requirement.kind is RequirementKind.UNUSABLE:
            # DNS and TLSA failures delay (RFC 7672 §2.1.2); an MX left out by an enforce
            # policy may be listed by the next one (RFC 8461 §5: re-check before failing);
            # an unknown MTA-STS state may be known on the next try (RFC 8461 §5.1).
            transient = True
            unknown = unknown or requirement.sts_unknown
            # plan() gives dnssec-invalid to an unusable MX only for a failed MX, address or
            # TLSA lookup (an address lookup failure makes the TLSA state failed).
            lookup_failed = lookup_failed or requirement.reason is FailureReason.DNSSEC_INVALID
            if requirement.requiretls_failure is not None:
                failures.append(requirement.requiretls_failure)
            continue
        if requirement.requiretls_failure is not None:
            failures.append(requirement.requiretls_failure)
            continue
        outcome = outcomes.get(requirement.host)
        if outcome is None or outcome.requiretls_failure is None:
            transient = True
        else:
            failures.append(outcome.requiretls_failure)
    if delivery_plan.flags.requiretls_enforced and failures and not transient:
        failure = choose_bounce_failure(failures)
        return Conclusion(
            verdict=Verdict.BOUNCE,
            status=failure.status,
            requiretls_failure=failure,
            detail=failure.text,
        )
    if failures:
        status, detail = "4.7.10", "no MX could be used now; try again later"
    elif unknown:
        status = "4.4.3"
        detail = "the MTA-STS policy store could not be read; try again later (RFC 8461 §5.1)"
    elif lookup_failed:
        status = "4.4.3"
        detail = "a DNS lookup (MX, address or TLSA) failed; try again later (RFC 7672 §2.1.2)"
    else:
        status, detail = "4.4.0", "no MX could be used now; try again later"
    return Conclusion(verdict=Verdict.DEFER, status=status, detail=detail)
