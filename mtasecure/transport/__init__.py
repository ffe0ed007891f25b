"""The async shell: one small ``Protocol`` per I/O seam, and their defaults.

Users plug in their own transport by passing an object that satisfies one of
these protocols to :class:`~mtasecure.client.MtaSecure` by keyword; they never
subclass and never build a dependency's object. Importing this package loads
no HTTP library and none of dnspython's resolver modules. The resolvers'
limits (timeouts, retries, in-flight bound) are named constants in
:mod:`mtasecure.transport.resolver`.
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
from mtasecure.transport._clock import SystemClock
from mtasecure.transport._protocols import (
    Clock,
    HttpClient,
    MailSubmitter,
    PolicyCache,
    ReportStore,
    Resolver,
    SmtpConnector,
)
from mtasecure.transport.dnsconfig import DnssecMode, DnsSettings, resolver_from_settings
from mtasecure.transport.memcache import MemoryPolicyCache
from mtasecure.transport.resolver import (
    BulkResolver,
    DnsResolver,
    Nameserver,
    system_nameservers,
)
from mtasecure.transport.validating import ValidatingResolver

__all__ = [
    "BulkResolver",
    "Clock",
    "DnsResolver",
    "DnsSettings",
    "DnssecMode",
    "EhloKeyword",
    "EhloResponse",
    "HttpClient",
    "MailSubmitter",
    "MemoryPolicyCache",
    "Nameserver",
    "PolicyCache",
    "ProbeOutcome",
    "ProbeResult",
    "ProbeStage",
    "ReportStore",
    "Resolver",
    "SmtpConnector",
    "SmtpReply",
    "StepTiming",
    "SystemClock",
    "ValidatingResolver",
    "resolver_from_settings",
    "system_nameservers",
]
