"""The MTA-STS policy file (RFC 8461 §3.2): model, strict parser, renderer.

Grammar (RFC 8461 §3.2; ``%s`` strings are case-sensitive)::

    sts-policy-record = sts-policy-field *WSP
                        *(sts-policy-term sts-policy-field *WSP) [sts-policy-term]
    sts-policy-term   = LF / CRLF
    field             = name ":" *WSP value
    version           = %s"version" ":" *WSP %s"STSv1"          ; required once
    mode              = %s"mode" ":" *WSP ("testing" / "enforce" / "none")  ; once
    max_age           = %s"max_age" ":" *WSP 1*10(DIGIT)       ; required once
    mx                = %s"mx" ":" *WSP ["*."] Domain          ; 1+ unless mode none
    extension         = ext-name ":" *WSP ext-value            ; ignored

How this parser reads what the grammar leaves open. The guiding rule: an
invalid policy makes a sender behave as if the domain had no policy at all
(RFC 8461 §5.1), so rejecting a file *weakens* protection. Deviations that
leave the owner's meaning unambiguous are therefore accepted (and reported by
:func:`~mtasecure.sts.lint_policy`); anything whose meaning a sender would have
to guess is rejected with a :class:`~mtasecure.errors.PolicySyntaxError`.

===========================  ===================================================
case                         decision
===========================  ===================================================
LF and CRLF                  both are terminators (the grammar allows both); a
                             CR is otherwise allowed only just before the end of
                             a line (it is stripped with other trailing space)
final terminator             optional
blank lines                  ignored (cosmetic; meaning unchanged)
trailing spaces/tabs         ignored (the grammar allows ``*WSP``)
spaces around the key        ignored (``mode : enforce``, `` mx: a``)
line without ``:``           rejected (not a key/value pair: an HTML error page,
                             a truncated body)
key not an ``ext-name``      rejected, same reason
unknown keys                 kept in ``extensions``, otherwise ignored (§3.2:
                             "unknown fields SHALL be ignored")
keys are case-sensitive      ``Mode: enforce`` is an unknown key, so the policy
                             then lacks ``mode`` and is rejected
duplicate keys               the first wins, later ones are ignored unread
                             (§3.2); for ``mx`` every line counts
duplicate ``mx`` patterns    kept once, first position
``version`` not ``STSv1``    rejected
``mode`` not a known value   rejected (guessing could bounce mail)
``max_age`` not 1-10 digits  rejected (``+5``, ``-1``, ``5s``, ``1e6``, 11 digits)
``max_age`` > 31557600       clamped to 31557600: the owner asked for a long
                             cache life, and the RFC caps it; rejecting would
                             drop the owner's ``enforce`` over a number
``mx`` an IP address         rejected: an MX target is never an address, the
                             owner meant some host; enforcing the rest could
                             refuse the very MX the owner meant to allow, while
                             rejecting is reported as ``sts-policy-invalid``
``mx`` not a host name       rejected, same reason (empty, ``*`` misplaced,
                             bad characters, over-long labels)
``mx`` in U-labels           converted to A-labels (§3.2 says the file MUST use
                             A-labels; the conversion is exact)
``mx`` case, trailing dot    lower-cased, one trailing dot removed
no ``mx``, mode enforce      rejected (§3.2: required unless mode is ``none``)
or testing
no ``mx``, mode ``none``     accepted, ``mx == ()``
non-UTF-8 bytes              rejected (§3.2 allows UTF-8 only in extension
                             values)
a UTF-8 byte order mark      skipped at the very start only
control characters           rejected wherever they would be read (keys, known
                             values, extension values); tab counts as space
more than 64 KiB             rejected before parsing (:data:`MAX_POLICY_BYTES`)
===========================  ===================================================
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mtasecure._names import normalize_host, normalize_pattern
from mtasecure._tagvalue import EXT_NAME
from mtasecure.errors import NameSyntaxError, PolicySyntaxError, UsageError, excerpt
from mtasecure.sts._fast import new, set_extra, set_fields_set, set_private
from mtasecure.sts._match import _remember, cached_pattern, pattern_index

__all__ = [
    "KNOWN_KEYS",
    "MAX_AGE_DIGITS",
    "MAX_AGE_LIMIT",
    "MAX_MEMO_BLOCK",
    "MAX_MEMO_KEY",
    "MAX_MX_PATTERNS",
    "MAX_POLICY_BYTES",
    "MX_BLOCK_CACHE_SIZE",
    "POLICY_VERSION",
    "PolicyMode",
    "StsPolicy",
    "parse_policy",
    "policy_url",
    "render_policy",
]

MAX_POLICY_BYTES = 65536
"""Largest policy body accepted, in octets (RFC 8461 §3.3 suggests 64 KiB)."""
MAX_AGE_LIMIT = 31557600
"""Largest ``max_age``, in seconds (about one year; RFC 8461 §3.2)."""
MAX_AGE_DIGITS = 10
"""Most digits in a ``max_age`` value: ``1*10(DIGIT)`` (RFC 8461 §3.2)."""
MAX_MX_PATTERNS = 4096
"""Most distinct ``mx`` patterns in one policy; bounds the work of every MX check."""
POLICY_VERSION = "STSv1"
"""The only ``version`` value defined (RFC 8461 §3.2)."""
MAX_MEMO_KEY = 300
"""Longest raw ``mx`` value (name plus surrounding spaces) kept in the parser's memo."""
MAX_MEMO_BLOCK = 2048
"""Longest run of ``mx`` lines (in characters) whose patterns the parser remembers whole."""
MX_BLOCK_CACHE_SIZE = 1024
"""How many runs of ``mx`` lines the parser remembers before it starts afresh."""
KNOWN_KEYS = ("version", "mode", "mx", "max_age")
"""The keys RFC 8461 §3.2 defines; every other key is an extension."""

