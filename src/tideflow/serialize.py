"""The JSON shape of instances and DAGs: the same in ``--json``, the HTTP API and the UI.

camelCase keys, always present (``null``, ``{}`` or ``[]`` when empty), times in ISO 8601 UTC.
Secret vars are masked wherever they appear."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .clock import iso, utcnow
from .cluster.cron import next_fire_times
from .redact import MASK, mask_value, secret_forms
from .states import InstanceStatus, TaskStatus
from .store.records import (
    AttemptRecord,
    DagRecord,
    InstanceRecord,
    NodeRecord,
    TaskRecord,
    TraceEntry,
)


def _given(value: Any) -> bool:
    """A var has a value to hide: text that is not empty, or any typed value (``0`` and
    ``false`` included)."""
    return value is not None and value != ""


def secret_values_of(secrets: frozenset[str], vars: dict[str, Any]) -> tuple[str, ...]:
    """The forms (see :func:`tideflow.redact.secret_forms`) of the values of the vars named
    in ``secrets``: what :func:`task_to_json` masks."""
    return secret_forms(v for k, v in vars.items() if k in secrets and v)


def task_to_json(task: TaskRecord, secret_values: tuple[str, ...] = ()) -> dict[str, Any]:
    m = secret_values
    return {
        "taskId": task.task_id,
        "name": task.name,
        "actionName": task.action_name,
        "status": task.status.value,
        "reason": mask_value(task.reason, m),
        "attempts": task.attempts,
        "attemptHistory": [
            {
                "attempt": a.attempt,
                "status": a.status.value,
                "reason": mask_value(a.reason, m),
                "startedAt": iso(a.started_at),
                "endedAt": iso(a.ended_at),
                "worker": a.worker,
            }
            for a in task.attempt_history
        ],
        "dependOn": list(task.depend_on),
        "params": mask_value(task.params, m),
        "output": mask_value(task.output, m),
        "traces": [{"time": iso(t.time), "message": mask_value(t.message, m)}
                   for t in task.traces],
        "startedAt": iso(task.started_at),
        "endedAt": iso(task.ended_at),
    }


def instance_to_json(
    inst: InstanceRecord, *, secrets: frozenset[str] = frozenset(), with_tasks: bool = True
) -> dict[str, Any]:
    """``secrets`` are the names of the DAG's secret vars; their values are masked."""
    values = secret_values_of(secrets, inst.vars)
    return {
        "id": inst.id,
        "dagId": inst.dag_id,
        "dagVersion": inst.dag_version,
        "status": inst.status.value,
        "reason": mask_value(inst.reason, values),
        "trigger": inst.trigger,
        "vars": {k: (MASK if k in secrets and _given(v) else v) for k, v in inst.vars.items()},
        "shareData": mask_value(dict(inst.share_data), values),
        "tags": dict(inst.tags),
        "selector": dict(inst.selector),
        "worker": inst.worker,
        "priority": inst.priority,
        "cronTick": iso(inst.cron_tick),
        "compensation": inst.compensation,
        "createdAt": iso(inst.created_at),
        "updatedAt": iso(inst.updated_at),
        "endedAt": iso(inst.ended_at),
        "tasks": [task_to_json(t, values) for t in inst.tasks] if with_tasks else [],
    }


#: how many next cron ticks a DAG's JSON lists unless asked for another number
FIRE_TIMES = 5


def dag_to_json(
    dag: DagRecord, *, now: datetime | None = None, fire_times: int = FIRE_TIMES
) -> dict[str, Any]:
    """A DAG as listed and shown; ``nextFireTimes`` holds its next ``fire_times`` cron ticks
    while it is scheduled (a cron, status normal, not paused), else ``[]``."""
    d = dag.definition
    upcoming: list[str | None] = []
    if d.cron and dag.status.value == "normal" and not dag.paused and fire_times > 0:
        upcoming = [iso(t) for t in
                    next_fire_times(d.cron, d.timezone, now or utcnow(), fire_times)]
    return {
        "id": dag.id,
        "version": dag.version,
        "status": dag.status.value,
        "paused": dag.paused,
        "createdAt": iso(dag.created_at),
        "updatedAt": iso(dag.updated_at),
        "nextFireTimes": upcoming,
        "definition": _masked_definition(d.to_dict()),
    }


