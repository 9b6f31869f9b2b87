"""Typed vars: the types a var may declare, how a value (text from a command line or a YAML
default, or a native JSON value from the API or Python) becomes one, the rules it must then
fit (``enum``, ``pattern``, ``minimum``, ``maximum``), and the text form of a typed value.

Untyped vars stay Fastflow strings; none of this applies to them but ``enum``, ``pattern`` and
``required``, which they may declare too.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Literal

from .problems import int_too_large, listing, short_repr

VarType = Literal["string", "integer", "number", "boolean", "list", "object"]
VAR_TYPES: tuple[str, ...] = ("string", "integer", "number", "boolean", "list", "object")

_INTEGER = re.compile(r"^[+-]?[0-9]+$")
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
#: how long a value's text may be in a message
_SHOWN = 60
#: how deep a list or mapping value may nest
MAX_DEPTH = 64


class VarValueError(ValueError):
    """A value does not fit a var's type or rules; the message says which rule and why, and
    what was given (``got``), which :meth:`hidden` leaves out for a secret var."""

    def __init__(self, rule: str, got: str | None = None) -> None:
        super().__init__(rule if got is None else f"{rule}; got {got}")
        self.rule = rule
        self.got = got

    def hidden(self) -> VarValueError:
        """The same error without the value given."""
        if self.got is None:
            return self
        return VarValueError(self.rule, "a value that does not fit (not shown: the var is secret)")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json(text: str, var_type: str, example: str) -> Any:
    try:
        return json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        noun = "list" if var_type == "list" else "mapping"
        raise VarValueError(
            f"must be a {noun} (type: {var_type}), written as JSON such as {example}",
            short_repr(text, _SHOWN),
        ) from None


def convert(value: Any, var_type: str | None) -> Any:
    """``value`` as a value of ``var_type``: text is parsed (``"3"`` → 3, ``"true"`` → True,
    ``'["a"]'`` → ["a"]), native values are checked. Untyped (None): text stays text, numbers
    and booleans become their text. Raises :class:`VarValueError`."""
    if var_type is None or var_type == "string":
        if isinstance(value, str):
            return value
        if var_type is None and isinstance(value, bool):
            return "true" if value else "false"
        if var_type is None and isinstance(value, int | float) and not int_too_large(value):
            return str(value)
        raise VarValueError("must be text (type: string)", _kind(value))
    if var_type == "integer":
        if isinstance(value, str) and _INTEGER.match(value.strip()) and len(value) <= 40:
            return int(value.strip())
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool) and not int_too_large(value):
            return value
        raise VarValueError("must be a whole number (type: integer)", _kind(value))
    if var_type == "number":
        number: Any = value
        if isinstance(value, str):
            text = value.strip()
            try:
                number = int(text) if _INTEGER.match(text) and len(text) <= 40 else float(text)
            except ValueError:
                number = None
        if (isinstance(number, int | float) and not isinstance(number, bool)
                and not int_too_large(number) and math.isfinite(number)):
            return number
        raise VarValueError("must be a number (type: number)", _kind(value))
    if var_type == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise VarValueError(
            "must be true or false (type: boolean)", _kind(value)
        )
    if var_type == "list":
        found = _json(value, "list", '["a", "b"]') if isinstance(value, str) else value
        if isinstance(found, list):
            return _bounded(found)
        raise VarValueError("must be a list (type: list)", _kind(value))
    if var_type == "object":
        found = _json(value, "object", '{"k": "v"}') if isinstance(value, str) else value
        if isinstance(found, dict):
            return _bounded(found)
        raise VarValueError("must be a mapping (type: object)", _kind(value))
    raise VarValueError(f"has the unknown type {var_type!r} (types: {', '.join(VAR_TYPES)})")


def _bounded(value: Any) -> Any:
    """``value`` (a list or a mapping) if it is plain JSON data at most :data:`MAX_DEPTH`
    levels deep (its size is checked with every value the engine stores: tideflow.limits)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise VarValueError(f"nests deeper than {MAX_DEPTH} levels")
            if isinstance(item, dict):
                if not all(isinstance(k, str) for k in item):
                    raise VarValueError("is a mapping whose keys are not all text")
                stack.extend((v, depth + 1) for v in item.values())
            else:
                stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise VarValueError(f"holds {item}, which is not a JSON number")
        elif int_too_large(item):
            raise VarValueError("holds a number too large to store")
        elif not (item is None or isinstance(item, str | int | float | bool)):
            raise VarValueError(f"holds a {type(item).__name__}, which is not JSON data")
    return value


def check_rules(
    value: Any,
    *,
    enum: tuple[Any, ...] | None = None,
    pattern: str | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
) -> None:
    """Raise :class:`VarValueError` naming the first rule ``value`` breaks."""
    if enum is not None and value not in enum:
        raise VarValueError(
            f"must be one of {listing([text(v) for v in enum], limit=20)} (enum)",
            short_repr(value, _SHOWN),
        )
    if pattern is not None and isinstance(value, str) and re.search(pattern, value) is None:
        raise VarValueError(
            f"must match the pattern {pattern} (pattern)", short_repr(value, _SHOWN)
        )
    if minimum is not None and isinstance(value, int | float) and value < minimum:
        raise VarValueError(f"must be at least {_number(minimum)} (minimum)", str(value))
    if maximum is not None and isinstance(value, int | float) and value > maximum:
        raise VarValueError(f"must be at most {_number(maximum)} (maximum)", str(value))


def text(value: Any) -> str:
    """A var's value as text: what preCheck compares and what a template inserts (text as is,
    booleans as ``true``/``false``, numbers as written, lists and mappings as compact JSON)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return f"the text {short_repr(value, _SHOWN)}"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if isinstance(value, int | float):
        return f"the number {short_repr(value, _SHOWN)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"
