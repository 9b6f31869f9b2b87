"""Records to row parameters and back.

JSON columns are plain text written with compact separators, so nothing (a JSON column type or
the database) reorders keys or lists. Timestamps inside JSON are ISO 8601 UTC strings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ...limits import clean_text
from ...states import InstanceStatus, TaskStatus
from ..records import AttemptRecord, InstanceRecord, TaskRecord, TraceEntry

_dumps = json.JSONEncoder(separators=(",", ":")).encode
_loads = json.loads


def dumps(value: Any) -> str:
    """Compact JSON text."""
    return _dumps(value)


def loads(text: str | None) -> Any:
    """Parse JSON text (NULL stays None)."""
    return None if text is None else _loads(text)


def utc(value: datetime) -> datetime:
    """``value`` as aware UTC (naive values are taken to be UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    # the common case, cheaply: the engine's clock gives aware UTC times
    return (value if value.tzinfo is UTC else utc(value)).isoformat()


def _time(text: str) -> datetime:
    return utc(datetime.fromisoformat(text))


def _opt_time(text: str | None) -> datetime | None:
    return None if text is None else _time(text)


def _text(value: str | None) -> str | None:
    """A reason as a text column takes it: JSON columns escape what a database cannot hold
    (a NUL, a lone surrogate), plain text columns need it replaced."""
    return None if value is None else clean_text(value)


# -- tasks -------------------------------------------------------------------------------------
#: columns written by ``Store.write`` (everything but the key and the insertion order)
TASK_STATE_COLUMNS = (
    "name",
    "action_name",
    "status",
    "reason",
    "attempts",
    "attempt_history",
    "depend_on",
    "params",
    "traces",
    "started_at",
    "ended_at",
    "continued",
    "output",
    "decision",
)


def task_values(t: TaskRecord) -> dict[str, Any]:
    """The state columns of a task row, keyed by column name."""
    return {
        "name": t.name,
        "action_name": t.action_name,
        "status": t.status.value,
        "reason": _text(t.reason),
        "attempts": t.attempts,
        "attempt_history": _dumps(
            [
                {
                    "attempt": a.attempt,
                    "status": a.status.value,
                    "reason": a.reason,
                    "startedAt": _iso(a.started_at),
                    "endedAt": _iso(a.ended_at),
                    "worker": a.worker,
                }
                for a in t.attempt_history
            ]
        ),
        "depend_on": _dumps(t.depend_on),
        "params": None if t.params is None else _dumps(t.params),
        "traces": _dumps([{"time": _iso(e.time), "message": e.message} for e in t.traces]),
        "started_at": t.started_at,
        "ended_at": t.ended_at,
        "continued": bool(t.continued),
        "output": None if t.output is None else _dumps(t.output),
        "decision": None if t.decision is None else _dumps(t.decision),
    }


def task_from_row(row: Any) -> TaskRecord:
    """A TaskRecord from a row holding the task columns."""
    history = [
        AttemptRecord(
            attempt=a["attempt"],
            status=TaskStatus(a["status"]),
            reason=a["reason"],
            started_at=_time(a["startedAt"]),
            ended_at=_opt_time(a["endedAt"]),
            worker=a["worker"],
        )
        for a in _loads(row.attempt_history)
    ]
    traces = [TraceEntry(time=_time(e["time"]), message=e["message"]) for e in _loads(row.traces)]
    return TaskRecord(
        instance_id=row.instance_id,
        task_id=row.task_id,
        name=row.name,
        action_name=row.action_name,
        status=TaskStatus(row.status),
        reason=row.reason,
        attempts=row.attempts,
        attempt_history=history,
        depend_on=_loads(row.depend_on),
        params=loads(row.params),
        traces=traces,
        started_at=row.started_at,
        ended_at=row.ended_at,
        continued=bool(row.continued),
        output=loads(row.output),
        decision=loads(row.decision),
    )


# -- instances ---------------------------------------------------------------------------------
#: columns written by ``Store.write``: the key, dag, trigger and creation time never change
INSTANCE_STATE_COLUMNS = (
    "dag_version",
    "status",
    "reason",
    "vars",
    "share_data",
    "selector",
    "worker",
    "epoch",
    "priority",
    "updated_at",
    "ended_at",
    "compensation",
)


def instance_values(i: InstanceRecord) -> dict[str, Any]:
    """The state columns of an instance row, keyed by column name."""
    return {
        "dag_version": i.dag_version,
        "status": i.status.value,
        "reason": _text(i.reason),
        "vars": _dumps(i.vars),
        "share_data": _dumps(i.share_data),
        "selector": _dumps(i.selector),
        "worker": i.worker,
        "epoch": i.epoch,
        "priority": i.priority,
        "updated_at": i.updated_at,
        "ended_at": i.ended_at,
        "compensation": i.compensation,
    }


def instance_row(i: InstanceRecord) -> dict[str, Any]:
    """Every column of a new instance row."""
    values = instance_values(i)
    values.update(
        id=i.id,
        dag_id=i.dag_id,
        trigger=i.trigger,
        created_at=i.created_at,
        idempotency_key=i.idempotency_key,
        cron_tick=i.cron_tick,
        trace_parent=i.trace_parent,
    )
    return values


def instance_from_row(
    row: Any, tags: Mapping[str, str] | None = None, tasks: Sequence[TaskRecord] = ()
) -> InstanceRecord:
    """An InstanceRecord from a row holding the instance columns."""
    return InstanceRecord(
        id=row.id,
        dag_id=row.dag_id,
        dag_version=row.dag_version,
        status=InstanceStatus(row.status),
        trigger=row.trigger,
        vars=_loads(row.vars),
        created_at=row.created_at,
        updated_at=row.updated_at,
        reason=row.reason,
        share_data=_loads(row.share_data),
        tags=dict(tags or {}),
        selector=_loads(row.selector),
        worker=row.worker,
        epoch=row.epoch,
        ended_at=row.ended_at,
        compensation=row.compensation,
        priority=row.priority,
        idempotency_key=row.idempotency_key,
        cron_tick=row.cron_tick,
        trace_parent=row.trace_parent,
        tasks=list(tasks),
    )
