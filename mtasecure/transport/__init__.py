"""The async shell: one small ``Protocol`` per I/O seam, and their defaults.

Users plug in their own transport by passing an object that satisfies one of
these protocols to :class:`~mtasecure.client.MtaSecure` by keyword; they never
subclass and never build a dependency's object. Importing this package loads no
network library; the defaults live in their own modules.
"""

from __future__ import annotations

from mtasecure._smtpwire import (
    EhloKeyword,
    EhloResponse,
    ProbeOutcome,
    ProbeResult,
    ProbeStage,
    SmtpReply,
    StepTiming,
)
from mtasecure.transport._protocols import (
    Clock,
    HttpClient,
    MailSubmitter,
    ReportStore,
    Resolver,
    SmtpConnector,
)

__all__ = [
    "Clock",
    "EhloKeyword",
    "EhloResponse",
    "HttpClient",
    "MailSubmitter",
    "ProbeOutcome",
    "ProbeResult",
    "ProbeStage",
    "ReportStore",
    "Resolver",
    "SmtpConnector",
    "SmtpReply",
    "StepTiming",
]
