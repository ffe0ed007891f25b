"""Delivering reports to every rua, retries, flushing results, and the scheduler (RFC 8460 §3–§5)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mtasecure._http import HttpResponse
from mtasecure.errors import (
    HttpError,
    ParseError,
    SmtpError,
    StoreError,
    TransportTimeout,
    UsageError,
)
from mtasecure.results import FailureReason
from mtasecure.tlsrpt import (
    BuiltReport,
    DkimKey,
    ReportOptions,
    ReportWindow,
    ResultBatch,
    TlsRptCollector,
    WindowResults,
    _schedule,
    build_reports,
    parse_record,
    parse_report,
)
from mtasecure.tlsrpt._schedule import plan_due_windows, plan_send_time
from mtasecure.tlsrpt._submit import (
    RetryPolicy,
    UploadVerdict,
    judge_upload,
    parse_rua,
    plan_retry,
)
from mtasecure.transport import HttpClient, MailSubmitter
from mtasecure.transport.report_memory import MemoryReportStore
from mtasecure.transport.report_sqlite import SqliteReportStore
from mtasecure.transport.report_submit import (
    ResultFlusher,
    run_report_scheduler,
    send_due_reports,
    submit_report,
)

DAY1 = ReportWindow.containing(datetime(2026, 3, 1, tzinfo=UTC))
OPTIONS = ReportOptions(organization_name="Sender Org", contact_info="tlsrpt@mail.sender.example")
SENDER = "tlsrpt@mail.sender.example"


class FakeHttp:
    """Answers POSTs from a script of statuses or exceptions, and keeps what it got."""

    def __init__(self, script: Sequence[int | Exception] = (200,)) -> None:
        self.script = list(script)
        self.posts: list[tuple[str, bytes, str, float]] = []

    async def get(self, url: str, *, max_bytes: int, timeout: float) -> HttpResponse:
        raise AssertionError("reports are never fetched")

    async def post(
        self, url: str, *, body: bytes, content_type: str, timeout: float
    ) -> HttpResponse:
        self.posts.append((url, body, content_type, timeout))
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, Exception):
            raise step
        return HttpResponse(url=url, status=step)


class FakeMail:
    def __init__(self, script: Sequence[Exception | None] = (None,)) -> None:
        self.script = list(script)
        self.sent: list[tuple[str, list[str], bytes]] = []

    async def send(self, sender: str, recipients: Sequence[str], message: bytes) -> None:
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if step is not None:
            raise step
        self.sent.append((sender, list(recipients), message))


class FakeTime:
    """A monotonic clock that only moves when the code sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _report(domain: str = "example.net") -> BuiltReport:
    c = TlsRptCollector()
    c.record(domain, None, None)
    c.record(domain, None, FailureReason.STARTTLS_NOT_SUPPORTED)
    batch = c.drain(DAY1)
    assert batch is not None
    return build_reports(batch, OPTIONS)[0]


def test_fakes_satisfy_the_protocols() -> None:
    assert isinstance(FakeHttp(), HttpClient)
    assert isinstance(FakeMail(), MailSubmitter)


@pytest.mark.parametrize(
    ("uri", "kind", "where"),
    [
        ("mailto:tlsrpt@example.net", "mailto", "tlsrpt@example.net"),
        ("MAILTO:tls%2Brpt@example.net", "mailto", "tls+rpt@example.net"),
        ("mailto:tlsrpt@example.net?subject=x", "mailto", "tlsrpt@example.net"),
        ("mailto:%22a%20b%22@example.net", "mailto", '"a b"@example.net'),
        ("https://reports.example.net/v1/tlsrpt", "https", "https://reports.example.net/v1/tlsrpt"),
        ("HTTPS://reports.example.net:8443/", "https", "https://reports.example.net:8443/"),
        ("http://reports.example.net/", "unsupported", "scheme 'http' is not mailto or https"),
        ("mailto:no-at-sign", "unsupported", "no '@'"),
        ("mailto:a@b.example,c@d.example", "unsupported", "unencoded ','"),
        ("https:///no-host", "unsupported", "must have a host"),
        ("https://[::1", "unsupported", "is not a URI"),
        ("ftp://x.example/", "unsupported", "scheme 'ftp'"),
        # Looser readings used to take these: the record parser does not.
        (" mailto:tlsrpt@example.net ", "unsupported", "is not a URI"),
        ("mailto:a b@example.net", "unsupported", "is not a URI"),
        ("mailto:tlsrpt@example..net", "unsupported", "address domain"),
        ("https://user@reports.example.net/", "unsupported", "user information"),
        ("https://reports.example.net:99999/", "unsupported", "not 1-65535"),
        ("https://reports_example.net/", "unsupported", "host"),
        ("mailto://tlsrpt@example.net", "unsupported", "neither '//' nor '#'"),
        ("", "unsupported", "empty URI"),
    ],
)
def test_parse_rua(uri: str, kind: str, where: str) -> None:
    target = parse_rua(uri)
    assert target.kind == kind
    assert target.uri == uri
    if kind == "unsupported":
        assert (target.address, target.url) == (None, None)
        assert where in (target.reason or "")
    else:
        assert target.reason is None
        assert (target.address or target.url) == where


