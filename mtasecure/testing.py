"""Public fakes for testing code that uses mtasecure (see docs/testing.md).

* :class:`FakeResolver` — a :class:`~mtasecure.transport.Resolver` that answers
  from data in memory: a mapping, a zone-file-like text, or both. It follows
  CNAMEs, tells NXDOMAIN from NODATA, and gives each answer the DNSSEC status
  you annotate.
* :class:`FrozenClock` — a :class:`~mtasecure.transport.Clock` that only moves
  when told to.
* :class:`FakeSmtp` — an :class:`~mtasecure.transport.SmtpConnector` that
  answers probes from a script per ``(host, port)`` (defined in
  ``mtasecure._fakesmtp``).

The zone text format, one entry per line (``;`` starts a comment outside
quotes)::

    $TTL 300                      ; TTL of the records that follow (default 300)
    $SECURITY secure              ; status of the records that follow (default: secure)
    example.com.      MX    10 mx.example.com.
    mx.example.com.   A     192.0.2.25
    _25._tcp.mx.example.com. 3600 IN TLSA 3 1 1 0123abcd...
    www.example.com.  CNAME example.com.
    $SECURITY insecure
    plain.example.    MX    0 .
    gone.example.     NXDOMAIN    ; the name does not exist, whatever the type
    $SECURITY bogus
    broken.example.   FAIL        ; every lookup of the name fails (failed=True)

Owner names are absolute (the trailing dot is optional); the TTL and the
class ``IN`` are optional; the record data is any presentation format
dnspython reads, and is stored as dnspython prints it back. Answers for
names with no entry: NXDOMAIN when no entry is at or below the name, NODATA
when there is one (an empty non-terminal such as ``_tcp.mx.example.com``
exists). The status of a negative answer is the status annotated for the
closest enclosing name that has entries, else ``default_security``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from mtasecure._resolution import MAX_CNAME_CHAIN, combine_security
from mtasecure.dnssec import DnsAnswer, Security
from mtasecure.errors import TransportError, UsageError

__all__ = ["DEFAULT_FAKE_TTL", "FakeResolver", "FakeSmtp", "FrozenClock"]

DEFAULT_FAKE_TTL = 300
"""TTL of fake records, and of negative answers, when none is given."""

_PSEUDO_TYPES = ("NXDOMAIN", "FAIL")


@dataclass(frozen=True)
class _RRset:
    records: tuple[str, ...]
    security: Security
    ttl: int


def _name(name: str) -> str:
    if not isinstance(name, str) or not name or not name.isascii():
        raise UsageError(f"not an ASCII DNS name: {name!r}")
    text = name.lower()
    return text if text == "." else text.removesuffix(".")


def _canonical(rdtype: str, text: str) -> str:
    try:
        rdata = dns.rdata.from_text(
            dns.rdataclass.IN,
            dns.rdatatype.from_text(rdtype),
            text,
            origin=dns.name.root,
            relativize=False,
        )
    except (dns.exception.DNSException, ValueError) as exc:
        raise UsageError(f"{rdtype} record {text!r} is not presentation format: {exc}") from exc
    return rdata.to_text()


def _strip_comment(line: str) -> str:
    quoted = escaped = False
    for i, char in enumerate(line):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            return line[:i]
    return line


class FakeResolver:
    """A :class:`~mtasecure.transport.Resolver` that answers from memory.

    Args:
        records: ``{(name, rdtype): answer}`` where ``answer`` is a
            :class:`~mtasecure.dnssec.DnsAnswer` (returned as it is, no CNAME
            following) or a sequence of records in presentation format
            (given ``default_security``).
        zone: a zone-file-like text in the format of this module's docstring.
        default_security: the status of records without an annotation.
        max_chain: most CNAME links followed, as the real resolver.

    Attributes:
        queries: every ``(name, rdtype)`` asked, in order, for assertions.

    Raises:
        UsageError: bad names, types, records or zone text.
    """

    def __init__(
        self,
        records: Mapping[tuple[str, str], DnsAnswer | Sequence[str]] | None = None,
        *,
        zone: str | None = None,
        default_security: Security = Security.SECURE,
        max_chain: int = MAX_CNAME_CHAIN,
    ) -> None:
        self.default_security = Security(default_security)
        self.max_chain = max_chain
        self.queries: list[tuple[str, str]] = []
        self._answers: dict[tuple[str, str], DnsAnswer] = {}
        self._rrsets: dict[tuple[str, str], _RRset] = {}
        self._nxdomain: dict[str, Security] = {}
        self._fail: dict[str, Security] = {}
        self._security: dict[str, Security] = {}
        for (name, rdtype), value in (records or {}).items():
            if isinstance(value, DnsAnswer):
                self._answers[(_name(name), rdtype.upper())] = value
            else:
                self.add(name, rdtype, value)
        if zone is not None:
            self.add_zone(zone)

    @classmethod
    def from_zone(cls, text: str, *, default_security: Security = Security.SECURE) -> FakeResolver:
        """A resolver fed only from zone text (see the module docstring)."""
        return cls(zone=text, default_security=default_security)

    def add(
        self,
        name: str,
        rdtype: str,
        records: Iterable[str],
        *,
        security: Security | None = None,
        ttl: int = DEFAULT_FAKE_TTL,
    ) -> None:
        """Add records (presentation format) at ``name``; added to any already there."""
        key = (_name(name), rdtype.upper())
        status = Security(security) if security is not None else self.default_security
        texts = tuple(_canonical(key[1], r) for r in records)
        old = self._rrsets.get(key)
        if old is not None:
            texts = old.records + texts
            ttl = min(ttl, old.ttl)
        self._rrsets[key] = _RRset(texts, status, ttl)
        self._security.setdefault(key[0], status)

    def add_nxdomain(self, name: str, *, security: Security | None = None) -> None:
        """Make ``name`` not exist (NXDOMAIN for every type)."""
        status = Security(security) if security is not None else self.default_security
        self._nxdomain[_name(name)] = status

    def add_failure(self, name: str, *, security: Security = Security.INDETERMINATE) -> None:
        """Make every lookup of ``name`` fail with ``security`` (e.g. ``bogus``)."""
        self._fail[_name(name)] = Security(security)

    def add_zone(self, text: str) -> None:
        """Add the entries of a zone-file-like text (format: module docstring).

        Raises:
            UsageError: a line that cannot be read, with its number.
        """
        ttl = DEFAULT_FAKE_TTL
        security = self.default_security
        for number, raw in enumerate(text.splitlines(), start=1):
            line = _strip_comment(raw).strip()
            if not line:
                continue
            fields = line.split()
            try:
                if fields[0].upper() == "$TTL" and len(fields) == 2:
                    ttl = int(fields[1])
                    continue
                if fields[0].upper() == "$SECURITY" and len(fields) == 2:
                    security = Security(fields[1].lower())
                    continue
                self._add_line(fields, line, ttl, security)
            except (UsageError, ValueError, IndexError) as exc:
                raise UsageError(f"zone text line {number}: {exc}: {raw.strip()!r}") from exc

    def _add_line(self, fields: list[str], line: str, ttl: int, security: Security) -> None:
        owner, rest = fields[0], line.split(None, 1)[1] if len(fields) > 1 else ""
        tokens = rest.split(None, 1)
        if tokens and tokens[0].isdigit():
            ttl = int(tokens[0])
            tokens = tokens[1].split(None, 1) if len(tokens) > 1 else []
        if tokens and tokens[0].upper() == "IN":
            tokens = tokens[1].split(None, 1) if len(tokens) > 1 else []
        if not tokens:
            raise UsageError("no record type")
        rdtype = tokens[0].upper()
        data = tokens[1] if len(tokens) > 1 else ""
        if rdtype == "NXDOMAIN" and not data:
            self.add_nxdomain(owner, security=security)
        elif rdtype == "FAIL" and not data:
            self.add_failure(owner, security=security)
        elif rdtype in _PSEUDO_TYPES:
            raise UsageError(f"{rdtype} takes no data")
        else:
            self.add(owner, rdtype, [data], security=security, ttl=ttl)

    def _exists(self, name: str) -> bool:
        if name == ".":
            return True
        suffix = "." + name
        names = {n for n, _ in self._rrsets} | {n for n, _ in self._answers} | set(self._fail)
        return any(n == name or n.endswith(suffix) for n in names)

    def _status_for(self, name: str) -> Security:
        labels = name.split(".")
        for i in range(len(labels)):
            found = self._security.get(".".join(labels[i:]))
            if found is not None:
                return found
        return self.default_security

    async def resolve(self, name: str, rdtype: str) -> DnsAnswer:
        """Answer from memory, as the real resolver would (CNAMEs followed)."""
        qname, qtype = _name(name), rdtype.upper()
        self.queries.append((qname, qtype))
        if (qname, qtype) in self._answers:
            return self._answers[(qname, qtype)]
        current = qname
        chain: list[str] = []
        statuses: list[Security] = []
        ttls: list[int] = []

        def answer(**fields: object) -> DnsAnswer:
            return DnsAnswer(name=qname, rdtype=qtype, cname_chain=tuple(chain), **fields)

        while True:
            if current in self._fail:
                status = combine_security([*statuses, self._fail[current]])
                return answer(security=status, failed=True, why=f"lookup of {current} fails")
            found = self._rrsets.get((current, qtype))
            if found is not None:
                status = combine_security([*statuses, found.security])
                return answer(records=found.records, security=status, ttl=min([*ttls, found.ttl]))
            alias = self._rrsets.get((current, "CNAME")) if qtype != "CNAME" else None
            if alias is None:
                break
            statuses.append(alias.security)
            ttls.append(alias.ttl)
            target = _name(alias.records[0])
            if target == qname or target in chain or len(chain) >= self.max_chain:
                status = combine_security([*statuses, Security.INDETERMINATE])
                return answer(security=status, failed=True, why=f"CNAME loop or chain at {target}")
            chain.append(target)
            current = target
        nxdomain = current in self._nxdomain or not self._exists(current)
        own = self._nxdomain.get(current) or self._status_for(current)
        return answer(
            security=combine_security([*statuses, own]),
            ttl=min([*ttls, DEFAULT_FAKE_TTL]),
            nxdomain=nxdomain,
        )


class FrozenClock:
    """A :class:`~mtasecure.transport.Clock` frozen at one instant until moved.

    Args:
        now: a timezone-aware datetime or an ISO 8601 string; defaults to
            2024-01-01T00:00:00Z.

    Raises:
        UsageError: ``now`` is naive or unreadable.
    """

    def __init__(self, now: datetime | str | None = None) -> None:
        self._now = _aware(now if now is not None else datetime(2024, 1, 1, tzinfo=UTC))

    def now(self) -> datetime:
        """The frozen instant, in UTC."""
        return self._now

    def advance(self, delta: timedelta | float) -> datetime:
        """Move forward by ``delta`` (a timedelta or seconds); return the new instant."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        if step < timedelta(0):
            raise UsageError("a clock does not run backwards; use set()")
        self._now += step
        return self._now

    def set(self, now: datetime | str) -> None:
        """Jump to ``now`` (either direction)."""
        self._now = _aware(now)


