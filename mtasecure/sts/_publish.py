"""The domain owner's side: build a policy, its file, and a ``_mta-sts`` record with a fresh id.

RFC 8461 §3.1 asks only that the ``id`` "uniquely identify a given instance of
a policy"; senders compare it for equality and never order it. Two ways to
make one, neither reading the clock (time is an argument):

* from the content: the first 32 hex digits of the SHA-256 of the rendered
  policy. The same policy always gets the same id, and any change gets a new
  one; re-publishing an old policy brings back its old id, which is still
  correct, since the id names the instance, not the moment.
* from ``now``: ``YYYYMMDDHHMMSSZ`` in UTC as in the RFC's example, followed by
  8 hex digits of the content hash so that two different policies published
  in the same second still differ.

Publishing order matters (RFC 8461 §8.1): serve the new policy file first,
then publish the new TXT record, so a sender that sees the new id fetches the
new file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, ValidationError

from mtasecure.errors import NameSyntaxError, UsageError
from mtasecure.sts._policy import PolicyMode, StsPolicy, policy_url, render_policy
from mtasecure.sts._record import StsRecord, record_name, render_record

__all__ = [
    "DEFAULT_MAX_AGE",
    "StsPublication",
    "build_policy",
    "build_publication",
    "policy_id",
]

DEFAULT_MAX_AGE = 1209600
"""Two weeks: RFC 8461 §3.2 expects ``max_age`` "in the range of weeks or greater"."""


class StsPublication(BaseModel):
    """Everything a domain owner publishes for MTA-STS (RFC 8461 §3).

    Attributes:
        domain: the Policy Domain, normalised.
        policy: the policy.
        policy_url: where to serve ``policy_text`` (HTTPS, ``text/plain``).
        policy_text: the file to serve, CRLF line endings.
        record_name: the owner name of the TXT record (``_mta-sts.<domain>``).
        record: the record.
        record_text: the TXT record value to publish.
    """

    model_config = ConfigDict(frozen=True)

    domain: str
    policy: StsPolicy
    policy_url: str
    policy_text: str
    record_name: str
    record: StsRecord
    record_text: str


def build_policy(
    *,
    mode: PolicyMode | str,
    mx: Iterable[str],
    max_age: int = DEFAULT_MAX_AGE,
    extensions: Iterable[tuple[str, str]] = (),
) -> StsPolicy:
    """Build a policy from the owner's settings (RFC 8461 §3.2).

    Args:
        mode: ``enforce``, ``testing`` or ``none``.
        mx: the MX patterns (``name`` or ``*.name``, U-labels allowed: they
            are converted to the A-labels the file must carry).
        max_age: seconds, 0 to 31557600.
        extensions: extra ``(key, value)`` fields.

    Raises:
        UsageError: a setting is out of range or not a valid pattern, or
            ``mx`` is empty while ``mode`` is not ``none``.
    """
    try:
        return StsPolicy(
            mode=PolicyMode(mode),
            mx=tuple(mx),
            max_age=max_age,
            extensions=tuple(extensions),
        )
    except ValidationError as exc:
        problems = "; ".join(error["msg"] for error in exc.errors())
        raise UsageError(f"invalid policy: {problems}") from exc
    except ValueError as exc:  # PolicyMode(mode)
        raise UsageError(f"mode {mode!r} is not one of enforce, testing, none") from exc


def policy_id(policy: StsPolicy, *, now: datetime | None = None) -> str:
    """A fresh ``id`` for a policy's TXT record (RFC 8461 §3.1).

    Args:
        policy: the policy the id names.
        now: if given (timezone-aware), the id starts with this time in UTC as
            ``YYYYMMDDHHMMSSZ``; otherwise it is derived from the content only.

    Returns:
        1 to 32 ASCII letters and digits.

    Raises:
        UsageError: ``now`` has no timezone.
    """
    digest = hashlib.sha256(render_policy(policy).encode("utf-8")).hexdigest()
    if now is None:
        return digest[:32]
    if now.tzinfo is None or now.utcoffset() is None:
        raise UsageError("now must be timezone-aware")
    return now.astimezone(UTC).strftime("%Y%m%d%H%M%SZ") + digest[:8]


def build_publication(
    domain: str, policy: StsPolicy, *, now: datetime | None = None
) -> StsPublication:
    """Everything to publish for ``policy`` at ``domain``: file, URL, TXT name and value (RFC 8461 §3.1, §3.3).

    Args:
        domain: the Policy Domain (U-labels allowed).
        policy: the policy, e.g. from :func:`build_policy`.
        now: passed to :func:`policy_id`.

    Raises:
        UsageError: ``domain`` is not a host name, or ``now`` is naive.
    """
    try:
        url = policy_url(domain)
        name = record_name(domain)
    except NameSyntaxError as exc:
        raise UsageError(f"domain {domain!r}: {exc}") from exc
    record_id = policy_id(policy, now=now)
    return StsPublication(
        domain=name.removeprefix("_mta-sts."),
        policy=policy,
        policy_url=url,
        policy_text=render_policy(policy),
        record_name=name,
        record=StsRecord(id=record_id),
        record_text=render_record(record_id),
    )
