"""The rules a policy fetch's response must meet (RFC 8461 §3.3), checked in the core.

Whatever :class:`~mtasecure.transport.HttpClient` performed the fetch — the
default one or a caller's own — its :class:`~mtasecure.HttpResponse` goes
through :func:`check_response`, so no client can bypass these rules:

==============================  =================================  ===========================
response                        outcome                            RFC 8460 result type
==============================  =================================  ===========================
a redirect was followed         rejected (§3.3: MUST NOT follow)   ``sts-policy-fetch-error``
status other than 200           rejected (§3.3: only 200 is valid) ``sts-policy-fetch-error``
no ``Content-Type``, or a       rejected (§3.2: ``text/plain``)    ``sts-policy-fetch-error``
media type other than
``text/plain``
body over the size cap, or      rejected (§3.3 size limit)         ``sts-policy-fetch-error``
truncated by the client
body that does not parse        rejected (§3.2)                    ``sts-policy-invalid``
otherwise                       the policy
==============================  =================================  ===========================

Media type parameters (``; charset=utf-8``) are allowed and the type is
compared case-insensitively (RFC 9110 §8.3.1). A ``charset`` other than UTF-8
or US-ASCII is not rejected here: the body must still decode as UTF-8
(§3.2), which :func:`~mtasecure.sts.parse_policy` checks. Transport failures
(connection, TLS, timeout) never reach this function; the shell maps them with
:func:`check_transport_failure`.
"""

from __future__ import annotations

from mtasecure._http import HttpResponse
from mtasecure.errors import ParseError
from mtasecure.results import CheckResult, FailureReason
from mtasecure.sts._policy import MAX_POLICY_BYTES, StsPolicy, parse_policy

__all__ = [
    "DEFAULT_FETCH_TIMEOUT",
    "POLICY_MEDIA_TYPE",
    "check_response",
    "check_transport_failure",
]

POLICY_MEDIA_TYPE = "text/plain"
"""The media type a policy is served with (RFC 8461 §3.2)."""
DEFAULT_FETCH_TIMEOUT = 60.0
"""Seconds a whole policy fetch may take (RFC 8461 §3.3 suggests one minute)."""


def check_response(
    response: HttpResponse, *, max_bytes: int = MAX_POLICY_BYTES
) -> StsPolicy | CheckResult:
    """Judge a policy fetch's response (RFC 8461 §3.2, §3.3).

    Args:
        response: what the HTTP client returned.
        max_bytes: the size cap (:data:`~mtasecure.sts.MAX_POLICY_BYTES` by
            default, RFC 8461 §3.3's suggested 64 KiB).

    Returns:
        The policy, or a failed :class:`~mtasecure.results.CheckResult` whose
        reason is ``sts-policy-fetch-error`` (HTTP-level) or
        ``sts-policy-invalid`` (the body does not parse). Never raises on
        what the remote side sent.
    """
    if response.redirected:
        return _fetch_error(f"{response.url}: a redirect was followed (RFC 8461 §3.3)")
    if response.status != 200:
        return _fetch_error(
            f"{response.url}: HTTP status {response.status}, not 200 (RFC 8461 §3.3)"
        )
    media = media_type(response.header("content-type"))
    if media != POLICY_MEDIA_TYPE:
        shown = "none" if media is None else repr(media)
        return _fetch_error(
            f"{response.url}: media type {shown}, not {POLICY_MEDIA_TYPE!r} (RFC 8461 §3.2)"
        )
    if response.truncated or len(response.body) > max_bytes:
        return _fetch_error(
            f"{response.url}: body larger than {max_bytes} octets (RFC 8461 §3.3 size limit)"
        )
    try:
        return parse_policy(response.body)
    except ParseError as exc:
        return CheckResult.failed(FailureReason.STS_POLICY_INVALID, f"{response.url}: {exc}")


def check_transport_failure(url: str, message: str, *, certificate: bool) -> CheckResult:
    """The result type of a fetch that did not complete (RFC 8460 §4.3.2.2).

    Args:
        url: the policy URL.
        message: what the transport reported.
        certificate: the failure was the policy host's certificate (untrusted,
            expired, wrong name: RFC 8461 §3.3), not the connection.

    Returns:
        ``sts-webpki-invalid`` for a certificate failure, otherwise
        ``sts-policy-fetch-error``.
    """
    if certificate:
        return CheckResult.failed(
            FailureReason.STS_WEBPKI_INVALID,
            f"{url}: policy host certificate rejected (RFC 8461 §3.3): {message}",
        )
    return _fetch_error(f"{url}: {message}")


def media_type(value: str | None) -> str | None:
    """The ``type/subtype`` of a ``Content-Type`` value, lower-cased; ``None`` if absent or empty."""
    if value is None:
        return None
    media = value.split(";", 1)[0].strip(" \t").lower()
    return media or None


def _fetch_error(detail: str) -> CheckResult:
    return CheckResult.failed(FailureReason.STS_POLICY_FETCH_ERROR, detail)
