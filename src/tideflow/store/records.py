"""Plain records the store reads and writes. The engine mutates the ones it owns in memory and
hands them back to the store, which writes the whole row (so repeated changes to one row between
two commits collapse into a single write)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from ..definition.model import DagDef
from ..states import DagStatus, InstanceStatus, TaskStatus


@dataclass
class DagRecord:
    id: str
    version: int
    definition: DagDef
    status: DagStatus
    created_at: datetime
    updated_at: datetime
    #: set by a registration that found this very definition as the newest version and
    #: stored nothing
    unchanged: bool = False
    #: the schedule is paused: the cron trigger does not fire it (manual runs still work)
    paused: bool = False


@dataclass
class TraceEntry:
    time: datetime
    message: str


@dataclass
class AttemptRecord:
    attempt: int
    status: TaskStatus
    reason: str | None
    started_at: datetime
    ended_at: datetime | None
    worker: str | None


@dataclass
class TaskRecord:
    instance_id: str
    task_id: str
    name: str
    action_name: str
    status: TaskStatus = TaskStatus.INIT
    reason: str | None = None
    #: attempts started so far
    attempts: int = 0
    attempt_history: list[AttemptRecord] = field(default_factory=list)
    depend_on: list[str] = field(default_factory=list)
    #: the params as rendered for the latest attempt (None before the first)
    params: Any = None
    traces: list[TraceEntry] = field(default_factory=list)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    #: set by a continue command: block checks no longer apply to this task
    continued: bool = False
    #: what the action returned (JSON), readable by descendants; None when it returned nothing
    output: Any = None
    #: an approval's decision (continue with inputs and who, or reject), kept for its run
    decision: dict[str, Any] | None = None

    def snapshot(self) -> TaskRecord:
        """A copy that later changes to this record do not reach (and the other way)."""
        return replace(
            self,
            attempt_history=[replace(a) for a in self.attempt_history],
            depend_on=list(self.depend_on),
            params=_copy_json(self.params),
            output=_copy_json(self.output),
            decision=_copy_json(self.decision),
            traces=[replace(t) for t in self.traces],
        )


@dataclass
class InstanceRecord:
    id: str
    dag_id: str
    dag_version: int
    status: InstanceStatus
    trigger: str
    #: untyped vars hold text, typed ones values of their types
    vars: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    reason: str | None = None
    share_data: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    selector: dict[str, str] = field(default_factory=dict)
    #: the node that owns (executes) the instance
    worker: str | None = None
    #: ownership epoch; grows each time the instance changes owner (fencing)
    epoch: int = 0
    ended_at: datetime | None = None
    priority: int = 0
    #: a run submitted again with the same key (for the same DAG) is this instance
    idempotency_key: str | None = None
    #: the cron tick a scheduled run was started for
    cron_tick: datetime | None = None
    #: None, or running | done | failed once its compensation began (saga)
    compensation: str | None = None
    #: the W3C ``traceparent`` of the trace the run continues (a traced request started it)
    trace_parent: str | None = None
    #: tasks, when read with them
    tasks: list[TaskRecord] = field(default_factory=list)

    def snapshot(self) -> InstanceRecord:
        """A copy that later changes to this record do not reach (and the other way): what
        the engine hands out of the instances it drives. Field by field, which is many times
        cheaper than ``copy.deepcopy`` (it showed as a quarter of W1's time)."""
        return replace(
            self,
            vars=dict(self.vars),
            share_data=dict(self.share_data),
            tags=dict(self.tags),
            selector=dict(self.selector),
            tasks=[t.snapshot() for t in self.tasks],
        )


@dataclass
class CommandRecord:
    """A command addressed to whichever node owns an instance."""

    id: int | None
    instance_id: str
    kind: str  # retry | cancel | continue | reject | pause | resume
    task_ids: list[str] | None
    created_at: datetime
    #: what a continue or reject carries: inputs, who decided, the reason
    payload: dict[str, Any] | None = None


@dataclass
class InstanceFilter:
    dag_id: str | None = None
    statuses: list[InstanceStatus] | None = None
    #: all of these tags (AND)
    tags: dict[str, str] | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    worker: str | None = None


@dataclass
class NodeRecord:
    """A node as it registers itself and heartbeats (times by the database's clock)."""

    node_id: str
    incarnation: str
    role: str  # worker | watcher
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    capacity: int
    running: int
    #: instances the leader assigned to it that are not finished (its load)
    assigned: int
    labels: dict[str, str] = field(default_factory=dict)
    actions: list[str] = field(default_factory=list)
    #: filled in when listed: whether it holds the leader lease, and the heartbeat's age
    is_leader: bool = False
    alive: bool = True
    heartbeat_age_secs: float = 0.0


@dataclass
class LeaseRecord:
    """A named lease: the leader's, or a mutex. ``token`` grows with every new holder."""

    name: str
    holder: str | None
    token: int
    acquired_at: datetime | None
    expires_at: datetime | None


def _copy_json(value: Any) -> Any:
    """A copy of a JSON-shaped value (rendered params): containers copied, leaves shared
    (strings, numbers and the like are immutable)."""
    if isinstance(value, dict):
        return {k: _copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_json(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return copy.deepcopy(value)


#: one line of a task's log: (time in Unix microseconds, stream, text, level or None)
LogLineTuple = tuple[int, str, str, str | None]


@dataclass
class LogChunk:
    """Lines of one attempt's log written together (one row). ``id`` orders the chunks: it is
    set by the store and is the cursor a reader passes to read on."""

    instance_id: str
    task_id: str
    attempt: int
    lines: list[LogLineTuple]
    id: int | None = None
