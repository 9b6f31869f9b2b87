"""Decisions on approvals: ``continue`` with inputs and who decided, and ``reject``.

A decision is checked in full before anything changes (every target task, every input), the
same way whether the instance is driven here or the command is queued for its owner. Once
applied it is recorded on the task (``decision``, committed with the task's new state) and as
a trace line (the audit record); the approval then returns it as its output.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from ..actions.approval import ApprovalParams
from ..clock import iso
from ..errors import InputError, InvalidStateError
from ..inputs import check_inputs
from ..states import TaskStatus
from ..store.records import TaskRecord, TraceEntry

APPROVAL = "approval"
#: the longest name a decider may give, and the longest reason of a reject
MAX_BY = 191
MAX_REASON = 4096
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Decision:
    """What a continue or reject command carries besides its task ids."""

    inputs: dict[str, Any] | None = None
    by: str | None = None
    reason: str | None = None
    #: filled in when it is applied
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.by is not None and (not self.by.strip() or len(self.by) > MAX_BY
                                    or _CONTROL.search(self.by)):
            raise InputError(f"--by {self.by!r}: give a name of 1 to {MAX_BY} printable"
                             " characters")
        if self.reason is not None and len(self.reason) > MAX_REASON:
            raise InputError(f"the reason is {len(self.reason)} characters long — the limit is"
                             f" {MAX_REASON}")
        if self.inputs is not None and not isinstance(self.inputs, dict):
            raise InputError("inputs must be a mapping of input names to values")

    @property
    def empty(self) -> bool:
        return self.inputs is None and self.by is None and self.reason is None

    def to_payload(self) -> dict[str, Any] | None:
        """The JSON a queued command stores (None when there is nothing to store)."""
        if self.empty:
            return None
        return {"inputs": self.inputs, "by": self.by, "reason": self.reason}

    @classmethod
    def from_payload(cls, payload: Any) -> Decision:
        if not isinstance(payload, dict):
            return cls()
        return cls(inputs=payload.get("inputs"), by=payload.get("by"),
                   reason=payload.get("reason"))


def _terms(task: TaskRecord) -> ApprovalParams:
    """The approval's inputs and approvers, from its params as rendered when it blocked."""
    try:
        return ApprovalParams.model_validate(task.params or {}, strict=False)
    except ValidationError:  # it could not have blocked with bad params; be safe anyway
        return ApprovalParams.model_validate({})


def _by_problem(task: TaskRecord, terms: ApprovalParams, by: str | None) -> str | None:
    """Why ``by`` may not decide ``task`` (None when it may)."""
    approvers = terms.approvers
    if approvers is None:
        return None
    names = ", ".join(approvers)
    if by is None:
        return (f"approval '{task.task_id}' may only be decided by {names}: say who decides"
                " with --by NAME (\"by\" in the request body)")
    if by not in approvers:
        return f"'{by}' may not decide approval '{task.task_id}': its approvers are {names}"
    return None


class _Problems:
    """Every problem of one decision, so that it is refused once with all that is wrong with
    it rather than one problem per try. ``lines`` make the message; ``listed`` the
    ``details.problems`` (a problem of an input names its approval when several are decided)."""

    def __init__(self, approvals: int) -> None:
        self.several = approvals > 1
        self.lines: list[str] = []
        self.listed: list[str] = []

    def add(self, problem: str) -> None:
        self.lines.append(problem)
        self.listed.append(problem)

    def add_inputs(self, task_id: str, exc: InputError) -> None:
        self.lines.append(str(exc))
        found = (exc.details or {}).get("problems") or [str(exc)]
        self.listed.extend(f"approval '{task_id}': {p}" if self.several else p for p in found)

    def raise_any(self) -> None:
        if self.lines:
            raise InputError("; ".join(self.lines), details={"problems": self.listed})


def check_continue(targets: Sequence[TaskRecord], decision: Decision) -> dict[str, dict[str, Any]]:
    """The typed inputs for each approval among ``targets``; InputError naming every problem
    when the decision does not fit them (then nothing may change)."""
    out: dict[str, dict[str, Any]] = {}
    problems = _Problems(len(blocked_approvals(targets) or targets))
    for task in targets:
        if task.action_name != APPROVAL:
            if decision.inputs:
                raise InputError(f"task '{task.task_id}' is not an approval (it runs"
                                 f" '{task.action_name}'): it takes no inputs")
            continue
        terms = _terms(task)
        by = _by_problem(task, terms, decision.by)
        if by:
            problems.add(by)
        try:
            out[task.task_id] = check_inputs(terms.inputs, decision.inputs,
                                             where=f"approval '{task.task_id}'")
        except InputError as exc:
            problems.add_inputs(task.task_id, exc)
    problems.raise_any()
    return out


def record_continue(targets: Sequence[TaskRecord], inputs: dict[str, dict[str, Any]],
                    decision: Decision, now: datetime) -> None:
    """Put the checked decision on each task: who, when and (approvals) the inputs."""
    for task in targets:
        if task.task_id in inputs:
            task.decision = {"decision": "approved", "inputs": inputs[task.task_id],
                             "by": decision.by, "at": iso(now)}
            shown = ", ".join(f"{k}={v!r}" for k, v in inputs[task.task_id].items())
            line = "approved" + (f" by {decision.by}" if decision.by else "") + (
                f": {shown}" if shown else "")
        else:
            line = "continued" + (f" by {decision.by}" if decision.by else "")
        task.traces.append(TraceEntry(now, line))


def check_reject(targets: Sequence[TaskRecord], decision: Decision) -> None:
    """InputError/InvalidStateError when one of ``targets`` may not be rejected so."""
    problems = _Problems(len(targets))
    for task in targets:
        if task.action_name != APPROVAL:
            raise InvalidStateError(
                f"cannot reject task '{task.task_id}': it is not an approval (it runs"
                f" '{task.action_name}'); only blocked approval tasks can be rejected — cancel"
                " it instead", state=task.status.value)
        if decision.inputs and not problems.lines:
            problems.add("a reject takes a reason, not inputs")
        by = _by_problem(task, _terms(task), decision.by)
        if by:
            problems.add(by)
    problems.raise_any()


def record_reject(targets: Sequence[TaskRecord], decision: Decision, now: datetime) -> None:
    """Fail each approval with the reason given; the decision is kept as its record and is
    its output."""
    for task in targets:
        why = decision.reason or "no reason given"
        reason = "rejected" + (f" by {decision.by}" if decision.by else "") + f": {why}"
        task.status = TaskStatus.FAILED
        task.reason = reason
        task.ended_at = now
        task.decision = {"decision": "rejected", "reason": decision.reason,
                         "by": decision.by, "at": iso(now)}
        # as an approve's, the decision is the task's output: a runIf: failed handler reads
        # {{tasks.<id>.output.reason}}
        task.output = dict(task.decision)
        if task.attempt_history:
            last = task.attempt_history[-1]
            last.status, last.reason = TaskStatus.FAILED, reason
            last.ended_at = last.ended_at or now
        task.traces.append(TraceEntry(now, reason))


def blocked_approvals(tasks: Sequence[TaskRecord]) -> list[TaskRecord]:
    return [t for t in tasks if t.status == TaskStatus.BLOCKED and t.action_name == APPROVAL]
