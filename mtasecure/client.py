"""The async facade: one object that holds the transports and asks the core.

``MtaSecure(resolver=None, http=None, smtp=None, cache=None, store=None,
clock=None, sts=None, dns=None)``: each ``None`` builds the default. The resolver, the
clock, the HTTP client and the policy cache are used (MTA-STS discovery:
:meth:`MtaSecure.sts_policy`, :meth:`MtaSecure.sts_lookup`,
:meth:`MtaSecure.sts_decision`), and the SMTP connector
(:meth:`MtaSecure.check_mx`), and the TLS-RPT result store (RFC 8460:
:meth:`MtaSecure.record_session`, :meth:`MtaSecure.build_daily_reports`,
:meth:`MtaSecure.send_daily_reports`).

MTA-STS discovery (RFC 8461 §3–§5) is planned by the core
(:func:`mtasecure.sts.plan_refresh`, :func:`mtasecure.sts.plan_after_fetch`,
:func:`mtasecure.sts.check_response`, :func:`mtasecure.sts.plan_proactive`);
this module only performs the lookups, fetches and stores the plans name.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import secrets
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mtasecure._http import HttpResponse
from mtasecure._mxcheck import (
    MxAddressCheck,
    MxCheck,
    MxDane,
    check_session,
    judge_check,
    weakest_security,
)
from mtasecure._names import normalize_host
from mtasecure.certs import TrustStore
from mtasecure.dane import plan_dane_lookup
from mtasecure.decision import (
    STS_DISCOVERY_FAILURES,
    DeliveryPlan,
    MxCandidate,
    SessionOutcome,
    StsState,
    TransportRequirement,
    plan,
)
from mtasecure.dnssec import DnsAnswer
from mtasecure.errors import (
    DnsError,
    HttpError,
    NameSyntaxError,
    StoreError,
    TransportError,
    UsageError,
)
from mtasecure.mx import MxSet, parse_mx
from mtasecure.requiretls import MessageFlags
from mtasecure.results import CheckResult, FailureReason
from mtasecure.sts import (
    DEFAULT_FETCH_TIMEOUT,
    MAX_POLICY_BYTES,
    CachedPolicy,
    FetchFailure,
    PolicyMode,
    StepAction,
    StsDecision,
    StsExclusions,
    StsPolicy,
    TxtOutcome,
    TxtState,
    apply_policy,
    check_response,
    check_transport_failure,
    plan_after_fetch,
    plan_proactive,
    plan_refresh,
    policy_url,
    record_name,
    select_record,
    txt_expiry,
)
from mtasecure.sts._cache import (
    DEFAULT_IDLE_AFTER,
    DEFAULT_REFRESH_INTERVAL,
    DEFAULT_REFRESH_JITTER,
    FETCH_RETRY_DELAY,
    MAX_REFRESH_BATCH,
    STORE_RETRY_DELAY,
)
from mtasecure.sts._match import cached_host
from mtasecure.tlsrpt import (
    BuiltReport,
    DkimKey,
    ReportOptions,
    ReportWindow,
    ResultBatch,
    TlsRptCollector,
    build_reports,
    plan_session_record,
)
from mtasecure.tlsrpt import record_name as tlsrpt_record_name
from mtasecure.tlsrpt._collect import DAY
from mtasecure.tlsrpt._submit import RetryPolicy, parse_rua
from mtasecure.transport import (
    Clock,
    DnsSettings,
    HttpClient,
    MailSubmitter,
    MemoryPolicyCache,
    PolicyCache,
    ReportStore,
    Resolver,
    SmtpConnector,
    SystemClock,
    resolver_from_settings,
)
from mtasecure.transport._closing import AsyncClosing
from mtasecure.transport.report_memory import MemoryReportStore
from mtasecure.transport.report_submit import (
    SentReport,
    SmtpSubmitter,
    resolve_rua,
    send_due_reports,
    submit_report,
)
from mtasecure.transport.smtp import SMTP_PORT, AsyncioSmtpConnector
from mtasecure.transport.trust import load_system_trust_store

__all__ = [
    "DEFAULT_POLICY_PORT",
    "MAX_TRACKED_DOMAINS",
    "MtaSecure",
    "MxAddressCheck",
    "MxCheck",
    "MxDane",
    "StsLookup",
    "StsSettings",
]

DEFAULT_POLICY_PORT = 443
"""The port policies are fetched from (RFC 8461 §3.3: HTTPS, so 443)."""
MAX_TRACKED_DOMAINS = 200_000
"""Most domains whose TXT answer, last use and last fetch failure are remembered in memory."""

_log = logging.getLogger("mtasecure.sts")
_report_log = logging.getLogger("mtasecure.tlsrpt")


class StsSettings(BaseModel):
    """How :class:`MtaSecure` discovers, caches and refreshes MTA-STS policies.

    Attributes:
        policy_port: the HTTPS port policies are fetched from. Always 443 on
            the Internet (RFC 8461 §3.3); other values are for tests and
            private deployments.
        fetch_timeout: seconds one policy fetch may take in all (RFC 8461
            §3.3 suggests a minute).
        max_policy_bytes: the body size cap (RFC 8461 §3.3 suggests 64 KiB).
        refresh_interval: fetch a cached policy again after this long, even
            when its id is unchanged (RFC 8461 §3.3 suggests daily).
        idle_after: proactive refresh skips domains unused for this long.
        refresh_jitter: fraction of the interval refreshes are spread over.
        refresh_concurrency: most fetches one proactive round runs at once.
        refresh_every: seconds between proactive rounds (randomised ±10 %).
        exclude: domains (``example.com``) and suffixes (``*.example.com``)
            for which MTA-STS is skipped entirely.
        public_only: when the default HTTP client is built, make it refuse
            policy hosts at non-public addresses (loopback, private,
            link-local...). Off by default so tests can use loopback; turn it
            on for real traffic (the CLI's network commands do).
        on_store_error: what a lookup does when the persistent policy store
            (``cache=``) cannot be read for a domain the in-memory front does
            not hold. ``"defer"`` (the default): unless a policy is fetched in
            the same lookup, the state is unknown (:attr:`StsLookup.store_error`)
            and the delivery is deferred — the store may hold a cached
            ``enforce`` policy that RFC 8461 §5.1 keeps in force, and a local
            fault must not downgrade it. ``"ignore"``: act as though nothing
            were stored (the read failure is only logged), so a failed fetch
            or a missing TXT record means no policy — mail keeps flowing
            during a store outage, at the price of that downgrade.
    """

    model_config = ConfigDict(frozen=True)

    policy_port: int = Field(default=DEFAULT_POLICY_PORT, ge=1, le=65535)
    fetch_timeout: float = Field(default=DEFAULT_FETCH_TIMEOUT, gt=0)
    max_policy_bytes: int = Field(default=MAX_POLICY_BYTES, ge=1, le=MAX_POLICY_BYTES)
    refresh_interval: timedelta = DEFAULT_REFRESH_INTERVAL
    idle_after: timedelta = DEFAULT_IDLE_AFTER
    refresh_jitter: float = Field(default=DEFAULT_REFRESH_JITTER, ge=0, le=1)
    refresh_concurrency: int = Field(default=8, ge=1, le=1024)
    refresh_every: float = Field(default=60.0, gt=0)
    exclude: tuple[str, ...] = ()
    public_only: bool = False
    on_store_error: Literal["defer", "ignore"] = "defer"


class StsLookup(BaseModel):
    """The MTA-STS state of one domain, as :meth:`MtaSecure.sts_lookup` found it.

    Attributes:
        domain: the Policy Domain, normalised.
        policy: the policy to apply (fresh or cached), or ``None``.
        entry: the cache entry the policy came from.
        result: a discovery failure to report this time (RFC 8460 §4.3.2.2:
            ``sts-policy-fetch-error``, ``sts-policy-invalid``,
            ``sts-webpki-invalid``), whether or not a cached policy applies;
            passed otherwise.
        excluded: the domain is on the exclusion list; nothing was looked up.
        store_error: why the persistent policy store could not be read, when
            that leaves the policy in force unknown: the store may hold a
            cached policy (RFC 8461 §5.1 keeps it in force even when the TXT
            record is gone or the fetch fails) and no policy was fetched in
            this lookup. ``policy`` is then ``None`` and :attr:`state` is
            ``unknown``: defer the delivery, never treat it as "no policy".
            Nothing stored is deleted or overwritten. Empty otherwise (also
            when a fetch in the same lookup succeeded).
    """

    model_config = ConfigDict(frozen=True)

    domain: str
    policy: StsPolicy | None = None
    entry: CachedPolicy | None = None
    result: CheckResult = CheckResult.passed()
    excluded: bool = False
    store_error: str = ""

    @property
    def state(self) -> StsState:
        """What :func:`mtasecure.decision.plan` is given for this lookup.

        The policy in force (fresh, or cached after a failed fetch: RFC 8461
        §3.3, §5.1) with the discovery failure to report (RFC 8460
        §4.3.2.2); no policy, with the failure, when nothing valid is cached;
        no policy and nothing to report for an excluded domain; ``unknown``
        (deferred, nothing to report) when :attr:`store_error` is set.
        """
        if self.excluded:
            return StsState()
        if self.store_error:
            return StsState(unknown=True)
        reason = self.result.reason
        failure = reason if reason in STS_DISCOVERY_FAILURES else None
        if self.policy is None:
            return StsState(failure=failure)
        return StsState.of(self.policy, failure=failure)


class MtaSecure(AsyncClosing):
    """Secure mail transport decisions, over pluggable transports.

    Args:
        resolver: a :class:`~mtasecure.transport.Resolver`; ``None`` builds
            the one ``dns`` describes.
        http: an :class:`~mtasecure.transport.HttpClient` (MTA-STS policy fetches,
            TLS-RPT uploads to ``https`` rua endpoints).
        smtp: an :class:`~mtasecure.transport.SmtpConnector`; ``None`` builds
            an :class:`~mtasecure.transport.smtp.AsyncioSmtpConnector`.
        cache: a :class:`~mtasecure.transport.PolicyCache`; ``None`` keeps
            policies in memory only. A given
            :class:`~mtasecure.transport.memcache.MemoryPolicyCache` is used
            as it is; any other cache (a subclass included) gets an
            in-memory front (reads go to it only on a miss; writes go to
            both).
        store: a :class:`~mtasecure.transport.ReportStore` for TLS-RPT session
            results; ``None`` keeps them in memory
            (:class:`~mtasecure.transport.report_memory.MemoryReportStore`),
            which is lost on exit. Pass
            ``SqliteReportStore(path)`` for results that survive a restart.
        clock: a :class:`~mtasecure.transport.Clock`; ``None`` reads the system time.
        sts: :class:`StsSettings`; ``None`` takes the defaults.
        dns: :class:`~mtasecure.transport.DnsSettings` for the default
            resolver (:func:`~mtasecure.transport.resolver_from_settings`):
            a trusted validator's AD bit (``dnssec="validator"``) or local
            validation from a trust anchor (``dnssec="local"``). ``None``:
            validator mode on the system's nameservers, only loopback ones
            trusted. Not allowed together with ``resolver``.

    Raises:
        UsageError: both ``resolver`` and ``dns`` were given.

    Use as an async context manager: on exit it closes what it built itself,
    never what it was given, and stops the proactive refresh.
    """

    def __init__(
        self,
        *,
        resolver: Resolver | None = None,
        http: HttpClient | None = None,
        smtp: SmtpConnector | None = None,
        cache: PolicyCache | None = None,
        store: ReportStore | None = None,
        clock: Clock | None = None,
        sts: StsSettings | None = None,
        dns: DnsSettings | None = None,
    ) -> None:
        self._owned: list[Any] = []
        if resolver is None:
            resolver = resolver_from_settings(dns, clock=clock)
            self._owned.append(resolver)
        elif dns is not None:
            raise UsageError("pass either resolver= or dns=, not both")
        self.resolver: Resolver = resolver
        self._http = http
        self.smtp: SmtpConnector = smtp if smtp is not None else AsyncioSmtpConnector()
        self.cache = cache
        self.store: ReportStore = store if store is not None else MemoryReportStore()
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.sts_settings = sts if sts is not None else StsSettings()
        self._exclusions = StsExclusions(self.sts_settings.exclude)
        # Only the plain in-memory cache is used as the front itself: a
        # subclass may override the async methods (to persist, say), and the
        # front is only ever reached through peek/store.
        if type(cache) is MemoryPolicyCache:
            self._front, self._back = cache, None
        else:
            self._front, self._back = MemoryPolicyCache(), cache
        self._answers: dict[str, tuple[datetime, StsLookup]] = {}
        self._txt: dict[str, TxtOutcome] = {}
        self._failures: dict[str, FetchFailure] = {}
        self._used: dict[str, datetime] = {}
        self._inflight: dict[str, asyncio.Task[StsLookup]] = {}
        self._refresher: asyncio.Task[None] | None = None
        self._init_reports()

    async def aclose(self) -> None:
        """Stop the proactive refresh; close the transports this object built (not those it was given)."""
        await self.stop_sts_refresh()
        await self._close_reports()
        for task in list(self._inflight.values()):
            task.cancel()
        owned, self._owned = self._owned, []
        for transport in reversed(owned):
            await transport.aclose()

    async def resolve(self, name: str, rdtype: str) -> DnsAnswer:
        """Look up ``rdtype`` at ``name`` through the resolver (status included)."""
        return await self.resolver.resolve(name, rdtype)

    async def resolve_mx(self, domain: str) -> MxSet:
        """The mail exchangers of ``domain`` in preference order (RFC 5321 §5.1).

        ``domain`` may be a U-label IDN; it is looked up in A-labels.

        Raises:
            NameSyntaxError: ``domain`` is not a host name.
            ParseError: the resolver returned MX records that cannot be read.
        """
        return parse_mx(await self.resolver.resolve(normalize_host(domain), "MX"))

    async def plan_delivery(
        self,
        domain: str,
        message_flags: MessageFlags | None = None,
        *,
        sts: StsState | StsPolicy | None = None,
        port: int = SMTP_PORT,
    ) -> DeliveryPlan:
        """What each MX session for a message to ``domain`` must prove (``mtasecure.decision``).

        Looks up the MX set, then for each host of a DNSSEC-``secure`` MX set
        its DANE state (:meth:`resolve_dane`: address records first, then
        the TLSA records, RFC 7672 §2.2.2, §2.2.3), and the domain's MTA-STS
        policy (:meth:`sts_lookup`: cache, refresh and the exclusion list,
        RFC 8461 §3-§5), and hands it all to :func:`mtasecure.decision.plan`
        (DANE before MTA-STS, RFC 8461 §2).

        Args:
            domain: the recipient domain.
            message_flags: from :func:`mtasecure.requiretls.flag_message`.
            sts: an MTA-STS state (or policy) to use instead of discovering
                it; ``None`` runs discovery.
            port: the SMTP port, for the ``_<port>._tcp`` TLSA name.

        Raises:
            NameSyntaxError: ``domain`` is not a host name.
            ParseError: the resolver returned MX records that cannot be read.
        """
        name = normalize_host(domain)
        if sts is None:
            mx_set, lookup = await asyncio.gather(self.resolve_mx(name), self.sts_lookup(name))
            state = lookup.state
        else:
            mx_set = await self.resolve_mx(name)
            state = StsState.of(sts) if isinstance(sts, StsPolicy) else sts
        if mx_set.failed:
            return plan(
                name,
                mx_security=mx_set.security,
                mx=(),
                sts=state,
                flags=message_flags,
                mx_lookup_failed=True,
            )
        found = await asyncio.gather(
            *(self.resolve_dane(name, h.host, mx_set=mx_set, port=port) for h in mx_set.hosts)
        )
        candidates = [
            MxCandidate.from_dane(h.host, h.preference, d.policy, implicit=mx_set.implicit)
            for h, d in zip(mx_set.hosts, found, strict=True)
        ]
        return plan(
            name, mx_security=mx_set.security, mx=candidates, sts=state, flags=message_flags
        )

    async def resolve_dane(
        self,
        domain: str,
        mx: str,
        *,
        mx_set: MxSet | None = None,
        addresses: tuple[DnsAnswer, DnsAnswer] | None = None,
        port: int = SMTP_PORT,
    ) -> MxDane:
        """What DANE requires of ``mx``, one MX host of ``domain`` (RFC 7672 §2.2).

        The domain's MX answer decides first: bogus or failed means the MX
        must not be used; insecure, with ``mx`` listed, means DANE does not
        apply and nothing more is looked up (RFC 7672 §2.2.1). Otherwise the
        A and AAAA records of ``mx`` (RFC 7672 §2.2.2: insecure ones mean no
        TLSA lookup; bogus or failed ones make the MX unusable), then the
        TLSA records at ``_<port>._tcp`` of the candidate base domains: a
        secure alias's expansion first, then ``mx`` itself (§2.2.3). An
        ``mx`` that the MX set does not list is checked as a configured
        relay; a secure MX set that lists it makes ``domain`` a DANE-TA
        reference name (§3.2.2).

        Args:
            domain: the next-hop (recipient) domain.
            mx: the MX host.
            mx_set: the domain's MX set, if already resolved.
            addresses: the A and AAAA answers of ``mx``, if already resolved.
            port: the SMTP port.

        Raises:
            NameSyntaxError: ``domain`` or ``mx`` is not a host name.
        """
        name = normalize_host(domain)
        host = normalize_host(mx)
        if mx_set is None:
            mx_set = await self.resolve_mx(name)
        # The core plans each lookup (RFC 7672 §2.2); this only makes them.
        answers: tuple[DnsAnswer, ...] = addresses or ()
        step = plan_dane_lookup(host, answers, mx_set=mx_set, next_hop=name, port=port)
        while step.policy is None:
            found = [self.resolver.resolve(q.name, q.rdtype) for q in step.lookups]
            answers += tuple(await asyncio.gather(*found))
            step = plan_dane_lookup(host, answers, mx_set=mx_set, next_hop=name, port=port)
        return MxDane(
            host=host,
            a=step.a,
            aaaa=step.aaaa,
            policy=step.policy,
            relay=step.relay,
            mx_security=step.mx_security,
        )

    async def check_mx(
        self,
        domain: str,
        mx: str,
        *,
        port: int = SMTP_PORT,
        trust: TrustStore | None = None,
        message_flags: MessageFlags | None = None,
        sts: StsState | StsPolicy | None = None,
    ) -> MxCheck:
        """Look up, probe and judge one MX host of ``domain`` (RFC 7672, RFC 8461 §4, §5).

        Steps: the DANE state of ``mx`` (:meth:`resolve_dane`: the domain's MX
        answer, the A and AAAA records, the TLSA records; RFC 7672 §2.2) and
        the domain's MTA-STS state (:meth:`sts_lookup`, exclusions honoured,
        RFC 8461 §3-§5), combined by :func:`mtasecure.decision.plan` into the
        MX's requirement (DANE before MTA-STS, RFC 8461 §2); then a STARTTLS
        probe of every address, each checked by WebPKI and DANE and judged
        against the requirement (:func:`mtasecure.decision.judge`): deliver
        or not, and the RFC 8460 result type to report. Nothing is probed
        when the MX must not be used (a bogus or failed lookup, RFC 7672
        §2.1.1; an MX outside an ``enforce`` policy, RFC 8461 §4.1).

        Args:
            domain: the next-hop (recipient) domain.
            mx: the MX host to check.
            port: the SMTP port (25 unless testing).
            trust: the WebPKI trust anchors; ``None`` loads the system store
                once per client.
            message_flags: the message the sessions are judged for; ``None``
                means an ordinary message.
            sts: an MTA-STS state (or policy) to use instead of discovering it.

        Raises:
            NameSyntaxError: ``domain`` or ``mx`` is not a host name.
        """
        name = normalize_host(domain)
        host = normalize_host(mx)
        if sts is None:
            mx_set, a, aaaa, lookup = await asyncio.gather(
                self.resolve_mx(name),
                self.resolver.resolve(host, "A"),
                self.resolver.resolve(host, "AAAA"),
                self.sts_lookup(name),
            )
            state = lookup.state
        else:
            mx_set, a, aaaa = await asyncio.gather(
                self.resolve_mx(name),
                self.resolver.resolve(host, "A"),
                self.resolver.resolve(host, "AAAA"),
            )
            state = StsState.of(sts) if isinstance(sts, StsPolicy) else sts
        dane = await self.resolve_dane(name, host, mx_set=mx_set, addresses=(a, aaaa), port=port)
        policy = dane.policy
        address_security = weakest_security((a, aaaa))
        listed = next((h for h in mx_set.hosts if h.host == host), None)
        requirement = plan(
            name,
            mx_security=dane.mx_security,
            mx=[
                MxCandidate.from_dane(
                    host,
                    listed.preference if listed is not None else 0,
                    policy,
                    implicit=mx_set.implicit and listed is not None,
                )
            ],
            sts=state,
            flags=message_flags,
            mx_lookup_failed=mx_set.failed,
        ).requirements[0]
        addresses = (*a.records, *aaaa.records)
        common: dict[str, Any] = {
            "domain": name,
            "mx": host,
            "port": port,
            "mx_security": mx_set.security,
            "address_security": address_security,
            "addresses": addresses,
            "dane_policy": policy,
            "sts": state,
            "requirement": requirement,
        }
        if not policy.may_connect:
            return MxCheck(detail=policy.detail, **common)
        if not requirement.usable:
            return MxCheck(detail=requirement.detail, **common)
        if not addresses:
            return MxCheck(detail=f"{host} has no address record", **common)
        # Under DANE the SNI is the TLSA base domain (RFC 7672 §8.1); it differs
        # from the MX name only when a secure CNAME was followed (§2.2.3).
        sni = policy.server_name(host)
        probes = await asyncio.gather(
            *(self.smtp.probe(sni, address, port=port) for address in addresses)
        )
        now = self.clock.now()
        anchors = trust if trust is not None else load_system_trust_store()  # read once, cached
        checks = tuple(
            judge_check(
                check_session(p, policy, host=host, now=now, trust=anchors), requirement, host=host
            )
            for p in probes
        )
        return MxCheck(checks=checks, **common)

    # --- TLS-RPT (RFC 8460): recording sessions, building and sending reports ----
    #
    # One collector per client counts sessions on the delivery path; the counts
    # move to ``self.store`` (flush_reports) attributed to the UTC day they were
    # recorded in. The day's reports are built from the store and delivered to
    # every rua of each domain's _smtp._tls record. The rules (what policy and
    # result a session is filed under, report contents, rua parsing, retries)
    # are the core's: mtasecure.tlsrpt.

    def _init_reports(self) -> None:
        # The collector record_session counts into (drained by flush_reports);
        # public so that an MTA with its own judging can record into it directly.
        self.reports = TlsRptCollector()
        self._report_window: ReportWindow | None = None
        self._report_queue: list[ResultBatch] = []
        self._report_owner = f"mtasecure-{secrets.token_hex(8)}"

    def record_session(
        self,
        domain: str,
        requirement: TransportRequirement,
        outcome: SessionOutcome | CheckResult | FailureReason | None,
        *,
        sts_policy: StsPolicy | None = None,
        sts_failure: FailureReason | None = None,
        sending_ip: str | None = None,
        receiving_ip: str | None = None,
        helo: str | None = None,
        failure_reason_code: str | None = None,
        additional_information: str | None = None,
        is_report_mail: bool = False,
    ) -> bool:
        """Count one finished SMTP session for the TLS report of ``domain`` (RFC 8460 §4.2–§4.4).

        Cheap and synchronous, so it can sit on the delivery path: the session
        is counted in memory under the day of :attr:`clock`; the counts reach
        :attr:`store` on the next :meth:`flush_reports` (which
        :meth:`build_daily_reports`, :meth:`send_daily_reports` and
        :meth:`aclose` call).

        Args:
            domain: the Policy Domain: the recipient (next-hop) domain the
                plan was made for (see :mod:`mtasecure.tlsrpt._policy` for
                the DANE case).
            requirement: the MX's entry of :meth:`plan_delivery`'s plan.
            outcome: :func:`mtasecure.decision.judge`'s verdict on the session
                (or a :class:`CheckResult`/:class:`FailureReason`; ``None``
                for success).
            sts_policy: the MTA-STS policy the plan was made from, when the
                requirement's policy type is ``sts`` (its lines become the
                ``policy-string``). Default: the policy this client's last
                :meth:`sts_lookup` of ``domain`` found, which is the one
                :meth:`plan_delivery` used when it did the discovery itself.
            sts_failure: ``DeliveryPlan.sts_failure`` — a discovery failure to
                report (RFC 8460 §4.3.2.2).
            sending_ip: this MTA's source address (``sending-mta-ip``).
            receiving_ip: the MX address connected to (``receiving-ip``).
            helo: the server's greeting name (``receiving-mx-helo``).
            failure_reason_code: ``failure-reason-code`` of a failed session
                (a TLS error name or message; default: the detail of a
                failing :class:`CheckResult` outcome).
            additional_information: ``additional-information``, a URI.
            is_report_mail: the session carried a TLS report; it is not
                counted, so reports never beget reports (RFC 8460 §5.3).

        Returns:
            Whether the session was counted (not for report mails, nor under
            ``TLS-Required: No``, which sets the recipient's policies aside,
            nor for an MX left out because the MTA-STS state was unknown).

        Raises:
            UsageError: ``domain`` is not a host name, or an ``sts``
                requirement comes without ``sts_policy``.
        """
        if sts_policy is None:
            sts_policy = self._looked_up_policy(domain)
        entry = plan_session_record(
            domain,
            requirement,
            outcome,
            sts_policy=sts_policy,
            sts_failure=sts_failure,
            failure_reason_code=failure_reason_code,
            is_report_mail=is_report_mail,
        )
        if entry is None:
            return False
        now = self.clock.now()
        window = self._report_window
        if window is None or not window.start <= now < window.end:
            self._seal_reports()
            self._report_window = ReportWindow.containing(now)
        self.reports.record(
            entry.policy_domain,
            entry.policy,
            entry.result,
            sending_ip=sending_ip,
            mx_host=entry.mx_host,
            receiving_ip=receiving_ip,
            helo=helo,
            failure_reason_code=entry.failure_reason_code,
            additional_information=additional_information,
        )
        return True

    def _looked_up_policy(self, domain: str) -> StsPolicy | None:
        """The policy the last :meth:`sts_lookup` of ``domain`` found, if it is remembered."""
        try:
            hit = self._answers.get(cached_host(domain))
        except NameSyntaxError:
            return None  # plan_session_record names the bad domain
        return hit[1].policy if hit is not None else None

    def _seal_reports(self) -> None:
        """Move what the collector holds into the queue, attributed to its window."""
        if self._report_window is None:
            # Counts recorded straight into ``self.reports``: the day of now.
            self._report_window = ReportWindow.containing(self.clock.now())
        batch = self.reports.drain(self._report_window)
        if batch is not None:
            self._report_queue.append(batch)

    async def flush_reports(self) -> int:
        """Add every recorded session to :attr:`store` (once: batches carry ids).

        Returns:
            The batches the store took.

        Raises:
            StoreError: the store failed; the counts stay queued in memory
                and go with the next flush, never lost or counted twice.
        """
        self._seal_reports()
        stored = 0
        while self._report_queue:
            await self.store.add(self._report_queue[0])
            self._report_queue.pop(0)
            stored += 1
        return stored

    async def _close_reports(self) -> None:
        """Flush recorded sessions on close; a failing store is logged, not raised."""
        try:
            await self.flush_reports()
        except StoreError as exc:
            _report_log.error(
                "TLS-RPT: %d result batch(es) could not be stored on close: %s",
                len(self._report_queue),
                exc,
            )

    async def build_daily_reports(
        self, day: date, options: ReportOptions
    ) -> tuple[BuiltReport, ...]:
        """Build one report per policy domain for the UTC ``day`` (RFC 8460 §4, §5.1, §5.2).

        Flushes first, then builds from what :attr:`store` holds for the day
        (from every fleet member, if the store is shared). Nothing is sent or
        marked; a day still running gives the reports so far.

        Args:
            day: the UTC day: a :class:`~datetime.date`, or an aware
                :class:`~datetime.datetime` inside it.
            options: what goes in the reports (``options.window`` must be one
                day).

        Raises:
            StoreError: the store could not be read or written.
            UsageError: ``day`` is a naive datetime, or the options ask for
                another window length.
        """
        window = _report_day(day, options)
        await self.flush_reports()
        return build_reports(await self.store.load(window), options)

    async def send_daily_reports(
        self,
        day: date,
        options: ReportOptions,
        *,
        mail: MailSubmitter | None = None,
        sender: str | None = None,
        dkim: DkimKey | None = None,
        retry: RetryPolicy | None = None,
        lease: float = 6 * 3600.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> tuple[SentReport, ...]:
        """Build the reports of a finished UTC ``day`` and deliver each to every ``rua`` (RFC 8460 §3, §5).

        For each policy domain with results: look up its ``_smtp._tls``
        record (:func:`~mtasecure.transport.report_submit.resolve_rua`), POST
        the gzip report to every ``https`` URI through :attr:`http` and mail
        it (RFC 8460 §5.3) to every ``mailto`` URI through ``mail``, each with
        its own retries (§5.5); then mark the domain sent in :attr:`store`.
        A domain already marked sent is skipped, so calling again after a
        crash sends only what is left; a fleet sharing the store claims the
        day first, and a member that does not get the claim sends nothing.
        When every domain is done, the day is pruned from the store.

        Args:
            day: the UTC day; it must be over (RFC 8460 §4.1: reports cover
                full days).
            options: what goes in the reports, and the submitter.
            mail: the submitter for ``mailto`` URIs; ``None`` builds an
                :class:`~mtasecure.transport.report_submit.SmtpSubmitter` to
                ``localhost:587`` when one is needed.
            sender: the report mails' ``From`` and envelope sender; defaults
                to ``options.contact_info``.
            dkim: the key to DKIM-sign report mails with (``dkim`` extra).
            retry: the retry policy; the default retries for up to a day
                (RFC 8460 §5.5), so the call can take that long when an
                endpoint keeps failing: pass ``RetryPolicy(total=...)`` to
                bound it.
            lease: seconds the claim on the day lasts.
            sleep: how to wait between attempts.
            rng: the source of retry jitter.

        Returns:
            One :class:`SentReport` per ``rua`` URI tried (a domain whose
            ``_smtp._tls`` lookup failed gets one undelivered entry naming
            the record, and stays unmarked for the next call). Delivery
            failures are values, not exceptions.

        Raises:
            StoreError: the store could not be read or written.
            UsageError: the day is not over, or see :meth:`build_daily_reports`.
        """
        window = _report_day(day, options)
        now = self.clock.now()
        if window.end > now:
            raise UsageError(
                f"the day {window.start.date()} is not over: a report covers a full UTC day "
                "(RFC 8460 §4.1)"
            )
        await self.flush_reports()
        if not await self.store.claim(window, self._report_owner, now=now, lease=lease):
            return ()
        done = await self.store.sent(window)
        reports = build_reports(await self.store.load(window), options)
        sent: list[SentReport] = []
        pending = False
        for report in reports:
            if report.policy_domain in done:
                continue
            common = {
                "policy_domain": report.policy_domain,
                "report_id": report.report.report_id,
                "window_start": window.start,
            }
            try:
                uris = await resolve_rua(report.policy_domain, resolver=self.resolver)
            except TransportError as exc:
                pending = True
                name = tlsrpt_record_name(report.policy_domain)
                sent.append(
                    SentReport(uri=name, delivered=False, attempts=0, detail=str(exc), **common)
                )
                continue
            kinds = {parse_rua(uri).kind for uri in uris}
            if mail is None and "mailto" in kinds:
                mail = SmtpSubmitter()
            outcomes = await submit_report(
                report,
                uris,
                http=self.http if "https" in kinds else None,
                mail=mail,
                sender=sender or options.contact_info,
                now=now,
                dkim=dkim,
                retry=retry,
                sleep=sleep,
                rng=rng,
            )
            await self.store.mark_sent(window, report.policy_domain, report.report.report_id)
            sent.extend(SentReport(**o.model_dump(), **common) for o in outcomes)
        if not pending:
            await self.store.prune(window)
        return tuple(sent)

    async def run_daily_reports(
        self,
        options: ReportOptions,
        *,
        stop: asyncio.Event,
        mail: MailSubmitter | None = None,
        sender: str | None = None,
        dkim: DkimKey | None = None,
        retry: RetryPolicy | None = None,
        owner: str | None = None,
        flush_interval: float = 1.0,
        on_sent: Callable[[SentReport], None] | None = None,
    ) -> None:
        """Flush and send reports until ``stop`` is set: the long-running MTA's loop (RFC 8460 §4.1, §5).

        Every ``flush_interval`` seconds, recorded sessions go to
        :attr:`store` and every finished day whose jittered send time has
        come (:func:`~mtasecure.tlsrpt._schedule.plan_send_time`: 5 minutes
        to 4 hours after midnight UTC, the same for a given submitter and
        day) is sent as :meth:`send_daily_reports` does, by
        :func:`~mtasecure.transport.report_submit.send_due_reports`. A store
        failure is logged and retried on the next tick; nothing recorded is
        dropped. On ``stop`` the last counts are flushed. While a day's
        reports are being delivered (retries included, see ``retry``) the
        loop does not flush: sessions recorded meanwhile wait in memory.

        Args:
            options: what goes in the reports (``options.window``: one day).
            stop: set it to end the loop.
            mail: see :meth:`send_daily_reports`.
            sender: see :meth:`send_daily_reports`.
            dkim: see :meth:`send_daily_reports`.
            retry: see :meth:`send_daily_reports`.
            owner: this sender's name in a fleet, stable across restarts, so
                that a restarted sender resumes its own claim on a day
                (default: a random name per client).
            flush_interval: seconds between ticks.
            on_sent: called with each delivery outcome.
        """
        _report_day(self.clock.now(), options)  # the window-length check
        lookup = functools.partial(resolve_rua, resolver=self.resolver)
        submitter = mail if mail is not None else SmtpSubmitter()
        while not stop.is_set():
            sent: tuple[SentReport, ...] = ()
            try:
                await self.flush_reports()
                sent, _ = await send_due_reports(
                    self.store,
                    options,
                    now=self.clock.now(),
                    lookup_rua=lookup,
                    owner=owner or self._report_owner,
                    http=self.http,
                    mail=submitter,
                    sender=sender or options.contact_info,
                    dkim=dkim,
                    retry=retry,
                )
            except StoreError as exc:
                _report_log.warning("TLS-RPT: the report store failed, retrying: %s", exc)
            for item in sent:
                if on_sent is not None:
                    on_sent(item)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=flush_interval)
        await self._close_reports()

    # --- MTA-STS (RFC 8461 §3-§5) -------------------------------------------

    @property
    def http(self) -> HttpClient:
        """The HTTP client; the default one (:class:`~mtasecure.transport.http.HttpsClient`
        on this object's resolver, system trust store) is built on first use."""
        if self._http is None:
            from mtasecure.transport.http import HttpsClient  # noqa: PLC0415 - loads httpx lazily

            client = HttpsClient(resolver=self.resolver, public_only=self.sts_settings.public_only)
            self._owned.append(client)
            self._http = client
        return self._http

    async def sts_policy(self, domain: str) -> StsPolicy | None:
        """The MTA-STS policy in force for ``domain``, or ``None`` (RFC 8461 §3-§5).

        Shorthand for ``(await sts_lookup(domain)).policy``; a ``none``-mode
        policy is returned as it is (RFC 8461 §5 says to treat it as no policy).
        ``None`` always means no policy: when the state is unknown
        (:attr:`StsLookup.store_error`) this shorthand raises instead, so that
        a caller who only reads the policy cannot mistake an unreadable store
        for a domain without MTA-STS.

        Raises:
            NameSyntaxError: ``domain`` is not a host name.
            StoreError: the policy store could not be read and no policy was
                fetched: the policy in force is unknown (RFC 8461 §5.1);
                defer the delivery.
        """
        lookup = await self.sts_lookup(domain)
        if lookup.store_error:
            raise StoreError(
                f"MTA-STS policy of {lookup.domain} unknown: {lookup.store_error} "
                "(RFC 8461 §5.1: a cached policy may be in force; defer)"
            )
        return lookup.policy

    async def sts_lookup(self, domain: str) -> StsLookup:
        """Discover ``domain``'s MTA-STS policy, using and updating the cache (RFC 8461 §3, §5.1).

        The ``_mta-sts`` TXT answer is reused for its TTL, and a cached policy
        for as long as that answer carries the same id and the refresh
        interval has not passed; only then is anything looked up or fetched.
        Concurrent calls for one domain share one lookup and one fetch. A
        failed lookup or fetch never drops a valid cached policy. When the
        persistent store cannot be read and no policy is fetched, the answer
        is unknown (:attr:`StsLookup.store_error`; see
        :attr:`StsSettings.on_store_error`), reused for at most
        ``STORE_RETRY_DELAY`` (10 s) before the store is read again.

        Raises:
            NameSyntaxError: ``domain`` is not a host name.
        """
        key = cached_host(domain)
        now = self.clock.now()
        if self._exclusions and self._exclusions.match(key):
            return StsLookup(domain=key, excluded=True)
        hit = self._answers.get(key)
        if hit is not None and now < hit[0]:
            self._used[key] = now
            return hit[1]
        _bounded_set(self._used, key, now)
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._discover(key, force=False))
            self._inflight[key] = task
            task.add_done_callback(lambda _t, key=key: self._inflight.pop(key, None))  # type: ignore[misc]
        return await asyncio.shield(task)

    async def sts_decision(self, domain: str, mx_hosts: Iterable[str]) -> StsDecision:
        """Per MX of ``domain``, whether it may be used and what TLS it needs (RFC 8461 §4, §5).

        See :func:`mtasecure.sts.apply_policy`; an excluded domain is judged as
        having no policy. When the policy state is unknown (the policy store
        could not be read, :attr:`StsLookup.store_error`), no MX is usable and
        :attr:`~mtasecure.sts.StsDecision.store_error` says why: defer.

        Raises:
            NameSyntaxError: ``domain`` is not a host name.
        """
        lookup = await self.sts_lookup(domain)
        return apply_policy(
            lookup.domain,
            lookup.policy,
            mx_hosts,
            failure=lookup.result,
            store_error=lookup.store_error,
        )

    async def refresh_sts_policies(self) -> tuple[str, ...]:
        """Run one proactive refresh round (RFC 8461 §3.3, §10.2); return the domains refreshed.

        Which domains is planned by :func:`mtasecure.sts.plan_proactive`: those
        with traffic in the last ``idle_after`` whose refresh is due. At most
        ``refresh_concurrency`` fetches run at once. A failed refresh keeps the
        cached policy and is logged (``mtasecure.sts`` logger, warning level,
        except for ``none``-mode policies, RFC 8461 §3.3).
        """
        now = self.clock.now()
        self._forget_idle(now)
        candidates = []
        for key, used in self._used.items():
            entry = self._front.peek(key)
            if entry is not None:
                candidates.append((entry, used))
        due = plan_proactive(
            candidates,
            now,
            refresh_interval=self.sts_settings.refresh_interval,
            idle_after=self.sts_settings.idle_after,
            jitter=self.sts_settings.refresh_jitter,
            limit=MAX_REFRESH_BATCH,
        )
        gate = asyncio.Semaphore(self.sts_settings.refresh_concurrency)

        async def one(key: str) -> str | None:
            if key in self._inflight:
                return None
            async with gate:
                task = asyncio.get_running_loop().create_task(self._discover(key, force=True))
                self._inflight[key] = task
                try:
                    lookup = await task
                finally:
                    self._inflight.pop(key, None)
            policy = lookup.policy
            if not lookup.result.ok and policy is not None and policy.mode is not PolicyMode.NONE:
                _log.warning("MTA-STS refresh of %s failed: %s", key, lookup.result.detail)
            return key

        done = await asyncio.gather(*(one(key) for key in due))
        return tuple(key for key in done if key is not None)

    def start_sts_refresh(self) -> None:
        """Start the background task that runs :meth:`refresh_sts_policies` every ``refresh_every`` s."""
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_loop())

    async def stop_sts_refresh(self) -> None:
        """Stop the background refresh task, if running."""
        task, self._refresher = self._refresher, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _refresh_loop(self) -> None:
        every = self.sts_settings.refresh_every
        while True:
            await asyncio.sleep(every * (0.9 + 0.2 * random.random()))
            try:
                await self.refresh_sts_policies()
            except (TransportError, UsageError) as exc:  # a round must never end the loop
                _log.warning("MTA-STS refresh round failed: %s", exc)

    async def _discover(self, key: str, *, force: bool) -> StsLookup:
        settings = self.sts_settings
        now = self.clock.now()
        txt = self._txt.get(key)
        if force or txt is None or not (txt.expires_at is not None and now < txt.expires_at):
            txt = await self._lookup_txt(key, now)
            _bounded_set(self._txt, key, txt)
        cached, store_error = await self._cached(key, now)
        store_failed = bool(store_error) and settings.on_store_error == "defer"
        step = plan_refresh(
            cached,
            txt,
            now,
            failure=self._failures.get(key),
            refresh_interval=settings.refresh_interval,
            force=force,
            store_failed=store_failed,
        )
        if step.drop:
            await self._drop(key)
        if step.action is StepAction.FETCH:
            fetch_id = step.policy_id
            assert fetch_id is not None
            outcome = await self._fetch(key)
            now = self.clock.now()
            step = plan_after_fetch(
                key, step.entry, fetch_id, outcome, now, store_failed=store_failed
            )
            if isinstance(outcome, CheckResult):
                _bounded_set(self._failures, key, FetchFailure(fetch_id, now, step.result))
            else:
                self._failures.pop(key, None)
            if step.action is StepAction.STORE:
                assert step.entry is not None
                await self._store(step.entry)
            elif step.drop:
                await self._drop(key)
        entry = step.entry if step.action in (StepAction.USE_CACHED, StepAction.STORE) else None
        unknown = step.action is StepAction.UNKNOWN
        if unknown:
            _log.warning("MTA-STS state of %s unknown, deferring: %s", key, store_error)
        lookup = StsLookup(
            domain=key,
            policy=entry.policy if entry is not None else None,
            entry=entry,
            result=step.result,
            store_error=store_error if unknown else "",
        )
        until = self._fresh_until(key, txt, entry, now, unknown=unknown)
        _bounded_set(self._answers, key, (until, lookup))
        return lookup

    def _fresh_until(
        self,
        key: str,
        txt: TxtOutcome,
        entry: CachedPolicy | None,
        now: datetime,
        *,
        unknown: bool = False,
    ) -> datetime:
        until = txt.expires_at if txt.expires_at is not None else now
        if unknown:  # the store is read again soon: it may have mended
            until = min(until, now + STORE_RETRY_DELAY)
        if entry is not None:
            until = min(
                until, entry.expires_at, entry.fetched_at + self.sts_settings.refresh_interval
            )
        failure = self._failures.get(key)
        if failure is not None and now < failure.at + FETCH_RETRY_DELAY:
            until = min(until, failure.at + FETCH_RETRY_DELAY)
        return until

    async def _lookup_txt(self, key: str, now: datetime) -> TxtOutcome:
        try:
            answer = await self.resolver.resolve(record_name(key), "TXT")
        except TransportError as exc:
            _log.info("_mta-sts lookup for %s failed: %s", key, exc)
            return TxtOutcome(TxtState.FAILED, expires_at=txt_expiry(0, now))
        if answer.failed:
            return TxtOutcome(TxtState.FAILED, expires_at=txt_expiry(0, now))
        try:
            texts = answer.txt_strings()
        except DnsError:
            return TxtOutcome(TxtState.FAILED, expires_at=txt_expiry(0, now))
        record = select_record(texts)
        expires = txt_expiry(answer.ttl, now)
        if record is None:
            return TxtOutcome(TxtState.ABSENT, expires_at=expires)
        return TxtOutcome(TxtState.RECORD, record=record, expires_at=expires)

    async def _fetch(self, key: str) -> StsPolicy | CheckResult:
        settings = self.sts_settings
        url = policy_url(key)
        if settings.policy_port != DEFAULT_POLICY_PORT:
            url = url.replace("/.well-known/", f":{settings.policy_port}/.well-known/", 1)
        try:
            response: HttpResponse = await self.http.get(
                url, max_bytes=settings.max_policy_bytes, timeout=settings.fetch_timeout
            )
        except HttpError as exc:
            message = str(exc).removeprefix(f"{url}: ")
            return check_transport_failure(url, message, certificate=exc.certificate)
        except TransportError as exc:
            message = str(exc).removeprefix(f"{url}: ") or type(exc).__name__
            return check_transport_failure(url, message, certificate=False)
        return check_response(response, max_bytes=settings.max_policy_bytes)

    async def _cached(self, key: str, now: datetime) -> tuple[CachedPolicy | None, str]:
        """The cached entry, and why the persistent store could not be read ("" if it could).

        The persistent store is read when the in-memory front holds nothing,
        and also when the front's entry has expired: in a fleet sharing the
        store another member may have refreshed the policy since, and an
        expired entry is dropped from the store too, which must not remove
        that newer one.
        """
        entry = self._front.peek(key)
        if self._back is not None and (entry is None or now >= entry.expires_at):
            try:
                stored = await self._back.get(key)
            except StoreError as exc:
                _log.warning("policy cache read for %s failed: %s", key, exc)
                return None, str(exc) or type(exc).__name__
            if stored is not None:
                self._front.store(stored)
                entry = stored
        return entry, ""

    async def _store(self, entry: CachedPolicy) -> None:
        self._front.store(entry)
        if self._back is not None:
            try:
                await self._back.put(entry)
            except StoreError as exc:
                _log.warning("policy cache write for %s failed: %s", entry.domain, exc)

    async def _drop(self, key: str) -> None:
        self._front.discard(key)
        if self._back is not None:
            try:
                await self._back.delete(key)
            except StoreError as exc:
                _log.warning("policy cache delete for %s failed: %s", key, exc)

    def _forget_idle(self, now: datetime) -> None:
        idle = self.sts_settings.idle_after
        for key in [k for k, used in self._used.items() if now - used > idle]:
            del self._used[key]


def _bounded_set(table: dict[str, Any], key: str, value: Any) -> None:
    if key not in table and len(table) >= MAX_TRACKED_DOMAINS:
        for old in list(table)[: MAX_TRACKED_DOMAINS // 10]:
            del table[old]
    table[key] = value


def _report_day(day: date, options: ReportOptions) -> ReportWindow:
    """The UTC day ``day`` names, as a report window (RFC 8460 §4.1)."""
    if options.window != DAY:
        raise UsageError(
            "the facade records per UTC day: options.window must be one day (RFC 8460 §4.1)"
        )
    if isinstance(day, datetime):
        if day.tzinfo is None:
            raise UsageError("day must be a date or a timezone-aware datetime")
        return ReportWindow.containing(day)
    return ReportWindow.containing(datetime(day.year, day.month, day.day, tzinfo=UTC))
