"""The pure reading of replies (mtasecure._resolution) and the resolver's configuration.

Vectors follow RFC 4035 §4.9.3 (trusting AD), RFC 1034 §3.6.2 (CNAME), RFC
2308 §5 (negative TTL), RFC 6604 §3 (RCODE of a chain), RFC 7672 §2.1.1.
"""

from __future__ import annotations

from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mtasecure.transport
import mtasecure.transport.resolver as resolver_module
from mtasecure._resolution import (
    EDNS_PAYLOAD,
    MAX_CNAME_CHAIN,
    Question,
    Resolution,
    combine_security,
    query_name,
    query_type,
)
from mtasecure._wire import parse_reply
from mtasecure.dnssec import DnsAnswer, Security
from mtasecure.errors import DnsError, UsageError
from mtasecure.transport import DnsResolver, Nameserver, system_nameservers

S, N, B, D = Security.SECURE, Security.INSECURE, Security.BOGUS, Security.INDETERMINATE


def reply(
    query: dns.message.Message,
    *answers: str,
    authority: tuple[str, ...] = (),
    rcode: int = dns.rcode.NOERROR,
    ad: bool = False,
) -> dns.message.Message:
    out = dns.message.make_response(query)
    out.set_rcode(rcode)
    if ad:
        out.flags |= dns.flags.AD
    for line in answers:
        out.answer.append(dns.rrset.from_text(*line.split(None, 4)))
    for line in authority:
        out.authority.append(dns.rrset.from_text(*line.split(None, 4)))
    return out


def as_message(question: Question, qid: int = 4242) -> dns.message.Message:
    """The query as dnspython reads it off the wire."""
    return dns.message.from_wire(question.to_wire(qid))


def run(
    name: str, rdtype: str, *replies: object, trusted: bool = True, **kw: int
) -> tuple[Resolution, list[dns.message.Message]]:
    """Feed replies built by callables ``f(query) -> Message`` in turn, through the wire."""
    r = Resolution(name, rdtype, **kw)
    sent = []
    for make in replies:
        question = r.next_query()
        assert question is not None
        query = as_message(question)
        sent.append(query)
        wire = make(query).to_wire()  # type: ignore[operator]
        reply = parse_reply(wire)
        assert reply.answers(4242, question.key, question.rdtype)
        r.feed(reply, trusted=trusted)
    return r, sent


SOA = "example. 3600 IN SOA ns.example. h.example. 1 3600 900 604800 120"


def test_pinned_transport_all() -> None:
    # With the SMTP probe's value types (issue 5), the report protocols (issue 7)
    # and the two DNSSEC modes chosen by configuration (issue 3).
    assert mtasecure.transport.__all__ == [
        "BulkResolver",
        "Clock",
        "DnsResolver",
        "DnsSettings",
        "DnssecMode",
        "EhloKeyword",
        "EhloResponse",
        "HttpClient",
        "MailSubmitter",
        "MemoryPolicyCache",
        "Nameserver",
        "PolicyCache",
        "ProbeOutcome",
        "ProbeResult",
        "ProbeStage",
        "ReportStore",
        "Resolver",
        "SmtpConnector",
        "SmtpReply",
        "StepTiming",
        "SystemClock",
        "ValidatingResolver",
        "resolver_from_settings",
        "system_nameservers",
    ]
    assert set(resolver_module.__all__) == {
        "DEFAULT_LIFETIME",
        "DEFAULT_MAX_IN_FLIGHT",
        "DEFAULT_PORT",
        "DEFAULT_RETRIES",
        "DEFAULT_SOCKETS_PER_SERVER",
        "DEFAULT_TIMEOUT",
        "MAX_DATAGRAMS_PER_QUERY",
        "MAX_READS_PER_WAKEUP",
        "MAX_SOCKETS_PER_SERVER",
        "RESOLV_CONF",
        "BulkResolver",
        "DnsResolver",
        "Nameserver",
        "system_nameservers",
    }


