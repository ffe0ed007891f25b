"""The protocols of the I/O seams (ARCHITECTURE.md, "Pluggable means a Protocol")."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from mtasecure._http import HttpResponse
from mtasecure._smtpwire import ProbeResult
from mtasecure.dnssec import DnsAnswer
from mtasecure.sts._cache import CachedPolicy

if TYPE_CHECKING:
    from mtasecure.tlsrpt._collect import ReportWindow, ResultBatch, WindowResults

__all__ = [
    "Clock",
    "HttpClient",
    "MailSubmitter",
    "PolicyCache",
    "ReportStore",
    "Resolver",
    "SmtpConnector",
]


@runtime_checkable
class Clock(Protocol):
    """Where the shell reads the time; the core is always handed ``now``."""

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


@runtime_checkable
class Resolver(Protocol):
    """A DNS resolver whose every answer carries a DNSSEC status (RFC 4033 §5)."""

    async def resolve(self, name: str, rdtype: str) -> DnsAnswer:
        """Look up ``rdtype`` records at ``name``.

        NXDOMAIN, NODATA and failures are answers, not exceptions: see
        :class:`~mtasecure.dnssec.DnsAnswer`. Raises
        :class:`~mtasecure.errors.TransportError` only for misuse of the
        transport itself (e.g. it was closed).
        """
        ...


@runtime_checkable
class HttpClient(Protocol):
    """An HTTPS client that never follows redirects and caps bodies."""

    async def get(self, url: str, *, max_bytes: int, timeout: float) -> HttpResponse:
        """GET ``url``; read at most ``max_bytes + 1`` bytes of body.

        Raises:
            HttpError: the exchange did not complete (connection refused, TLS
                handshake or certificate failure, protocol error).
            TransportTimeout: ``timeout`` (seconds, for the whole exchange) ran out.
        """
        ...

    async def post(
        self, url: str, *, body: bytes, content_type: str, timeout: float
    ) -> HttpResponse:
        """POST ``body`` to ``url`` (RFC 8460 §5.4 report upload)."""
        ...


@runtime_checkable
class PolicyCache(Protocol):
    """Where MTA-STS policies are kept between lookups (RFC 8461 §3.3, §5.1).

    Keys are Policy Domains as the client normalised them (lower-case
    A-labels, no trailing dot): ``entry.domain``. A store keeps what it is
    given, expired entries included; deciding what an entry means is the
    core's job (:func:`mtasecure.sts.plan_refresh`). Stores for several
    processes (SQLite, Redis) must make each ``put`` atomic: a crash never
    leaves a half-written entry.
    """

    async def get(self, domain: str) -> CachedPolicy | None:
        """The entry for ``domain``, or ``None``.

        Raises:
            StoreError: the store could not be read (an unreadable entry
                counts as absent, not as an error).
        """
        ...

    async def put(self, entry: CachedPolicy) -> None:
        """Store ``entry`` under ``entry.domain``, replacing any entry there.

        Raises:
            StoreError: the store could not be written; the old entry is kept.
        """
        ...

    async def delete(self, domain: str) -> bool:
        """Remove the entry for ``domain``; whether there was one.

        Raises:
            StoreError: the store could not be written.
        """
        ...

    async def entries(self) -> tuple[CachedPolicy, ...]:
        """Every entry, in no particular order (for listing and purging).

        Raises:
            StoreError: the store could not be read.
        """
        ...

    async def aclose(self) -> None:
        """Release the store's resources; idempotent."""
        ...


@runtime_checkable
class SmtpConnector(Protocol):
    """Opens an SMTP session to one MX address and reports what it saw (RFC 3207).

    The default is :class:`~mtasecure.transport.smtp.AsyncioSmtpConnector`;
    tests use :class:`~mtasecure.testing.FakeSmtp`.
    """

    async def probe(self, host: str, address: str, *, port: int = 25) -> ProbeResult:
        """Connect to ``address``, greet, EHLO, STARTTLS with SNI ``host``, EHLO, QUIT.

        Whatever the server does is a :class:`~mtasecure.transport.ProbeResult`
        (its ``outcome`` says what happened), never an exception. Raises
        :class:`~mtasecure.errors.UsageError` only for bad arguments.
        """
        ...


@runtime_checkable
class ReportStore(Protocol):
    """Where TLS-RPT session results live until their reports are sent (RFC 8460 §4).

    One store may be shared by a fleet of MTAs (Redis, PostgreSQL), so that
    one report per policy domain and window is sent for the whole fleet.

    Raises (every method):
        StoreError: the store could not be read or written; nothing was
            half-applied.
    """

    async def add(self, batch: ResultBatch) -> bool:
        """Add a batch of counts atomically and at most once.

        Returns ``False`` (and changes nothing) when a batch with the same
        ``batch_id`` was already added, so a retried add never double-counts.
        """
        ...

    async def load(self, window: ReportWindow) -> WindowResults:
        """Everything added for ``window``, summed."""
        ...

    async def windows(self) -> tuple[ReportWindow, ...]:
        """The windows that hold results, oldest first."""
        ...

    async def claim(self, window: ReportWindow, owner: str, *, now: datetime, lease: float) -> bool:
        """Take the job of sending ``window``'s reports for ``lease`` seconds.

        True when ``owner`` holds the claim (it was free, had lapsed, or was
        already ``owner``'s); a fleet member that gets ``False`` leaves the
        window to the holder.
        """
        ...

    async def mark_sent(self, window: ReportWindow, policy_domain: str, report_id: str) -> None:
        """Remember that ``policy_domain``'s report for ``window`` was delivered."""
        ...

    async def sent(self, window: ReportWindow) -> frozenset[str]:
        """The policy domains whose report for ``window`` was delivered."""
        ...

    async def prune(self, window: ReportWindow) -> None:
        """Forget ``window``: its results, claim and sent marks."""
        ...


@runtime_checkable
class MailSubmitter(Protocol):
    """Hands a finished message to a mail system (RFC 6409 submission, a local MTA, ...).

    Used for ``mailto:`` report delivery (RFC 8460 §5.3).
    """

    async def send(self, sender: str, recipients: Sequence[str], message: bytes) -> None:
        """Submit ``message`` (CRLF line ends) for ``recipients`` with envelope ``sender``.

        Raises:
            SmtpError: the submission was refused or did not complete.
            TransportTimeout: it did not complete in the submitter's time limit.
        """
        ...
