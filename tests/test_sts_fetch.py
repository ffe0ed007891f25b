"""RFC 8461 §3.3: the rules a policy fetch's response must meet, checked by the core."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mtasecure import FailureReason
from mtasecure._http import HttpResponse
from mtasecure.sts import (
    MAX_POLICY_BYTES,
    POLICY_MEDIA_TYPE,
    PolicyMode,
    StsPolicy,
    check_response,
    check_transport_failure,
)
from mtasecure.sts._fetch import media_type

URL = "https://mta-sts.example.com/.well-known/mta-sts.txt"
POLICY = b"version: STSv1\r\nmode: enforce\r\nmx: mx.example.com\r\nmax_age: 86400\r\n"
FETCH_ERROR = FailureReason.STS_POLICY_FETCH_ERROR
INVALID = FailureReason.STS_POLICY_INVALID


def response(
    body: bytes = POLICY,
    *,
    status: int = 200,
    content_type: str | None = "text/plain",
    truncated: bool = False,
    redirected: bool = False,
) -> HttpResponse:
    headers = (("content-type", content_type),) if content_type is not None else ()
    return HttpResponse(
        url=URL,
        status=status,
        headers=headers,
        body=body,
        truncated=truncated,
        redirected=redirected,
    )


def test_valid_response_gives_the_policy() -> None:
    policy = check_response(response())
    assert isinstance(policy, StsPolicy)
    assert policy.mode is PolicyMode.ENFORCE
    assert policy.mx == ("mx.example.com",)


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain; charset=utf-8",
        "TEXT/Plain;charset=US-ASCII",
        " text/plain ; format=flowed",
        "text/plain;",
    ],
)
def test_media_type_parameters_and_case_are_allowed(content_type: str) -> None:
    assert isinstance(check_response(response(content_type=content_type)), StsPolicy)


@pytest.mark.parametrize(
    ("changes", "reason", "words"),
    [
        ({"status": 404}, FETCH_ERROR, "status 404"),
        ({"status": 301}, FETCH_ERROR, "status 301"),
        ({"status": 204}, FETCH_ERROR, "status 204"),
        ({"status": 500}, FETCH_ERROR, "status 500"),
        ({"redirected": True}, FETCH_ERROR, "redirect"),
        ({"content_type": "text/html"}, FETCH_ERROR, "'text/html'"),
        ({"content_type": "text/plainx"}, FETCH_ERROR, "'text/plainx'"),
        ({"content_type": "application/octet-stream"}, FETCH_ERROR, "media type"),
        ({"content_type": None}, FETCH_ERROR, "media type none"),
        ({"content_type": ""}, FETCH_ERROR, "media type none"),
        ({"truncated": True}, FETCH_ERROR, "larger than"),
        ({"body": b"<html>not found</html>"}, INVALID, "RFC 8461 §3.2"),
        ({"body": b""}, INVALID, "no version"),
        ({"body": b"\xff\xfe"}, INVALID, "UTF-8"),
    ],
)
def test_each_rule_maps_to_its_result_type(
    changes: dict[str, object], reason: FailureReason, words: str
) -> None:
    result = check_response(response(**changes))  # type: ignore[arg-type]
    assert not isinstance(result, StsPolicy)
    assert result.reason is reason
    assert words in result.detail
    assert URL in result.detail


def test_redirect_is_rejected_before_the_status_is_read() -> None:
    # A client that followed a redirect ends with a 200: the flag alone rejects it.
    result = check_response(response(redirected=True))
    assert not isinstance(result, StsPolicy)
    assert result.reason is FETCH_ERROR


def test_size_cap_boundary() -> None:
    # Exactly the cap is accepted; one octet more is not (RFC 8461 §3.3).
    padded = POLICY + b"x: " + b"a" * (MAX_POLICY_BYTES - len(POLICY) - 4) + b"\n"
    assert len(padded) == MAX_POLICY_BYTES
    assert isinstance(check_response(response(padded)), StsPolicy)
    over = padded + b"\n"
    result = check_response(response(over))
    assert not isinstance(result, StsPolicy)
    assert result.reason is FETCH_ERROR


def test_a_smaller_cap_is_honoured() -> None:
    result = check_response(response(), max_bytes=len(POLICY) - 1)
    assert not isinstance(result, StsPolicy)
    assert result.reason is FETCH_ERROR
    assert isinstance(check_response(response(), max_bytes=len(POLICY)), StsPolicy)


def test_transport_failures() -> None:
    cert = check_transport_failure(URL, "certificate has expired", certificate=True)
    assert cert.reason is FailureReason.STS_WEBPKI_INVALID
    assert "expired" in cert.detail
    conn = check_transport_failure(URL, "connection refused", certificate=False)
    assert conn.reason is FETCH_ERROR


def test_media_type_helper() -> None:
    assert media_type(None) is None
    assert media_type(" ; charset=x") is None
    assert media_type("Text/Plain ; charset=x") == POLICY_MEDIA_TYPE


@given(
    status=st.integers(min_value=100, max_value=999),
    headers=st.lists(st.tuples(st.text(max_size=20), st.text(max_size=40)), max_size=4),
    body=st.binary(max_size=300) | st.sampled_from([POLICY, POLICY + b"\x00"]),
    truncated=st.booleans(),
    redirected=st.booleans(),
)
def test_never_raises_and_passes_only_a_clean_200(
    status: int,
    headers: list[tuple[str, str]],
    body: bytes,
    truncated: bool,
    redirected: bool,
) -> None:
    answer = HttpResponse(
        url=URL,
        status=status,
        headers=tuple((k.lower(), v) for k, v in headers),
        body=body,
        truncated=truncated,
        redirected=redirected,
    )
    result = check_response(answer)
    if isinstance(result, StsPolicy):
        assert status == 200
        assert not truncated
        assert not redirected
        assert media_type(answer.header("content-type")) == "text/plain"
    else:
        assert result.reason in {FETCH_ERROR, INVALID}
