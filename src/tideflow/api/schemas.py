"""Request bodies and the documented response shapes of the API.

Responses are built by :mod:`tideflow.serialize` (the one JSON shape of instances, DAGs and
nodes) and returned as they are; the models here only describe them in the OpenAPI document.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..vars import MAX_PRIORITY, MIN_PRIORITY

MAX_WAIT_SECS = 3600.0

_REQUEST = ConfigDict(extra="forbid")

WaitField = Field(
    None,
    ge=0,
    le=MAX_WAIT_SECS,
    description="Seconds to wait for the effect before answering (0 or absent: don't wait).",
)


class RunRequest(BaseModel):
    """Start an instance of the newest version of a DAG."""

    model_config = _REQUEST

    # values are checked by the engine, whose messages name the var and what to do
    vars: dict[str, Any] = Field(
        default_factory=dict,
        description="Values for the DAG's declared vars. An untyped var takes text (numbers "
        "and true/false are taken as their text); a typed var a value of its type, or its "
        "text (\"5\" for an integer).",
    )
    tags: dict[str, str] = Field(default_factory=dict, description="Searchable metadata.")
    selector: dict[str, str] = Field(
        default_factory=dict, description="Placement: matched against worker labels."
    )
    idempotencyKey: str | None = Field(
        None,
        min_length=1,
        max_length=191,
        description="A run submitted again with the same key returns the first instance.",
    )
    priority: int = Field(0, ge=MIN_PRIORITY, le=MAX_PRIORITY)
    wait: float | None = Field(
        None,
        ge=0,
        le=MAX_WAIT_SECS,
        description="Seconds to wait until the instance ends or waits for a person.",
    )


class CommandRequest(BaseModel):
    """retry / cancel / continue: the whole instance, or only the given tasks."""

    model_config = _REQUEST

    taskIds: list[str] | None = Field(
        None, min_length=1, description="Only these tasks (absent: the whole instance)."
    )
    wait: float | None = WaitField


class WaitRequest(BaseModel):
    """pause / resume, and the commands on one task."""

    model_config = _REQUEST

    wait: float | None = WaitField


_INPUTS = Field(None, description="An approval's decision: values for the inputs it declares "
                "(JSON values, or text such as \"3\" or \"true\" for typed inputs).")
_BY = Field(None, min_length=1, max_length=191,
            description="Who decides (one of the approval's approvers, when it names them).")
_REASON = Field(None, max_length=4096, description="Why: the rejected task's reason.")


class ContinueRequest(CommandRequest):
    """continue: the blocked tasks of the instance (or the given ones), with a decision."""

    inputs: dict[str, Any] | None = _INPUTS
    by: str | None = _BY


class RejectRequest(CommandRequest):
    """reject: blocked approval tasks (the given ones, or all of the instance's) fail."""

    reason: str | None = _REASON
    by: str | None = _BY


class TaskContinueRequest(WaitRequest):
    inputs: dict[str, Any] | None = _INPUTS
    by: str | None = _BY


class TaskRejectRequest(WaitRequest):
    reason: str | None = _REASON
    by: str | None = _BY


class DefinitionText(BaseModel):
    """A definition given as YAML or JSON text inside a JSON body."""

    model_config = _REQUEST

    definition: str


# -- responses (documentation only) ------------------------------------------------------------
class ErrorBody(BaseModel):
    error: str = Field(description="A short machine-readable code, e.g. invalid_state.")
    message: str = Field(description="What went wrong, in a sentence.")
    details: Any = Field(None, description="Structured details (e.g. the state, problems).")


class AttemptOut(BaseModel):
    attempt: int
    status: str
    reason: str | None
    startedAt: str | None
    endedAt: str | None
    worker: str | None


class TraceOut(BaseModel):
    time: str | None
    message: str


class TaskOut(BaseModel):
    taskId: str
    name: str
    actionName: str
    status: str
    reason: str | None
    attempts: int
    attemptHistory: list[AttemptOut]
    dependOn: list[str]
    params: Any
    #: what the action returned (null when nothing)
    output: Any
    traces: list[TraceOut]
    startedAt: str | None
    endedAt: str | None


class InstanceOut(BaseModel):
    id: str
    dagId: str
    dagVersion: int
    status: str
    reason: str | None
    trigger: str
    vars: dict[str, Any]
    shareData: dict[str, str]
    tags: dict[str, str]
    selector: dict[str, str]
    worker: str | None
    priority: int
    cronTick: str | None = Field(None, description="The cron tick a scheduled run is for.")
    compensation: str | None = Field(
        None, description="null, or running | done | failed once its compensation began.")
    createdAt: str | None
    updatedAt: str | None
    endedAt: str | None
    tasks: list[TaskOut] = Field(description="Empty in lists; filled when one is read.")


class InstancePage(BaseModel):
    items: list[InstanceOut]
    nextCursor: str | None = Field(
        description="Pass as `cursor` for the next (older) page; null on the last page."
    )


class DagOut(BaseModel):
    id: str
    version: int
    status: str
    paused: bool = Field(description="The schedule is paused: its cron does not fire.")
    createdAt: str | None
    updatedAt: str | None
    nextFireTimes: list[str] = Field(
        default_factory=list, description="The next cron ticks (UTC), while scheduled.")
    definition: dict[str, Any] = Field(description="The definition document (camelCase keys).")


class AppliedDagOut(DagOut):
    unchanged: bool = Field(
        description="True when the newest version already held this definition: nothing "
        "was stored (HTTP 200 instead of 201).")


class DagList(BaseModel):
    items: list[DagOut]


class NodeOut(BaseModel):
    nodeId: str
    incarnation: str
    role: str
    host: str
    pid: int
    startedAt: str | None
    heartbeatAt: str | None
    heartbeatAgeSecs: float
    alive: bool
    isLeader: bool
    capacity: int
    running: int
    assigned: int
    labels: dict[str, str]
    actions: list[str]


class NodeList(BaseModel):
    items: list[NodeOut]


class HealthOut(BaseModel):
    status: str