def test_importing_the_transport_loads_no_http_or_resolver_module() -> None:
    import subprocess
    import sys

    code = (
        "import sys, mtasecure.transport\n"
        "print([m for m in ('httpx', 'dns.resolver', 'dns.asyncresolver') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_query_sets_do_ad_rd_and_the_payload() -> None:
    query = as_message(Question(query_name("Example"), query_type("mx")), qid=77)
    assert query.id == 77
    assert query.question[0].name == query_name("example")
    assert query.question[0].rdtype == query_type("MX")
    assert query.flags & dns.flags.RD
    assert query.flags & dns.flags.AD
    assert not query.flags & dns.flags.CD
    assert query.ednsflags & dns.flags.DO
    assert query.payload == EDNS_PAYLOAD
    assert not query.flags & dns.flags.QR
    cd = as_message(Question(query_name("x"), query_type("A"), checking_disabled=True))
    assert cd.flags & dns.flags.CD


@pytest.mark.parametrize("bad", ["", "a..b", "ünïcode.example", "x" * 64 + ".example", 5])
def test_bad_names_are_usage_errors(bad: object) -> None:
    with pytest.raises(UsageError):
        Resolution(bad, "A")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["ANY", "SOA", "", "NOPE", None])
def test_unsupported_types_are_usage_errors(bad: object) -> None:
    with pytest.raises(UsageError):
        Resolution("example", bad)  # type: ignore[arg-type]


def test_underscore_labels_are_names() -> None:
    assert Resolution("_25._tcp.mx.Example.", "tlsa").next_query() is not None


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([S, S], S),
        ([S, N], N),
        ([N, D], D),
        ([S, B, N], B),
        ([D, B], B),
        ([], D),
    ],
)
def test_combine_security_is_the_weakest_link(statuses: list[Security], expected: Security) -> None:
    assert combine_security(statuses) is expected


@pytest.mark.parametrize(
    ("trusted", "ad", "expected"),
    [(True, True, S), (True, False, N), (False, True, D), (False, False, D)],
)
def test_ad_bit_is_believed_only_from_a_trusted_server(
    trusted: bool, ad: bool, expected: Security
) -> None:
    r, _ = run(
        "a.example", "A", lambda q: reply(q, "a.example. 60 IN A 192.0.2.1", ad=ad), trusted=trusted
    )
    answer = r.answer()
    assert answer.security is expected
    assert answer.records == ("192.0.2.1",)
    assert answer.ttl == 60
    assert answer == DnsAnswer.model_validate(answer.model_dump())  # built unvalidated: same


def test_nxdomain_takes_the_negative_ttl() -> None:
    r, _ = run(
        "a.example", "A", lambda q: reply(q, rcode=dns.rcode.NXDOMAIN, authority=(SOA,), ad=True)
    )
    answer = r.answer()
    assert answer.nxdomain
    assert answer.ttl == 120  # min(SOA TTL 3600, MINIMUM 120)
    assert answer.security is S


def test_nodata_is_not_nxdomain() -> None:
    r, _ = run("a.example", "TLSA", lambda q: reply(q, authority=(SOA,)))
    answer = r.answer()
    assert answer.nodata
    assert not answer.nxdomain
    assert answer.security is N


def test_chain_in_one_reply_is_followed() -> None:
    r, sent = run(
        "a.example",
        "MX",
        lambda q: reply(
            q,
            "a.example. 300 IN CNAME b.example.",
            "b.example. 100 IN CNAME c.example.",
            "c.example. 200 IN MX 10 mx.c.example.",
            ad=True,
        ),
    )
    answer = r.answer()
    assert answer.records == ("10 mx.c.example.",)
    assert answer.cname_chain == ("b.example", "c.example")
    assert answer.ttl == 100
    assert len(sent) == 1


def test_chain_cut_short_is_requeried_and_the_status_combined() -> None:
    r, sent = run(
        "a.example",
        "A",
        lambda q: reply(q, "a.example. 60 IN CNAME b.other.", ad=True),
        lambda q: reply(q, "b.other. 60 IN A 192.0.2.7", ad=False),
    )
    assert [str(q.question[0].name) for q in sent] == ["a.example.", "b.other."]
    answer = r.answer()
    assert answer.records == ("192.0.2.7",)
    assert answer.security is N
    assert answer.cname_chain == ("b.other",)


def test_nxdomain_after_a_cname_belongs_to_the_target() -> None:
    r, _ = run(
        "a.example",
        "A",
        lambda q: reply(
            q, "a.example. 60 IN CNAME gone.example.", rcode=dns.rcode.NXDOMAIN, authority=(SOA,)
        ),
    )
    answer = r.answer()
    assert answer.nxdomain
    assert answer.final_name == "gone.example"


def test_loop_in_one_reply_fails() -> None:
    r, _ = run(
        "a.example",
        "A",
        lambda q: reply(
            q, "a.example. 60 IN CNAME b.example.", "b.example. 60 IN CNAME a.example.", ad=True
        ),
    )
    answer = r.answer()
    assert answer.failed
    assert answer.security is not S
    assert "loop" in answer.why