def _accepted_by_the_record_parser(uri: str) -> bool:
    """Whether a record whose ``rua`` is ``uri`` alone lists exactly ``uri`` as usable."""
    scheme, colon, rest = uri.partition(":")
    try:
        record = parse_record(f"v=TLSRPTv1; rua={uri}")
    except ParseError:
        return False
    return record.rua == (scheme.lower() + colon + rest,)


_URI_CHARS = st.sampled_from(
    [
        *"abcdeXYZ019-._~:/?#[]@!$&'()*+,;=% \t\"<>",
        "%2B",
        "%40",
        "%zz",
        "%C3%A9",
        "é",
        "example.net",
    ]
)
_URIISH = st.builds(
    "".join,
    st.tuples(
        st.sampled_from(["mailto:", "MAILTO:", "https://", "HTTPS://", "https:", "http://", "x:"]),
        st.one_of(
            st.sampled_from(["tlsrpt", "a.b", "tls%2Brpt", "%22a%20b%22", "%FF", "a..b", "", "u@"]),
            st.lists(_URI_CHARS, max_size=8).map("".join),
        ),
        st.sampled_from(
            ["@example.net", "@b.example", "example.net", "@a_b.example", ":443", ":0", "[::1]", ""]
        ),
        st.sampled_from(
            ["", "/", "/v1/tlsrpt", "?subject=x", "?x", "#f", ",mailto:b@c.example", "; x=y", " "]
        ),
    ),
)


# Well-formed shapes, with enough freedom (percent escapes, labels with '-', ports, dots)
# to land on both sides of the rule.
_NEAR_VALID = st.one_of(
    st.from_regex(
        r"(?:mailto|MAILTO|Mailto):[a-z0-9+%._-]{1,8}@[a-z0-9-]{1,8}(?:\.[a-z0-9-]{1,8}){0,2}"
        r"(?:\?subject=[a-z%0-9]{0,4})?",
        fullmatch=True,
    ),
    st.from_regex(
        r"(?:https|HTTPS)://[a-z0-9-]{1,10}(?:\.[a-z0-9_-]{1,10}){0,2}(?::[0-9]{1,6})?"
        r"(?:/[A-Za-z0-9._~%-]{0,8}){0,3}",
        fullmatch=True,
    ),
)


@given(st.one_of(st.text(max_size=80), _URIISH, _NEAR_VALID))
def test_parse_rua_follows_the_record_parser(uri: str) -> None:
    # One rule (RFC 8460 §3): parse_rua takes a URI iff the record parser would list it.
    target = parse_rua(uri)  # never raises: ParseError included, nothing escapes
    assert (target.kind != "unsupported") is _accepted_by_the_record_parser(uri)
    assert (target.reason is None) is (target.kind != "unsupported")
    if target.kind == "https":
        assert target.url == parse_record(f"v=TLSRPTv1; rua={uri}").rua[0]


