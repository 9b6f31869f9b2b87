"""Run input: a run's vars against the DAG's declared ones, ``KEY=VALUE`` pairs, tags.

Untyped vars are strings, as in Fastflow; scalars given otherwise are turned into their text
(``True`` → ``"true"``, ``3`` → ``"3"``). A typed var gets a value of its type: text (from a
command line) is converted, native JSON values (from the API or Python) are checked; then its
rules (``required``, ``enum``, ``pattern``, ``minimum``, ``maximum``) apply. A var the DAG does
not declare is an error: Fastflow dropped it silently, which hid typos.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from .definition.model import DagDef
from .definition.problems import (
    did_you_mean,
    int_too_large,
    listing,
    short_repr,
    too_large_number,
)
from .definition.vartypes import VarValueError
from .errors import InputError, VarsError
from .limits import find_text, is_utf8

MAX_TAGS = 64
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 191  # the size of the indexed column that holds it
#: a run's priority: waiting runs leave the Dispatcher highest first
MIN_PRIORITY = -1_000_000
MAX_PRIORITY = 1_000_000
# An unknown var is named in the message with a suggestion; past this many, naming each one
# makes a message nobody reads (and suggesting costs a comparison with every declared var).
_MAX_NAMED = 20
# Tags live in indexed text columns: PostgreSQL refuses NUL, no database stores a lone
# surrogate, and a control character cannot be typed back to search for the tag.
_UNSTORABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def var_text(name: str, value: Any) -> str:
    """A run var's value as text; raises :class:`InputError` for null or nested values."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if int_too_large(value):
        raise InputError(f"run var '{name}' is {too_large_number()} — give it as text")
    if isinstance(value, int | float):
        return str(value)
    if value is None:
        raise InputError(
            f"run var '{name}' is null — give it a text value (\"\" for its default value)"
        )
    raise InputError(
        f"run var '{name}' must be text, a number or true/false, not a {type(value).__name__}"
        " — encode structured values as text (JSON, for example)"
    )


def resolve_run_vars(dag: DagDef, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The DAG's declared vars with their defaults, overridden by ``given``, typed vars as
    values of their types.

    An empty value keeps the var's default (``""`` for an untyped var declared without one,
    null for a typed one), as in Fastflow. Raises :class:`InputError` naming every given var
    the DAG does not declare, or every var whose value is missing or does not fit, with the
    rule it breaks."""
    resolved = dag.default_vars()
    if given and not isinstance(given, Mapping):
        raise InputError("run vars must be a mapping of var names to values")
    if given:
        _check_declared(dag, given, resolved)
        _check_text(given)
        for name, value in given.items():
            if dag.vars[name].type is None:
                value = var_text(name, value)
            # Fastflow's rule: an empty value means "use the default" (CLI, API, Python)
            if value is not None and value != "":
                resolved[name] = value
    problems: list[str] = []
    for name, var in dag.vars.items():
        value = resolved[name]
        if value is None or value == "":
            if var.required:
                problems.append(f"run var '{name}' is required (required: true) and was not"
                                " given")
            continue
        try:
            resolved[name] = var.accept(value)
        except VarValueError as exc:
            problems.append(f"run var '{name}' {exc}")
    if problems:
        raise VarsError(
            f"the vars of this run of DAG '{dag.id}' do not fit: " + "; ".join(problems)
            if len(problems) > 1 else problems[0],
            details={"problems": problems},
        )
    if given:  # a typed value parsed from JSON text may hold what the text escaped
        _check_text({name: resolved[name] for name in given})
    return resolved


def _check_text(given: Mapping[str, Any]) -> None:
    """Raise :class:`InputError` for a run var holding text no task could be given: a NUL
    (no process argument or environment variable can carry one) or a lone UTF-16 surrogate
    (not text: it could not be stored). The value is not shown (it may be secret)."""
    for name, value in given.items():
        shown = f"run var '{_shown(name)}'"
        at = find_text(value, lambda t: "\x00" in t)
        if at is not None:
            where = "" if at == "the value" else f" (at {at})"
            raise InputError(f"{shown} holds a NUL character{where}, which no process"
                             " argument or environment variable can carry")
        at = find_text(value, lambda t: not is_utf8(t))
        if at is not None:
            where = "" if at == "the value" else f" (at {at})"
            raise InputError(f"{shown} holds a lone UTF-16 surrogate{where} (such as \\ud800),"
                             " which is not text: send UTF-8 text")


def _check_declared(dag: DagDef, given: Mapping[str, Any], resolved: Mapping[str, Any]) -> None:
    """Raise :class:`InputError` naming the given vars that ``dag`` does not declare."""
    if not isinstance(given, Mapping):
        raise InputError("run vars must be a mapping of var names to values")
    unknown = [name for name in given if name not in resolved]
    if unknown:
        declared = sorted(resolved)
        named = []
        for name in unknown[:_MAX_NAMED]:
            text = _shown(name)
            close = did_you_mean(name, declared) if isinstance(name, str) else None
            named.append(f"'{text}' (did you mean '{close}'?)" if close else f"'{text}'")
        if len(unknown) > _MAX_NAMED:
            named.append(f"{len(unknown) - _MAX_NAMED:,} more")
        what = "var" if len(unknown) == 1 else "vars"
        verb = "is" if len(unknown) == 1 else "are"
        declares = f"it declares: {listing(declared, limit=30)}" if declared else "it declares none"
        raise InputError(
            f"run {what} {', '.join(named)} {verb} not declared by DAG '{dag.id}'; {declares}",
            details={
                "unknown": [_shown(n) for n in unknown[:_MAX_NAMED]],
                "declared": declared[:100],
            },
        )


def _shown(name: object) -> str:
    """A var name as given, cut to fit in a sentence (any text can be a key of a body)."""
    if isinstance(name, str):
        return name if len(name) <= 60 else name[:57] + "..."
    return short_repr(name)


def check_priority(priority: Any) -> int:
    """A run's priority, an integer from MIN_PRIORITY to MAX_PRIORITY."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise InputError(f"priority {priority!r}: give a whole number")
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise InputError(f"priority {priority} is out of range: use {MIN_PRIORITY} to "
                         f"{MAX_PRIORITY}")
    return priority


