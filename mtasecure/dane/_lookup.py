"""Which DNS lookups decide the DANE state of one SMTP server, in order (RFC 7672 §2.2).

:func:`plan_dane_lookup` is the planner: given the answers so far, it names the
next lookups, or gives the final :class:`~mtasecure.dane.DanePolicy`. It does
no I/O; the shell (:meth:`mtasecure.client.MtaSecure.resolve_dane`) performs
each lookup it names and feeds the answers back, in the order asked. The
rules, in the order the planner applies them::

    the next hop's MX answer (given as an MxSet; none for a configured relay)
        bogus, indeterminate or failed           -> FAILED, nothing more (§2.2.1)
        insecure, and it lists the host          -> INSECURE, nothing more (§2.2.1)
        secure, or it does not list the host     -> go on
    A and AAAA of the host, asked together (before any TLSA lookup, §2.2.2)
        either bogus, indeterminate or failed    -> FAILED (§2.1.1, §2.2.2)
        the weaker of the two insecure:
            the host is no alias                 -> INSECURE, no TLSA lookup (§2.2.2)
            the host is an alias                 -> its own CNAME record, to see whether
                                                    the first response was secure (§2.2.2,
                                                    "Insecure CNAME"):
                bogus, indeterminate or failed   -> FAILED (§2.2.2: errors delay delivery)
                secure, a CNAME record           -> TLSA candidate _<port>._tcp.host only
                insecure, or no CNAME record     -> INSECURE, no TLSA lookup
        secure                                   -> TLSA candidates:
            one CNAME-expanded name E != host    -> _<port>._tcp.E, then _<port>._tcp.host
            otherwise                            -> _<port>._tcp.host (§2.2.3)
    each TLSA candidate in turn (plan_dane classifies the answer)
        USABLE, UNUSABLE or FAILED               -> that policy; stop (§2.2.3, §2.1.2)
        NO_TLSA or INSECURE                      -> the next candidate (§2.2.3)
        no candidate left                        -> the last one's policy (DANE does not apply)

So at most :data:`MAX_DANE_LOOKUPS` lookups are made: A, AAAA and
:data:`MAX_TLSA_CANDIDATES` TLSA queries, or A, AAAA, the host's CNAME and
one TLSA query.

A configured relay (RFC 7672 §2.2.2, first case) is a next hop that was not
found through the MX lookup: ``mx_set=None`` (nothing was looked up), or a
working MX set that does not list the host. Its address answers stand in for
the MX answer: their status is the :attr:`DaneStep.mx_security` the decision
engine gets, and only the TLSA base domain is a reference identifier, the
next-hop domain being added only for a host that a secure MX set lists
(RFC 7672 §3.2.2).

Decisions where RFC 7672 leaves room, or where :class:`~mtasecure.dnssec.DnsAnswer`
carries less than the RFC distinguishes:

* An answer carries one status for its whole CNAME chain (the weakest link,
  :func:`~mtasecure.dnssec.combine_security`), so an insecure address answer
  for an alias does not say whether the first response (the alias's own
  CNAME record) was secure. The planner asks for that record itself (type
  CNAME at the host): a signed alias pointing into an unsigned zone keeps
  the TLSA records published at the alias (§2.2.2, "Insecure CNAME").
* When the A and AAAA answers end at different names (the chain changed
  between the two queries), there is no one "fully expanded" name and only
  the host name is a candidate.
* A secure answer with no address at all still goes on to TLSA; whether the
  host is reachable is for the caller, which has the addresses.
* A host that a working MX set does not list is a configured relay, but a
  bogus or failed MX answer for the next hop still makes it unusable (the
  next hop's answer cannot be trusted to say it is not listed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mtasecure._names import normalize_host
from mtasecure.dane._state import DanePolicy, DaneState, plan_dane
from mtasecure.dnssec import DnsAnswer, Security, combine_security
from mtasecure.errors import UsageError
from mtasecure.mx import MxSet
from mtasecure.results import FailureReason

__all__ = [
    "MAX_DANE_LOOKUPS",
    "MAX_TLSA_CANDIDATES",
    "DaneLookup",
    "DaneStep",
    "plan_address_dane",
    "plan_alias_dane",
    "plan_dane_lookup",
    "plan_mx_set_dane",
]

MAX_TLSA_CANDIDATES = 2
"""Most TLSA base domains tried: the CNAME-expanded host name, then the host (RFC 7672 §2.2.3)."""

MAX_DANE_LOOKUPS = 2 + MAX_TLSA_CANDIDATES
"""Most lookups one plan makes: A, AAAA, then each TLSA candidate, or A, AAAA, the host's
CNAME record and one TLSA candidate (RFC 7672 §2.2.2, §2.2.3)."""


@dataclass(frozen=True, slots=True)
class DaneLookup:
    """One DNS lookup the planner asks for.

    Attributes:
        name: the query name, normalised (``mx.example.com``,
            ``_25._tcp.mx.example.com``).
        rdtype: ``"A"``, ``"AAAA"``, ``"CNAME"`` or ``"TLSA"``.
    """

    name: str
    rdtype: str


@dataclass(frozen=True, slots=True)
class DaneStep:
    """What :func:`plan_dane_lookup` says to do next (RFC 7672 §2.2).

    Either ``lookups`` is not empty (make them, together, and call the
    planner again with their answers appended in the same order), or
    ``policy`` is set and the plan is done.

    Attributes:
        lookups: the next lookups to make.
        policy: the DANE requirement of the host, when done.
        a: the host's A answer, when it was looked up.
        aaaa: the host's AAAA answer, when it was looked up.
        relay: the host is a configured relay, not an MX host the next hop's
            MX set lists (RFC 7672 §2.2.2).
        mx_security: the status that counts as the MX lookup's: the next
            hop's MX answer for a listed host, the weaker of the address
            answers for a relay (``indeterminate`` when they were not looked
            up), RFC 7672 §2.2.1, §2.2.2.
    """

    lookups: tuple[DaneLookup, ...] = ()
    policy: DanePolicy | None = None
    a: DnsAnswer | None = None
    aaaa: DnsAnswer | None = None
    relay: bool = False
    mx_security: Security = Security.INDETERMINATE


def plan_mx_set_dane(
    mx_set: MxSet, host: str, *, listed: bool, port: int = 25
) -> DanePolicy | None:
    """Decide DANE from the domain's MX answer alone, or ``None`` to go on to the addresses.

    RFC 7672 §2.2.1: a bogus, indeterminate or failed MX lookup means the MX
    must not be used; an insecure MX RRset that lists ``host`` means DANE
    does not apply and nothing more is looked up. A secure MX set, or a host
    it does not list (a configured relay), goes on to
    :func:`plan_address_dane`.

    Args:
        mx_set: the next-hop domain's MX set.
        host: the MX host name (normalised).
        listed: whether ``mx_set`` lists ``host``.
        port: the SMTP port.
    """
    common = {"base_domain": host, "port": port, "reference_names": (host,)}
    if mx_set.failed or mx_set.security in (Security.BOGUS, Security.INDETERMINATE):
        what = f"MX lookup for {mx_set.domain}"
        return _failed(what, mx_set.security, mx_set.why, "§2.2.1", host, port)
    if listed and mx_set.security is Security.INSECURE:
        return DanePolicy(
            state=DaneState.INSECURE,
            detail=f"the MX RRset of {mx_set.domain} is insecure: DANE does not apply "
            "(RFC 7672 §2.2.1)",
            **common,
        )
    return None


def plan_address_dane(
    mx: str, addresses: tuple[DnsAnswer, ...], *, port: int = 25
) -> DanePolicy | None:
    """Decide DANE from the address lookups alone, or ``None`` if TLSA must be looked up.

    RFC 7672 §2.2.2: the address records come first; "insecure" address
    records mean no TLSA lookup (DANE does not apply); a bogus or failed
    lookup means the MX must not be used (RFC 7672 §2.1.1).

    Args:
        mx: the MX host name (normalised).
        addresses: the A and AAAA answers for ``mx``.
        port: the SMTP port (the TLSA base is ``_<port>._tcp.<mx>``).
    """
    common = {"base_domain": mx, "port": port, "reference_names": (mx,)}
    security = combine_security(a.security for a in addresses)
    if any(a.failed for a in addresses) or security in (Security.BOGUS, Security.INDETERMINATE):
        why = "; ".join(a.why for a in addresses if a.why)
        return _failed(f"address lookup for {mx}", security, why, "§2.1.1", mx, port)
    if security is Security.INSECURE:
        return DanePolicy(
            state=DaneState.INSECURE,
            detail=f"address records of {mx} are insecure: no TLSA lookup, DANE does not "
            "apply (RFC 7672 §2.2.2)",
            **common,
        )
    return None


def plan_dane_lookup(
    host: str,
    answers: Sequence[DnsAnswer] = (),
    *,
    mx_set: MxSet | None = None,
    next_hop: str | None = None,
    port: int = 25,
) -> DaneStep:
    """The next lookup for the DANE state of ``host``, or that state (RFC 7672 §2.2).

    The rules are in this module's docstring. Call it with no answers, make
    the lookups of the step it returns, and call it again with every answer
    so far, in the order asked, until :attr:`DaneStep.policy` is set: at most
    :data:`MAX_DANE_LOOKUPS` answers in all.

    Args:
        host: the SMTP server's host name: an MX host, or a configured relay.
        answers: the answers to the lookups asked so far, in order (A and
            AAAA may be given up front, as the first two).
        mx_set: the next hop's MX set; ``None`` for a configured relay whose
            next hop was not looked up (RFC 7672 §2.2.2).
        next_hop: the next-hop (recipient) domain, a DANE-TA reference
            identifier when a secure MX set lists ``host`` (RFC 7672
            §3.2.2); defaults to ``mx_set.domain``.
        port: the SMTP port, for the ``_<port>._tcp`` TLSA name (§2.2.3).

    Raises:
        NameSyntaxError: ``host`` is not a host name.
        UsageError: an answer is not for the lookup asked at its place,
            there are more answers than lookups, or ``next_hop`` is not a
            host name (found when a TLSA answer is classified).
    """
    host = normalize_host(host)
    answers = tuple(answers)
    if len(answers) == 1:
        raise UsageError("the A and AAAA answers are asked for together (RFC 7672 §2.2.2)")
    ask = (DaneLookup(host, "A"), DaneLookup(host, "AAAA"))
    _check_answers(ask, answers[:2])
    listed = mx_set is not None and any(h.host == host for h in mx_set.hosts)
    relay = mx_set is None or (not listed and not mx_set.failed)
    done: dict[str, Any] = {"relay": relay}
    if answers:
        done.update(a=answers[0], aaaa=answers[1])
    if relay:
        # The relay's own address lookup stands in for the MX lookup (§2.2.2).
        done["mx_security"] = combine_security(a.security for a in answers[:2])
    elif mx_set is not None:
        done["mx_security"] = mx_set.security
    if mx_set is not None:
        policy = plan_mx_set_dane(mx_set, host, listed=listed, port=port)
        if policy is not None:
            return _finish(policy, answers, 2, done)
    if not answers:
        return DaneStep(lookups=ask)
    addresses = answers[:2]
    policy = plan_address_dane(host, addresses, port=port)
    asked = 2
    if policy is not None and policy.state is DaneState.INSECURE and _is_alias(addresses):
        # Insecure at the end of an alias chain: was the first response secure (§2.2.2)?
        own = DaneLookup(host, "CNAME")
        if len(answers) == asked:
            return DaneStep(lookups=(own,))
        _check_answers((own,), answers[asked : asked + 1])
        policy = plan_alias_dane(host, answers[asked], port=port)
        asked += 1
        bases: tuple[str, ...] = (host,)
    else:
        bases = _tlsa_candidates(host, addresses)
    if policy is not None:
        return _finish(policy, answers, asked, done)
    mx_secure = listed and mx_set is not None and mx_set.security is Security.SECURE
    hop = next_hop if next_hop is not None else (mx_set.domain if mx_set is not None else None)
    candidates = [DaneLookup(f"_{port}._tcp.{base}", "TLSA") for base in bases]
    # Each candidate's answer either decides or passes to the next; the last decides.
    for seen, answer in enumerate(answers[asked:], start=1):
        _check_answers((candidates[seen - 1],), (answer,))
        found = plan_dane(answer, mx_secure, next_hop=hop)
        if found.applies or seen == len(candidates):
            return _finish(found, answers, asked + seen, done)
    return DaneStep(lookups=(candidates[len(answers) - asked],))


def plan_alias_dane(host: str, alias: DnsAnswer, *, port: int = 25) -> DanePolicy | None:
    """Decide DANE from an alias's own CNAME answer, or ``None`` to look TLSA up at ``host``.

    RFC 7672 §2.2.2, "Insecure CNAME": the address records at the end of
    ``host``'s alias chain are insecure. If the first response, the CNAME
    record at ``host``, is insecure as well, DANE does not apply; if it is
    secure, TLSA is looked up at ``host`` itself (the original name) and
    nowhere else. A failed, bogus or indeterminate answer delays delivery
    ("errors ... MUST result in delaying or abandoning delivery").

    Args:
        host: the SMTP server's host name (normalised).
        alias: the answer to the CNAME query at ``host``.
        port: the SMTP port.
    """
    if alias.failed or alias.security in (Security.BOGUS, Security.INDETERMINATE):
        return _failed(f"CNAME lookup for {host}", alias.security, alias.why, "§2.2.2", host, port)
    if alias.security is Security.SECURE and alias.records:
        return None
    common = {"base_domain": host, "port": port, "reference_names": (host,)}
    return DanePolicy(
        state=DaneState.INSECURE,
        detail=f"{host} is an alias whose own CNAME record is "
        f"{'insecure' if alias.records else 'gone'} and whose address records are "
        "insecure: no TLSA lookup, DANE does not apply (RFC 7672 §2.2.2)",
        **common,
    )


def _failed(  # noqa: PLR0917 - one call shape for three lookups
    what: str, security: Security, why: str, rule: str, host: str, port: int
) -> DanePolicy:
    """A lookup failed, or its answer was bogus or indeterminate: the MX must not be used."""
    return DanePolicy(
        state=DaneState.FAILED,
        reason=FailureReason.DNSSEC_INVALID,
        detail=f"{what} is {security}{': ' + why if why else ''}; the MX must not be used "
        f"(RFC 7672 {rule})",
        base_domain=host,
        port=port,
        reference_names=(host,),
    )


def _is_alias(addresses: tuple[DnsAnswer, ...]) -> bool:
    """Whether an address lookup of the host followed a CNAME record."""
    return any(a.cname_chain for a in addresses)


def _tlsa_candidates(host: str, addresses: tuple[DnsAnswer, ...]) -> tuple[str, ...]:
    """The candidate TLSA base domains, in order (RFC 7672 §2.2.3).

    Called only when every address answer is secure, so any CNAME chain
    they followed is secure at every stage. Intermediate names of the chain
    are never candidates.
    """
    expanded = {_plain(a.final_name) for a in addresses if a.records}
    if len(expanded) == 1 and host not in expanded:
        return (expanded.pop(), host)
    return (host,)


def _check_answers(lookups: tuple[DaneLookup, ...], answers: tuple[DnsAnswer, ...]) -> None:
    for lookup, answer in zip(lookups, answers, strict=False):
        if (_plain(answer.name), answer.rdtype.upper()) != (lookup.name, lookup.rdtype):
            raise UsageError(
                f"expected the answer to {lookup.name} {lookup.rdtype}, "
                f"got {answer.name} {answer.rdtype}"
            )


def _plain(name: str) -> str:
    # A resolver's names, as the planner's: lower case, no trailing dot.
    return name.lower().rstrip(".")


def _finish(
    policy: DanePolicy, answers: tuple[DnsAnswer, ...], used: int, done: dict[str, Any]
) -> DaneStep:
    if len(answers) > used:
        raise UsageError(f"{len(answers)} answers given, the plan asked for {used} (RFC 7672 §2.2)")
    return DaneStep(policy=policy, **done)
