"""Typed inputs: what a person gives when deciding an approval.

An ``approval`` declares its inputs the way a DAG declares typed vars (``type``, ``required``,
``enum``, ``pattern``, ``minimum``, ``maximum``, ``defaultValue``); a ``continue`` gives values
for them, as text (``--input size=3`` on the command line) or as JSON values (the HTTP API).
:func:`check_inputs` turns them into typed values, or refuses them all with every problem
named, so that a bad decision changes nothing.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .errors import InputError

InputType = Literal["string", "integer", "number", "boolean", "list", "object"]

_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean (true or false)",
    "list": "a list (a JSON array)",
    "object": "an object (a JSON object)",
}
#: the most values one decision may carry, and the longest text one value may be
MAX_INPUTS = 100
MAX_TEXT = 64 * 1024


class InputDef(BaseModel):
    """One declared input."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    type: InputType = "string"
    desc: str = ""
    required: bool = False
    default_value: Any = Field(None, alias="defaultValue")
    enum: tuple[Any, ...] | None = None
    pattern: str | None = None
    minimum: float | None = None
    maximum: float | None = None

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"pattern {v!r} is not a regular expression: {exc}") from None
        return v

    @model_validator(mode="after")
    def _consistent(self) -> InputDef:
        if (self.minimum is not None or self.maximum is not None) and self.type not in (
                "integer", "number"):
            raise ValueError("minimum and maximum apply to integer and number inputs only")
        if self.pattern is not None and self.type != "string":
            raise ValueError("pattern applies to string inputs only")
        return self


def _coerce(spec: InputDef, value: Any) -> Any:
    """``value`` as the declared type; ValueError with the expected type otherwise."""
    t = spec.type
    text = value if isinstance(value, str) else None
    if t == "string":
        if text is None:
            raise ValueError
        return text
    if t == "boolean":
        if isinstance(value, bool):
            return value
        if text is not None and text.strip().lower() in ("true", "false"):
            return text.strip().lower() == "true"
        raise ValueError
    if t == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if text is not None and re.fullmatch(r"\s*[-+]?\d{1,30}\s*", text):
            return int(text)
        raise ValueError
    if t == "number":
        if isinstance(value, int | float) and not isinstance(value, bool):
            number: int | float = value
        elif text is not None and re.fullmatch(r"\s*[-+]?\d{1,30}\s*", text):
            number = int(text)
        elif text is not None:
            number = float(text)  # ValueError when it is not a number
        else:
            raise ValueError
        if isinstance(number, float) and not math.isfinite(number):
            raise ValueError
        return number
    wanted = list if t == "list" else dict
    if text is not None:
        value = json.loads(text)
    if not isinstance(value, wanted):
        raise ValueError
    return value


def _problems(name: str, spec: InputDef, value: Any) -> tuple[Any, list[str]]:
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return None, [f"input '{name}' is {len(value)} characters long — the limit is {MAX_TEXT}"]
    try:
        typed = _coerce(spec, value)
    except ValueError:
        return None, [f"input '{name}' must be {_TYPE_WORDS[spec.type]}, found {value!r}"]
    problems = []
    if spec.enum is not None:
        allowed = []
        for option in spec.enum:
            try:
                allowed.append(_coerce(spec, option))
            except ValueError:
                allowed.append(option)
        if typed not in allowed:
            listed = ", ".join(repr(a) for a in allowed)
            problems.append(f"input '{name}' must be one of {listed}, found {typed!r}")
    if spec.pattern is not None and not re.search(spec.pattern, typed):
        problems.append(f"input '{name}' must match the pattern {spec.pattern!r},"
                        f" found {typed!r}")
    if spec.minimum is not None and typed < spec.minimum:
        problems.append(f"input '{name}' must be at least {spec.minimum:g}, found {typed!r}")
    if spec.maximum is not None and typed > spec.maximum:
        problems.append(f"input '{name}' must be at most {spec.maximum:g}, found {typed!r}")
    return typed, problems


def check_inputs(declared: Mapping[str, InputDef], given: Mapping[str, Any] | None,
                 *, where: str) -> dict[str, Any]:
    """The typed values of a decision: ``given`` checked against ``declared``, defaults
    filled in. Raises :class:`InputError` naming every problem, prefixed by ``where``."""
    given = dict(given or {})
    problems: list[str] = []
    if len(given) > MAX_INPUTS:
        raise InputError(f"{where}: {len(given)} inputs given — the limit is {MAX_INPUTS}")
    unknown = sorted(k for k in given if k not in declared)
    if unknown:
        names = ", ".join(f"'{k}'" for k in declared) or "none"
        problems.append(f"{', '.join(repr(k) for k in unknown)}: not an input of it"
                        f" (its inputs: {names})")
    out: dict[str, Any] = {}
    for name, spec in declared.items():
        if name in given:
            value, found = _problems(name, spec, given[name])
            problems.extend(found)
            out[name] = value
        elif spec.default_value is not None:
            value, found = _problems(name, spec, spec.default_value)
            problems.extend(f"{p} (its defaultValue)" for p in found)
            out[name] = value
        elif spec.required:
            problems.append(f"input '{name}' is required — give it with --input {name}=VALUE"
                            " (or \"inputs\" in the request body)")
    if problems:
        raise InputError(f"{where}: " + "; ".join(problems),
                         details={"problems": problems})
    return out
