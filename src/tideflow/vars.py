"""Run input: a run's vars against the DAG's declared ones, ``KEY=VALUE`` pairs, tags.

Values are strings, as in Fastflow; scalars given otherwise are turned into their text
(``True`` → ``"true"``, ``3`` → ``"3"``). A var the DAG does not declare is an error: Fastflow
dropped it silently, which hid typos.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .definition.model import DagDef
from .definition.problems import did_you_mean, listing, short_repr
from .errors import InputError

MAX_TAGS = 64
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 191  # the size of the indexed column that holds it


def var_text(name: str, value: Any) -> str:
    """A run var's value as text; raises :class:`InputError` for null or nested values."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if value is None:
        raise InputError(f"run var '{name}' is null — give it a text value (\"\" for empty)")
    raise InputError(
        f"run var '{name}' must be text, a number or true/false, not a {type(value).__name__}"
        " — encode structured values as text (JSON, for example)"
    )


def resolve_run_vars(dag: DagDef, given: Mapping[str, Any] | None) -> dict[str, str]:
    """The DAG's declared vars with their defaults, overridden by ``given``.

    Raises :class:`InputError` naming every given var the DAG does not declare."""
    resolved = dag.default_vars()
    if not given:
        return resolved
    if not isinstance(given, Mapping):
        raise InputError("run vars must be a mapping of var names to values")
    unknown = [name for name in given if name not in resolved]
    if unknown:
        declared = sorted(resolved)
        named = []
        for name in unknown:
            text = name if isinstance(name, str) else short_repr(name)
            close = did_you_mean(text, declared) if isinstance(name, str) else None
            named.append(f"'{text}' (did you mean '{close}'?)" if close else f"'{text}'")
        what = "var" if len(unknown) == 1 else "vars"
        verb = "is" if len(unknown) == 1 else "are"
        declares = f"it declares: {listing(declared, limit=30)}" if declared else "it declares none"
        raise InputError(
            f"run {what} {', '.join(named)} {verb} not declared by DAG '{dag.id}'; {declares}",
            details={"unknown": [str(n) for n in unknown], "declared": declared},
        )
    for name, value in given.items():
        resolved[name] = var_text(name, value)
    return resolved


def parse_kv_pairs(items: Sequence[str], *, what: str) -> dict[str, str]:
    """``["a=1", "b=x=y"]`` → ``{"a": "1", "b": "x=y"}`` (split at the first ``=``).

    ``what`` names the option in messages (``--var``, ``--tag``)."""
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"{what} {item!r} is not KEY=VALUE")
        if not key:
            raise InputError(f"{what} {item!r} has an empty KEY: write KEY=VALUE")
        if key in pairs:
            raise InputError(f"{what} {key!r} is given twice — give each KEY once")
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
        if not isinstance(value, str):
            raise InputError(f"{what} '{key}' must have a text value, not {short_repr(value)}")
        if len(value) > MAX_TAG_VALUE:
            raise InputError(
                f"{what} '{key}' has a value of {len(value)} characters;"
                f" the limit is {MAX_TAG_VALUE}"
            )
        out[key] = value
    return out
