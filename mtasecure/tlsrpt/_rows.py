"""Flat encodings of policies and failure groups for result stores (RFC 8460 §4.4).

SQL and key-value stores keep a policy and a failure-details group as a
canonical JSON text (the RFC's own field names, sorted keys), so equal values
always give equal keys and a stored row reads back as the same model.
"""

from __future__ import annotations

import json
from functools import lru_cache

from mtasecure.errors import StoreError
from mtasecure.tlsrpt._collect import DetailCount, ReportWindow, SessionCount, WindowResults
from mtasecure.tlsrpt._report import FailureDetail, ReportPolicy

__all__ = ["decode_detail", "decode_policy", "encode_detail", "encode_policy", "rows_to_results"]


def _canonical(data: object) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@lru_cache(maxsize=65536)
def encode_policy(policy: ReportPolicy) -> str:
    """A policy as canonical JSON text (cached: a store writes the same few policies often)."""
    return _canonical(policy.model_dump(mode="json", by_alias=True))


def encode_detail(detail: FailureDetail) -> str:
    """A failure group, without its count, as canonical JSON text."""
    data = detail.model_dump(mode="json", by_alias=True, exclude_none=True)
    data.pop("failed-session-count", None)
    return _canonical(data)


@lru_cache(maxsize=4096)
def decode_policy(text: str) -> ReportPolicy:
    """The policy ``encode_policy`` wrote.

    Raises:
        StoreError: the stored text is not a policy (a corrupted store).
    """
    try:
        return ReportPolicy.model_validate_json(text)
    except ValueError as exc:
        raise StoreError(f"stored policy is unreadable: {text[:80]!r}") from exc


def decode_detail(text: str, count: int) -> FailureDetail:
    """The failure group ``encode_detail`` wrote, with ``count`` sessions.

    Raises:
        StoreError: the stored text is not a failure group.
    """
    try:
        data = json.loads(text)
        data["failed-session-count"] = count
        return FailureDetail.model_validate(data)
    except (ValueError, TypeError) as exc:
        raise StoreError(f"stored failure detail is unreadable: {text[:80]!r}") from exc


def rows_to_results(
    window: ReportWindow,
    sessions: list[tuple[str, str, int, int]],
    details: list[tuple[str, str, str, int]],
) -> WindowResults:
    """Rows ``(domain, policy, ok, failed)`` and ``(domain, policy, detail, n)`` as results."""
    return WindowResults(
        window=window,
        sessions=tuple(
            SessionCount(policy_domain=d, policy=decode_policy(p), successful=ok, failed=bad)
            for d, p, ok, bad in sessions
        ),
        details=tuple(
            DetailCount(policy_domain=d, policy=decode_policy(p), detail=decode_detail(k, n))
            for d, p, k, n in details
        ),
    )