def applied_dag_json(dag: DagRecord) -> dict[str, Any]:
    """The answer to applying a definition: the DAG, and whether it was ``unchanged`` (the
    newest version already held it, and nothing was stored)."""
    return {**dag_to_json(dag), "unchanged": dag.unchanged}


def _masked_definition(definition: dict[str, Any]) -> dict[str, Any]:
    """The definition with the values its secret vars get by default (``defaultValue``, and
    ``cronVars`` for scheduled runs) shown as ``***``: a DAG that declares them carries the
    secret itself."""
    declared = definition.get("vars")
    if not isinstance(declared, dict):
        return definition
    secret = {n for n, spec in declared.items() if isinstance(spec, dict) and spec.get("secret")}
    if not secret:
        return definition
    shown = {
        name: {**spec, "defaultValue": MASK} if name in secret and _given(spec.get("defaultValue"))
        else spec
        for name, spec in declared.items()
    }
    cron_vars = definition.get("cronVars")
    if isinstance(cron_vars, dict):
        cron_vars = {k: MASK if k in secret and v else v for k, v in cron_vars.items()}
    return {**definition, "vars": shown, "cronVars": cron_vars}


def node_to_json(node: NodeRecord) -> dict[str, Any]:
    """A node as listed: role, leader flag, heartbeat, load, labels and actions."""
    return {
        "nodeId": node.node_id,
        "incarnation": node.incarnation,
        "role": node.role,
        "host": node.host,
        "pid": node.pid,
        "startedAt": iso(node.started_at),
        "heartbeatAt": iso(node.heartbeat_at),
        "heartbeatAgeSecs": round(float(node.heartbeat_age_secs), 3),
        "alive": node.alive,
        "isLeader": node.is_leader,
        "capacity": node.capacity,
        "running": node.running,
        "assigned": node.assigned,
        "labels": dict(node.labels),
        "actions": list(node.actions),
    }


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _need_time(value: Any) -> datetime:
    return _time(value) or datetime.fromtimestamp(0, UTC)


def task_from_json(data: dict[str, Any], instance_id: str) -> TaskRecord:
    """The inverse of :func:`task_to_json` (masked values stay masked)."""
    return TaskRecord(
        instance_id=instance_id,
        task_id=data["taskId"],
        name=data.get("name") or data["taskId"],
        action_name=data.get("actionName", ""),
        status=TaskStatus(data["status"]),
        reason=data.get("reason"),
        attempts=int(data.get("attempts") or 0),
        attempt_history=[
            AttemptRecord(
                attempt=int(a["attempt"]),
                status=TaskStatus(a["status"]),
                reason=a.get("reason"),
                started_at=_need_time(a.get("startedAt")),
                ended_at=_time(a.get("endedAt")),
                worker=a.get("worker"),
            )
            for a in data.get("attemptHistory") or []
        ],
        depend_on=list(data.get("dependOn") or []),
        params=data.get("params"),
        output=data.get("output"),
        traces=[TraceEntry(_need_time(t.get("time")), t.get("message", ""))
                for t in data.get("traces") or []],
        started_at=_time(data.get("startedAt")),
        ended_at=_time(data.get("endedAt")),
    )


def instance_from_json(data: dict[str, Any]) -> InstanceRecord:
    """The inverse of :func:`instance_to_json`, for clients that receive the JSON shape
    (masked values stay masked)."""
    return InstanceRecord(
        id=data["id"],
        dag_id=data["dagId"],
        dag_version=int(data.get("dagVersion") or 0),
        status=InstanceStatus(data["status"]),
        trigger=data.get("trigger") or "",
        vars=dict(data.get("vars") or {}),
        created_at=_need_time(data.get("createdAt")),
        updated_at=_need_time(data.get("updatedAt")),
        reason=data.get("reason"),
        share_data=dict(data.get("shareData") or {}),
        tags=dict(data.get("tags") or {}),
        selector=dict(data.get("selector") or {}),
        worker=data.get("worker"),
        ended_at=_time(data.get("endedAt")),
        priority=int(data.get("priority") or 0),
        cron_tick=_time(data.get("cronTick")),
        compensation=data.get("compensation"),
        tasks=[task_from_json(t, data["id"]) for t in data.get("tasks") or []],
    )
