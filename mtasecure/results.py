"""Outcomes of security checks, as values (RFC 8460 §4.3).

Every check that can fail for a security reason returns a :class:`CheckResult`
instead of raising, so the failure can go straight into a TLS report.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

__all__ = ["CheckResult", "FailureReason", "PolicyType"]


class FailureReason(StrEnum):
    """The result types of RFC 8460 §4.3, spelt exactly as on the wire.

    The members follow the RFC's three groups: negotiation failures (§4.3.1),
    policy failures (§4.3.2) and general failures (§4.3.3).
    """

    # §4.3.1 negotiation failures
    STARTTLS_NOT_SUPPORTED = "starttls-not-supported"
    CERTIFICATE_HOST_MISMATCH = "certificate-host-mismatch"
    CERTIFICATE_EXPIRED = "certificate-expired"
    CERTIFICATE_NOT_TRUSTED = "certificate-not-trusted"
    VALIDATION_FAILURE = "validation-failure"
    # §4.3.2.1 DANE-specific policy failures
    TLSA_INVALID = "tlsa-invalid"
    DNSSEC_INVALID = "dnssec-invalid"
    DANE_REQUIRED = "dane-required"
    # §4.3.2.2 MTA-STS-specific policy failures
    STS_POLICY_FETCH_ERROR = "sts-policy-fetch-error"
    STS_POLICY_INVALID = "sts-policy-invalid"
    STS_WEBPKI_INVALID = "sts-webpki-invalid"


class PolicyType(StrEnum):
    """The ``policy-type`` values of RFC 8460 §4.4: which policy governed a session.

    Shared by the decision engine (which policy a requirement comes from) and
    the TLS-RPT report model (what a report files the session under).
    """

    TLSA = "tlsa"
    """DANE TLSA records (RFC 7672)."""
    STS = "sts"
    """An MTA-STS policy (RFC 8461)."""
    NO_POLICY_FOUND = "no-policy-found"
    """Neither: opportunistic TLS."""


class CheckResult(BaseModel):
    """The outcome of one security check.

    Attributes:
        reason: ``None`` when the check passed, otherwise the RFC 8460 §4.3
            result type that a TLS report would carry.
        detail: a human-readable explanation (``additional-information`` in a
            report's failure details, RFC 8460 §4.4).
    """

    model_config = ConfigDict(frozen=True)

    reason: FailureReason | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        """True when the check passed."""
        return self.reason is None

    def __bool__(self) -> bool:
        return self.ok

    @classmethod
    def passed(cls, detail: str = "") -> CheckResult:
        """A passing result."""
        return cls(reason=None, detail=detail)

    @classmethod
    def failed(cls, reason: FailureReason, detail: str = "") -> CheckResult:
        """A failing result with its RFC 8460 result type."""
        return cls(reason=reason, detail=detail)
