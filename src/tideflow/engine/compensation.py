"""Compensation (saga): what undoes the succeeded tasks of an instance that ends failed or
canceled.

Every task that declares ``compensate`` has a compensation step, a task of the instance named
``compensate:<id>``, created with the instance (``init``) so that it is recorded, shown and
recovered like any other task. Each step depends on the steps of the nearest tasks below its
own task, so they run in reverse dependency order: what was built last is undone first.

When the main path ends ``failed`` or ``canceled``, the instance stays ``running`` with
``compensation: running``; the steps of the tasks that succeeded run (each with its own retry
policy and timeout: ``compensate.retry``/``timeoutSecs``, else the task's), the others are
skipped. Then the instance takes the status its main path earned, and ``compensation`` says
``done`` (every step succeeded or had nothing to undo) or ``failed`` (a step failed, or was
canceled: the steps above it stay ``init``). A success skips every step. A compensated instance
is not retried: what it built has been undone; a new run starts over.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..definition.model import COMPENSATE_PREFIX, DagDef, TaskDef
from ..errors import InvalidStateError
from ..states import TaskStatus
from ..store.records import TaskRecord

RUNNING = "running"
DONE = "done"
FAILED = "failed"


def is_step(task_id: str) -> bool:
    return task_id.startswith(COMPENSATE_PREFIX)


def step_id(task_id: str) -> str:
    return COMPENSATE_PREFIX + task_id


def compensated_id(step: str) -> str:
    return step[len(COMPENSATE_PREFIX):]


def steps(dag: DagDef) -> list[TaskDef]:
    """The compensation steps of ``dag``, as tasks: each depends on the steps of the nearest
    compensated tasks below its own."""
    declared = {t.id for t in dag.tasks if t.compensate is not None}
    if not declared:
        return []
    children: dict[str, list[str]] = {t.id: [] for t in dag.tasks}
    for t in dag.tasks:
        for p in t.depend_on:
            children[p].append(t.id)
    out = []
    for t in dag.tasks:
        comp = t.compensate
        if comp is None:
            continue
        below: list[str] = []
        seen: set[str] = set()
        stack = list(children[t.id])
        while stack:  # down to the nearest compensated tasks on every path
            tid = stack.pop()
            if tid in seen:
                continue
            seen.add(tid)
            if tid in declared:
                below.append(step_id(tid))
            else:
                stack.extend(children[tid])
        order = {step_id(x.id): i for i, x in enumerate(dag.tasks)}
        retry = comp.retry or t.retry
        out.append(TaskDef.model_validate({
            "id": step_id(t.id),
            "name": f"compensate {t.display_name}",
            "actionName": comp.action_name,
            "params": comp.params,
            "dependOn": sorted(below, key=order.__getitem__),
            "timeoutSecs": comp.timeout_secs if comp.timeout_secs is not None
            else t.timeout_secs,
            "retry": None if retry is None else retry.model_dump(by_alias=True),
        }))
    return out


def records(instance_id: str, defs: Iterable[TaskDef]) -> list[TaskRecord]:
    return [TaskRecord(instance_id=instance_id, task_id=d.id, name=d.display_name,
                       action_name=d.action_name, depend_on=list(d.depend_on)) for d in defs]


def begin(tasks: Mapping[str, TaskRecord]) -> tuple[list[TaskRecord], list[TaskRecord]]:
    """At the end of a failed or canceled main path: the steps to run (their task succeeded)
    and those to skip (nothing to undo). Both empty when nothing declares a compensation, or
    no declared task succeeded."""
    run: list[TaskRecord] = []
    skip: list[TaskRecord] = []
    for tid, t in tasks.items():
        if not is_step(tid) or t.status != TaskStatus.INIT:
            continue
        done = tasks.get(compensated_id(tid))
        (run if done is not None and done.status == TaskStatus.SUCCESS else skip).append(t)
    return (run, skip) if run else ([], [])


def skip_all(tasks: Mapping[str, TaskRecord]) -> list[TaskRecord]:
    """The steps still waiting, on an instance that needs no compensation."""
    return [t for tid, t in tasks.items() if is_step(tid) and t.status == TaskStatus.INIT]


def outcome(tasks: Mapping[str, TaskRecord]) -> str:
    """``done`` or ``failed``, once no step runs any more."""
    for tid, t in tasks.items():
        if is_step(tid) and t.status in (TaskStatus.FAILED, TaskStatus.CANCELED):
            return FAILED
    return DONE


def refusal(instance_id: str, state: str | None, status: str, verb: str
            ) -> InvalidStateError | None:
    """Why ``verb`` may not act on an instance whose compensation began (None when it may):
    what its tasks did has been (or is being) undone, so it cannot go on."""
    if state is None or verb not in ("retry", "continue", "reject"):
        return None
    if state == DONE:
        why = ("it was compensated (compensation: done), so what its tasks did has been"
               " undone — start a new run instead")
    elif state == FAILED:
        # nothing, or not everything, was undone: saying it was would mislead the operator
        why = ("its compensation failed (compensation: failed), so some of what its tasks did"
               " may not have been undone — inspect its compensate:* tasks, then start a new"
               " run")
    else:
        why = (f"it is being compensated (compensation: {state}): what its tasks did is being"
               " undone — start a new run instead")
    return InvalidStateError(f"cannot {verb} instance {instance_id}: {why}", state=status)
