"""RFC 8461 §3.1: the ``_mta-sts`` TXT record, parsing and selection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mtasecure._tagvalue import MAX_RECORD_LENGTH, split_record
from mtasecure.errors import NameSyntaxError, ParseError, RecordSyntaxError, UsageError
from mtasecure.sts import StsRecord, parse_record, record_name, render_record, select_record
from mtasecure.sts._record import MAX_ID_LENGTH

# (record text, id, extensions)
VALID = [
    # §3.1 example, verbatim
    ("v=STSv1; id=20160831085700Z;", "20160831085700Z", ()),
    ("v=STSv1; id=20160831085700Z", "20160831085700Z", ()),
    ("v=STSv1;id=a", "a", ()),
    ("v=STSv1 ;\tid=abc ; ", "abc", ()),  # sts-field-delim = *WSP ";" *WSP
    ("v=STSv1; id=" + "A1" * 16, "A1" * 16, ()),  # 32 characters
    # the order of fields other than the version is not significant
    ("v=STSv1; ext=1; id=x", "x", (("ext", "1"),)),
    ("v=STSv1; id=x; a.b_c-d=!\"#$%&'()*+,-./0123456789:<>?@[]^_`{|}~", "x",
     (("a.b_c-d", "!\"#$%&'()*+,-./0123456789:<>?@[]^_`{|}~"),)),
    # repeated fields: the first is used, the rest ignored (§3.2)
    ("v=STSv1; id=first; id=second", "first", ()),
    ("v=STSv1; id=first; id=not-an-sts-id", "first", ()),  # a valid sts-extension
    ("v=STSv1; x=1; x=2; id=i", "i", (("x", "1"),)),
    ("v=STSv1; v=STSv1; id=i", "i", ()),
    # id is case-sensitive as a value
    ("v=STSv1; id=AbC", "AbC", ()),
]  # fmt: skip

# (record text, what the message says)
INVALID = [
    ("", "must start with 'v=STSv1'"),
    ("v=STSv1", "no field"),
    ("v=STSv1;", "no field"),
    ("v=STSv1; ", "no field"),
    ("v=STSv1; extension=1", "no id"),
    ("V=STSv1; id=1", "must start"),  # %s"v=STSv1" is case-sensitive
    ("v=stsv1; id=1", "must start"),
    ("v=STSv2; id=1", "must start"),
    (" v=STSv1; id=1", "must start"),
    ("id=1; v=STSv1", "must start"),  # MUST begin with the version
    ("v=STSv1; ID=1", "no id"),  # %s"id=" is case-sensitive
    ("v=STSv1; id=", "not 1 to 32"),
    ("v=STSv1; id=" + "a" * 33, "not 1 to 32"),
    ("v=STSv1; id=2016-08-31", "not 1 to 32"),
    ("v=STSv1; id=a_b", "not 1 to 32"),
    ("v=STSv1; id=a b", "not 1 to 32"),
    ("v=STSv1; id=ä", "US-ASCII"),  # MUST be US-ASCII
    ("v=STSv1; id=１", "US-ASCII"),  # full-width digit: isalnum, but not ASCII
    ("v=STSv1; id=1;; x=y", "name=value"),
    ("v=STSv1; id=1; =y", "name=value"),
    ("v=STSv1; id=1; novalue", "name=value"),
    ("v=STSv1; id=1; x=", "empty or holds"),
    ("v=STSv1; id=1; x=a b", "empty or holds"),
    ("v=STSv1; id=1; x=a=b", "empty or holds"),
    ("v=STSv1; id=1; x=\x7f", "empty or holds"),
    ("v=STSv1; id=1; _x=1", "extension name"),
    ("v=STSv1; id=1; " + "x" * 33 + "=1", "extension name"),
    ("v=STSv1; id=1; id=a b", "empty or holds"),  # a repeat must still be well formed
    ("v=STSv1; id=1\n", "not 1 to 32"),
    ("v=STSv1; id=1" + " " * MAX_RECORD_LENGTH, "more than"),
]


@pytest.mark.parametrize(("text", "record_id", "extensions"), VALID)
def test_valid_records(text: str, record_id: str, extensions: tuple[tuple[str, str], ...]) -> None:
    record = parse_record(text)
    assert record == StsRecord(id=record_id, extensions=extensions)
    assert record.id == record_id
    assert record.extensions == extensions


@pytest.mark.parametrize(("text", "fragment"), INVALID)
def test_invalid_records(text: str, fragment: str) -> None:
    with pytest.raises(RecordSyntaxError, match=fragment) as caught:
        parse_record(text)
    assert "RFC" in (caught.value.rule or "")


def test_error_names_field_and_rule() -> None:
    with pytest.raises(RecordSyntaxError) as caught:
        parse_record("v=STSv1; id=bad-id")
    assert caught.value.where == "field 'id'"
    assert caught.value.rule == "RFC 8461 §3.1"
    assert str(caught.value).startswith("field 'id': id 'bad-id'")


def test_id_length_limit_is_the_rfc_one() -> None:
    assert MAX_ID_LENGTH == 32
    assert parse_record("v=STSv1; id=" + "a" * MAX_ID_LENGTH).id == "a" * 32
    with pytest.raises(RecordSyntaxError):
        parse_record("v=STSv1; id=" + "a" * (MAX_ID_LENGTH + 1))


def test_parse_record_rejects_non_text() -> None:
    with pytest.raises(RecordSyntaxError, match="expected a str"):
        parse_record(b"v=STSv1; id=1")  # type: ignore[arg-type]


# select_record: (TXT strings at _mta-sts.<domain>, the expected id or None)
SELECTION = [
    (["v=STSv1; id=1"], "1"),
    ([], None),  # no record: no policy available
    # records that do not begin with "v=STSv1;" are discarded
    (["v=spf1 -all", "v=STSv1; id=1"], "1"),
    (["something else", "v=STSv1; id=1", "v=DMARC1; p=none"], "1"),
    (["v=STSv10; id=2", "v=STSv1; id=1"], "1"),
    (["v=STSv1", "v=STSv1; id=1"], "1"),  # "v=STSv1" alone does not begin with "v=STSv1;"
    (["v=STSv1 ; id=1"], "1"),  # *WSP before ";" is part of the delimiter
    # not exactly one left: no policy available
    (["v=STSv1; id=1", "v=STSv1; id=2"], None),
    (["v=STSv1; id=1", "v=STSv1; id=1"], None),
    (["v=STSv1; id=1", "v=STSv1; junk"], None),
    # the one left is invalid: no policy available
    (["v=STSv1; id=not valid"], None),
    (["v=STSv1; no-id=1"], None),
    (["v=STSv1;", "v=spf1 -all"], None),
]


@pytest.mark.parametrize(("texts", "expected"), SELECTION)
def test_select_record(texts: list[str], expected: str | None) -> None:
    record = select_record(texts)
    assert (record.id if record else None) == expected


def test_select_record_takes_any_iterable() -> None:
    record = select_record(t for t in ("v=spf1 -all", "v=STSv1; id=gen"))
    assert record is not None
    assert record.id == "gen"


def test_multi_string_records_are_joined_without_spaces_by_the_caller() -> None:
    # §3.1: "treated as if those strings are concatenated without adding spaces"
    strings = ["v=STSv1; id=2016", "0831085700Z;"]
    assert parse_record("".join(strings)).id == "20160831085700Z"


def test_render_record_round_trips() -> None:
    text = render_record("20160831085700Z", [("ext", "1")])
    assert text == "v=STSv1; id=20160831085700Z; ext=1;"
    assert parse_record(text) == StsRecord(id="20160831085700Z", extensions=(("ext", "1"),))


@pytest.mark.parametrize(
    ("record_id", "extensions"),
    [("", ()), ("a" * 33, ()), ("a-b", ()), ("ok", [("id", "x")]), ("ok", [("x", "a b")])],
)
def test_render_record_refuses_what_does_not_fit(
    record_id: str, extensions: list[tuple[str, str]]
) -> None:
    with pytest.raises(UsageError):
        render_record(record_id, extensions)


def test_record_name() -> None:
    assert record_name("Example.COM.") == "_mta-sts.example.com"
    assert record_name("bücher.example") == "_mta-sts.xn--bcher-kva.example"
    with pytest.raises(NameSyntaxError):
        record_name("192.0.2.1")
    with pytest.raises(NameSyntaxError, match="longer than 253"):
        record_name(".".join(["a" * 63] * 3 + ["b" * 61]))


# --- hypothesis -------------------------------------------------------------

_record_alphabet = st.sampled_from(
    ["v=STSv1", "v=STSv1;", "id=", "id", "=", ";", " ", "\t", "x", "1", "Z", "ä", "-", "_", "."]
)
_record_text = st.lists(_record_alphabet, max_size=16).map("".join)


@given(st.one_of(st.text(max_size=200), _record_text))
def test_only_parse_errors_escape_parse_record(text: str) -> None:
    try:
        record = parse_record(text)
    except ParseError:
        return
    assert 1 <= len(record.id) <= MAX_ID_LENGTH
    assert record.id.isascii()
    assert record.id.isalnum()


@given(st.lists(st.one_of(st.text(max_size=60), _record_text), max_size=5))
def test_select_record_never_raises(texts: list[str]) -> None:
    record = select_record(texts)
    if record is not None:
        assert sum(1 for t in texts if t.startswith("v=STSv1")) >= 1


@given(st.lists(st.binary(max_size=40), max_size=4))
def test_select_record_ignores_bytes(texts: list[bytes]) -> None:
    assert select_record(texts) is None  # type: ignore[arg-type]


@given(st.binary(max_size=100))
def test_bytes_are_refused_with_a_parse_error(data: bytes) -> None:
    with pytest.raises(ParseError):
        parse_record(data)  # type: ignore[arg-type]


_ids = st.text(alphabet="abcXYZ0189", min_size=1, max_size=32)
_ext_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}", fullmatch=True).filter(
    lambda n: n not in {"v", "id"}
)
_ext_values = st.from_regex(r"[\x21-\x3a\x3c\x3e-\x7e]{1,20}", fullmatch=True)


@given(_ids, st.dictionaries(_ext_names, _ext_values, max_size=4))
def test_render_parse_round_trip(record_id: str, extensions: dict[str, str]) -> None:
    text = render_record(record_id, extensions.items())
    assert parse_record(text) == StsRecord(id=record_id, extensions=tuple(extensions.items()))


_split_alphabet = st.sampled_from(["v=STSv1", ";", " ", "\t", "=", "id", "a", "x=", "=y", "\n"])


@given(st.lists(_split_alphabet, max_size=12).map("".join))
def test_split_record_matches_the_separator_grammar(text: str) -> None:
    """split_record's str.split fast path splits exactly on *WSP ";" *WSP."""
    import re

    try:
        fields = split_record(text, "v=STSv1", rule="RFC 8461 §3.1")
    except RecordSyntaxError:
        fields = None
    parts = re.split(r"[ \t]*;[ \t]*", text)
    if parts[0] != "v=STSv1":
        assert fields is None
        return
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    pairs = [p.partition("=") for p in parts[1:]]
    if not pairs or any(not eq or not name for name, eq, _ in pairs):
        assert fields is None
    else:
        assert fields == [(name, value) for name, _, value in pairs]


def test_record_name_at_the_length_limit() -> None:
    # RFC 1035 §2.3.4: "_mta-sts." (9 octets) plus a 244-octet domain is exactly 253.
    at_limit = ".".join(["a" * 63] * 3 + ["b" * 52])
    assert len(record_name(at_limit)) == 253
    with pytest.raises(NameSyntaxError, match="longer than 253"):
        record_name(".".join(["a" * 63] * 3 + ["b" * 53]))
