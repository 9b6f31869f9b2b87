"""From parsed data to the document the model validates: strings stay strings.

Every place where the model wants text (ids, names, action names, ``dependOn``, var values,
preCheck keys and values...) receives the text as written: YAML's ``false``, ``yes``, ``010`` or
``0x1F`` stay exactly that; from JSON or a Python dict, ``false`` becomes ``"false"`` and ``3``
becomes ``"3"``. Everywhere else (params, timeouts, retry) values keep their types.

Along the way the data is bounded (nesting depth in params, total number of values, number of
tasks) and checked to be JSON data, since definitions are stored as JSON.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from .model import Condition, DagDef, PreCheck, TaskDef, VarDef
from .parse import Deadline, TypedScalar, too_many_tasks
from .problems import describe_kind, format_path, int_too_large, task_label, too_large_number


class TooLarge(Exception):
    """The data holds more values than allowed; the message is the problem."""


def _keys(model: type[BaseModel], *names: str) -> frozenset[str]:
    """The field names and their camelCase aliases (the model accepts both)."""
    out: set[str] = set()
    for name in names:
        out.add(name)
        alias = model.model_fields[name].alias
        if alias:
            out.add(alias)
    return frozenset(out)


_DAG_TEXT = _keys(DagDef, "id", "name", "desc", "status")
_DAG_OPTIONAL_TEXT = _keys(DagDef, "cron", "timezone")
_VAR_TEXT = _keys(VarDef, "desc", "default_value")
_TASK_TEXT = _keys(TaskDef, "id", "name", "action_name")
_TASK_TEXT_LIST = _keys(TaskDef, "depend_on")
_TASK_PRECHECK = _keys(TaskDef, "pre_check")
_CHECK_TEXT = _keys(PreCheck, "name", "act")
_COND_TEXT = _keys(Condition, "source", "key", "op")
_COND_TEXT_LIST = _keys(Condition, "values")

_SCALARS = (str, bool, int, float)


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, TypedScalar) and value.value is None)


class Normaliser:
    """One pass over one definition; collects problems instead of stopping at the first."""

    def __init__(
        self, *, max_depth: int, max_nodes: int, max_tasks: int, deadline: Deadline | None = None
    ) -> None:
        self.max_depth = max_depth
        self.max_nodes = max_nodes
        self.max_tasks = max_tasks
        self.deadline = deadline
        self.problems: list[str] = []
        #: the places named by ``problems`` (``task 'a' (tasks[0]): timeoutSecs``)
        self.flagged: set[str] = set()
        self._seen = 0

    # -- scalars --------------------------------------------------------------------------------
    def text(self, value: Any, owner: str, path: tuple[Any, ...], null: str | None = "") -> Any:
        """The text written for a scalar; anything else as data, for the model to refuse."""
        if isinstance(value, TypedScalar):
            return null if value.value is None else str(value)
        if isinstance(value, str):
            return str(value)
        if isinstance(value, bool):
            return "true" if value else "false"
        if int_too_large(value):
            return value  # the model refuses it as "must be text, found a number of more..."
        if isinstance(value, int | float):
            return str(value)
        if value is None:
            return null
        return self.data(value, owner, path)

    def text_list(self, value: Any, owner: str, path: tuple[Any, ...]) -> Any:
        if isinstance(value, list | tuple):
            return [self.text(v, owner, (*path, i)) for i, v in enumerate(value)]
        return self.data(value, owner, path)

    def key(self, key: Any, owner: str, path: tuple[Any, ...]) -> str | None:
        if isinstance(key, str):
            return str(key)
        if isinstance(key, bool):
            return "true" if key else "false"
        if int_too_large(key):
            self._problem(owner, path, f"has a key that is {too_large_number()}")
            return None
        if isinstance(key, int | float):
            return str(key)
        if key is None:
            return "null"
        self._problem(owner, path, f"has a key that is not text ({type(key).__name__})")
        return None

    # -- typed data -----------------------------------------------------------------------------
    def data(self, value: Any, owner: str, path: tuple[Any, ...], depth: int = 0) -> Any:
        """Plain JSON data: typed scalars unwrapped, keys as text, bounded in depth and size."""
        self._seen += 1
        if self._seen > self.max_nodes:
            raise TooLarge(f"has more than {self.max_nodes:,} values — split it into smaller DAGs")
        if self.deadline is not None and not self._seen & 4095:
            self.deadline.check()
        if isinstance(value, TypedScalar):
            value = value.value
        elif isinstance(value, str):
            return str(value)
        if int_too_large(value):
            self._problem(owner, path, f"is {too_large_number()}, too large to store")
            return None
        if value is None or isinstance(value, bool | int):
            return value
        if isinstance(value, float):
            if not math.isfinite(value):
                self._problem(owner, path, f"{value} is not a finite number")
                return None
            return value
        if isinstance(value, Mapping | list | tuple):
            if depth >= self.max_depth:
                self._problem(owner, path, f"nests deeper than {self.max_depth} levels")
                return None
            if isinstance(value, Mapping):
                out: dict[str, Any] = {}
                for k, v in value.items():
                    key = self.key(k, owner, path)
                    if key is not None:
                        out[key] = self.data(v, owner, (*path, key), depth + 1)
                return out
            return [self.data(v, owner, (*path, i), depth + 1) for i, v in enumerate(value)]
        self._problem(
            owner,
            path,
            f"holds a {type(value).__name__} value, which is not JSON data"
            " — use text, numbers, true/false, null, lists and mappings",
        )
        return None

    def _problem(self, owner: str, path: tuple[Any, ...], what: str) -> None:
        if path:
            where = format_path(path[1:12], root=str(path[0])) + ("..." if len(path) > 12 else "")
            self.problems.append(f"{owner}: {where} {what}" if owner else f"{where} {what}")
            self.flagged.add(f"{owner}: {where}" if owner else where)
        else:
            self.problems.append(f"{owner}: {what}" if owner else what)

    def already_reported(self, problem: str) -> bool:
        """Whether ``problem`` (``place: what``) is about a place this pass already reported:
        the value found there was dropped, so the model's complaint about it would mislead."""
        at = problem.find(": ")
        while at >= 0:
            if problem[:at] in self.flagged:
                return True
            at = problem.find(": ", at + 2)
        return False

    # -- the definition's shape -----------------------------------------------------------------
    def dag(self, data: Any, default_id: str | None) -> dict[str, Any] | None:
        """The document for ``DagDef``; None when the top level is not a mapping."""
        if not isinstance(data, Mapping):
            found = data if int_too_large(data) else self.data(data, "", ())
            self.problems.append(
                "the top level must be a mapping of DAG keys (id, name, vars, tasks...),"
                f" found {describe_kind(found)}"
            )
            return None
        doc: dict[str, Any] = {}
        for raw_key, value in data.items():
            key = self.key(raw_key, "the DAG", ())
            if key is None:
                continue
            if key in _DAG_TEXT:
                doc[key] = self.text(value, "", (key,), null=None if key == "id" else "")
            elif key in _DAG_OPTIONAL_TEXT:
                text = self.text(value, "", (key,), null=None)
                # Fastflow writes an unset schedule as "" (Go's zero value)
                doc[key] = None if isinstance(text, str) and not text.strip() else text
            elif key == "vars":
                doc[key] = self.vars(value)
            elif key == "cronVars" and isinstance(value, Mapping):
                # run vars are text, as everywhere else
                doc[key] = {
                    str(k): self.text(v, "cronVars", (str(k),)) for k, v in value.items()
                }
            elif key == "tasks":
                doc[key] = self.tasks(value)
            else:
                doc[key] = self.data(value, "", (key,))
        if doc.get("id") is None:
            doc.pop("id", None)
            if default_id is not None:
                doc["id"] = default_id
        return doc

    def vars(self, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return self.data(value, "", ("vars",))
        out: dict[str, Any] = {}
        for raw_name, spec in value.items():
            name = self.key(raw_name, "", ("vars",))
            if name is None:
                continue
            owner = f"var '{name}'"
            if isinstance(spec, Mapping):
                var: dict[str, Any] = {}
                for raw_key, v in spec.items():
                    key = self.key(raw_key, owner, ())
                    if key is None:
                        continue
                    if key in _VAR_TEXT:
                        var[key] = self.text(v, owner, (key,))
                    else:
                        var[key] = self.data(v, owner, (key,))
                out[name] = var
            elif _is_null(spec) or isinstance(spec, _SCALARS):
                # `name: value` is shorthand for `name: {defaultValue: value}`
                out[name] = {"defaultValue": self.text(spec, owner, ("defaultValue",))}
            else:
                out[name] = self.data(spec, owner, ())
        return out

    def tasks(self, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            return self.data(value, "", ("tasks",))
        if len(value) > self.max_tasks:
            raise TooLarge(too_many_tasks(len(value), self.max_tasks))
        return [self.task(t, i) for i, t in enumerate(value)]

    def task(self, value: Any, index: int) -> Any:
        if not isinstance(value, Mapping):
            return self.data(value, task_label(None, index), ())
        raw_id = value.get("id")
        label_id = str(raw_id) if isinstance(raw_id, str) else None
        owner = task_label(label_id, index)
        out: dict[str, Any] = {}
        for raw_key, v in value.items():
            key = self.key(raw_key, owner, ())
            if key is None:
                continue
            if key in _TASK_TEXT:
                out[key] = self.text(v, owner, (key,))
            elif key in _TASK_TEXT_LIST:
                out[key] = None if _is_null(v) else self.text_list(v, owner, (key,))
            elif key in _TASK_PRECHECK:
                out[key] = self.pre_checks(v, owner)
            else:
                out[key] = self.data(v, owner, (key,))
        return out

    def pre_checks(self, value: Any, owner: str) -> Any:
        if _is_null(value):
            return None
        if isinstance(value, Mapping):
            # Fastflow's map of named checks, kept in the order written
            checks = []
            for raw_name, check in value.items():
                name = self.key(raw_name, owner, ("preCheck",))
                if name is None:
                    continue
                path = ("preCheck", name)
                if isinstance(check, Mapping):
                    checks.append({"name": name, **self.pre_check(check, owner, path)})
                else:
                    checks.append(self.data(check, owner, path))
            return checks
        if isinstance(value, list | tuple):
            return [
                self.pre_check(c, owner, ("preCheck", i))
                if isinstance(c, Mapping)
                else self.data(c, owner, ("preCheck", i))
                for i, c in enumerate(value)
            ]
        return self.data(value, owner, ("preCheck",))

    def pre_check(self, check: Mapping[Any, Any], owner: str, path: tuple[Any, ...]) -> Any:
        out: dict[str, Any] = {}
        for raw_key, v in check.items():
            key = self.key(raw_key, owner, path)
            if key is None:
                continue
            if key in _CHECK_TEXT:
                out[key] = self.text(v, owner, (*path, key))
            elif key == "conditions" and isinstance(v, list | tuple):
                out[key] = [
                    self.condition(c, owner, (*path, key, i))
                    if isinstance(c, Mapping)
                    else self.data(c, owner, (*path, key, i))
                    for i, c in enumerate(v)
                ]
            else:
                out[key] = self.data(v, owner, (*path, key))
        return out

    def condition(self, cond: Mapping[Any, Any], owner: str, path: tuple[Any, ...]) -> Any:
        out: dict[str, Any] = {}
        for raw_key, v in cond.items():
            key = self.key(raw_key, owner, path)
            if key is None:
                continue
            if key in _COND_TEXT:
                out[key] = self.text(v, owner, (*path, key))
            elif key in _COND_TEXT_LIST:
                out[key] = self.text_list(v, owner, (*path, key))
            else:
                out[key] = self.data(v, owner, (*path, key))
        return out
