"""Planning report delivery: rua targets, upload verdicts, retries (RFC 8460 §3, §5.3–§5.5).

The shell (:mod:`mtasecure.transport.report_submit`) performs each attempt;
this module decides what an attempt is, whether it worked, and how long to
wait before the next one:

* :func:`parse_rua` reads one ``rua`` URI of the ``_smtp._tls`` record (§3):
  ``mailto:`` (with percent-decoding, RFC 6068) or ``https:``, judged by the
  record parser's own rule (:func:`mtasecure.tlsrpt._record.check_rua_uri`),
  so a URI given by hand is held to what a published one is. Anything else
  is reported back with the reason, not raised.
* :func:`judge_upload`: §5.4 wants "a successful response, typically 200 or
  201": any 2xx delivers. 408, 425, 429 and 5xx are worth retrying; other
  codes (400, 403, 404, 413, …) will not get better and end the delivery.
* :func:`plan_retry`: §5.5 retries for up to 24 hours with exponential
  backoff. Each delay is drawn with full jitter from ``[0, backoff]`` (so a
  fleet does not retry in step) and attempts stop at ``max_attempts`` or when
  the next one would start after ``total`` seconds.
"""

from __future__ import annotations

from enum import StrEnum
from random import Random
from typing import Literal
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field

from mtasecure._http import HttpResponse
from mtasecure.errors import ParseError
from mtasecure.tlsrpt._record import check_rua_uri

__all__ = [
    "MEDIA_TYPE_GZIP",
    "DeliveryOutcome",
    "RetryPolicy",
    "RuaTarget",
    "UploadVerdict",
    "judge_upload",
    "parse_rua",
    "plan_retry",
]

#: The media type of a gzip report (RFC 8460 §6.5), for the POST and the attachment.
MEDIA_TYPE_GZIP = "application/tlsrpt+gzip"


class RuaTarget(BaseModel):
    """Where one ``rua`` URI sends reports (RFC 8460 §3).

    Attributes:
        uri: the URI as published.
        kind: ``mailto``, ``https``, or ``unsupported``.
        address: the mailbox of a ``mailto:`` URI (percent-decoded).
        url: the URL of an ``https:`` URI, its scheme in lower case.
        reason: for ``unsupported``, why: the record parser's reason for
            skipping the URI, or its syntax error.
    """

    model_config = ConfigDict(frozen=True)

    uri: str
    kind: Literal["mailto", "https", "unsupported"]
    address: str | None = None
    url: str | None = None
    reason: str | None = None


def parse_rua(uri: str) -> RuaTarget:
    """Read one ``rua`` URI (RFC 8460 §3; RFC 6068 for ``mailto``).

    The URI is judged exactly as :func:`~mtasecure.tlsrpt.parse_record`
    judges a published one: ``uri`` is usable iff a record whose ``rua`` is
    ``uri`` alone lists it in :attr:`~mtasecure.tlsrpt.TlsRptRecord.rua`.
    Nothing is trimmed: a published URI holds no space.

    Never raises: a URI this side cannot use, or that is not a URI at all,
    comes back with kind ``unsupported`` and the reason, so one bad URI does
    not stop delivery to the others.
    """
    try:
        normal, reason = check_rua_uri(uri)
    except ParseError as exc:
        return RuaTarget(uri=uri, kind="unsupported", reason=str(exc))
    if reason is not None:
        return RuaTarget(uri=uri, kind="unsupported", reason=reason)
    scheme, _, rest = normal.partition(":")
    if scheme == "mailto":
        # The rule held: no '//' or '#', the path is one address, valid UTF-8 once decoded.
        return RuaTarget(uri=uri, kind="mailto", address=unquote(rest.partition("?")[0]))
    return RuaTarget(uri=uri, kind="https", url=normal)


class UploadVerdict(StrEnum):
    """What one HTTPS upload attempt came to (RFC 8460 §5.4)."""

    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"


_RETRYABLE = frozenset({408, 425, 429})


def judge_upload(response: HttpResponse) -> UploadVerdict:
    """Judge the answer to a report POST (RFC 8460 §5.4): 2xx delivers."""
    status = response.status
    if 200 <= status < 300:
        return UploadVerdict.DELIVERED
    if status in _RETRYABLE or status >= 500:
        return UploadVerdict.RETRY
    return UploadVerdict.FAILED


class RetryPolicy(BaseModel):
    """How persistently to redeliver a report (RFC 8460 §5.5).

    Attributes:
        max_attempts: attempts in all, the first included.
        first_delay: backoff before the second attempt, in seconds.
        factor: growth of the backoff per attempt (exponential, §5.5).
        max_delay: cap on one backoff.
        total: no attempt starts later than this many seconds after the
            first one; §5.5 suggests retrying for up to 24 hours.
        attempt_timeout: time limit of one attempt.
    """

    model_config = ConfigDict(frozen=True)

    max_attempts: int = Field(default=12, ge=1)
    first_delay: float = Field(default=60.0, ge=0)
    factor: float = Field(default=2.0, ge=1)
    max_delay: float = Field(default=3 * 3600.0, ge=0)
    total: float = Field(default=24 * 3600.0, ge=0)
    attempt_timeout: float = Field(default=60.0, gt=0)


def plan_retry(policy: RetryPolicy, attempts: int, elapsed: float, rng: Random) -> float | None:
    """Seconds to wait before the next attempt, or ``None`` to stop (RFC 8460 §5.5).

    Args:
        policy: the retry policy.
        attempts: attempts made so far (at least 1).
        elapsed: seconds since the first attempt started.
        rng: the source of jitter (seed it in tests).
    """
    if attempts >= policy.max_attempts:
        return None
    backoff = min(policy.max_delay, policy.first_delay * policy.factor ** (attempts - 1))
    delay = rng.uniform(0.0, backoff)
    if elapsed + delay > policy.total:
        return None
    return delay


class DeliveryOutcome(BaseModel):
    """What happened to a report at one ``rua`` (RFC 8460 §5).

    Attributes:
        uri: the ``rua`` URI.
        delivered: the report got there.
        attempts: attempts made.
        detail: the last status or error, in words.
    """

    model_config = ConfigDict(frozen=True)

    uri: str
    delivered: bool
    attempts: int
    detail: str = ""