def test_chain_longer_than_the_limit_fails() -> None:
    links = [f"n{i}.example. 60 IN CNAME n{i + 1}.example." for i in range(MAX_CNAME_CHAIN + 1)]
    r, _ = run("n0.example", "A", lambda q: reply(q, *links, ad=True))
    answer = r.answer()
    assert answer.failed
    assert len(answer.cname_chain) == MAX_CNAME_CHAIN + 1


def test_chain_at_the_limit_is_fine() -> None:
    links = [f"n{i}.example. 60 IN CNAME n{i + 1}.example." for i in range(MAX_CNAME_CHAIN)]
    final = f"n{MAX_CNAME_CHAIN}.example. 60 IN A 192.0.2.1"
    r, _ = run("n0.example", "A", lambda q: reply(q, *links, final, ad=True))
    assert r.answer().records == ("192.0.2.1",)


def test_servfail_from_trusted_is_asked_again_with_cd() -> None:
    r, sent = run(
        "a.example",
        "A",
        lambda q: reply(q, rcode=dns.rcode.SERVFAIL),
        lambda q: reply(q, "a.example. 60 IN A 192.0.2.1"),
    )
    assert [bool(q.flags & dns.flags.CD) for q in sent] == [False, True]
    answer = r.answer()
    assert answer.security is B
    assert answer.failed
    assert answer.records == ()


def test_servfail_from_untrusted_is_not_asked_again() -> None:
    r, sent = run("a.example", "A", lambda q: reply(q, rcode=dns.rcode.SERVFAIL), trusted=False)
    assert len(sent) == 1
    assert r.answer().security is D
    assert r.answer().failed


@pytest.mark.parametrize("rcode", [dns.rcode.REFUSED, dns.rcode.NOTIMP, dns.rcode.YXDOMAIN])
def test_other_rcodes_fail_indeterminate(rcode: int) -> None:
    r, _ = run("a.example", "A", lambda q: reply(q, rcode=rcode, ad=True))
    assert r.answer().failed
    assert r.answer().security is D


def test_give_up_is_a_failure_and_answer_needs_an_end() -> None:
    r = Resolution("a.example", "A")
    with pytest.raises(UsageError):
        r.answer()
    r.give_up("timeout")
    assert r.answer().failed
    assert r.answer().why == "timeout"
    assert r.next_query() is None


def test_records_of_other_classes_and_names_are_ignored() -> None:
    r, _ = run(
        "a.example",
        "A",
        lambda q: reply(
            q, 'a.example. 60 CH TXT "x"', "z.example. 60 IN A 192.0.2.8", authority=(SOA,)
        ),
    )
    assert r.answer().nodata


# -- Nameserver configuration -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "address", "port", "trusted"),
    [
        ("127.0.0.1", "127.0.0.1", 53, True),
        ("127.0.0.1:5353", "127.0.0.1", 5353, True),
        ("::1", "::1", 53, True),
        ("[::1]:5353", "::1", 5353, True),
        ("192.0.2.53", "192.0.2.53", 53, False),
        ("[2001:db8::53]", "2001:db8::53", 53, False),
    ],
)
def test_nameserver_parse(text: str, address: str, port: int, trusted: bool) -> None:
    server = Nameserver.parse(text)
    assert (server.address, server.port, server.trusted) == (address, port, trusted)


@pytest.mark.parametrize(
    "bad", ["", "localhost", "1.2.3.4:0", "1.2.3.4:99999", "[::1]:x", "1.2.3.4:"]
)
def test_nameserver_parse_rejects(bad: str) -> None:
    with pytest.raises(UsageError):
        Nameserver.parse(bad)


def test_trusted_list_overrides_the_loopback_default() -> None:
    r = DnsResolver(
        ["127.0.0.1", "192.0.2.1:5353", "[2001:db8::1]:53"],
        trusted=["192.0.2.1", "[2001:db8::1]:53"],
    )
    assert [s.trusted for s in r.nameservers] == [False, True, True]
    r = DnsResolver(["192.0.2.1:5353"], trusted=["192.0.2.1:53"])
    assert [s.trusted for s in r.nameservers] == [False]


def test_system_nameservers_reads_resolv_conf(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "# c\nsearch x\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\nnameserver bogus\nnameserver 192.0.2.1\n"
    )
    servers = system_nameservers(conf)
    assert [(s.address, s.trusted) for s in servers] == [
        ("127.0.0.53", True),
        ("fe80::1", False),
        ("192.0.2.1", False),
    ]
    assert system_nameservers(tmp_path / "missing") == (Nameserver.parse("127.0.0.1"),)


