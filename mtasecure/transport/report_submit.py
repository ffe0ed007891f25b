"""Delivering TLS reports, flushing results to a store, and the daily scheduler (RFC 8460 §5).

The rules live in the core (:mod:`mtasecure.tlsrpt`): what a ``rua`` is, what
the mail looks like, whether an upload worked, how long to back off, when a
window's reports are due. This module only performs the steps:

* :func:`submit_report` delivers one report to *every* ``rua`` of the domain
  (§3: "all" URIs), ``https`` by POST of ``application/tlsrpt+gzip`` (§5.4)
  and ``mailto`` by a (DKIM-signed) §5.3 message handed to a
  :class:`~mtasecure.transport.MailSubmitter`, each with its own retries.
* :class:`SmtpSubmitter` is the default submitter: SMTP submission (RFC 6409)
  with STARTTLS and optional AUTH, ``smtplib`` run in a worker thread.
* :class:`ResultFlusher` moves a collector's counts into a store; a batch the
  store refused is kept (with its id) and retried, so it is never lost and,
  since the id makes adds idempotent, never counted twice.
* :func:`send_due_reports` is one pass of the scheduler and
  :func:`run_report_scheduler` the loop around it: reports go out at a
  jittered time after each window closes (§4.1); sent marks in the store make
  a restarted (or second) sender skip what is done.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import smtplib
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from random import Random

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from mtasecure.errors import (
    DnsError,
    HttpError,
    SmtpError,
    StoreError,
    TransportError,
    TransportTimeout,
    UsageError,
)
from mtasecure.tlsrpt._build import BuiltReport, ReportOptions, build_reports
from mtasecure.tlsrpt._collect import ReportWindow, ResultBatch, TlsRptCollector
from mtasecure.tlsrpt._message import SIGNED_HEADERS, DkimKey, render_report_message
from mtasecure.tlsrpt._record import record_name, select_record
from mtasecure.tlsrpt._schedule import DEFAULT_MAX_DELAY, DEFAULT_MIN_DELAY, plan_due_windows
from mtasecure.tlsrpt._submit import (
    MEDIA_TYPE_GZIP,
    DeliveryOutcome,
    RetryPolicy,
    RuaTarget,
    UploadVerdict,
    judge_upload,
    parse_rua,
    plan_retry,
)
from mtasecure.transport._protocols import HttpClient, MailSubmitter, ReportStore, Resolver

__all__ = [
    "DEFAULT_SMTP_TIMEOUT",
    "ResultFlusher",
    "SentReport",
    "SmtpSubmitter",
    "resolve_rua",
    "run_report_scheduler",
    "send_due_reports",
    "sign_report_message",
    "submit_report",
]

#: Seconds one SMTP submission may take, connection to QUIT.
DEFAULT_SMTP_TIMEOUT = 60.0

Sleep = Callable[[float], Awaitable[None]]


def sign_report_message(message: bytes, key: DkimKey) -> bytes:
    """DKIM-sign a report mail (RFC 6376) with dkimpy in its RFC 8460 mode.

    The signature covers :data:`~mtasecure.tlsrpt._message.SIGNED_HEADERS`
    (the ``TLS-Report-*`` headers among them, as RFC 8460 §5.3 asks), uses
    relaxed/relaxed canonicalisation and never an ``l=`` tag. ``t=`` is now.

    Raises:
        UsageError: the ``dkim`` extra is missing, or the key cannot sign.
    """
    try:
        import dkim as dkimpy  # noqa: PLC0415 - optional extra, loaded on use
    except ImportError as exc:  # pragma: no cover - the extra is installed in tests
        raise UsageError(
            "DKIM signing needs the 'dkim' extra: pip install mtasecure[dkim]"
        ) from exc
    try:
        header = dkimpy.sign(
            message,
            key.selector.encode(),
            key.domain.encode(),
            _dkimpy_key(key),
            canonicalize=(b"relaxed", b"relaxed"),
            signature_algorithm=key.algorithm.encode(),
            include_headers=[h.encode() for h in SIGNED_HEADERS],
            tlsrpt=True,
        )
    except (dkimpy.DKIMException, ValueError, TypeError) as exc:
        raise UsageError(f"DKIM signing failed: {exc}") from exc
    return bytes(header) + message


def _dkimpy_key(key: DkimKey) -> bytes:
    """The private key as dkimpy takes it: PEM for RSA, the base64 seed for Ed25519.

    A PKCS#8 PEM Ed25519 key is turned into its seed here, so both key kinds
    can be given as PEM files.

    Raises:
        UsageError: a PEM key for ``ed25519-sha256`` that is not an Ed25519 key.
    """
    if key.algorithm != "ed25519-sha256" or b"-----BEGIN" not in key.private_key:
        return key.private_key
    try:
        loaded = serialization.load_pem_private_key(key.private_key, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise UsageError(f"DKIM signing failed: unreadable Ed25519 key: {exc}") from exc
    if not isinstance(loaded, ed25519.Ed25519PrivateKey):
        raise UsageError("DKIM signing failed: ed25519-sha256 needs an Ed25519 key (RFC 8463)")
    seed = loaded.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(seed)


class SmtpSubmitter:
    """A :class:`~mtasecure.transport.MailSubmitter` over SMTP submission (RFC 6409).

    Args:
        host: the submission server.
        port: 587 by default.
        starttls: ``True`` requires STARTTLS (RFC 3207), ``False`` never uses
            it (only for a trusted local relay), ``"auto"`` uses it when offered.
        tls_context: the context for STARTTLS (default: system trust, host
            name checked).
        username: AUTH user, with ``password``.
        password: AUTH password.
        timeout: seconds for the whole submission (:data:`DEFAULT_SMTP_TIMEOUT`).
        local_hostname: the EHLO name.

    Raises:
        UsageError: ``starttls`` is not one of its three values, or
            ``timeout`` is not positive.
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 587,
        *,
        starttls: bool | str = True,
        tls_context: ssl.SSLContext | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = DEFAULT_SMTP_TIMEOUT,
        local_hostname: str | None = None,
    ) -> None:
        if starttls not in (True, False, "auto"):
            raise UsageError("starttls is True, False or 'auto'")
        if not timeout > 0:
            raise UsageError(f"timeout must be a positive number of seconds, not {timeout!r}")
        self._host, self._port = host, port
        self._starttls = starttls
        self._context = tls_context
        self._auth = (username, password) if username is not None else None
        self._timeout = timeout
        self._local_hostname = local_hostname

    async def send(self, sender: str, recipients: Sequence[str], message: bytes) -> None:
        """Submit ``message``; raises :class:`SmtpError` or :class:`TransportTimeout`."""
        try:
            await asyncio.wait_for(
                asyncio.to_thread(self._send, sender, list(recipients), message),
                timeout=self._timeout,
            )
        except TimeoutError as exc:
            if isinstance(exc, TransportError):
                raise
            raise TransportTimeout(
                f"SMTP submission to {self._host}:{self._port} took over {self._timeout}s"
            ) from exc

    def _send(self, sender: str, recipients: list[str], message: bytes) -> None:
        try:
            with smtplib.SMTP(
                self._host,
                self._port,
                local_hostname=self._local_hostname,
                timeout=self._timeout,
            ) as client:
                client.ehlo()
                offered = client.has_extn("starttls")
                if self._starttls is True or (self._starttls == "auto" and offered):
                    context = self._context or ssl.create_default_context()
                    client.starttls(context=context)
                    client.ehlo()
                if self._auth is not None:
                    client.login(self._auth[0], self._auth[1] or "")
                refused = client.sendmail(sender, recipients, message)
        except TimeoutError as exc:
            raise TransportTimeout(f"SMTP submission to {self._host}:{self._port}: {exc}") from exc
        except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
            if _caused_by_timeout(exc):  # smtplib re-raises a socket timeout as a disconnect
                raise TransportTimeout(
                    f"SMTP submission to {self._host}:{self._port}: {exc}"
                ) from exc
            raise SmtpError(f"SMTP submission to {self._host}:{self._port}: {exc}") from exc
        if refused:
            raise SmtpError(f"recipients refused: {sorted(refused)}")


