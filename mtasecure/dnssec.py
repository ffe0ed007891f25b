"""The security status of DNS answers (RFC 4033 §5).

Every :class:`DnsAnswer` carries a :class:`Security` status. A resolver reaches
``secure`` in one of two ways: by trusting the AD bit from a validating
resolver the caller declared trusted, or by validating the chain locally from a
trust anchor. ``bogus`` is never treated as ``insecure`` (RFC 7672 §2.1).
"""

from __future__ import annotations

from enum import StrEnum

import dns.exception
import dns.rdata
import dns.rdataclass
import dns.rdatatype
from pydantic import BaseModel, ConfigDict

from mtasecure.errors import DnsError

__all__ = ["DnsAnswer", "Security"]


class Security(StrEnum):
    """The four security states of RFC 4033 §5."""

    SECURE = "secure"
    """A chain of signed DNSKEY and DS records leads from a trust anchor to the answer."""
    INSECURE = "insecure"
    """Validation proved, with signed data, that no chain of trust reaches the answer."""
    BOGUS = "bogus"
    """A chain of trust should exist but validation failed (bad, expired or missing signatures)."""
    INDETERMINATE = "indeterminate"
    """No trust anchor covers the name, or no answer could be had to decide."""


class DnsAnswer(BaseModel):
    """One DNS answer as mtasecure's core consumes it.

    A user's own :class:`~mtasecure.transport.Resolver` builds these; it never
    has to build a dnspython object.

    Attributes:
        name: the name asked for, normalised (lower case, no trailing dot).
        rdtype: the record type asked for (``"MX"``, ``"TXT"``, ``"TLSA"``, ...).
        records: the answer's records in presentation (zone-file) format, e.g.
            ``"10 mx.example.com."`` or ``'"v=STSv1; " "id=1"'``; empty for
            NXDOMAIN, NODATA and failures.
        security: how far the answer can be trusted (RFC 4033 §5).
        ttl: the answer's TTL in seconds (the negative TTL for denials).
        nxdomain: the name does not exist (RFC 7672 §2.2 treats this
            differently from NODATA).
        cname_chain: the CNAME owners followed from ``name`` to the answer,
            in order, normalised.
        failed: no usable answer could be had (SERVFAIL, timeout, or a
            validation failure); ``records`` is then empty and must not be read
            as "no record".
        why: a human-readable reason for ``bogus``, ``indeterminate`` or
            ``failed``.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    rdtype: str
    records: tuple[str, ...] = ()
    security: Security = Security.INDETERMINATE
    ttl: int = 0
    nxdomain: bool = False
    cname_chain: tuple[str, ...] = ()
    failed: bool = False
    why: str = ""

    @property
    def final_name(self) -> str:
        """The owner name of the records: the last CNAME target, or ``name``."""
        return self.cname_chain[-1] if self.cname_chain else self.name

    @property
    def nodata(self) -> bool:
        """The name exists but has no record of this type."""
        return not self.records and not self.nxdomain and not self.failed

    def rdatas(self) -> tuple[dns.rdata.Rdata, ...]:
        """The records parsed into dnspython rdata objects.

        Raises:
            DnsError: a record is not valid presentation format for ``rdtype``.
        """
        try:
            rdtype = dns.rdatatype.from_text(self.rdtype)
            return tuple(
                dns.rdata.from_text(dns.rdataclass.IN, rdtype, text) for text in self.records
            )
        except (dns.exception.DNSException, ValueError) as exc:
            raise DnsError(f"unreadable {self.rdtype} record for {self.name}: {exc}") from exc

    def txt_strings(self) -> tuple[str, ...]:
        """For TXT answers: each record's character-strings joined (RFC 7208 §3.3 style).

        Bytes that are not UTF-8 are replaced, so a record parser sees them as
        invalid characters rather than crashing.
        """
        return tuple(
            b"".join(r.strings).decode("utf-8", errors="replace")  # type: ignore[attr-defined]
            for r in self.rdatas()
        )