async def test_an_unsupported_rua_says_why() -> None:
    (outcome,) = await submit_report(_report(), ["http://reports.example.net/"])
    assert (outcome.delivered, outcome.attempts) == (False, 0)
    assert outcome.detail == "unsupported: scheme 'http' is not mailto or https (RFC 8460 §3)"


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, UploadVerdict.DELIVERED),
        (201, UploadVerdict.DELIVERED),
        (204, UploadVerdict.DELIVERED),
        (301, UploadVerdict.FAILED),
        (400, UploadVerdict.FAILED),
        (404, UploadVerdict.FAILED),
        (413, UploadVerdict.FAILED),
        (408, UploadVerdict.RETRY),
        (429, UploadVerdict.RETRY),
        (500, UploadVerdict.RETRY),
        (503, UploadVerdict.RETRY),
    ],
)
def test_judge_upload(status: int, verdict: UploadVerdict) -> None:
    assert judge_upload(HttpResponse(url="https://x.example/", status=status)) is verdict


@given(
    attempts=st.integers(1, 30),
    elapsed=st.floats(0, 200_000, allow_nan=False),
    seed=st.integers(0, 2**32),
)
def test_retry_plan_is_bounded_and_jittered(attempts: int, elapsed: float, seed: int) -> None:
    policy = RetryPolicy()
    delay = plan_retry(policy, attempts, elapsed, Random(seed))
    if attempts >= policy.max_attempts:
        assert delay is None
        return
    if delay is None:
        return  # only allowed when the total budget would be passed; checked below
    backoff = min(policy.max_delay, policy.first_delay * policy.factor ** (attempts - 1))
    assert 0 <= delay <= backoff
    assert elapsed + delay <= policy.total


def test_retry_plan_stops_when_the_budget_is_spent() -> None:
    policy = RetryPolicy(first_delay=10, total=100, max_attempts=100)
    assert plan_retry(policy, 1, 100.0, Random(1)) is None
    assert plan_retry(policy, 1, 0.0, Random(1)) is not None


def test_retry_plan_grows_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(first_delay=1, factor=2, max_delay=8, max_attempts=50, total=1e9)
    highest = [
        max(plan_retry(policy, n, 0, Random(s)) or 0 for s in range(300)) for n in (1, 2, 3, 4, 6)
    ]
    assert highest[0] <= 1 < highest[1] <= 2 < highest[2] <= 4 < highest[3] <= 8
    assert highest[4] <= 8


async def test_every_rua_gets_the_report() -> None:
    http, mail, clock = FakeHttp(), FakeMail(), FakeTime()
    report = _report()
    outcomes = await submit_report(
        report,
        [
            "https://a.example/tlsrpt",
            "mailto:rua@example.net",
            "https://b.example/tlsrpt",
            "mailto:other@example.org",
        ],
        http=http,
        mail=mail,
        sender=SENDER,
        now=datetime(2026, 3, 2, 2, tzinfo=UTC),
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    )
    assert [o.delivered for o in outcomes] == [True, True, True, True]
    assert sorted(p[0] for p in http.posts) == [
        "https://a.example/tlsrpt",
        "https://b.example/tlsrpt",
    ]
    for _, body, content_type, _ in http.posts:
        assert content_type == "application/tlsrpt+gzip"
        assert parse_report(body) == report.report
    assert sorted(r[0] for _, r, _ in mail.sent) == ["other@example.org", "rua@example.net"]
    assert all(b"TLS-Report-Domain: example.net" in m for _, _, m in mail.sent)
    assert clock.sleeps == []


async def test_mail_is_signed_when_a_key_is_given() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    mail = FakeMail()
    await submit_report(
        _report(),
        ["mailto:rua@example.net"],
        mail=mail,
        sender=SENDER,
        dkim=DkimKey(selector="s", domain="mail.sender.example", private_key=pem),
    )
    assert mail.sent[0][2].startswith(b"DKIM-Signature:")


