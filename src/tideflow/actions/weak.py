"""Fastflow's weak decoding of rendered params into an action's params model.

Fastflow decoded params into the action's struct with weak typing and field names matched
without regard to case. pydantic's lax mode already reads ``"2"`` as ``2`` and ``"true"`` as
``True``; this adds the rest, for any params model (a pydantic model or a dataclass, nested
ones too), before pydantic validates:

- a number or a bool where text is expected becomes its text (``123`` → ``"123"``,
  ``True`` → ``"true"``), also as items of a list or values of a mapping of text;
- a key that matches a field only when case is ignored (``NAME`` for ``name``) is that field;
- a single value where a list is expected is a list of that one value.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

_SCALARS = (bool, int, float)
_LISTS = (list, tuple, set, frozenset)


def weaken(annotation: Any, value: Any) -> Any:
    """``value`` made ready for ``annotation`` by the rules above (anything else unchanged)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return weaken(get_args(annotation)[0], value)
    if annotation is str:
        return _text(value)
    if origin in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return weaken(members[0], value)
        if str in members and isinstance(value, _SCALARS) and not any(
            m in _SCALARS for m in members
        ):
            return _text(value)
        return value
    if origin in _LISTS or annotation in _LISTS:
        args = get_args(annotation)
        item = args[0] if args and (origin is not tuple or args[-1] is Ellipsis) else Any
        if isinstance(value, str | bytes) or isinstance(value, _SCALARS):
            value = [value]
        if isinstance(value, list | tuple):
            return [weaken(item, v) for v in value]
        return value
    if origin in (dict, Mapping) or origin is typing.Mapping:
        args = get_args(annotation)
        if len(args) == 2 and isinstance(value, Mapping):
            return {k: weaken(args[1], v) for k, v in value.items()}
        return value
    if isinstance(annotation, type) and isinstance(value, Mapping):
        fields = _fields(annotation)
        if fields is not None:
            return _weaken_fields(fields, value)
    return value


def _text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _fields(cls: type) -> dict[str, tuple[list[str], Any]] | None:
    """A model's fields: the names a key may use for each, and its annotation."""
    if issubclass(cls, BaseModel):
        out: dict[str, tuple[list[str], Any]] = {}
        for name, field in cls.model_fields.items():
            names = [name] + [a for a in (field.alias, field.validation_alias)
                              if isinstance(a, str) and a != name]
            out[name] = (names, field.annotation)
        return out
    if dataclasses.is_dataclass(cls):
        try:
            hints = typing.get_type_hints(cls, include_extras=True)
        except Exception:  # an annotation that cannot be resolved: leave it to the model
            return None
        return {f.name: ([f.name], hints.get(f.name, Any)) for f in dataclasses.fields(cls)}
    return None


def _weaken_fields(fields: dict[str, tuple[list[str], Any]], value: Mapping[Any, Any]) -> Any:
    by_lower: dict[str, str] = {}
    exact: dict[str, Any] = {}
    for names, annotation in fields.values():
        for n in names:
            exact[n] = annotation
            by_lower.setdefault(n.lower(), n)
    out: dict[Any, Any] = {}
    for key, item in value.items():
        name = key
        if isinstance(key, str) and key not in exact:
            match = by_lower.get(key.lower())
            if match is not None and match not in value:
                name = match
        out[name] = weaken(exact[name], item) if name in exact else item
    return out
