"""Pins the types of the MTA-STS discovery API; type-checked by mypy, never run."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, assert_type

from mtasecure import CheckResult
from mtasecure._http import HttpResponse
from mtasecure.client import MtaSecure, StsLookup, StsSettings
from mtasecure.sts import (
    CachedPolicy,
    Step,
    StepAction,
    StsDecision,
    StsExclusions,
    StsPolicy,
    TxtOutcome,
    TxtState,
    apply_policy,
    check_response,
    plan_after_fetch,
    plan_proactive,
    plan_refresh,
)
from mtasecure.testing import FakeHttpClient
from mtasecure.transport import HttpClient, MemoryPolicyCache, PolicyCache
from mtasecure.transport.http import HttpsClient

NOW = datetime(2025, 1, 1, tzinfo=UTC)


async def discovery(client: MtaSecure) -> None:
    assert_type(await client.sts_policy("example.com"), StsPolicy | None)
    assert_type(await client.sts_lookup("example.com"), StsLookup)
    assert_type(await client.sts_decision("example.com", ["mx.example.com"]), StsDecision)
    assert_type(await client.refresh_sts_policies(), tuple[str, ...])
    assert_type(client.sts_settings, StsSettings)
    lookup = await client.sts_lookup("example.com")
    assert_type(lookup.store_error, str)
    assert_type(lookup.state.unknown, bool)
    decision = await client.sts_decision("example.com", ["mx.example.com"])
    assert_type(decision.store_error, str)
    assert_type(decision.unknown, bool)
    settings = StsSettings(on_store_error="ignore")
    assert_type(settings.on_store_error, Literal["defer", "ignore"])


def core(response: HttpResponse, cached: CachedPolicy | None, policy: StsPolicy) -> None:
    assert_type(check_response(response), StsPolicy | CheckResult)
    step = plan_refresh(cached, TxtOutcome(TxtState.ABSENT), NOW)
    assert_type(step, Step)
    assert_type(plan_after_fetch("example.com", cached, "1", policy, NOW), Step)
    unread = plan_refresh(cached, TxtOutcome(TxtState.ABSENT), NOW, store_failed=True)
    assert_type(unread.action, StepAction)
    assert_type(plan_after_fetch("example.com", None, "1", policy, NOW, store_failed=True), Step)
    assert_type(apply_policy("example.com", None, [], store_error="down"), StsDecision)
    assert_type(plan_proactive([], NOW), tuple[str, ...])
    assert_type(apply_policy("example.com", policy, ["mx.example.com"]), StsDecision)
    assert_type(StsExclusions(["*.example.com"]).match("a.example.com"), bool)


def seams() -> None:
    cache: PolicyCache = MemoryPolicyCache()
    http: HttpClient = FakeHttpClient()
    real: HttpClient = HttpsClient()
    assert_type(cache, PolicyCache)
    assert_type(http, HttpClient)
    assert_type(real, HttpClient)