@pytest.mark.parametrize(
    "kwargs", [{"timeout": 0}, {"lifetime": -1}, {"retries": -1}, {"max_chain": -1}]
)
def test_bad_limits_are_usage_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(UsageError):
        DnsResolver(["127.0.0.1"], **kwargs)  # type: ignore[arg-type]


def test_no_nameservers_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        DnsResolver([])


async def test_closed_resolver_raises_dns_error() -> None:
    r = DnsResolver(["127.0.0.1"])
    await r.aclose()
    with pytest.raises(DnsError):
        await r.resolve("example", "A")


# -- fuzzing the reply handling -----------------------------------------------


@given(st.binary(max_size=600), st.booleans())
def test_random_bytes_parse_or_raise_dns_error(data: bytes, trusted: bool) -> None:
    try:
        reply = parse_reply(data)
    except DnsError:
        return
    r = Resolution("a.example", "A")
    r.feed(reply, trusted=trusted)
    if r.done:
        answer = r.answer()
        assert answer.security is not S or (trusted and reply.flags & 0x0020)
        assert not answer.failed or answer.records == ()


_names = st.sampled_from(["a.example.", "b.example.", "c.example.", "d.other."])
_rr = st.one_of(
    st.builds(lambda o, t: f"{o} 60 IN CNAME {t}", _names, _names),
    st.builds(lambda o, n: f"{o} 60 IN A 192.0.2.{n}", _names, st.integers(0, 255)),
    st.builds(lambda o: f"{o} 60 IN MX 10 mx.example.", _names),
)


@given(
    rounds=st.lists(
        st.tuples(
            st.lists(_rr, max_size=6),
            st.sampled_from(
                [dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.SERVFAIL, dns.rcode.REFUSED]
            ),
            st.booleans(),
            st.booleans(),
            st.booleans(),
        ),
        min_size=1,
        max_size=12,
    ),
    rdtype=st.sampled_from(["A", "MX", "CNAME"]),
)
def test_any_sequence_of_replies_gives_a_defined_answer(
    rounds: list[tuple[list[str], int, bool, bool, bool]], rdtype: str
) -> None:
    r = Resolution("a.example", rdtype)
    secure_possible = True
    for answers, rcode, ad, trusted, with_soa in rounds:
        question = r.next_query()
        if question is None:
            break
        message = dns.message.make_response(as_message(question))
        message.set_rcode(rcode)
        if ad:
            message.flags |= dns.flags.AD
        for line in answers:
            rrset = dns.rrset.from_text(*line.split(None, 4))
            existing = message.find_rrset(
                message.answer, rrset.name, rrset.rdclass, rrset.rdtype, create=True
            )
            existing.update(rrset)
        if with_soa:
            message.authority.append(dns.rrset.from_text(*SOA.split(None, 4)))
        secure_possible = secure_possible and ad and trusted
        r.feed(parse_reply(message.to_wire()), trusted=trusted)
    if not r.done:
        r.give_up("out of replies")
    answer = r.answer()
    if answer.security is S:
        assert secure_possible
        assert not answer.failed
    if answer.failed:
        assert answer.records == ()
    assert len(answer.cname_chain) <= MAX_CNAME_CHAIN + 1


def test_nameserver_model_defaults_trust_to_loopback() -> None:
    assert Nameserver(address="127.0.0.2").trusted
    assert Nameserver(address="::1", port=5353).trusted
    assert not Nameserver(address="192.0.2.1").trusted
    assert not Nameserver(address="127.0.0.1", trusted=False).trusted
    assert Nameserver(address="0:0::1").address == "::1"
    for bad in ({"address": "localhost"}, {"address": "127.0.0.1", "port": 0}):
        with pytest.raises(ValueError, match="nameserver"):
            Nameserver(**bad)  # type: ignore[arg-type]


def test_untrusted_answers_say_why() -> None:
    r, _ = run(
        "a.example", "A", lambda q: reply(q, "a.example. 60 IN A 192.0.2.1", ad=True), trusted=False
    )
    assert r.answer().security is D
    assert "not trusted" in r.answer().why
    r, _ = run("a.example", "A", lambda q: reply(q, "a.example. 60 IN A 192.0.2.1", ad=True))
    assert r.answer().why == ""
