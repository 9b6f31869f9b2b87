"""Pieces shared by the params models of the built-in actions."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict

#: camelCase names as written in definitions, snake_case accepted too; an unknown key is an
#: error so that a misspelt param is reported instead of silently ignored
PARAMS_CONFIG = ConfigDict(populate_by_name=True, extra="forbid")


def weak_text(value: Any) -> Any:
    """Turn a number or a bool into its text, as Fastflow's weak decoding did.

    YAML reads ``8080`` or ``true`` as typed scalars; where a param is text they mean the text
    written. Other types pass through unchanged so that pydantic reports them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def text_or_json(value: Any) -> Any:
    """:func:`weak_text`, and a list or a mapping (a typed var or an output given whole,
    ``{{regions}}``) as its compact JSON text, as it reads inside a longer text. Only for
    params that are never a list themselves (an argv item, an env value)."""
    if isinstance(value, list | dict):
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError):
            return value
    return weak_text(value)


#: a ``str`` that also accepts numbers and bools (weak typing)
WeakStr = Annotated[str, BeforeValidator(weak_text)]
#: a ``str`` that also accepts numbers, bools, lists and mappings (as JSON text)
TextOrJson = Annotated[str, BeforeValidator(text_or_json)]
