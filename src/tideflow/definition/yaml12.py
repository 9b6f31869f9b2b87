"""Which plain YAML scalars are not strings: YAML 1.2's rules, exactly as Fastflow's yaml.v3
reads them into ``interface{}`` params.

PyYAML follows YAML 1.1, where ``yes``, ``no``, ``on`` and ``off`` are booleans and ``1:30`` is
a number. Fastflow users wrote their files for yaml.v3, so this module resolves the way it does:

- booleans: only ``true``/``True``/``TRUE`` and ``false``/``False``/``FALSE``;
- null: empty, ``~``, ``null``, ``Null``, ``NULL``;
- integers: Go's ``strconv.ParseInt(text, 0, 64)`` after removing ``_`` (``0x1F``, ``0o17``,
  ``0b101``, and the old octal ``010`` = 8), then unsigned 64-bit;
- floats: ``.5``, ``1.5``, ``1e3``, ``.inf``, ``.nan``... — and, as in yaml.v3, digits that are
  not an integer (``08``, or past 64 bits) are read as a float;
- everything else, dates included, is a string.
"""

from __future__ import annotations

import math
import re
from typing import Any

from yaml.nodes import ScalarNode
from yaml.resolver import BaseResolver

_P = "tag:yaml.org,2002:"
STR, NULL, BOOL, INT, FLOAT, MERGE = (
    f"{_P}str", f"{_P}null", f"{_P}bool", f"{_P}int", f"{_P}float", f"{_P}merge",
)

_WORDS: dict[str, tuple[str, Any]] = {
    **{w: (BOOL, True) for w in ("true", "True", "TRUE")},
    **{w: (BOOL, False) for w in ("false", "False", "FALSE")},
    **{w: (NULL, None) for w in ("", "~", "null", "Null", "NULL")},
    **{w: (FLOAT, math.nan) for w in (".nan", ".NaN", ".NAN")},
    **{w: (FLOAT, math.inf) for w in (".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF")},
    **{w: (FLOAT, -math.inf) for w in ("-.inf", "-.Inf", "-.INF")},
    "<<": (MERGE, "<<"),
}
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_DIGITS = {2: frozenset("01"), 8: frozenset("01234567"), 10: frozenset("0123456789"),
           16: frozenset("0123456789abcdefABCDEF")}
_PREFIX = {"0x": 16, "0o": 8, "0b": 2}


def _go_int(plain: str) -> int | None:
    """``strconv.ParseInt(plain, 0, 64)``, else ``ParseUint``: None when neither reads it."""
    sign, body = 1, plain
    if body[:1] in ("+", "-"):
        sign, body = (-1 if body[0] == "-" else 1), body[1:]
    base = _PREFIX.get(body[:2].lower())
    if base is not None:
        body = body[2:]
    elif len(body) > 1 and body[0] == "0":
        base, body = 8, body[1:]
    else:
        base = 10
    if not body or not set(body) <= _DIGITS[base] or len(body.lstrip("0")) > 64:
        return None  # past 64 bits in any base (and never a huge int conversion)
    value = sign * int(body, base)
    if -(2**63) <= value < 2**63 or (plain[0] != "-" and plain[0] != "+" and value < 2**64):
        return value
    return None


def resolve_scalar(text: str) -> tuple[str, Any]:
    """The tag and value yaml.v3 gives a plain (unquoted) scalar."""
    found = _WORDS.get(text)
    if found is not None:
        return found
    first = text[:1]
    if first == ".":
        if _FLOAT.fullmatch(text):
            return FLOAT, float(text)
    elif first in ("+", "-") or first.isdigit() and first.isascii():
        plain = text.replace("_", "")
        number = _go_int(plain) if plain else None
        if number is not None:
            return INT, number
        if _FLOAT.fullmatch(plain):
            value = float(plain)
            if math.isfinite(value):  # Go refuses a float out of range: then it is text
                return FLOAT, value
    return STR, text


class Yaml12Resolver(BaseResolver):
    """PyYAML's resolver with yaml.v3's rules for plain scalars."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is ScalarNode:
            return resolve_scalar(value)[0] if implicit[0] else STR
        return str(super().resolve(kind, value, implicit))  # type: ignore[no-untyped-call]
