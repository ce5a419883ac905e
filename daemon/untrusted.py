"""Input from outside the kiosk, made safe to handle: JSON parsed within bounds, text made safe to log.

Python's own `json.loads` has no bounds a sender cannot step over: a payload nested a thousand deep
raises RecursionError, a 5,000-digit integer raises a plain ValueError, and a lone surrogate such as
"\\ud800" parses, then breaks whatever encodes it later. Every payload from the broker goes through
`loads_bounded`, which raises only `UntrustedJsonError`, with a reason fit to send back.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass


class UntrustedJsonError(ValueError):
    """The payload is refused; the message says why (safe to send back, no payload text in it)."""


@dataclass(frozen=True, slots=True)
class JsonBounds:
    max_bytes: int = 16 * 1024
    max_depth: int = 16  # objects and arrays inside one another
    max_number_chars: int = 32  # digits, sign, point and exponent of one number


def loads_bounded(payload: bytes, bounds: JsonBounds = JsonBounds()) -> object:
    """The JSON value in `payload` (UTF-8), or UntrustedJsonError naming the bound it broke.

    Refused besides bad JSON: NaN and Infinity, duplicate keys in one object (which of the two would a
    checker see?), and lone surrogates in strings."""
    if len(payload) > bounds.max_bytes:
        raise UntrustedJsonError(f"payload of {len(payload)} bytes, more than {bounds.max_bytes}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UntrustedJsonError(f"not UTF-8 (byte {exc.start})") from None
    if _nested_deeper(text, bounds.max_depth):
        raise UntrustedJsonError(f"nested more than {bounds.max_depth} deep")
    try:
        value = json.loads(
            text,
            parse_int=_number(int, bounds.max_number_chars),
            parse_float=_number(float, bounds.max_number_chars),
            parse_constant=_no_constant,
            object_pairs_hook=_unique_keys,
        )
    except json.JSONDecodeError as exc:
        raise UntrustedJsonError(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    _refuse_lone_surrogates(value)
    return value


# A JSON string, so that brackets inside strings are not counted as nesting.
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def _nested_deeper(text: str, max_depth: int) -> bool:
    """Whether arrays and objects nest deeper than `max_depth` (a scan that stops there, before parsing;
    malformed text is left to the parser)."""
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > max_depth:
                return True
        elif token in "]}":
            depth -= 1
    return False


def _number(kind, max_chars: int):
    def parse(literal: str):
        if len(literal) > max_chars:
            raise UntrustedJsonError(f"a number of {len(literal)} characters, more than {max_chars}")
        return kind(literal)

    return parse


def _no_constant(name: str):
    raise UntrustedJsonError(f"{name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise UntrustedJsonError(f"the key {printable(twice)!r} appears twice in one object")
    return value


def _refuse_lone_surrogates(value: object) -> None:
    # Depth is already bounded, so this recursion is too.
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise UntrustedJsonError("a string holds a lone UTF-16 surrogate (\\ud800-\\udfff)") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_lone_surrogates(key)
            _refuse_lone_surrogates(item)
    elif isinstance(value, list):
        for item in value:
            _refuse_lone_surrogates(item)


# What lets a value forge a log line, hide text or reorder it on a screen: control characters (C0, DEL,
# C1), line and paragraph separators, bidi embeddings, overrides and isolates, and lone surrogates.
# Text that may span lines keeps tab, CR and LF.
_CONTROLS = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
_REORDERING = "\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
UNSAFE_IN_TEXT = re.compile(f"[{_CONTROLS}{_REORDERING}]")
UNSAFE_IN_LINE = re.compile(f"[\t\n\r{_CONTROLS}{_REORDERING}]")


def printable(text: str, limit: int = 200) -> str:
    """`text` for a log line or a terminal: unsafe characters escaped (\\n, \\x1b, \\u202e), cut at `limit`."""
    shown = UNSAFE_IN_LINE.sub(_escape, text[:limit])
    return shown + "…" if len(text) > limit else shown


def _escape(match: re.Match) -> str:
    return match.group().encode("unicode_escape", "backslashreplace").decode("ascii")
