"""Pydantic's validation errors as problem sentences a person can act on.

``('tasks', 2, 'actionName')`` + ``missing`` becomes ``task 'deploy' (tasks[2]): actionName:
field required — every task needs the name of the action it runs``; an unknown key gets the
closest known key as a suggestion.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from .model import Compensation, Condition, DagDef, PreCheck, RetryPolicy, TaskDef, VarDef
from .problems import (
    describe_kind,
    did_you_mean,
    format_path,
    short_repr,
    suggestion,
    task_label,
)

_CHOICES: dict[str, tuple[str, ...]] = {
    "act": ("skip", "block"),
    "source": ("vars", "share-data"),
    "op": ("in", "not-in"),
    "status": ("normal", "stopped"),
}

_MISSING_HINTS: dict[tuple[type[BaseModel], str], str] = {
    (DagDef, "id"): "give the DAG an id (a file's id defaults to its name)",
    (DagDef, "tasks"): "a DAG needs a list of tasks",
    (TaskDef, "id"): "every task needs a unique id",
    (TaskDef, "actionName"): "every task needs the name of the action it runs",
    (PreCheck, "act"): "say what the check does: skip or block",
    (Condition, "source"): "say where the key is read: vars or share-data",
    (Condition, "key"): "name the var or share-data key the condition reads",
    (Condition, "op"): "use in or not-in",
}

_LIST_TYPES = frozenset({"tuple_type", "list_type", "iterable_type", "set_type"})
_MAPPING_TYPES = frozenset({"model_type", "dict_type", "model_attributes_type"})
_NUMBER_TYPES = frozenset(
    {"int_type", "int_parsing", "int_from_float", "float_type", "float_parsing"}
)
_PRECHECK_KEYS = ("preCheck", "pre_check")


def explain(exc: ValidationError, doc: Mapping[str, Any]) -> list[str]:
    """One sentence per error (without the source prefix), in the order pydantic found them."""
    sentences = [_explain_one(err, doc) for err in exc.errors(include_url=False) if not _echo(err)]
    return list(dict.fromkeys(sentences))


def _echo(err: ErrorDetails) -> bool:
    """A list reported too short only because its items failed: those failures say it all."""
    value = err.get("input")
    return err["type"] == "too_short" and isinstance(value, list | tuple) and len(value) > 0


def _explain_one(err: ErrorDetails, doc: Mapping[str, Any]) -> str:
    loc = tuple(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden" and loc:
        owner, path = _locate(loc[:-1], doc)
        place = " ".join(p for p in (owner, path) if p) or "the top level of the DAG"
        model = _model_at(loc[:-1])
        known = _aliases(model) if model else []
        hint = suggestion(str(loc[-1]), known)
        if not hint and known:
            hint = f" — known keys: {', '.join(known)}"
        return f"unknown key '{loc[-1]}' in {place}{hint}"
    owner, path = _locate(loc, doc)
    model = _model_at(loc[:-1]) if loc else None
    field = str(loc[-1]) if loc else ""
    what = _what(err, model, field)
    head = ": ".join(p for p in (owner, path) if p)
    return f"{head}: {what}" if head else what


def _what(err: ErrorDetails, model: type[BaseModel] | None, field: str) -> str:
    kind = err["type"]
    value = err.get("input")
    if kind == "missing":
        hint = _MISSING_HINTS.get((model, field)) if model else None
        return f"field required — {hint}" if hint else "field required"
    if kind in ("literal_error", "enum"):
        choices = _CHOICES.get(field)
        if choices:
            allowed = " or ".join(f"'{c}'" for c in choices)
            close = did_you_mean(value, choices) if isinstance(value, str) else None
            hint = f" (did you mean '{close}'?)" if close else ""
            return f"{short_repr(value)} is not allowed — use {allowed}{hint}"
    if kind == "string_type":
        return f"must be text, found {describe_kind(value)}"
    if kind in _LIST_TYPES:
        return f"must be a list, found {describe_kind(value)}"
    if kind in _MAPPING_TYPES:
        return f"must be a mapping of keys, found {describe_kind(value)}"
    if kind == "too_short":
        return "must list at least one task" if field == "tasks" else "must not be empty"
    if kind in _NUMBER_TYPES:
        return f"must be a number, found {describe_kind(value)}"
    if kind in ("bool_type", "bool_parsing"):
        return f"must be true or false, found {describe_kind(value)}"
    if kind == "value_error":
        # our validators' own sentences, which name the value already
        error = err.get("ctx", {}).get("error")
        if error is not None:
            return str(error)
    message = err["msg"]
    message = message[:1].lower() + message[1:]
    return f"{message}, found {describe_kind(value)}" if "input" in err else message


def _locate(loc: tuple[Any, ...], doc: Mapping[str, Any]) -> tuple[str, str]:
    """(what owns the location: a task or a var, the path inside it)."""
    parts = list(loc)
    if len(parts) >= 2 and parts[0] == "tasks" and isinstance(parts[1], int):
        index = parts[1]
        task = _item(doc.get("tasks"), index)
        owner = task_label(task.get("id") if isinstance(task, Mapping) else None, index)
        parts = parts[2:]
        if len(parts) >= 2 and parts[0] in _PRECHECK_KEYS and isinstance(parts[1], int):
            check = _item(task.get(parts[0]) if isinstance(task, Mapping) else None, parts[1])
            name = check.get("name") if isinstance(check, Mapping) else None
            head = (
                f"preCheck '{name}'" if isinstance(name, str) and name else f"preCheck[{parts[1]}]"
            )
            return owner, format_path(parts[2:], root=head)
        return owner, _path(parts)
    if len(parts) >= 2 and parts[0] == "vars":
        return f"var '{parts[1]}'", _path(parts[2:])
    return "", _path(parts)


def _path(parts: list[Any]) -> str:
    return format_path(parts[1:], root=str(parts[0])) if parts else ""


def _item(container: Any, index: int) -> Any:
    if isinstance(container, list | tuple) and 0 <= index < len(container):
        return container[index]
    return None


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model a location points into: ``('tasks', 0, 'retry')`` is a RetryPolicy."""
    model: type[BaseModel] = DagDef
    i = 0
    while i < len(loc):
        part, nxt = loc[i], loc[i + 1] if i + 1 < len(loc) else None
        if model is DagDef and part == "tasks" and isinstance(nxt, int):
            model, i = TaskDef, i + 2
        elif model is DagDef and part == "vars" and nxt is not None:
            model, i = VarDef, i + 2
        elif model is TaskDef and part in _PRECHECK_KEYS and isinstance(nxt, int):
            model, i = PreCheck, i + 2
        elif model in (TaskDef, Compensation) and part == "retry":
            model, i = RetryPolicy, i + 1
        elif model is TaskDef and part == "compensate":
            model, i = Compensation, i + 1
        elif model is PreCheck and part == "conditions" and isinstance(nxt, int):
            model, i = Condition, i + 2
        else:
            return None
    return model


def _aliases(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]
