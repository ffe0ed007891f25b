"""Pin the public API: every name in ``__all__`` exists, is sorted, and is intended."""

from __future__ import annotations

import importlib

import pytest

import mtasecure

EXPECTED_TOP_LEVEL = {
    "CheckResult",
    "DnsError",
    "FailureReason",
    "HttpError",
    "MessageSyntaxError",
    "MtaSecureError",
    "NameSyntaxError",
    "ParseError",
    "PolicySyntaxError",
    "RecordSyntaxError",
    "ReportSyntaxError",
    "SmtpError",
    "StoreError",
    "TlsaSyntaxError",
    "TransportError",
    "TransportTimeout",
    "UsageError",
    "__version__",
}

PUBLIC_MODULES = [
    "mtasecure",
    "mtasecure.certs",
    "mtasecure.client",
    "mtasecure.dane",
    "mtasecure.errors",
    "mtasecure.mx",
    "mtasecure.results",
    "mtasecure.sts",
    "mtasecure.testing",
    "mtasecure.tlsrpt",
    "mtasecure.transport",
    "mtasecure.transport.http",
    "mtasecure.transport.memcache",
]


def test_top_level_all_is_pinned() -> None:
    assert set(mtasecure.__all__) == EXPECTED_TOP_LEVEL


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_is_sorted_and_resolves(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported)
    assert len(exported) == len(set(exported))
    for member in exported:
        assert hasattr(module, member), f"{name}.{member} is in __all__ but missing"


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_public_objects_have_docstrings(name: str) -> None:
    module = importlib.import_module(name)
    undocumented = [
        member
        for member in module.__all__
        if not member.startswith("__")
        and callable(getattr(module, member))
        and not (getattr(module, member).__doc__ or "").strip()
    ]
    assert undocumented == []