_RULE = "RFC 8461 §3.2"
_WS = " \t\r"
_KNOWN = frozenset(KNOWN_KEYS)
_MX, _MAX_AGE, _MODE, _VERSION = 1, 2, 3, 4
_KIND = {"mx": _MX, "max_age": _MAX_AGE, "mode": _MODE, "version": _VERSION}
_MX_CACHE: dict[str, str] = {}
_MX_BLOCKS: dict[str, tuple[str, ...]] = {}
_ext_name = EXT_NAME.fullmatch
_BAD_EXT_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# The usual file: version, mode, the mx lines and max_age (mx lines may also
# follow it), LF or CRLF, trailing spaces or tabs, an optional final
# terminator, no blank line, no extension, no space before a key, at least one
# space after "mx:". Anything else takes the line loop.
_USUAL_MAX = 4096  # longer files are no faster this way than with the line loop
_MX_LINES = r"((?:\r?\nmx:[ \t]++[!-~]++[ \t]*+)*+)"
_usual = re.compile(
    r"version:[ \t]*+STSv1[ \t]*+"
    r"\r?\nmode:[ \t]*+(enforce|testing|none)[ \t]*+"
    rf"{_MX_LINES}"
    r"\r?\nmax_age:[ \t]*+([0-9]{1,10}+)[ \t]*+"
    rf"{_MX_LINES}"
    r"\r?\n?",
    re.ASCII,
).fullmatch


class PolicyMode(StrEnum):
    """The three policy modes (RFC 8461 §5), spelt as on the wire."""

    ENFORCE = "enforce"
    """Do not deliver to an MX that fails validation (RFC 8461 §5)."""
    TESTING = "testing"
    """Deliver anyway, but report failures with TLS-RPT (RFC 8461 §5, RFC 8460)."""
    NONE = "none"
    """Treat the domain as having no active policy (RFC 8461 §5, §8.3)."""


_MODES = {m.value: m for m in PolicyMode}


