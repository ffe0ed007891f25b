"""Choosing how DNSSEC reaches ``secure``: by configuration (RFC 4033 §5, RFC 4035 §4.9.3).

mtasecure offers two ways for an answer to be ``secure``:

* ``validator`` — a trusted validating resolver (Unbound, BIND, Knot
  Resolver...) does the validation, and :class:`~mtasecure.transport.DnsResolver`
  believes its AD bit, only from nameservers declared trusted (loopback by
  default, RFC 4035 §4.9.3);
* ``local`` — :class:`~mtasecure.transport.ValidatingResolver` validates the
  chain itself from a trust anchor (the IANA root KSKs by default), asking
  any server with the CD bit set and never reading the AD bit.

:class:`DnsSettings` holds the choice and its parameters as one frozen
value (it can come from a configuration file), and
:func:`resolver_from_settings` builds the resolver. The resolver stays a
:class:`~mtasecure.transport.Resolver` protocol: code that needs something
else passes its own object to ``MtaSecure(resolver=...)``; the settings
only shape the default (``MtaSecure(dns=DnsSettings(...))``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mtasecure.dnssec import ROOT_TRUST_ANCHOR, TrustAnchor, parse_trust_anchor
from mtasecure.errors import ParseError, UsageError
from mtasecure.transport._protocols import Clock
from mtasecure.transport.resolver import (
    DEFAULT_LIFETIME,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    DnsResolver,
    Nameserver,
)
from mtasecure.transport.validating import ValidatingResolver

__all__ = ["MAX_RETRIES", "DnsSettings", "DnssecMode", "resolver_from_settings"]

MAX_RETRIES = 10
"""Most extra rounds over the nameservers a configuration may ask for."""


class DnssecMode(StrEnum):
    """Where DNSSEC validation happens."""

    VALIDATOR = "validator"
    """A trusted validating resolver validates; its AD bit is believed (RFC 4035 §4.9.3)."""
    LOCAL = "local"
    """mtasecure validates the chain from a trust anchor (RFC 4035 §5)."""


class DnsSettings(BaseModel):
    """How the default resolver is built (:func:`resolver_from_settings`).

    Attributes:
        dnssec: ``validator`` (trust the AD bit of trusted nameservers) or
            ``local`` (validate from ``trust_anchor``).
        nameservers: ``"address[:port]"`` strings, asked in order; ``None``
            reads ``/etc/resolv.conf``. In ``local`` mode any server that
            answers every question will do (a recursive resolver, or an
            authoritative server hosting a whole private tree).
        trusted: ``validator`` mode: the nameservers whose AD bit is
            believed (``"10.0.0.53"`` or ``"10.0.0.53:5353"``); ``None``
            trusts loopback ones only. Not allowed in ``local`` mode, which
            never reads the AD bit.
        trust_anchor: ``local`` mode: where the chain of trust starts, as a
            :class:`~mtasecure.dnssec.TrustAnchor` or as zone-file lines of
            DS or DNSKEY records (``root.key``/``root.ds`` style); ``None``
            means the IANA root KSKs. Not allowed in ``validator`` mode,
            where the validator holds the anchor.
        timeout: seconds per try of one nameserver.
        retries: extra rounds over the nameservers (at most
            :data:`MAX_RETRIES`).
        lifetime: seconds one lookup may take in all.

    Raises:
        pydantic.ValidationError: an option does not fit the mode, a
            nameserver is not ``address[:port]``, or the anchor cannot be read.
    """

    model_config = ConfigDict(frozen=True)

    dnssec: DnssecMode = DnssecMode.VALIDATOR
    nameservers: tuple[str, ...] | None = None
    trusted: tuple[str, ...] | None = None
    trust_anchor: TrustAnchor | None = None
    timeout: float = Field(default=DEFAULT_TIMEOUT, gt=0)
    retries: int = Field(default=DEFAULT_RETRIES, ge=0, le=MAX_RETRIES)
    lifetime: float = Field(default=DEFAULT_LIFETIME, gt=0)

    @field_validator("nameservers", "trusted")
    @classmethod
    def _servers(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        try:
            for text in value:
                Nameserver.parse(text)
        except UsageError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @field_validator("trust_anchor", mode="before")
    @classmethod
    def _anchor(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return parse_trust_anchor(value)
            except ParseError as exc:
                raise ValueError(f"trust anchor: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _fits_the_mode(self) -> Self:
        if self.dnssec is DnssecMode.LOCAL and self.trusted is not None:
            raise ValueError("trusted nameservers mean nothing in local mode: the AD bit is unread")
        if self.dnssec is DnssecMode.VALIDATOR and self.trust_anchor is not None:
            raise ValueError(
                "a trust anchor is for local mode; in validator mode the validator holds it"
            )
        return self


def resolver_from_settings(
    settings: DnsSettings | None = None, *, clock: Clock | None = None
) -> DnsResolver:
    """Build the resolver ``settings`` describe (module docstring).

    Args:
        settings: the choice; ``None`` takes the defaults (``validator``
            mode on the system's nameservers, loopback ones trusted).
        clock: ``local`` mode: where ``now`` comes from for signature
            validity windows (RFC 4035 §5.3.1); the system clock by default.

    Returns:
        A :class:`~mtasecure.transport.DnsResolver`, or for ``local`` mode a
        :class:`~mtasecure.transport.ValidatingResolver`. The caller closes it.

    Raises:
        UsageError: no nameserver could be found.
    """
    settings = settings or DnsSettings()
    common: dict[str, Any] = {
        "timeout": settings.timeout,
        "retries": settings.retries,
        "lifetime": settings.lifetime,
    }
    if settings.dnssec is DnssecMode.LOCAL:
        return ValidatingResolver(
            settings.nameservers,
            anchor=settings.trust_anchor or ROOT_TRUST_ANCHOR,
            clock=clock,
            **common,
        )
    return DnsResolver(settings.nameservers, trusted=settings.trusted, **common)
