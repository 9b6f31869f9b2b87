"""Trigger rules (``runIf``): when a task runs after what its parents did.

``success`` (the default) is Fastflow's ready rule: every parent ``success`` or ``skipped``; the
runner applies it with its parent counters. ``failed`` and ``always`` are decided here, in one
pass over the tree in dependency order:

- ``failed`` runs when every parent is final and at least one failed;
- ``always`` runs when every parent is final (also after a cancel).

A task that can never run because a task above it failed stays ``init`` (DESIGN §3), and counts
as failed for the rules below it; below a canceled task it counts as canceled. A ``failed`` or
``always`` task whose rule can no longer hold is ``skipped`` with a reason starting ``runIf:``,
and so are the ``success`` tasks below it: a skip by a trigger rule is not a preCheck skip,
it does not let the tasks below run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum

from ..definition.model import TaskDef
from ..states import TaskStatus
from ..store.records import TaskRecord

#: the reason of every task skipped by a trigger rule starts with this
RUN_IF_SKIP = "runIf: "


class Outcome(Enum):
    """What a task amounts to for the trigger rules of the tasks below it."""

    OK = "ok"  # success, or skipped by a preCheck
    FAILED = "failed"  # failed, or can never run because a task above it failed
    CANCELED = "canceled"  # canceled, or can never run because a task above it was
    SKIPPED = "skipped"  # skipped by a trigger rule
    PENDING = "pending"  # may still run or is running


class Decision(Enum):
    RUN = "run"
    WAIT = "wait"
    SKIP = "skip"
    DEAD = "dead"  # stays init: a task above it failed or was canceled


def skipped_by_rule(task: TaskRecord) -> bool:
    return task.status == TaskStatus.SKIPPED and (task.reason or "").startswith(RUN_IF_SKIP)


def lets_children_run(task: TaskRecord) -> bool:
    """The ``success`` rule's view of a parent."""
    return task.status.lets_children_run and not skipped_by_rule(task)


def _recorded(task: TaskRecord) -> Outcome:
    st = task.status
    if st == TaskStatus.SUCCESS:
        return Outcome.OK
    if st == TaskStatus.SKIPPED:
        return Outcome.SKIPPED if skipped_by_rule(task) else Outcome.OK
    if st == TaskStatus.FAILED:
        return Outcome.FAILED
    if st == TaskStatus.CANCELED:
        return Outcome.CANCELED
    return Outcome.PENDING


def decide(rule: str, parents: Iterable[Outcome]) -> tuple[Decision, Outcome]:
    """The decision for a task not yet started, and what it amounts to below."""
    seen = set(parents)
    if rule == "success":
        for outcome in (Outcome.FAILED, Outcome.CANCELED):
            if outcome in seen:
                return Decision.DEAD, outcome
        if Outcome.SKIPPED in seen:
            return Decision.SKIP, Outcome.SKIPPED
        if Outcome.PENDING in seen:
            return Decision.WAIT, Outcome.PENDING
        return Decision.RUN, Outcome.PENDING
    if Outcome.PENDING in seen:
        return Decision.WAIT, Outcome.PENDING
    if rule == "always" or Outcome.FAILED in seen:
        return Decision.RUN, Outcome.PENDING
    return Decision.SKIP, Outcome.SKIPPED


def skip_reason(rule: str, parents: Mapping[str, Outcome]) -> str:
    if rule == "failed":
        return RUN_IF_SKIP + "failed, and no parent failed"
    if rule == "always":
        waiting = [p for p, o in parents.items() if o == Outcome.PENDING]
        return RUN_IF_SKIP + f"always, but '{waiting[0]}' never finished" if waiting else \
            RUN_IF_SKIP + "always"
    skipped = next((p for p, o in parents.items() if o == Outcome.SKIPPED), "?")
    return RUN_IF_SKIP + f"success, but '{skipped}' did not run (its runIf did not hold)"


def evaluate(
    order: Iterable[str],
    tasks: Mapping[str, TaskRecord],
    tdefs: Mapping[str, TaskDef],
    parents: Mapping[str, tuple[str, ...]],
    active: Iterable[str],
) -> tuple[list[str], dict[str, str]]:
    """One pass in dependency order: the ``failed``/``always`` tasks to start now, and the
    tasks (with their reasons) to mark skipped."""
    running = set(active)
    outcome: dict[str, Outcome] = {}
    start: list[str] = []
    skip: dict[str, str] = {}
    for tid in order:
        task = tasks[tid]
        if task.status != TaskStatus.INIT or tid in running:
            outcome[tid] = _recorded(task) if tid not in running else Outcome.PENDING
            continue
        rule = tdefs[tid].run_if
        seen = {p: outcome[p] for p in parents[tid]}
        decision, outcome[tid] = decide(rule, seen.values())
        if decision == Decision.RUN and rule != "success":
            start.append(tid)
        elif decision == Decision.SKIP:
            skip[tid] = skip_reason(rule, seen)
    return start, skip