class StsPolicy(BaseModel):
    """An MTA-STS policy (RFC 8461 §3.2).

    Built by :func:`parse_policy` from a fetched file, or directly by a domain
    owner (see :func:`mtasecure.sts.build_policy`). Constructed directly, the
    fields are validated: ``mx`` patterns are normalised to lower-case
    A-labels and de-duplicated, ``max_age`` must lie in 0..31557600, ``mx``
    must not be empty unless ``mode`` is ``none``.

    Attributes:
        version: always ``"STSv1"``.
        mode: what a sender does when an MX fails validation.
        mx: the allowed MX patterns (``name`` or ``*.name``), normalised, in
            file order.
        max_age: how long, in seconds, a sender may cache the policy.
        extensions: unknown ``(key, value)`` fields, first occurrence of each
            key, in file order; senders ignore them.
    """

    model_config = ConfigDict(frozen=True)

    version: Literal["STSv1"] = "STSv1"
    mode: PolicyMode
    mx: tuple[str, ...] = ()
    max_age: int = Field(ge=0, le=MAX_AGE_LIMIT)
    extensions: tuple[tuple[str, str], ...] = ()

    @field_validator("mx")
    @classmethod
    def _normalise_mx(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        try:
            patterns = tuple(dict.fromkeys(cached_pattern(p) for p in value))
        except NameSyntaxError as exc:  # pydantic reports only ValueError as invalid input
            raise ValueError(str(exc)) from exc
        if len(patterns) > MAX_MX_PATTERNS:
            raise ValueError(f"more than {MAX_MX_PATTERNS} mx patterns")
        return patterns

    @field_validator("extensions")
    @classmethod
    def _check_extensions(cls, value: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        seen: set[str] = set()
        for name, text in value:
            if _ext_name(name) is None or name in _KNOWN or name in seen:
                raise ValueError(f"extension name {name!r} is invalid, reserved or repeated")
            if _BAD_EXT_VALUE.search(text) or text != text.strip(" \t"):
                raise ValueError(f"extension value {text!r} has control or edge whitespace")
            seen.add(name)
        return value

    @model_validator(mode="after")
    def _mx_required(self) -> StsPolicy:
        if not self.mx and self.mode is not PolicyMode.NONE:
            raise ValueError(f"mode {self.mode.value!r} needs at least one mx pattern ({_RULE})")
        return self

    def matches(self, host: str) -> bool:
        """Whether one of the ``mx`` patterns covers ``host`` (RFC 8461 §4.1).

        This is pattern coverage only; what a sender does with a miss depends
        on :attr:`mode` (RFC 8461 §5). A ``host`` that is not a host name is
        covered by nothing: the answer is ``False``, never an exception.
        """
        # One set look-up for the exact patterns and one for the wildcards,
        # however many patterns there are; see PatternIndex.covers.
        return pattern_index(self.mx).covers(host)


def parse_policy(text: str | bytes) -> StsPolicy:
    """Parse an MTA-STS policy file (RFC 8461 §3.2).

    The decisions for every case the RFC leaves open are in this module's
    docstring and in ``docs/sts.md``.

    Args:
        text: the response body, as bytes (decoded as UTF-8 here) or as text.

    Returns:
        The policy.

    Raises:
        PolicySyntaxError: the body is over :data:`MAX_POLICY_BYTES`, is not
            UTF-8, has a line that is not ``key: value``, lacks a required
            field, or has a ``version``, ``mode``, ``max_age`` or ``mx`` value
            that does not fit the grammar. ``where`` names the line.
        UsageError: ``text`` is neither ``str`` nor ``bytes``.
    """
    if not (type(text) is str and len(text) <= MAX_POLICY_BYTES and text.isascii()):
        text = _decode(text)  # bytes, non-ASCII text (size in octets, BOM), or too long
    usual = _usual(text) if len(text) <= _USUAL_MAX else None
    if usual is not None:
        policy = _parse_usual(usual)
        if policy is not None:
            return policy
    return _parse_lines(text)


def _parse_usual(match: re.Match[str]) -> StsPolicy | None:
    """The policy a ``_usual`` match holds, or ``None`` to take the general path.

    ``_usual`` accepts only files the line loop reads as ``version``,
    ``mode``, ``max_age`` and these ``mx`` values with nothing else, so the
    result is the loop's; every error (and its line number) is left to the loop.
    """
    mode, before, max_age, after = match.groups()
    # The same mx lines recur across policies (every domain of a mail host
    # publishes its host's list), so short blocks of them are remembered whole.
    block = after if not before else before if not after else None
    mx = _MX_BLOCKS.get(block) if block is not None else None
    if mx is None:
        # Each block is "<newline>mx:<spaces><value><spaces>" repeated, and a
        # value holds no space: splitting on whitespace gives "mx:", value, ...
        values = before.split()[1::2] + after.split()[1::2]
        known = dict.fromkeys(map(_MX_CACHE.get, values))  # patterns in order, once each
        if None in known:  # a name not seen before: normalise (and remember) it
            patterns: dict[str, None] = {}
            for value in values:
                pattern = _MX_CACHE.get(value)
                if pattern is None:
                    try:
                        pattern = normalize_pattern(value)
                    except NameSyntaxError:
                        return None  # the loop reports it, with the line
                    if len(value) <= MAX_MEMO_KEY:
                        _remember(_MX_CACHE, value, pattern)
                patterns[pattern] = None
            mx = tuple(patterns)
        else:
            mx = cast("tuple[str, ...]", tuple(known))
        if block is not None and len(block) <= MAX_MEMO_BLOCK:
            _remember(_MX_BLOCKS, block, mx, MX_BLOCK_CACHE_SIZE)
    if (not mx and mode != "none") or len(mx) > MAX_MX_PATTERNS:
        return None  # the loop reports it
    return _policy(_MODES[mode], mx, min(int(max_age), MAX_AGE_LIMIT), ())


def _parse_lines(text: str) -> StsPolicy:
    """The general parser: one line at a time, every rule, every message."""
    lines = text.split("\n")
    if not lines[-1]:
        lines.pop()  # what follows the final terminator
    version: str | None = None
    mode: PolicyMode | None = None
    max_age: int | None = None
    mx: dict[str, None] = {}
    extensions: dict[str, str] = {}
    kind_of = _KIND.get
    mx_pattern = _MX_CACHE.get
    for line in lines:
        key, sep, value = line.partition(":")
        if key == "mx":
            # Memoised on the raw value: the same MX names recur across
            # policies, and normalising a name costs more than the rest of a line.
            pattern = mx_pattern(value)
            if pattern is None:
                pattern = _new_mx_pattern(value, lines, line)
            mx[pattern] = None
            continue
        kind = kind_of(key)
        if kind is None:
            if not sep:
                if line.strip(_WS):
                    raise _error(lines, line, f"{excerpt(line)!r} is not a 'key: value' line")
                continue  # a blank line
            key = key.strip(_WS)
            kind = kind_of(key)
            if kind is None:
                _add_extension(extensions, key, value, lines, line)
                continue
        if kind == _MX:  # only with spaces around the key
            mx[_new_mx_pattern(value, lines, line)] = None
        elif kind == _MAX_AGE:
            if max_age is None:
                value = value.strip(_WS)
                if not (value.isdigit() and value.isascii() and len(value) <= MAX_AGE_DIGITS):
                    raise _error(
                        lines,
                        line,
                        f"max_age {excerpt(value)!r} is not 1 to {MAX_AGE_DIGITS} ASCII digits",
                    )
                max_age = min(int(value), MAX_AGE_LIMIT)
        elif kind == _MODE:
            if mode is None:
                mode = _MODES.get(value.strip(_WS))
                if mode is None:
                    raise _error(
                        lines,
                        line,
                        f"mode {excerpt(value.strip(_WS))!r} is not one of enforce, testing, none",
                    )
        elif version is None:
            version = value.strip(_WS)
            if version != POLICY_VERSION:
                raise _error(lines, line, f"version {excerpt(version)!r} is not {POLICY_VERSION!r}")
    if version is None or mode is None or max_age is None:
        missing = [
            key
            for key, found in (("version", version), ("mode", mode), ("max_age", max_age))
            if found is None
        ]
        raise PolicySyntaxError(
            f"policy has no {' and no '.join(missing)} field", where="policy", rule=_RULE
        )
    if not mx and mode is not PolicyMode.NONE:
        raise PolicySyntaxError(
            f"mode {mode.value!r} needs at least one mx field", where="policy", rule=_RULE
        )
    if len(mx) > MAX_MX_PATTERNS:
        raise PolicySyntaxError(
            f"policy has {len(mx)} distinct mx patterns, more than {MAX_MX_PATTERNS}",
            where="policy",
            rule=_RULE,
        )
    return _policy(mode, tuple(mx), max_age, tuple(extensions.items()) if extensions else ())


def _policy(
    mode: PolicyMode, mx: tuple[str, ...], max_age: int, extensions: tuple[tuple[str, str], ...]
) -> StsPolicy:
    policy: StsPolicy = new(StsPolicy)  # every field was validated by the caller
    state = policy.__dict__
    state["version"] = POLICY_VERSION
    state["mode"] = mode
    state["mx"] = mx
    state["max_age"] = max_age
    state["extensions"] = extensions
    set_fields_set(policy, {"version", "mode", "mx", "max_age", "extensions"})
    set_extra(policy, None)
    set_private(policy, None)
    return policy


def render_policy(policy: StsPolicy) -> str:
    """Render a policy as the file to serve (RFC 8461 §3.2).

    Fields come in the order of the RFC's example (``version``, ``mode``, each
    ``mx``, ``max_age``), then the extensions; every line ends in CRLF, the
    terminator §3.2 names. ``parse_policy(render_policy(p)) == p``.
    """
    lines = [f"version: {policy.version}", f"mode: {policy.mode.value}"]
    lines += [f"mx: {pattern}" for pattern in policy.mx]
    lines.append(f"max_age: {policy.max_age}")
    lines += [f"{name}: {value}" for name, value in policy.extensions]
    return "\r\n".join(lines) + "\r\n"


def policy_url(domain: str) -> str:
    """The URL a domain's policy is fetched from (RFC 8461 §3.2).

    ``policy_url("example.com") == "https://mta-sts.example.com/.well-known/mta-sts.txt"``;
    the domain is normalised to lower-case A-labels first.

    Raises:
        NameSyntaxError: ``domain`` is not a host name, or ``mta-sts.<domain>``
            is longer than a name may be.
    """
    host = normalize_host("mta-sts." + normalize_host(domain))
    return f"https://{host}/.well-known/mta-sts.txt"


def _decode(text: str | bytes) -> str:
    if isinstance(text, str):
        if len(text) > MAX_POLICY_BYTES:
            raise _too_big(len(text), "characters")
        if not text.isascii():
            try:
                size = len(text.encode("utf-8"))
            except UnicodeEncodeError as exc:
                raise PolicySyntaxError(
                    "text holds a lone surrogate, not a Unicode character",
                    where=f"offset {exc.start}",
                    rule=_RULE,
                ) from exc
            if size > MAX_POLICY_BYTES:
                raise _too_big(size, "octets")
    elif isinstance(text, bytes | bytearray | memoryview):
        data = bytes(text)
        if len(data) > MAX_POLICY_BYTES:
            raise _too_big(len(data), "octets")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PolicySyntaxError(
                "policy is not UTF-8", where=f"byte {exc.start}", rule=_RULE
            ) from exc
    else:
        raise UsageError(f"parse_policy takes str or bytes, not {type(text).__name__}")
    if text.startswith("\ufeff"):
        text = text[1:]
    return text


def _new_mx_pattern(value: str, lines: list[str], line: str) -> str:
    try:
        pattern = cached_pattern(value.strip(_WS))
    except NameSyntaxError as exc:
        raise _error(
            lines, line, f"mx {excerpt(value.strip(_WS))!r} is not a host name pattern: {exc}"
        ) from exc
    # Only short raw values are remembered: a value padded with 60 KiB of
    # spaces is still a valid pattern, and must not pin 60 KiB in the memo.
    if len(value) <= MAX_MEMO_KEY:
        _remember(_MX_CACHE, value, pattern)
    return pattern


def _add_extension(
    extensions: dict[str, str], key: str, value: str, lines: list[str], line: str
) -> None:
    if _ext_name(key) is None:
        raise _error(lines, line, f"key {excerpt(key)!r} is not a valid field name")
    value = value.strip(_WS)
    bad = _BAD_EXT_VALUE.search(value)
    if bad:
        raise _error(lines, line, f"value of {key!r} holds control character {bad.group()!r}")
    extensions.setdefault(key, value)


def _error(lines: list[str], line: str, message: str) -> PolicySyntaxError:
    # Line numbers are worked out only on the error path, by identity, so the
    # loop over a large policy does not carry a counter.
    lineno = next(index for index, item in enumerate(lines, 1) if item is line)
    return PolicySyntaxError(message, where=f"line {lineno}", rule=_RULE)


def _too_big(size: int, unit: str) -> PolicySyntaxError:
    return PolicySyntaxError(
        f"policy is {size} {unit} long, more than {MAX_POLICY_BYTES}",
        rule="RFC 8461 §3.3",
    )