def _ed25519_keys() -> tuple[bytes, bytes, bytes]:
    """An Ed25519 key as PKCS#8 PEM, as its base64 seed, and its DKIM key record."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    record = b"v=DKIM1; k=ed25519; p=" + base64.b64encode(public)
    return pem, base64.b64encode(seed), record


@pytest.mark.parametrize("form", ["pem", "seed"])
async def test_mail_is_signed_with_ed25519_rfc8463(form: str) -> None:
    import dkim

    pem, seed, record = _ed25519_keys()
    mail = FakeMail()
    await submit_report(
        _report(),
        ["mailto:rua@example.net"],
        mail=mail,
        sender=SENDER,
        dkim=DkimKey(
            selector="s",
            domain="mail.sender.example",
            private_key=pem if form == "pem" else seed,
            algorithm="ed25519-sha256",
        ),
    )
    signed = mail.sent[0][2]
    assert signed.startswith(b"DKIM-Signature:")
    assert b"a=ed25519-sha256" in signed.split(b"\r\n\r\n", 1)[0].replace(b"\r\n ", b" ")
    queried: list[bytes] = []

    def key_record(name: bytes, timeout: int = 5) -> bytes:
        queried.append(name)
        return record

    assert dkim.verify(signed, dnsfunc=key_record, tlsrpt=True)
    assert queried == [b"s._domainkey.mail.sender.example."]


def test_an_rsa_pem_for_ed25519_is_a_usage_error() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from mtasecure.transport.report_submit import sign_report_message

    pem = rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key = DkimKey(selector="s", domain="d.example", private_key=pem, algorithm="ed25519-sha256")
    with pytest.raises(UsageError, match="Ed25519"):
        sign_report_message(b"From: a@d.example\r\n\r\nx\r\n", key)


def test_an_unreadable_ed25519_pem_is_a_usage_error() -> None:
    from mtasecure.transport.report_submit import sign_report_message

    pem = b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"
    key = DkimKey(selector="s", domain="d.example", private_key=pem, algorithm="ed25519-sha256")
    with pytest.raises(UsageError, match="unreadable Ed25519 key"):
        sign_report_message(b"From: a@d.example\r\n\r\nx\r\n", key)


def test_an_unknown_dkim_algorithm_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        DkimKey(selector="s", domain="d.example", private_key=b"k", algorithm="rsa-sha1")  # type: ignore[arg-type]


async def test_https_retries_with_backoff_then_delivers() -> None:
    http, clock = FakeHttp([503, HttpError("reset"), TransportTimeout("slow"), 200]), FakeTime()
    policy = RetryPolicy(first_delay=10, factor=2, max_delay=1000, total=10_000, max_attempts=10)
    (outcome,) = await submit_report(
        _report(),
        ["https://a.example/tlsrpt"],
        http=http,
        retry=policy,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        rng=Random(7),
    )
    assert outcome.delivered
    assert outcome.attempts == 4
    assert len(clock.sleeps) == 3
    for n, delay in enumerate(clock.sleeps):
        assert 0 <= delay <= 10 * 2**n
    assert all(p[3] == policy.attempt_timeout for p in http.posts)


async def test_permanent_http_failure_is_not_retried() -> None:
    http, clock = FakeHttp([404]), FakeTime()
    (outcome,) = await submit_report(
        _report(), ["https://a.example/x"], http=http, sleep=clock.sleep, monotonic=clock.monotonic
    )
    assert not outcome.delivered
    assert outcome.attempts == 1
    assert outcome.detail == "HTTP 404"


async def test_total_retry_time_is_bounded() -> None:
    http, clock = FakeHttp([500]), FakeTime()
    policy = RetryPolicy(
        first_delay=60, factor=2, max_delay=3600, total=4 * 3600, max_attempts=1000
    )
    (outcome,) = await submit_report(
        _report(),
        ["https://a.example/x"],
        http=http,
        retry=policy,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        rng=Random(3),
    )
    assert not outcome.delivered
    assert clock.now <= policy.total
    assert outcome.attempts == len(http.posts) > 3


async def test_mail_failures_are_retried_and_one_bad_rua_does_not_stop_the_others() -> None:
    mail, http, clock = FakeMail([SmtpError("451 try later"), None]), FakeHttp([200]), FakeTime()
    outcomes = await submit_report(
        _report(),
        ["gopher://x.example/", "mailto:rua@example.net", "https://a.example/x"],
        http=http,
        mail=mail,
        sender=SENDER,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    )
    assert [(o.delivered, o.attempts) for o in outcomes] == [(False, 0), (True, 2), (True, 1)]


async def test_missing_transport_is_an_outcome_not_an_exception() -> None:
    outcomes = await submit_report(_report(), ["mailto:a@example.net", "https://a.example/x"])
    assert [o.delivered for o in outcomes] == [False, False]
    assert "no mail submitter" in outcomes[0].detail
    assert "no HTTP client" in outcomes[1].detail


# --- flushing results into a store -------------------------------------------------


class FlakyStore(MemoryReportStore):
    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def add(self, batch: ResultBatch) -> bool:
        if self.failures:
            self.failures -= 1
            raise StoreError("disk full")
        return await super().add(batch)


async def test_a_failed_store_never_drops_recorded_results() -> None:
    collector, store = TlsRptCollector(), FlakyStore(failures=2)
    flusher = ResultFlusher(collector, store)
    now = datetime(2026, 3, 1, 10, tzinfo=UTC)
    collector.record("example.net", None, None)
    with pytest.raises(StoreError):
        await flusher.flush(now)
    collector.record("example.net", None, None)
    with pytest.raises(StoreError):
        await flusher.flush(now)
    assert flusher.queued == 2
    collector.record("example.net", None, None)
    assert await flusher.flush(now) == 3
    assert flusher.queued == 0
    assert (await store.load(DAY1)).session_total == 3


async def test_flush_attributes_results_to_the_window_of_now() -> None:
    collector, store = TlsRptCollector(), MemoryReportStore()
    flusher = ResultFlusher(collector, store)
    collector.record("example.net", None, None)
    await flusher.flush(datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC))
    collector.record("example.net", None, None)
    await flusher.flush(datetime(2026, 3, 2, 0, 0, 1, tzinfo=UTC))
    assert [w.start.day for w in await store.windows()] == [1, 2]


# --- the scheduler -------------------------------------------------------------------


def test_send_time_is_jittered_within_bounds_and_stable() -> None:
    times = {
        plan_send_time(DAY1, submitter=f"s{i}.example", min_delay=timedelta(minutes=5))
        for i in range(50)
    }
    assert len(times) == 50  # jittered across submitters
    assert all(DAY1.end + timedelta(minutes=5) <= t <= DAY1.end + timedelta(hours=4) for t in times)
    assert plan_send_time(DAY1, submitter="s1.example") == plan_send_time(
        DAY1, submitter="s1.example"
    )


def test_due_windows_and_next_due_time() -> None:
    at = plan_send_time(DAY1, submitter="a.example")
    due, upcoming = plan_due_windows([DAY1], now=at - timedelta(seconds=1), submitter="a.example")
    assert due == ()
    assert upcoming == at
    due, upcoming = plan_due_windows([DAY1, DAY1.next()], now=at, submitter="a.example")
    assert due == (DAY1,)
    assert upcoming == plan_send_time(DAY1.next(), submitter="a.example")


async def _filled(store: MemoryReportStore | SqliteReportStore, domains: Sequence[str]) -> None:
    collector = TlsRptCollector()
    for d in domains:
        collector.record(d, None, None)
    batch = collector.drain(DAY1)
    assert batch is not None
    await store.add(batch)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    if request.param == "memory":
        yield MemoryReportStore()
        return
    s = SqliteReportStore(tmp_path / "s.db")
    yield s
    s.close()


async def _rua(domain: str) -> Sequence[str]:
    return [f"https://tlsrpt.{domain}/v1"]


async def test_reports_go_out_once_after_the_window_closes(store) -> None:  # type: ignore[no-untyped-def]
    await _filled(store, ["a.example", "b.example"])
    http = FakeHttp()
    at = plan_send_time(DAY1, submitter=OPTIONS.sender_domain)
    sent, upcoming = await send_due_reports(
        store, OPTIONS, now=at - timedelta(seconds=1), lookup_rua=_rua, owner="mta1", http=http
    )
    assert sent == ()
    assert upcoming == at
    sent, _ = await send_due_reports(
        store, OPTIONS, now=at, lookup_rua=_rua, owner="mta1", http=http
    )
    assert sorted(s.policy_domain for s in sent) == ["a.example", "b.example"]
    assert all(s.delivered for s in sent)
    sent, _ = await send_due_reports(
        store, OPTIONS, now=at + timedelta(hours=1), lookup_rua=_rua, owner="mta1", http=http
    )
    assert sent == ()
    assert len(http.posts) == 2
    assert await store.windows() == ()  # pruned once everything was sent


async def test_a_restart_resumes_without_sending_twice(store) -> None:  # type: ignore[no-untyped-def]
    await _filled(store, ["a.example", "b.example", "c.example"])
    http = FakeHttp()
    at = plan_send_time(DAY1, submitter=OPTIONS.sender_domain)

    async def crashing_lookup(domain: str) -> Sequence[str]:
        if domain == "b.example":
            raise RuntimeError("process killed here")
        return await _rua(domain)

    with pytest.raises(RuntimeError):
        await send_due_reports(
            store, OPTIONS, now=at, lookup_rua=crashing_lookup, owner="mta1", http=http
        )
    assert [p[0] for p in http.posts] == ["https://tlsrpt.a.example/v1"]
    assert await store.sent(DAY1) == {"a.example"}
    sent, _ = await send_due_reports(
        store, OPTIONS, now=at, lookup_rua=_rua, owner="mta1", http=http
    )
    assert sorted(s.policy_domain for s in sent) == ["b.example", "c.example"]
    assert sorted(p[0] for p in http.posts) == [
        "https://tlsrpt.a.example/v1",
        "https://tlsrpt.b.example/v1",
        "https://tlsrpt.c.example/v1",
    ]


async def test_fleet_members_do_not_send_the_same_window(store) -> None:  # type: ignore[no-untyped-def]
    await _filled(store, ["a.example"])
    at = plan_send_time(DAY1, submitter=OPTIONS.sender_domain)
    assert await store.claim(DAY1, "mta1", now=at, lease=3600)
    http = FakeHttp()
    sent, _ = await send_due_reports(
        store, OPTIONS, now=at, lookup_rua=_rua, owner="mta2", http=http
    )
    assert sent == ()
    assert http.posts == []


async def test_domains_without_rua_get_no_delivery_but_are_done() -> None:
    store = MemoryReportStore()
    await _filled(store, ["a.example"])

    async def none(domain: str) -> Sequence[str]:
        return []

    at = plan_send_time(DAY1, submitter=OPTIONS.sender_domain)
    sent, _ = await send_due_reports(store, OPTIONS, now=at, lookup_rua=none, owner="m")
    assert sent == ()
    assert await store.windows() == ()


async def test_the_scheduler_loop_flushes_and_sends() -> None:
    store, collector, http = MemoryReportStore(), TlsRptCollector(), FakeHttp()
    at = plan_send_time(DAY1, submitter=OPTIONS.sender_domain)
    times = iter([datetime(2026, 3, 1, 12, tzinfo=UTC), at, at, at])
    stop = asyncio.Event()
    got: list[str] = []

    def clock() -> datetime:
        try:
            return next(times)
        except StopIteration:
            stop.set()
            return at

    def on_sent(item: object) -> None:
        got.append(item.policy_domain)  # type: ignore[attr-defined]

    collector.record("a.example", None, None)
    await asyncio.wait_for(
        run_report_scheduler(
            collector,
            store,
            OPTIONS,
            lookup_rua=_rua,
            owner="m",
            stop=stop,
            flush_interval=0.01,
            clock=clock,
            on_sent=on_sent,
            http=http,
        ),
        timeout=10,
    )
    assert got == ["a.example"]
    assert len(http.posts) == 1
    assert await store.load(DAY1) == WindowResults(window=DAY1)


async def test_smtp_submitter_times_out_on_a_silent_server() -> None:
    from mtasecure.transport.report_submit import SmtpSubmitter

    writers: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.read()  # says nothing until the client goes away
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        submitter = SmtpSubmitter("127.0.0.1", port, starttls=False, timeout=0.3)
        started = asyncio.get_running_loop().time()
        with pytest.raises(TransportTimeout):
            await submitter.send(SENDER, ["rua@example.net"], b"Subject: x\r\n\r\nx\r\n")
        assert asyncio.get_running_loop().time() - started < 3
        await asyncio.sleep(0.5)  # the worker thread's own socket timeout ends its attempt
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_smtp_submitter_refusal_is_an_smtp_error() -> None:
    from mtasecure.transport.report_submit import SmtpSubmitter

    writers: list[asyncio.StreamWriter] = []

    async def refusing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        writer.write(b"554 no service\r\n")
        await writer.drain()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(refusing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        submitter = SmtpSubmitter("127.0.0.1", port, starttls="auto", timeout=5)
        with pytest.raises(SmtpError):
            await submitter.send(SENDER, ["rua@example.net"], b"Subject: x\r\n\r\nx\r\n")
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


ZONE = """
_smtp._tls.a.example.   TXT "v=TLSRPTv1; rua=mailto:tlsrpt@a.example,https://r.a.example/v1"
_smtp._tls.b.example.   TXT "v=TLSRPTv1; rua=mailto:x@b.example"
_smtp._tls.b.example.   TXT "v=TLSRPTv1; rua=mailto:y@b.example"
_smtp._tls.c.example.   TXT "v=spf1 -all"
broken.example.         FAIL
_smtp._tls.broken.example. FAIL
"""


async def test_resolve_rua_reads_the_record_through_a_resolver() -> None:
    from mtasecure.errors import DnsError
    from mtasecure.testing import FakeResolver
    from mtasecure.transport.report_submit import resolve_rua

    resolver = FakeResolver.from_zone(ZONE)
    assert await resolve_rua("a.example", resolver=resolver) == (
        "mailto:tlsrpt@a.example",
        "https://r.a.example/v1",
    )
    assert await resolve_rua("b.example", resolver=resolver) == ()  # two records: none (§3)
    assert await resolve_rua("c.example", resolver=resolver) == ()
    assert await resolve_rua("nothing.example", resolver=resolver) == ()
    with pytest.raises(DnsError):
        await resolve_rua("broken.example", resolver=resolver)


async def test_a_failed_rua_lookup_leaves_the_domain_for_the_next_pass() -> None:
    from functools import partial

    from mtasecure.testing import FakeResolver
    from mtasecure.transport.report_submit import resolve_rua

    store = MemoryReportStore()
    await _filled(store, ["a.example", "broken.example"])
    lookup = partial(resolve_rua, resolver=FakeResolver.from_zone(ZONE))
    http, mail = FakeHttp(), FakeMail()
    at = plan_send_time(DAY1, submitter=OPTIONS.sender_domain)
    sent, _ = await send_due_reports(
        store, OPTIONS, now=at, lookup_rua=lookup, owner="m", http=http, mail=mail, sender=SENDER
    )
    assert sorted((s.policy_domain, s.uri) for s in sent) == [
        ("a.example", "https://r.a.example/v1"),
        ("a.example", "mailto:tlsrpt@a.example"),
    ]
    assert await store.sent(DAY1) == {"a.example"}
    assert await store.windows() == (DAY1,)  # not pruned: broken.example is still owed


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan")])
def test_smtp_submitter_timeout_must_be_positive(timeout: float) -> None:
    from mtasecure.transport.report_submit import DEFAULT_SMTP_TIMEOUT, SmtpSubmitter

    assert DEFAULT_SMTP_TIMEOUT == 60.0
    with pytest.raises(UsageError, match="timeout must be a positive number"):
        SmtpSubmitter("127.0.0.1", 587, timeout=timeout)
    with pytest.raises(UsageError, match="starttls is True, False or 'auto'"):
        SmtpSubmitter("127.0.0.1", 587, starttls="yes")


def test_default_send_delay_bounds() -> None:
    # RFC 8460 §4.1: "some delay, perhaps several hours"; the defaults are the bounds.
    assert timedelta(minutes=5) == _schedule.DEFAULT_MIN_DELAY
    assert timedelta(hours=4) == _schedule.DEFAULT_MAX_DELAY
    times = [plan_send_time(DAY1, submitter=f"d{i}.example") for i in range(50)]
    assert all(
        DAY1.end + _schedule.DEFAULT_MIN_DELAY <= t <= DAY1.end + _schedule.DEFAULT_MAX_DELAY
        for t in times
    )
    fixed = timedelta(minutes=7)
    assert plan_send_time(DAY1, submitter="a.example", min_delay=fixed, max_delay=fixed) == (
        DAY1.end + fixed
    )


@pytest.mark.parametrize(
    ("min_delay", "max_delay"),
    [(timedelta(hours=2), timedelta(hours=1)), (timedelta(seconds=-1), timedelta(hours=1))],
)
def test_send_delay_bounds_are_checked(min_delay: timedelta, max_delay: timedelta) -> None:
    with pytest.raises(UsageError, match="min_delay"):
        plan_send_time(DAY1, submitter="a.example", min_delay=min_delay, max_delay=max_delay)
