"""Task outputs: an action's return value made into the JSON its task stores, and the view of
the outputs that a task's templates read as ``tasks.<id>.output``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from pydantic_core import PydanticSerializationError, to_jsonable_python

from .errors import ActionError
from .limits import DEFAULT_MAX_VALUE_BYTES

if TYPE_CHECKING:
    from .store.records import TaskRecord

#: the largest output, as compact JSON text, a task may store (EngineSettings.max_value_bytes)
DEFAULT_MAX_OUTPUT_BYTES = DEFAULT_MAX_VALUE_BYTES

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def to_output(value: Any, limit: int = DEFAULT_MAX_OUTPUT_BYTES) -> Any:
    """``value`` as the JSON document a task stores: plain dicts, lists, strings, numbers,
    bools and None (pydantic models, dataclasses, datetimes and the like are converted as
    pydantic would). What is kept is exactly what a reader gets back after a restart.

    Raises :class:`ActionError` when it cannot be JSON or is larger than ``limit`` bytes."""
    if value is None:
        return None
    try:
        text = _encode(to_jsonable_python(value))
    except (PydanticSerializationError, TypeError, ValueError) as exc:
        raise ActionError(
            f"the action's return value, of type {type(value).__name__}, cannot be stored as the"
            f" task's output (it must be JSON: dicts, lists, strings, numbers, booleans): {exc}"
        ) from None
    size = len(text.encode())
    if size > limit:
        raise ActionError(
            f"the action's output is {size:,} bytes of JSON, more than the limit of {limit:,}"
            " bytes (max_value_bytes); store bulk data elsewhere and return a reference to it"
        )
    return json.loads(text)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(text: str) -> Any:
    """Parse JSON text as the standard has it (``NaN`` and ``Infinity`` are refused)."""
    return json.loads(text, parse_constant=_no_constant)


class TaskOutputs(Mapping[str, Mapping[str, Any]]):
    """``tasks`` in templates: ``tasks[<id>]`` is ``{"output": ..., "status": ...}`` for the
    tasks in ``readable`` (a task's ancestors); other ids read as missing."""

    __slots__ = ("_tasks", "_readable", "_label")

    def __init__(
        self,
        tasks: Mapping[str, TaskRecord],
        readable: Callable[[str], bool],
        label: str,
    ) -> None:
        self._tasks = tasks
        self._readable = readable
        #: who reads, for messages: "task 'configure'"
        self._label = label

    @classmethod
    def none(cls, task_id: str) -> TaskOutputs:
        """A view in which task ``task_id`` can read no output."""
        return cls({}, lambda _: False, f"task {task_id!r}")

    def __getitem__(self, task_id: str) -> Mapping[str, Any]:
        task = self._tasks.get(task_id) if isinstance(task_id, str) else None
        if task is None or not self._readable(task_id):
            raise KeyError(task_id)
        return {"output": task.output, "status": task.status.value}

    def __iter__(self) -> Iterator[str]:
        return (tid for tid in self._tasks if self._readable(tid))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def missing(self, task_id: str) -> str:
        """Why ``task_id`` cannot be read, as a sentence."""
        if self._tasks and task_id not in self._tasks:
            return f"there is no task {task_id!r}"
        return (f"{self._label} cannot read the output of task {task_id!r}: only tasks it"
                " depends on (directly or not) can be read")

    def __repr__(self) -> str:
        return "<tasks>"