def parse_kv_pairs(items: Sequence[str], *, what: str) -> dict[str, str]:
    """``["a=1", "b=x=y"]`` → ``{"a": "1", "b": "x=y"}`` (split at the first ``=``).

    ``what`` names the option in messages (``--var``, ``--tag``)."""
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        # items come from a command line or a query string: quote them back cut to size
        if not sep:
            raise InputError(f"{what} {short_repr(item)} is not KEY=VALUE")
        if not key:
            raise InputError(f"{what} {short_repr(item)} has an empty KEY: write KEY=VALUE")
        if key in pairs:
            raise InputError(f"{what} {short_repr(key)} is given twice — give each KEY once")
        pairs[key] = value
    return pairs


def validate_tags(tags: Mapping[str, Any] | None, *, what: str = "tag") -> dict[str, str]:
    """The tags (or selector labels, with ``what="selector label"``) as a plain dict of text.

    Raises :class:`InputError` unless keys are non-empty text of at most 128 characters, values
    text of at most 191, and there are at most 64 of them."""
    if not tags:
        return {}
    if not isinstance(tags, Mapping):
        raise InputError(f"{what}s must be a mapping of text to text")
    if len(tags) > MAX_TAGS:
        raise InputError(f"at most {MAX_TAGS} {what}s are allowed, {len(tags)} were given")
    out: dict[str, str] = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not key:
            raise InputError(f"{what} key {short_repr(key)} must be non-empty text")
        if len(key) > MAX_TAG_KEY:
            raise InputError(
                f"{what} key {short_repr(key)} is {len(key)} characters long;"
                f" the limit is {MAX_TAG_KEY}"
            )
        if _UNSTORABLE.search(key):
            raise InputError(
                f"{what} key {short_repr(key)} holds a control character or a lone surrogate"
                " — use printable text"
            )
        if not isinstance(value, str):
            raise InputError(
                f"{what} {short_repr(key)} must have a text value, not {short_repr(value)}"
            )
        if len(value) > MAX_TAG_VALUE:
            raise InputError(
                f"{what} {short_repr(key)} has a value of {len(value)} characters;"
                f" the limit is {MAX_TAG_VALUE}"
            )
        if _UNSTORABLE.search(value):
            raise InputError(
                f"{what} {short_repr(key)} has the value {short_repr(value)}, which holds a"
                " control character or a lone surrogate — use printable text"
            )
        out[key] = value
    return out