def _caused_by_timeout(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, TimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def _deliver_one(
    target: RuaTarget,
    report: BuiltReport,
    *,
    http: HttpClient | None,
    mail: MailSubmitter | None,
    sender: str | None,
    now: datetime,
    dkim: DkimKey | None,
    retry: RetryPolicy,
    sleep: Sleep,
    rng: Random,
    monotonic: Callable[[], float],
) -> DeliveryOutcome:
    if target.kind == "unsupported":
        detail = f"unsupported: {target.reason}"
        return DeliveryOutcome(uri=target.uri, delivered=False, attempts=0, detail=detail)
    message = b""
    if target.kind == "mailto":
        if mail is None or sender is None:
            return DeliveryOutcome(
                uri=target.uri, delivered=False, attempts=0, detail="no mail submitter configured"
            )
        assert target.address is not None
        message = render_report_message(report, sender=sender, recipients=[target.address], now=now)
        if dkim is not None:
            message = sign_report_message(message, dkim)
    elif http is None:
        return DeliveryOutcome(
            uri=target.uri, delivered=False, attempts=0, detail="no HTTP client configured"
        )
    started = monotonic()
    attempts = 0
    while True:
        attempts += 1
        retryable = True
        try:
            if target.kind == "mailto":
                assert mail is not None
                assert sender is not None
                assert target.address is not None
                await mail.send(sender, [target.address], message)
                return DeliveryOutcome(uri=target.uri, delivered=True, attempts=attempts)
            assert http is not None
            assert target.url is not None
            response = await http.post(
                target.url,
                body=report.gzip,
                content_type=MEDIA_TYPE_GZIP,
                timeout=retry.attempt_timeout,
            )
            verdict = judge_upload(response)
            detail = f"HTTP {response.status}"
            if verdict is UploadVerdict.DELIVERED:
                return DeliveryOutcome(
                    uri=target.uri, delivered=True, attempts=attempts, detail=detail
                )
            retryable = verdict is UploadVerdict.RETRY
        except (HttpError, SmtpError, TransportTimeout) as exc:
            detail = str(exc)
        delay = plan_retry(retry, attempts, monotonic() - started, rng) if retryable else None
        if delay is None:
            return DeliveryOutcome(
                uri=target.uri, delivered=False, attempts=attempts, detail=detail
            )
        await sleep(delay)


async def submit_report(
    report: BuiltReport,
    rua: Iterable[str],
    *,
    http: HttpClient | None = None,
    mail: MailSubmitter | None = None,
    sender: str | None = None,
    now: datetime | None = None,
    dkim: DkimKey | None = None,
    retry: RetryPolicy | None = None,
    sleep: Sleep = asyncio.sleep,
    rng: Random | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> tuple[DeliveryOutcome, ...]:
    """Deliver ``report`` to every URI in ``rua``, concurrently (RFC 8460 §3, §5).

    Args:
        report: the built report.
        rua: the ``rua`` URIs of the policy domain's ``_smtp._tls`` record.
        http: the client for ``https`` URIs (e.g.
            :class:`~mtasecure.transport.http.HttpsClient`).
        mail: the submitter for ``mailto`` URIs (e.g. :class:`SmtpSubmitter`).
        sender: the ``From`` and envelope sender of report mails.
        now: the mail's ``Date`` (default: the current time).
        dkim: the DKIM key to sign mails with; ``None`` sends them unsigned.
        retry: the retry policy (§5.5); the default retries for up to a day.
        sleep: how to wait between attempts.
        rng: the jitter source.
        monotonic: the clock for the retry budget.

    Returns:
        One outcome per URI, in order. Failures are values, not exceptions.
    """
    when = now or datetime.now(UTC)
    policy = retry or RetryPolicy()
    random = rng or Random()
    targets = [parse_rua(uri) for uri in rua]
    return tuple(
        await asyncio.gather(
            *(
                _deliver_one(
                    t,
                    report,
                    http=http,
                    mail=mail,
                    sender=sender,
                    now=when,
                    dkim=dkim,
                    retry=policy,
                    sleep=sleep,
                    rng=random,
                    monotonic=monotonic,
                )
                for t in targets
            )
        )
    )


class ResultFlusher:
    """Moves a collector's counts into a store without ever losing or doubling them.

    A batch the store refused (:class:`~mtasecure.errors.StoreError`) stays
    queued with its id and is offered again on the next flush; the store's
    idempotent ``add`` makes a retry after an unknown outcome safe.

    Args:
        collector: the collector the MTA records into.
        store: the store.
        window: the report window length (one UTC day by default).
    """

    def __init__(
        self,
        collector: TlsRptCollector,
        store: ReportStore,
        *,
        window: timedelta = timedelta(days=1),
    ) -> None:
        self._collector = collector
        self._store = store
        self._length = window
        self._queue: list[ResultBatch] = []

    @property
    def queued(self) -> int:
        """Batches waiting for the store."""
        return len(self._queue)

    async def flush(self, now: datetime) -> int:
        """Drain the collector into the window of ``now`` and add every queued batch.

        Returns:
            The batches the store took in this call.

        Raises:
            StoreError: the store failed; the batches stay queued.
        """
        batch = self._collector.drain(ReportWindow.containing(now, self._length))
        if batch is not None:
            self._queue.append(batch)
        stored = 0
        while self._queue:
            await self._store.add(self._queue[0])
            self._queue.pop(0)
            stored += 1
        return stored


class SentReport(DeliveryOutcome):
    """A delivery outcome with the report it was for."""

    policy_domain: str
    report_id: str
    window_start: datetime


RuaLookup = Callable[[str], Awaitable[Sequence[str]]]


async def resolve_rua(policy_domain: str, *, resolver: Resolver) -> tuple[str, ...]:
    """The ``rua`` URIs of ``policy_domain``'s ``_smtp._tls`` record (RFC 8460 §3).

    Empty when the domain has no usable record (none, several, or one that
    does not parse: §3 says such a domain does not implement TLS-RPT).

    Raises:
        DnsError: the lookup failed (SERVFAIL, timeout): try again later
            rather than concluding the domain wants no report.
    """
    answer = await resolver.resolve(record_name(policy_domain), "TXT")
    if answer.failed:
        raise DnsError(f"TXT lookup for {record_name(policy_domain)} failed: {answer.why}")
    record = select_record(answer.txt_strings())
    return record.rua if record is not None else ()


async def send_due_reports(
    store: ReportStore,
    options: ReportOptions,
    *,
    now: datetime,
    lookup_rua: RuaLookup,
    owner: str,
    http: HttpClient | None = None,
    mail: MailSubmitter | None = None,
    sender: str | None = None,
    dkim: DkimKey | None = None,
    retry: RetryPolicy | None = None,
    min_delay: timedelta = DEFAULT_MIN_DELAY,
    max_delay: timedelta = DEFAULT_MAX_DELAY,
    lease: float = 6 * 3600.0,
    sleep: Sleep = asyncio.sleep,
    rng: Random | None = None,
) -> tuple[tuple[SentReport, ...], datetime | None]:
    """One scheduler pass: send every report whose time has come (RFC 8460 §4.1, §5).

    For each closed window that is due, the pass claims it in the store (a
    fleet member that does not get the claim leaves it alone), builds its
    reports, skips domains already marked sent, looks up each remaining
    domain's ``rua`` URIs, delivers, and marks the domain sent. A window
    whose every domain is marked is pruned.

    Args:
        store: the shared result store.
        options: report options (the submitter among them).
        now: the current time.
        lookup_rua: returns the ``rua`` URIs of a policy domain's
            ``_smtp._tls`` record (empty when it has none: nothing is sent);
            ``functools.partial(resolve_rua, resolver=...)`` does it.
        owner: this sender's name in the fleet (stable across restarts).
        http: see :func:`submit_report`.
        mail: see :func:`submit_report`.
        sender: see :func:`submit_report`.
        dkim: see :func:`submit_report`.
        retry: see :func:`submit_report`.
        min_delay: earliest send time after a window closes.
        max_delay: latest send time after a window closes.
        lease: seconds a claim on a window lasts.
        sleep: see :func:`submit_report`.
        rng: see :func:`submit_report`.

    Returns:
        What was sent in this pass, and when the next window falls due.
    """
    submitter = options.sender_domain
    windows = [w for w in await store.windows() if w.end <= now]
    due, upcoming = plan_due_windows(
        windows, now=now, submitter=submitter, min_delay=min_delay, max_delay=max_delay
    )
    sent: list[SentReport] = []
    for window in due:
        if not await store.claim(window, owner, now=now, lease=lease):
            continue
        done = await store.sent(window)
        reports = build_reports(await store.load(window), options)
        pending = False
        for report in reports:
            if report.policy_domain in done:
                continue
            try:
                uris = tuple(await lookup_rua(report.policy_domain))
            except TransportError:
                # Not marked: the next pass tries this domain again.
                pending = True
                continue
            outcomes = await submit_report(
                report,
                uris,
                http=http,
                mail=mail,
                sender=sender,
                now=now,
                dkim=dkim,
                retry=retry,
                sleep=sleep,
                rng=rng,
            )
            # Marked even when every URI failed after its retries (RFC 8460
            # §5.5 stops after a day); only a crash leaves a domain unmarked.
            await store.mark_sent(window, report.policy_domain, report.report.report_id)
            sent.extend(
                SentReport(
                    **o.model_dump(),
                    policy_domain=report.policy_domain,
                    report_id=report.report.report_id,
                    window_start=window.start,
                )
                for o in outcomes
            )
        if not pending:
            await store.prune(window)
    return tuple(sent), upcoming


async def run_report_scheduler(
    collector: TlsRptCollector,
    store: ReportStore,
    options: ReportOptions,
    *,
    lookup_rua: RuaLookup,
    owner: str,
    stop: asyncio.Event,
    flush_interval: float = 1.0,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    on_sent: Callable[[SentReport], None] | None = None,
    **delivery: object,
) -> None:
    """Flush results every ``flush_interval`` seconds and send reports when due, until ``stop``.

    ``delivery`` passes ``http``, ``mail``, ``sender``, ``dkim``, ``retry``,
    ``min_delay``, ``max_delay`` and ``lease`` through to
    :func:`send_due_reports`. Store failures are retried on the next tick;
    recorded results stay queued meanwhile.
    """
    flusher = ResultFlusher(collector, store, window=options.window)
    while not stop.is_set():
        now = clock()
        try:
            await flusher.flush(now)
            sent, _ = await send_due_reports(
                store,
                options,
                now=now,
                lookup_rua=lookup_rua,
                owner=owner,
                **delivery,  # type: ignore[arg-type]
            )
        except StoreError:
            sent = ()
        for item in sent:
            if on_sent is not None:
                on_sent(item)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=flush_interval)
    await flusher.flush(clock())
