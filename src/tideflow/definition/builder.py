"""Building a definition in Python, and writing any definition back as YAML.

The builder writes the same document a YAML file holds and loads it through the same loader, so
a built DAG is validated exactly like a loaded one and equals it::

    dag = (
        DagBuilder("create-cluster", name="Create a cluster")
        .var("region", default="cn-north-1", desc="target region")
        .task("alloc", "shell", params={"cmd": ["echo", "{{region}}"]}, timeout_secs=30,
              retry=Retry(max_attempts=3, backoff_secs=1))
        .task("wait", "wait", params={"waitingTime": "1s"}, depend_on=["alloc"])
        .build()
    )
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Self

import yaml
from pydantic import BaseModel

from ..states import DagStatus
from .loader import LoadLimits, load_dag_dict
from .model import Compensation, DagDef, PreCheck, RetryPolicy, RunIf
from .vartypes import VarType

#: Shorter name for the retry policy in builder code.
Retry = RetryPolicy


def _as_document(value: BaseModel | Mapping[str, Any]) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    return dict(value)


class DagBuilder:
    """Collects a DAG's vars and tasks; :meth:`build` validates and returns the ``DagDef``."""

    def __init__(
        self,
        dag_id: str,
        *,
        name: str = "",
        desc: str = "",
        cron: str | None = None,
        timezone: str | None = None,
        status: DagStatus | str = DagStatus.NORMAL,
    ) -> None:
        self._doc: dict[str, Any] = {"id": dag_id, "name": name, "desc": desc}
        if cron is not None:
            self._doc["cron"] = cron
        if timezone is not None:
            self._doc["timezone"] = timezone
        self._doc["status"] = str(status)
        self._vars: dict[str, Any] = {}
        self._tasks: list[dict[str, Any]] = []

    def var(
        self,
        name: str,
        default: Any = "",
        *,
        desc: str = "",
        secret: bool = False,
        type: VarType | None = None,  # noqa: A002 - the definition's own key
        required: bool = False,
        enum: Sequence[Any] | None = None,
        pattern: str | None = None,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> Self:
        """Declare a var with its default value. With ``type`` (``string``, ``integer``,
        ``number``, ``boolean``, ``list``, ``object``) its values are of that type (a default
        may be given as a value or as its text); ``required``, ``enum``, ``pattern``,
        ``minimum`` and ``maximum`` are the rules a run's value must fit."""
        spec: dict[str, Any] = {"defaultValue": default, "desc": desc, "secret": secret}
        rules = {"type": type, "enum": None if enum is None else list(enum),
                 "pattern": pattern, "minimum": minimum, "maximum": maximum}
        spec.update({k: v for k, v in rules.items() if v is not None})
        if required:
            spec["required"] = True
        self._vars[name] = spec
        return self

    def task(
        self,
        task_id: str,
        action_name: str,
        *,
        params: Mapping[str, Any] | None = None,
        depend_on: str | Sequence[str] = (),
        name: str = "",
        timeout_secs: float = 0,
        retry: RetryPolicy | Mapping[str, Any] | None = None,
        pre_check: Iterable[PreCheck | Mapping[str, Any]]
        | Mapping[str, PreCheck | Mapping[str, Any]] = (),
        run_if: RunIf = "success",
        compensate: Compensation | Mapping[str, Any] | None = None,
    ) -> Self:
        """Add a task; tasks keep the order they are added in. ``pre_check`` is a list of
        checks, or Fastflow's mapping of named checks. ``run_if`` is the task's trigger rule;
        ``compensate`` (``{"actionName": ..., "params": ...}``) undoes it when the instance
        ends failed or canceled."""
        task: dict[str, Any] = {"id": task_id, "actionName": action_name, "name": name}
        task["dependOn"] = [depend_on] if isinstance(depend_on, str) else list(depend_on)
        task["params"] = dict(params or {})
        task["timeoutSecs"] = timeout_secs
        if retry is not None:
            task["retry"] = _as_document(retry)
        if isinstance(pre_check, Mapping):
            task["preCheck"] = {k: _as_document(v) for k, v in pre_check.items()}
        else:
            task["preCheck"] = [_as_document(c) for c in pre_check]
        if run_if != "success":
            task["runIf"] = run_if
        if compensate is not None:
            task["compensate"] = _as_document(compensate)
        self._tasks.append(task)
        return self

    def build(self, *, limits: LoadLimits | None = None) -> DagDef:
        """The validated definition; raises :class:`~tideflow.errors.DefinitionError`."""
        doc = {**self._doc, "vars": self._vars, "tasks": self._tasks}
        return load_dag_dict(doc, source=f"DagBuilder('{self._doc['id']}')", limits=limits)


def dump_dag_yaml(dag: DagDef) -> str:
    """``dag`` as a YAML document that loads back to an equal model (defaults left out)."""
    doc = dag.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, default_flow_style=False)