def _aware(value: datetime | str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise UsageError(f"not an ISO 8601 time: {value!r}") from exc
    if value.tzinfo is None:
        raise UsageError("FrozenClock needs a timezone-aware datetime")
    return value.astimezone(UTC)


# The fake HTTP client lives in its own module; it is part of this public API.
from mtasecure.transport._fakehttp import FakeHttpClient  # noqa: E402

__all__ += ["FakeHttpClient"]
__all__.sort()

from mtasecure._fakesmtp import FakeSmtp  # noqa: E402 - the SMTP probe fake (issue 5)
from mtasecure._world import World  # noqa: E402 - the world file that drives every fake

__all__ += ["World"]
__all__.sort()


class FakeMailSubmitter:
    """A :class:`~mtasecure.transport.MailSubmitter` that keeps what it is given (RFC 8460 §5.3).

    Args:
        failures: exceptions to raise on the first submissions, in order
            (e.g. ``SmtpError("451 try later")``); once they are used up,
            every submission is taken.

    Attributes:
        sent: ``(sender, recipients, message)`` of every submission taken.
        attempts: submissions tried, taken or not.
    """

    def __init__(self, failures: Sequence[TransportError] = ()) -> None:
        self._failures = list(failures)
        self.sent: list[tuple[str, tuple[str, ...], bytes]] = []
        self.attempts = 0

    async def send(self, sender: str, recipients: Sequence[str], message: bytes) -> None:
        """Take the message, or raise the next scripted failure."""
        self.attempts += 1
        if self._failures:
            raise self._failures.pop(0)
        self.sent.append((sender, tuple(recipients), message))


__all__ += ["FakeMailSubmitter"]
__all__.sort()
