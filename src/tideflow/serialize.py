"""The JSON shape of instances and DAGs: the same in ``--json``, the HTTP API and the UI.

camelCase keys, always present (``null``, ``{}`` or ``[]`` when empty), times in ISO 8601 UTC.
Secret vars are masked wherever they appear."""

from __future__ import annotations

from typing import Any

from .clock import iso
from .store.records import DagRecord, InstanceRecord, TaskRecord
from .templates import mask_secrets

MASK = "***"


def _masker(secrets: frozenset[str], vars: dict[str, str]) -> tuple[str, ...]:
    return tuple(v for k, v in vars.items() if k in secrets and v)


def _mask_any(value: Any, secret_values: tuple[str, ...]) -> Any:
    if not secret_values:
        return value
    if isinstance(value, str):
        return mask_secrets(value, secret_values)
    if isinstance(value, dict):
        return {k: _mask_any(v, secret_values) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_any(v, secret_values) for v in value]
    return value


def task_to_json(task: TaskRecord, secret_values: tuple[str, ...] = ()) -> dict[str, Any]:
    m = secret_values
    return {
        "taskId": task.task_id,
        "name": task.name,
        "actionName": task.action_name,
        "status": task.status.value,
        "reason": _mask_any(task.reason, m),
        "attempts": task.attempts,
        "attemptHistory": [
            {
                "attempt": a.attempt,
                "status": a.status.value,
                "reason": _mask_any(a.reason, m),
                "startedAt": iso(a.started_at),
                "endedAt": iso(a.ended_at),
                "worker": a.worker,
            }
            for a in task.attempt_history
        ],
        "dependOn": list(task.depend_on),
        "params": _mask_any(task.params, m),
        "traces": [{"time": iso(t.time), "message": _mask_any(t.message, m)}
                   for t in task.traces],
        "startedAt": iso(task.started_at),
        "endedAt": iso(task.ended_at),
    }


def instance_to_json(
    inst: InstanceRecord, *, secrets: frozenset[str] = frozenset(), with_tasks: bool = True
) -> dict[str, Any]:
    """``secrets`` are the names of the DAG's secret vars; their values are masked."""
    values = _masker(secrets, inst.vars)
    return {
        "id": inst.id,
        "dagId": inst.dag_id,
        "dagVersion": inst.dag_version,
        "status": inst.status.value,
        "reason": _mask_any(inst.reason, values),
        "trigger": inst.trigger,
        "vars": {k: (MASK if k in secrets and v else v) for k, v in inst.vars.items()},
        "shareData": _mask_any(dict(inst.share_data), values),
        "tags": dict(inst.tags),
        "selector": dict(inst.selector),
        "worker": inst.worker,
        "priority": inst.priority,
        "createdAt": iso(inst.created_at),
        "updatedAt": iso(inst.updated_at),
        "endedAt": iso(inst.ended_at),
        "tasks": [task_to_json(t, values) for t in inst.tasks] if with_tasks else [],
    }


def dag_to_json(dag: DagRecord) -> dict[str, Any]:
    return {
        "id": dag.id,
        "version": dag.version,
        "status": dag.status.value,
        "createdAt": iso(dag.created_at),
        "updatedAt": iso(dag.updated_at),
        "definition": dag.definition.to_dict(),
    }
