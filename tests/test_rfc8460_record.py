"""The ``_smtp._tls`` TLS-RPT record (RFC 8460 §3): vectors, every MUST, fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mtasecure.tlsrpt
from mtasecure.errors import NameSyntaxError, RecordSyntaxError
from mtasecure.tlsrpt import (
    MAX_RECORD_LENGTH,
    MAX_RUA_URIS,
    MAX_URI_LENGTH,
    SkippedRua,
    TlsRptRecord,
    parse_record,
    record_name,
    select_record,
)

MAILTO = "mailto:reports@example.com"
HTTPS = "https://reporting.example.com/v1/tlsrpt"

# (record text, expected rua, expected extensions)
VALID: list[tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]]] = [
    # RFC 8460 §3.1.1, verbatim.
    ("v=TLSRPTv1;rua=mailto:reports@example.com", (MAILTO,), ()),
    # RFC 8460 §3.1.2: read as one string with the space, and as two strings
    # joined without adding spaces (§3, RFC 7208 §3.3).
    ("v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt", (HTTPS,), ()),
    ("v=TLSRPTv1;" + "rua=https://reporting.example.com/v1/tlsrpt", (HTTPS,), ()),
    # field-delim = *WSP ";" *WSP, and the optional trailing field-delim.
    (f"v=TLSRPTv1 ;\trua={MAILTO}", (MAILTO,), ()),
    (f"v=TLSRPTv1;rua={MAILTO};", (MAILTO,), ()),
    (f"v=TLSRPTv1;rua={MAILTO} ;\t", (MAILTO,), ()),
    # A comma-separated list, with *WSP around each comma.
    (f"v=TLSRPTv1;rua={MAILTO},{HTTPS}", (MAILTO, HTTPS), ()),
    (f"v=TLSRPTv1;rua={MAILTO} ,\t {HTTPS}", (MAILTO, HTTPS), ()),
    # Unknown fields SHALL be ignored (kept as extensions, changing nothing).
    (f"v=TLSRPTv1;rua={MAILTO};ext.x_1-y=val:ue", (MAILTO,), (("ext.x_1-y", "val:ue"),)),
    (f"v=TLSRPTv1;a1={'x' * 40};rua={MAILTO}", (MAILTO,), (("a1", "x" * 40),)),
    ("v=TLSRPTv1;rua=" + MAILTO + ";" + "n" * 32 + "=1", (MAILTO,), (("n" * 32, "1"),)),
    # rua= is case-sensitive (%s), so RUA= is an extension beside a real rua.
    (
        f"v=TLSRPTv1;RUA=mailto:x@example.net;rua={MAILTO}",
        (MAILTO,),
        (("RUA", "mailto:x@example.net"),),
    ),
    # A second v= is, by the grammar, an extension.
    (f"v=TLSRPTv1;rua={MAILTO};v=TLSRPTv2", (MAILTO,), (("v", "TLSRPTv2"),)),
    # Several rua fields are joined in order; a repeated URI is kept once.
    (f"v=TLSRPTv1;rua={MAILTO};rua={HTTPS}", (MAILTO, HTTPS), ()),
    (f"v=TLSRPTv1;rua={MAILTO},{MAILTO};rua={MAILTO}", (MAILTO,), ()),
    # Schemes are case-insensitive (RFC 3986 §3.1) and kept in lower case.
    ("v=TLSRPTv1;rua=MAILTO:reports@example.com", (MAILTO,), ()),
    ("v=TLSRPTv1;rua=HtTpS://reporting.example.com/v1/tlsrpt", (HTTPS,), ()),
    # The three characters that MUST be encoded, encoded.
    (
        "v=TLSRPTv1;rua=https://r.example/a%2Cb%21c%3Bd",
        ("https://r.example/a%2Cb%21c%3Bd",),
        (),
    ),
    # Internationalised names, percent-encoded UTF-8 (RFC 3986 §3.2.2, RFC 6068 §2).
    (
        "v=TLSRPTv1;rua=mailto:r@b%C3%BCcher.example,https://b%C3%BCcher.example/r",
        ("mailto:r@b%C3%BCcher.example", "https://b%C3%BCcher.example/r"),
        (),
    ),
    # An SMTPUTF8 local part and a quoted local part (RFC 6068 §2, RFC 6532).
    ("v=TLSRPTv1;rua=mailto:j%C3%B6rg@example.com", ("mailto:j%C3%B6rg@example.com",), ()),
    (
        "v=TLSRPTv1;rua=mailto:%22tls%20rpt%22@example.com",
        ("mailto:%22tls%20rpt%22@example.com",),
        (),
    ),
    # mailto header fields, https ports, queries and fragments.
    (
        "v=TLSRPTv1;rua=mailto:r@example.com?subject=tls%20report",
        ("mailto:r@example.com?subject=tls%20report",),
        (),
    ),
    ("v=TLSRPTv1;rua=https://r.example:8443/p?x=1#f", ("https://r.example:8443/p?x=1#f",), ()),
    ("v=TLSRPTv1;rua=https://r.example.", ("https://r.example.",), ()),
]

# (record text, the URI skipped, a fragment of the reason); each record is valid
# and its only rua URI cannot be used, so rua == ().
SKIPPED = [
    ("ftp://r.example/tlsrpt", "scheme 'ftp' is not mailto or https"),
    ("http://r.example/tlsrpt", "scheme 'http' is not mailto or https"),
    ("urn:isbn:0451450523", "scheme 'urn'"),
    ("mailto:", "must name the address"),
    ("mailto:reports", "no '@'"),
    ("mailto:a@example.com%2Cb@example.com", "one address only"),
    ("mailto:a..b@example.com", "not a dot-atom or quoted-string"),
    ("mailto:@example.com", "not a dot-atom"),
    ("mailto:a@", "empty name"),
    ("mailto:a@%5B192.0.2.1%5D", "address literal"),
    ("mailto:a@192.0.2.1", "IP address"),
    ("mailto:a@-bad.example", "hyphen"),
    ("mailto:a@example.com#frag", "neither '//' nor '#'"),
    ("mailto://a@example.com", "neither '//' nor '#'"),
    ("mailto:a@example.com?subject", "not name=value"),
    ("mailto:a@%FF.example", "not UTF-8"),
    ("https:/r.example/tlsrpt", "must have an authority"),
    ("https:r.example", "must have an authority"),
    ("https://user:pw@r.example/", "must not carry user information"),
    ("https://192.0.2.1/tlsrpt", "IP address"),
    ("https://[2001:db8::1]/tlsrpt", "address literal"),
    ("https:///tlsrpt", "must have a host"),
    ("https://r.example:0/", "port 0 is not 1-65535"),
    ("https://r.example:65536/", "not 1-65535"),
    ("https://r.example:1234567/", "not 1-65535"),
    ("https://a_b.example/", "not allowed"),
    ("https://%FF.example/", "not UTF-8"),
]

# (record text, a fragment of the error message)
INVALID = [
    ("", "must start with 'v=TLSRPTv1'"),
    ("v=TLSRPTv1", "no field"),
    ("v=TLSRPTv1;", "no field"),
    # %s"v=TLSRPTv1": exact, case-sensitive, first.
    (f"v=tlsrptv1;rua={MAILTO}", "must start with"),
    (f"v=TLSRPTv2;rua={MAILTO}", "must start with"),
    (f"v=TLSRPTv10;rua={MAILTO}", "must start with"),
    (f" v=TLSRPTv1;rua={MAILTO}", "must start with"),
    (f"rua={MAILTO};v=TLSRPTv1", "must start with"),
    (f"v=TLSRPTv1 rua={MAILTO}", "must start with"),
    # The tlsrpt-rua field is required.
    ("v=TLSRPTv1;foo=bar", "'rua' field is missing"),
    ("v=TLSRPTv1;RUA=mailto:reports@example.com", "'rua' field is missing"),
    # rua= uri *(*WSP "," *WSP uri): no empty URI, no space inside or before.
    ("v=TLSRPTv1;rua=", "empty URI"),
    (f"v=TLSRPTv1;rua={MAILTO},", "empty URI"),
    (f"v=TLSRPTv1;rua={MAILTO},,{HTTPS}", "empty URI"),
    (f"v=TLSRPTv1;rua= {MAILTO}", "is not a URI"),
    ("v=TLSRPTv1;rua=mailto:a b@example.com", "is not a URI"),
    ("v=TLSRPTv1;rua=reports@example.com", "is not a URI"),
    ("v=TLSRPTv1;rua=1http://r.example/", "is not a URI"),
    # Commas, exclamation points and semicolons MUST be encoded.
    ("v=TLSRPTv1;rua=mailto:reports@example.com!10m", "unencoded ',', '!' or ';'"),
    ("v=TLSRPTv1;rua=https://r.example/a!b", "unencoded"),
    ("v=TLSRPTv1;rua=https://r.example/a,b", "is not a URI"),  # 'b' alone
    # Percent-encoding is two hex digits (RFC 3986 §2.1).
    ("v=TLSRPTv1;rua=https://r.example/%", "is not a URI"),
    ("v=TLSRPTv1;rua=https://r.example/%zz", "is not a URI"),
    ("v=TLSRPTv1;rua=https://r.example/a#b#c", "is not a URI"),
    ("v=TLSRPTv1;rua=mailto:a@[192.0.2.1]", "is not a URI"),  # RFC 6068 §2: encode [ ]
    ("v=TLSRPTv1;rua=https://r.example/ä", "is not a URI"),
    # Nothing after the last field but an optional field-delim.
    (f"v=TLSRPTv1;rua={MAILTO} ", "is not a URI"),
    (f"v=TLSRPTv1;rua={MAILTO}\r\n", "is not a URI"),
    # tlsrpt-extension = tlsrpt-ext-name "=" tlsrpt-ext-value
    (f"v=TLSRPTv1;rua={MAILTO};foo", "not of the form name=value"),
    (f"v=TLSRPTv1;rua={MAILTO};=x", "not of the form name=value"),
    (f"v=TLSRPTv1;rua={MAILTO};;foo=x", "not of the form name=value"),
    (f"v=TLSRPTv1;rua={MAILTO};foo=", "printable ASCII"),
    (f"v=TLSRPTv1;rua={MAILTO};foo=a=b", "printable ASCII"),
    (f"v=TLSRPTv1;rua={MAILTO};foo=b\x7fr", "printable ASCII"),
    (f"v=TLSRPTv1;rua={MAILTO};foo=bär", "printable ASCII"),
    (f"v=TLSRPTv1;rua={MAILTO};_foo=x", "field name"),
    (f"v=TLSRPTv1;rua={MAILTO};f o=x", "field name"),
    (f"v=TLSRPTv1;rua={MAILTO};{'n' * 33}=x", "field name"),
]


@pytest.mark.parametrize(("text", "rua", "extensions"), VALID)
def test_valid_records(
    text: str, rua: tuple[str, ...], extensions: tuple[tuple[str, str], ...]
) -> None:
    record = parse_record(text)
    assert record == TlsRptRecord(rua=rua, ignored_rua=(), extensions=extensions)


@pytest.mark.parametrize(("uri", "reason"), SKIPPED)
def test_unusable_uris_are_skipped_and_reported(uri: str, reason: str) -> None:
    record = parse_record(f"v=TLSRPTv1;rua={uri}")
    assert record.rua == ()
    [skipped] = record.ignored_rua
    assert skipped.uri == uri
    assert reason in skipped.reason
    assert "RFC" in skipped.reason


@pytest.mark.parametrize(("uri", "reason"), SKIPPED)
def test_unusable_uris_do_not_hide_usable_ones(uri: str, reason: str) -> None:
    record = parse_record(f"v=TLSRPTv1;rua={uri},{MAILTO};rua={HTTPS}")
    assert record.rua == (MAILTO, HTTPS)
    assert [s.uri for s in record.ignored_rua] == [uri]


@pytest.mark.parametrize(("text", "message"), INVALID)
def test_invalid_records(text: str, message: str) -> None:
    with pytest.raises(RecordSyntaxError, match=message) as info:
        parse_record(text)
    assert info.value.rule is not None
    assert "RFC 8460 §3" in info.value.rule


def test_error_names_the_field() -> None:
    with pytest.raises(RecordSyntaxError) as info:
        parse_record(f"v=TLSRPTv1;foo=bar;rua={MAILTO},a b")
    assert info.value.where == "field 3 (rua)"
    assert str(info.value).startswith("field 3 (rua): 'a b' is not a URI")


@pytest.mark.parametrize("value", [b"v=TLSRPTv1;rua=mailto:reports@example.com", None, 1])
def test_non_text_is_a_record_syntax_error(value: object) -> None:
    with pytest.raises(RecordSyntaxError, match="expected a str"):
        parse_record(value)  # type: ignore[arg-type]
    # select_record discards what is not text, as it discards non-TLS-RPT records.
    assert select_record([value, GOOD]) == parse_record(GOOD)  # type: ignore[list-item]


def test_record_length_limit() -> None:
    head = f"v=TLSRPTv1;rua={MAILTO};x="
    at_limit = head + "y" * (MAX_RECORD_LENGTH - len(head))
    assert len(at_limit) == MAX_RECORD_LENGTH
    assert parse_record(at_limit).rua == (MAILTO,)
    with pytest.raises(RecordSyntaxError, match=f"more than {MAX_RECORD_LENGTH}"):
        parse_record(at_limit + "y")


def test_uri_length_limit() -> None:
    head = "https://r.example/"
    at_limit = head + "p" * (MAX_URI_LENGTH - len(head))
    assert parse_record(f"v=TLSRPTv1;rua={at_limit}").rua == (at_limit,)
    with pytest.raises(RecordSyntaxError, match=f"more than {MAX_URI_LENGTH}"):
        parse_record(f"v=TLSRPTv1;rua={at_limit}p")


def test_rua_count_limit_keeps_the_first_in_order() -> None:
    uris = [f"mailto:r{i}@example.com" for i in range(MAX_RUA_URIS + 2)]
    record = parse_record("v=TLSRPTv1;rua=" + ",".join(uris[:MAX_RUA_URIS]))
    assert record.rua == tuple(uris[:MAX_RUA_URIS])
    assert record.ignored_rua == ()
    # Unusable and repeated URIs do not count against the limit.
    record = parse_record(f"v=TLSRPTv1;rua=ftp://x.example,{uris[0]}," + ",".join(uris))
    assert record.rua == tuple(uris[:MAX_RUA_URIS])
    assert [s.uri for s in record.ignored_rua] == ["ftp://x.example", *uris[MAX_RUA_URIS:]]
    assert f"more than {MAX_RUA_URIS} usable URIs" in record.ignored_rua[-1].reason


def test_limits_are_sane() -> None:
    assert MAX_RUA_URIS >= 2  # RFC 7489 §6.2: at least two destinations
    assert MAX_URI_LENGTH < MAX_RECORD_LENGTH


def test_a_record_with_no_usable_uri_is_valid_but_empty() -> None:
    record = parse_record("v=TLSRPTv1;rua=ftp://a.example,http://b.example")
    assert record.rua == ()
    assert [s.uri for s in record.ignored_rua] == ["ftp://a.example", "http://b.example"]


def test_models_are_frozen() -> None:
    record = parse_record(f"v=TLSRPTv1;rua=ftp://a.example,{MAILTO}")
    with pytest.raises(ValueError, match="frozen"):
        record.rua = ()  # type: ignore[misc]
    with pytest.raises(ValueError, match="frozen"):
        record.ignored_rua[0].uri = "x"  # type: ignore[misc]
    assert hash(record) == hash(parse_record(f"v=TLSRPTv1;rua=ftp://a.example,{MAILTO}"))


# --- select_record: the "exactly one" rule (RFC 8460 §3) -----------------------

GOOD = f"v=TLSRPTv1;rua={MAILTO}"
OTHER = f"v=TLSRPTv1;rua={HTTPS}"

SELECT = [
    ([], None),
    ([GOOD], parse_record(GOOD)),
    (["v=spf1 -all", GOOD, "google-site-verification=x"], parse_record(GOOD)),
    # Records that do not begin with "v=TLSRPTv1;" are discarded...
    ([GOOD, "v=TLSRPTv10;rua=mailto:x@example.net"], parse_record(GOOD)),
    ([GOOD, "v=tlsrptv1;rua=mailto:x@example.net"], parse_record(GOOD)),
    ([GOOD, " v=TLSRPTv1;rua=mailto:x@example.net"], parse_record(GOOD)),
    ([GOOD, "v=TLSRPTv1"], parse_record(GOOD)),
    # ... the field-delim of the grammar may have spaces before the ';' ...
    (["v=TLSRPTv1 ;rua=" + MAILTO], parse_record(GOOD)),
    # ... and if the number left is not one, there is no TLS-RPT.
    ([GOOD, OTHER], None),
    ([GOOD, GOOD], None),
    ([GOOD, "v=TLSRPTv1;foo=bar"], None),
    # The one left does not parse: no TLS-RPT either.
    (["v=TLSRPTv1;foo=bar"], None),
    (["v=TLSRPTv1;rua=mailto:a b@example.com"], None),
]


@pytest.mark.parametrize(("texts", "expected"), SELECT)
def test_select_record(texts: list[str], expected: TlsRptRecord | None) -> None:
    assert select_record(texts) == expected


def test_select_record_takes_any_iterable() -> None:
    assert select_record(t for t in ["v=spf1 -all", GOOD]) == parse_record(GOOD)


# --- record_name --------------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "name"),
    [
        ("example.com", "_smtp._tls.example.com"),
        ("Example.COM.", "_smtp._tls.example.com"),
        ("bücher.example", "_smtp._tls.xn--bcher-kva.example"),
    ],
)
def test_record_name(domain: str, name: str) -> None:
    assert record_name(domain) == name


@pytest.mark.parametrize("domain", ["", "192.0.2.1", "a..example", "_smtp.example"])
def test_record_name_rejects_non_domains(domain: str) -> None:
    with pytest.raises(NameSyntaxError):
        record_name(domain)


# --- the public surface -------------------------------------------------------


def test_all_is_pinned() -> None:
    # The record side and, from the report side (issue 7), the report names.
    assert mtasecure.tlsrpt.__all__ == [
        "BuiltReport",
        "DetailCount",
        "DkimKey",
        "FailureDetail",
        "MAX_RECORD_LENGTH",
        "MAX_RUA_URIS",
        "MAX_URI_LENGTH",
        "PolicyResults",
        "PolicyType",
        "ReportDateRange",
        "ReportOptions",
        "ReportPolicy",
        "ReportSummary",
        "ReportWindow",
        "ResultBatch",
        "SessionCount",
        "SessionRecord",
        "SkippedRua",
        "TlsReport",
        "TlsRptCollector",
        "TlsRptRecord",
        "WindowResults",
        "build_reports",
        "is_report_mail",
        "merge_results",
        "no_policy_found",
        "parse_record",
        "parse_report",
        "plan_session_record",
        "record_name",
        "render_filename",
        "render_gzip",
        "render_report_message",
        "render_sts_policy_string",
        "render_tlsa_policy_string",
        "report_policy_for",
        "select_record",
    ]
    assert mtasecure.tlsrpt.__all__ == sorted(mtasecure.tlsrpt.__all__)
    for name in mtasecure.tlsrpt.__all__:
        obj = getattr(mtasecure.tlsrpt, name)
        if callable(obj):
            assert "RFC" in (obj.__doc__ or ""), f"{name} has no docstring naming its RFC"


# --- hypothesis ---------------------------------------------------------------


_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
_HOST = st.builds(
    lambda labels, tld: ".".join([*labels, tld]),
    st.lists(_LABEL, min_size=1, max_size=3),
    st.from_regex(r"[a-z]{2,6}", fullmatch=True),
)
_LOCAL = st.from_regex(r"[a-z0-9+_-]{1,10}(\.[a-z0-9+_-]{1,10}){0,2}", fullmatch=True)
_USABLE = st.one_of(
    st.builds(lambda local, host: f"mailto:{local}@{host}", _LOCAL, _HOST),
    st.builds(
        lambda host, path: f"https://{host}/{path}",
        _HOST,
        st.from_regex(r"[a-z0-9/._~-]{0,20}", fullmatch=True),
    ),
)
_URI_PIECE = st.sampled_from(
    [*"aZ09-._~%:/?#[]@!$&'()*+,;= \t\"", "%2C", "%FF", "%C3%BC", "é", "\x00", "xn--", "//"]
)
_URIISH = st.one_of(
    _USABLE,
    _USABLE,
    st.builds(
        lambda uri, cut, piece: uri[:cut] + piece + uri[cut:],
        _USABLE,
        st.integers(0, 40),
        _URI_PIECE,
    ),
    st.builds(
        lambda scheme, rest: scheme + rest,
        st.sampled_from(["mailto:", "https://", "MAILTO:", "https:", "ftp://", "", "x:"]),
        st.lists(_URI_PIECE, max_size=30).map("".join),
    ),
    st.text(max_size=40),
)
_RECORDISH = st.builds(
    lambda head, fields, tail: head + "".join(fields) + tail,
    st.sampled_from(["v=TLSRPTv1", "v=TLSRPTv1", "v=TLSRPTv1 ", "v=TLSRPTv", "", "v=STSv1"]),
    st.lists(
        st.builds(
            lambda sep, name, uris: f"{sep}{name}=" + ",".join(uris),
            st.sampled_from([";", ";", ";", ";", " ; ", ";\t", "", ","]),
            st.sampled_from(["rua", "rua", "rua", "RUA", "ext", "v", "_x", ""]),
            st.lists(_URIISH, min_size=1, max_size=3),
        ),
        min_size=1,
        max_size=4,
    ),
    st.sampled_from(["", "", ";", " ", "; "]),
)


@given(st.one_of(_RECORDISH, st.text(max_size=200)))
def test_only_record_syntax_errors_escape(text: str) -> None:
    try:
        record = parse_record(text)
    except RecordSyntaxError:
        return
    assert len(record.rua) <= MAX_RUA_URIS
    assert len(set(record.rua)) == len(record.rua)
    assert all(uri.startswith(("mailto:", "https://")) for uri in record.rua)
    assert all(isinstance(s, SkippedRua) for s in record.ignored_rua)


@given(st.lists(st.one_of(_RECORDISH, st.text(max_size=60)), max_size=4))
def test_select_record_never_raises(texts: list[str]) -> None:
    result = select_record(texts)
    assert result is None or isinstance(result, TlsRptRecord)


@given(
    st.lists(_USABLE, min_size=1, max_size=MAX_RUA_URIS, unique=True),
    st.sampled_from([",", " , ", ",\t"]),
)
def test_usable_uris_come_back_in_order(uris: list[str], comma: str) -> None:
    record = parse_record("v=TLSRPTv1;rua=" + comma.join(uris))
    assert record.rua == tuple(uris)
    assert record.ignored_rua == ()


@given(st.one_of(_USABLE, _URIISH))
def test_fast_path_agrees_with_the_full_check(uri: str) -> None:
    from mtasecure.tlsrpt._record import _check_uri, _check_uri_fully

    try:
        full = _check_uri_fully(uri, 2)
    except RecordSyntaxError:
        with pytest.raises(RecordSyntaxError):
            _check_uri(uri, 2)
        return
    assert _check_uri(uri, 2) == full


@given(st.one_of(_RECORDISH, st.text(max_size=80)))
def test_fast_record_path_agrees_with_the_full_parse(text: str) -> None:
    from mtasecure.tlsrpt._record import _parse_record_fully

    full: TlsRptRecord | str
    try:
        full = _parse_record_fully(text)
    except RecordSyntaxError as exc:
        full = str(exc)
    fast: TlsRptRecord | str
    try:
        fast = parse_record(text)
    except RecordSyntaxError as exc:
        fast = str(exc)
    assert fast == full


def test_record_name_length_limit() -> None:
    # RFC 1035 §2.3.4: the whole owner name, "_smtp._tls." included, fits in 253 octets.
    at_limit = ".".join(["a" * 63] * 3 + ["b" * 50])
    assert len(record_name(at_limit)) == 253
    with pytest.raises(NameSyntaxError, match="longer than 253"):
        record_name(".".join(["a" * 63] * 3 + ["b" * 51]))
