"""The mail exchangers of a domain, in the order to try them (RFC 5321 §5.1, RFC 7505).

:func:`parse_mx` turns an MX :class:`~mtasecure.dnssec.DnsAnswer` into an
:class:`MxSet`: the hosts by preference, the answer's DNSSEC status (DANE
applies only when the MX RRset is ``secure``, RFC 7672 §2.2.1), and the two
special cases:

* **null MX** (RFC 7505 §3): a single ``0 .`` record says the domain accepts
  no mail; ``null`` is set and there are no hosts.
* **implicit MX** (RFC 5321 §5.1): when the domain exists but has no MX
  records, it is its own mail exchanger with preference 0; ``implicit`` is set
  and the one host is the domain itself. Whether it has an address is for the
  caller's A/AAAA lookup to say.

Hosts of equal preference keep a stable order (by name). RFC 5321 §5.1 asks
senders to pick randomly among them; that choice is the caller's, so the same
answer always gives the same ``MxSet``.
"""

from __future__ import annotations

from typing import Any

import dns.name
from pydantic import BaseModel, ConfigDict

from mtasecure._names import normalize_host
from mtasecure.dnssec import DnsAnswer, Security
from mtasecure.errors import DnsError, NameSyntaxError, ParseError, UsageError

__all__ = ["MxHost", "MxSet", "parse_mx"]

_RULE = "RFC 5321 §5.1"


class MxHost(BaseModel):
    """One mail exchanger: its preference (lower first) and normalised host name (RFC 5321 §5.1)."""

    model_config = ConfigDict(frozen=True)

    preference: int
    host: str


class MxSet(BaseModel):
    """The mail exchangers of ``domain``, in the order to try them.

    Attributes:
        domain: the mail domain, normalised.
        hosts: by preference, then name; empty for null MX, NXDOMAIN and failures.
        security: the DNSSEC status of the MX answer (RFC 7672 §2.2.1).
        null: the domain publishes a null MX and accepts no mail (RFC 7505 §3).
        implicit: there were no MX records; ``hosts`` is the domain itself
            (RFC 5321 §5.1).
        nxdomain: the domain does not exist.
        failed: the lookup failed; ``hosts`` must not be read as "no MX"
            (RFC 7672 §2.1.2: delivery is delayed).
        invalid: MX targets that are not host names, left out of ``hosts``.
        ttl: the MX answer's TTL.
        why: why the lookup failed, from the answer.
    """

    model_config = ConfigDict(frozen=True)

    domain: str
    hosts: tuple[MxHost, ...] = ()
    security: Security = Security.INDETERMINATE
    null: bool = False
    implicit: bool = False
    nxdomain: bool = False
    failed: bool = False
    invalid: tuple[str, ...] = ()
    ttl: int = 0
    why: str = ""


def parse_mx(answer: DnsAnswer) -> MxSet:
    """The :class:`MxSet` of an MX answer (RFC 5321 §5.1, RFC 7505 null MX).

    Args:
        answer: the answer to an MX lookup of the mail domain.

    Raises:
        UsageError: ``answer`` is not an MX answer.
        ParseError: a record is not MX presentation format, or the
            domain is not a host name.
    """
    if answer.rdtype.upper() != "MX":
        raise UsageError(f"parse_mx needs an MX answer, got {answer.rdtype}")
    domain = normalize_host(answer.name)
    base: dict[str, Any] = {"domain": domain, "security": answer.security, "ttl": answer.ttl}
    if answer.failed:
        return MxSet(**base, failed=True, why=answer.why)
    if answer.nxdomain:
        return MxSet(**base, nxdomain=True)
    if not answer.records:
        return MxSet(
            **base,
            implicit=True,
            hosts=(MxHost(preference=0, host=domain),),
        )
    try:
        rdatas = answer.rdatas()
    except DnsError as exc:
        raise ParseError(str(exc), where=f"MX of {domain}", rule="RFC 1035 §3.3.9") from exc
    hosts: list[MxHost] = []
    invalid: list[str] = []
    null = False
    for rdata in rdatas:
        exchange = rdata.exchange  # type: ignore[attr-defined]
        target = exchange.to_text(omit_final_dot=True)
        if exchange == dns.name.root:
            null = True
            continue
        try:
            hosts.append(MxHost(preference=rdata.preference, host=normalize_host(target)))  # type: ignore[attr-defined]
        except NameSyntaxError:
            invalid.append(target)
    if null and not hosts:
        # RFC 7505 §3: "0 ." alone; a null MX next to real ones is ignored.
        return MxSet(**base, null=True, invalid=tuple(invalid))
    unique = {(h.preference, h.host): h for h in hosts}
    ordered = tuple(unique[k] for k in sorted(unique))
    return MxSet(**base, hosts=ordered, invalid=tuple(invalid))
