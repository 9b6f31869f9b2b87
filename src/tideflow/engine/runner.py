"""The InstanceRunner: one DAG instance's task tree in memory, driven by events.

It keeps, for every task, how many parents have yet to let it run, so a task with 10,000
parents costs one decrement per parent (Fastflow rescanned all parents: its #42). A task
starts the moment its last parent's result is committed; nothing polls. Commands (retry,
cancel, continue, pause, resume) are methods here, checked against the current state.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from ..clock import utcnow
from ..errors import InvalidStateError, NotFoundError, WriteRefusedError
from ..redact import LOG_REDACTOR, secret_forms
from ..states import InstanceStatus, TaskStatus
from ..store.records import InstanceRecord, TaskRecord
from . import approvals, compensation, oplog
from .approvals import Decision
from .attempt import Resume, StopRequest, TaskRun
from .compiled import CompiledDag
from .hooks import HookEvent
from .tasklogs import open_attempt_log, settle_logs
from .trigger_rules import RUN_IF_SKIP, evaluate, lets_children_run, skipped_by_rule

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger("tideflow.engine")

_UNFINISHED_TASK = frozenset(
    {
        TaskStatus.INIT,
        TaskStatus.RUNNING,
        TaskStatus.ENDING,
        TaskStatus.RETRYING,
        TaskStatus.BLOCKED,
        TaskStatus.CONTINUE,
    }
)
_IN_FLIGHT = frozenset({TaskStatus.RUNNING, TaskStatus.ENDING, TaskStatus.RETRYING})


@dataclass
class Refusals:
    """Tasks of one instance whose results the database refused, taking turns (attempt.py)."""

    cond: asyncio.Condition = field(default_factory=asyncio.Condition)
    #: task id -> how much it produced
    waiting: dict[str, int] = field(default_factory=dict)
    #: refusals dealt with so far
    handled: int = 0


@dataclass
class _Active:
    run: TaskRun
    handle: asyncio.Task[None]


class InstanceRunner:
    def __init__(
        self,
        rt: Runtime,
        instance: InstanceRecord,
        compiled: CompiledDag,
        on_end: Callable[[InstanceRunner], None],
    ) -> None:
        built = time.monotonic()
        self.rt = rt
        self.inst = instance
        self.compiled = compiled
        self.tasks: dict[str, TaskRecord] = {t.task_id: t for t in instance.tasks}
        self.pending: dict[str, int] = {}
        self.active: dict[str, _Active] = {}
        self.share_dirty = False
        self.refusals = Refusals()
        # the forms secret values take in messages, masked in traces, reasons and logs
        self.secret_values = secret_forms(
            v for k, v in instance.vars.items() if k in compiled.secrets and v
        )
        LOG_REDACTOR.track(self, self.secret_values)
        self._on_end = on_end
        self._change = asyncio.Event()
        self._ended = False
        #: tasks a retry command reset: their next attempt calls the action's retry_before
        self._retried: set[str] = set()
        #: a cancel of the whole instance let its cleanup (runIf: always) run on
        self._canceling = False
        #: tasks found in ``ending`` when the instance was picked up: resumed at run_after
        self._resume: list[str] = []
        self._prepared = False
        #: set once the instance's end hook ran and its final row is committed; only then
        #: does anyone outside see the final status
        self.closed = asyncio.Event()
        #: time spent building the task tree and starting it (Fastflow's parse), reported to
        #: the observers once, when it first starts, however it came to this node
        self._parse_secs: float | None = time.monotonic() - built

    # -- bookkeeping ------------------------------------------------------------------------
    def on_share_write(self, _key: str) -> None:
        self.share_dirty = True

    async def commit_task(self, task: TaskRecord) -> None:
        """Commit a task's result together with the share data it wrote."""
        dirty = self.share_dirty
        self.share_dirty = False
        await self.rt.commits.commit(instance=self.inst if dirty else None, task=task)

    def _recount(self) -> None:
        tasks = self.tasks
        self.pending = {
            tid: sum(1 for p in parents if not lets_children_run(tasks[p]))
            for tid, parents in self.compiled.parents.items()
        }

    def _set_status(self, status: InstanceStatus, reason: str | None = None) -> None:
        inst = self.inst
        old = inst.status
        # the record is whole before observers see it: a span's status takes the reason
        inst.status, inst.reason, inst.updated_at = status, reason, utcnow()
        if old != status and self.rt.observers:
            self.rt.observers.emit("instance_changed", inst, old.value)
        self._notify()

    def _notify(self) -> None:
        event = self._change
        self._change = asyncio.Event()
        event.set()

    async def wait_until(
        self, predicate: Callable[[InstanceRecord], bool], timeout: float | None
    ) -> bool:
        """Wait until ``predicate(instance)`` holds; False on timeout. A final status is
        only there once its row is committed (see :meth:`_finalize`)."""

        async def _wait() -> None:
            while not predicate(self.inst):
                await self._change.wait()

        if predicate(self.inst):
            return True
        try:
            await asyncio.wait_for(_wait(), timeout)
        except TimeoutError:
            return False
        return True

    # -- starting tasks -----------------------------------------------------------------------
    def prepare(self, *, recovering: bool) -> None:
        """Get the loaded instance ready without starting anything, so that a command can be
        applied before the first task starts. With ``recovering`` (its process stopped), an
        attempt found in flight is recorded as interrupted and its task is owed one new
        attempt; a task found in ``ending`` resumes at run_after."""
        if self._prepared:
            return
        began = time.monotonic()
        self._prepared = True
        self._prepare(recovering)
        if self._parse_secs is not None:
            self._parse_secs += time.monotonic() - began

    def _prepare(self, recovering: bool) -> None:
        if recovering:
            for t in self.tasks.values():
                if t.status == TaskStatus.ENDING:
                    self._resume.append(t.task_id)
                elif t.status in _IN_FLIGHT:
                    self._interrupt(t)
            self.rt.commits.stage(instance=self.inst)
        self._recount()

    async def start(self, *, recovering: bool = False) -> None:
        """Start (or, after a restart, pick up) the instance. Nothing starts when a command
        applied since :meth:`prepare` ended it (a cancel)."""
        self.prepare(recovering=recovering)
        began, ok = time.monotonic(), False
        try:
            await self._start()
            ok = True
        finally:
            if self._parse_secs is not None:
                elapsed, self._parse_secs = self._parse_secs + time.monotonic() - began, None
                self.rt.observers.emit("parsed", self.inst, elapsed, ok)

    async def _start(self) -> None:
        if self._ended:
            return
        inst = self.inst
        if inst.status in (InstanceStatus.INIT, InstanceStatus.SCHEDULED):
            self._set_status(InstanceStatus.RUNNING)
            self.rt.commits.stage(instance=inst)
            await self.rt.fire(HookEvent.BEFORE_RUN, self)
        resume, self._resume = self._resume, []
        for tid in resume:
            if tid not in self.active and self.tasks[tid].status == TaskStatus.ENDING:
                self._launch(tid, Resume.AFTER)
        self._start_ready(self.tasks)
        self._check_end()

    def _interrupt(self, t: TaskRecord) -> None:
        """An attempt found in flight at start belonged to a process that stopped: record it
        as failed and owe the task a new attempt."""
        now = utcnow()
        if t.attempt_history and t.attempt_history[-1].ended_at is None:
            last = t.attempt_history[-1]
            last.status = TaskStatus.FAILED
            last.reason = "interrupted: the node running it stopped"
            last.ended_at = now
            open_attempt_log(self, t).engine(
                f"attempt {last.attempt} interrupted: the node running it stopped "
                f"({last.worker or 'unknown'}); {self.rt.node_id} picked the instance up")
        t.status = TaskStatus.INIT
        self.rt.commits.stage(task=t)

    def _start_ready(self, candidates: Iterable[str]) -> None:
        if self.inst.status != InstanceStatus.RUNNING or self._ended:
            return
        tasks, pending, active, tdefs = self.tasks, self.pending, self.active, self.compiled.tasks
        compensating = self.inst.compensation == compensation.RUNNING
        for tid in candidates:
            t = tasks[tid]
            if tid in active or (not compensating and compensation.is_step(tid)):
                continue
            by_counter = pending[tid] == 0 and tdefs[tid].run_if == "success"
            # a continued task had its turn already, whatever its runIf
            if by_counter and t.status in (TaskStatus.INIT, TaskStatus.CONTINUE) or (
                t.status == TaskStatus.CONTINUE and tdefs[tid].run_if != "success"
            ):
                self._launch(tid, Resume.START)

    def _launch(self, tid: str, mode: str, *, retried: bool = False) -> None:
        task = self.tasks[tid]
        tdef = self.compiled.tasks[tid]
        if tdef.action_name not in self.rt.actions:
            # e.g. picked up after a restart by a node without that action: fail visibly
            task.status = TaskStatus.FAILED
            task.reason = f"action '{tdef.action_name}' is not registered on this node"
            task.ended_at = utcnow()
            self.rt.commits.stage(task=task)
            return
        spec = self.rt.actions.get(tdef.action_name)
        run = TaskRun(self, task, tdef, spec, mode, retried=retried or tid in self._retried)
        self._retried.discard(tid)
        handle = asyncio.get_running_loop().create_task(
            self._drive(run), name=f"tideflow-task-{self.inst.id}-{tid}"
        )
        self.active[tid] = _Active(run, handle)

    async def _drive(self, run: TaskRun) -> None:
        tid = run.task.task_id
        try:
            await run.run()
        except asyncio.CancelledError:
            self.active.pop(tid, None)
            raise
        except Exception:  # a bug must not leave the instance hanging: fail the task
            log.exception("task %s of instance %s crashed the engine's task runner",
                          tid, self.inst.id)
            run.slim("internal error in the engine (see the node's log)")
            try:
                await self.commit_task(run.task)
            except WriteRefusedError as exc:
                log.error("gave up storing task %s of instance %s: %s", tid, self.inst.id,
                          exc.message)
        self.active.pop(tid, None)
        status = run.task.status
        if status.lets_children_run:
            pending = self.pending
            ready = []
            for child in self.compiled.children[tid]:
                pending[child] -= 1
                if pending[child] == 0:
                    ready.append(child)
            if ready:
                self._start_ready(ready)
        elif status == TaskStatus.BLOCKED:
            await self.rt.fire(HookEvent.BLOCK, self)
        self._notify()
        self._check_end()

    # -- ending -------------------------------------------------------------------------------
    def _apply_run_if(self) -> None:
        """Start the runIf: failed/always tasks whose parents allow it now, and mark skipped
        those whose rule can no longer hold (see trigger_rules)."""
        compiled = self.compiled
        start, skip = evaluate(compiled.run_if_order, self.tasks, compiled.tasks,
                               compiled.parents, self.active)
        now = utcnow()
        for tid, reason in skip.items():
            t = self.tasks[tid]
            t.status, t.reason, t.ended_at = TaskStatus.SKIPPED, reason, now
            self.rt.commits.stage(task=t)
        for tid in start:
            self._launch(tid, Resume.START)

    def _check_end(self) -> None:
        if (self.compiled.run_if_order and not self._ended
                and self.inst.status == InstanceStatus.RUNNING):
            self._apply_run_if()
        if self.active or self._ended:
            return
        inst = self.inst
        if inst.status.is_final:
            return
        # the compensation steps wait apart: they are not part of the main path
        main = ([t for t in self.tasks.values() if not compensation.is_step(t.task_id)]
                if self.compiled.steps else list(self.tasks.values()))
        statuses = [t.status for t in main]
        waiting = statuses if inst.compensation != compensation.RUNNING else [
            t.status for t in self.tasks.values()]
        if inst.status == InstanceStatus.PAUSED and any(s in _UNFINISHED_TASK for s in waiting):
            return  # stays paused until resumed
        # the status is earned by the main path: a runIf task's failure only shows when
        # nothing else failed or was canceled
        tdefs = self.compiled.tasks
        failed = [t for t in main if t.status == TaskStatus.FAILED]
        main_failed = [t for t in failed if tdefs[t.task_id].run_if == "success"]
        if main_failed:
            first = main_failed[0]
            reason = f"task '{first.task_id}' failed: {first.reason}"
            blocked = [t.task_id for t in main if t.status == TaskStatus.BLOCKED]
            if blocked:
                # they can still be continued (or the failed tasks retried): say so
                reason += "; blocked: " + ", ".join(blocked[:10])
            self._finish(InstanceStatus.FAILED, reason)
        elif self._canceling or any(s == TaskStatus.CANCELED for s in statuses):
            self._finish(InstanceStatus.CANCELED, "canceled")
        elif any(s in _UNFINISHED_TASK for s in statuses):
            blocked = [t.task_id for t in main if t.status == TaskStatus.BLOCKED]
            why = "waiting for continue: " + ", ".join(blocked[:10]) if blocked else None
            if inst.status != InstanceStatus.BLOCKED:
                self._set_status(InstanceStatus.BLOCKED, why)
                self.rt.commits.stage(instance=inst)
        elif failed:
            first = failed[0]
            self._finish(InstanceStatus.FAILED, f"task '{first.task_id}' failed: {first.reason}")
        else:
            self._finish(InstanceStatus.SUCCESS, None)

    def _finish(self, status: InstanceStatus, reason: str | None) -> None:
        if self.compiled.steps and self._compensate(status, reason):
            return
        self._ended = True
        self._skip_unreached(utcnow())
        self.rt.spawn(self._finalize(status, reason), f"tideflow-finalize-{self.inst.id}")

    async def _finalize(self, status: InstanceStatus, reason: str | None) -> None:
        """The end, in this order: the end hook, the final row committed, then waiters told.
        The final status is set on a copy until it is committed, so nobody (a waiter, a
        reader of this node, a flush of other rows) sees it before: a crash before the
        commit ends the instance again after the restart and runs the hook again (at least
        once)."""
        event = {
            InstanceStatus.SUCCESS: HookEvent.SUCCESS,
            InstanceStatus.FAILED: HookEvent.FAIL,
            InstanceStatus.CANCELED: HookEvent.CANCEL,
        }[status]
        now = utcnow()
        final = copy.copy(self.inst)
        final.status, final.reason, final.ended_at, final.updated_at = status, reason, now, now
        await self.rt.fire(event, self, final)
        await settle_logs(self.rt.task_logs)
        try:
            await self.rt.commits.commit(instance=final)
        except WriteRefusedError as exc:
            # its share data, the one part of the row that grew since it was stored: without
            # it the instance can still be recorded as ended (the copy shares the dict)
            log.error("the database refused the final row of instance %s: %s", self.inst.id,
                      exc.message)
            self.inst.share_data.clear()
            status = final.status = InstanceStatus.FAILED
            reason = final.reason = f"its share data could not be stored: {exc.message}"
            try:
                await self.rt.commits.commit(instance=final)
            except WriteRefusedError as again:
                log.error("gave up storing instance %s: %s", self.inst.id, again.message)
        self.inst.ended_at = now
        self._set_status(status, reason)
        oplog.instance_ended(self.rt.node_id, self.inst, status, reason)
        self._on_end(self)
        self.closed.set()
        self._notify()

    def _skip_unreached(self, now: datetime) -> None:
        """A runIf: failed/always task still waiting when the instance ends never runs: it
        shows as skipped, not as work still to do."""
        for t in self.tasks.values():
            rule = self.compiled.tasks[t.task_id].run_if
            if t.status == TaskStatus.INIT and rule != "success":
                t.status, t.ended_at = TaskStatus.SKIPPED, now
                t.reason = RUN_IF_SKIP + f"{rule}, but the instance ended before its parents did"
                self.rt.commits.stage(task=t)

    @property
    def finished(self) -> bool:
        """The instance has ended here: nothing more starts. Its final row may still be
        being committed; :attr:`closed` is set once it is."""
        return self._ended

    # -- commands -----------------------------------------------------------------------------
    def _select(self, task_ids: Iterable[str] | None, allowed: frozenset[TaskStatus],
                verb: str) -> list[TaskRecord]:
        if task_ids is None:
            chosen = [t for t in self.tasks.values() if t.status in allowed]
            if not chosen:
                raise InvalidStateError(
                    f"cannot {verb} instance {self.inst.id}: it is {self.inst.status.value} "
                    f"and has no task to {verb} (needs a task in {', '.join(sorted(allowed))})",
                    state=self.inst.status.value,
                )
            return chosen
        out = []
        for tid in task_ids:
            t = self.tasks.get(tid)
            if t is None:
                raise NotFoundError(f"instance {self.inst.id} has no task '{tid}'")
            if t.status not in allowed:
                raise InvalidStateError(
                    f"cannot {verb} task '{tid}' of instance {self.inst.id}: it is "
                    f"{t.status.value} (only {', '.join(sorted(allowed))} tasks can be)",
                    state=t.status.value,
                )
            out.append(t)
        return out

    def _require(self, verb: str, *allowed: InstanceStatus) -> None:
        # a final instance takes a retry, and a continue of its blocked tasks, once its final
        # row is committed
        refused = compensation.refusal(self.inst.id, self.inst.compensation,
                                       self.inst.status.value, verb)
        if refused is not None:
            raise refused
        again = verb in ("retry", "continue", "reject") and self.closed.is_set()
        if self.inst.status not in allowed or (self._ended and not again):
            raise InvalidStateError(
                f"cannot {verb} instance {self.inst.id}: it is {self.inst.status.value} "
                f"(only {' or '.join(s.value for s in allowed)} instances can be)",
                state=self.inst.status.value,
            )

    def cancel(self, task_ids: list[str] | None = None) -> list[str]:
        self._require("cancel", InstanceStatus.INIT, InstanceStatus.SCHEDULED,
                      InstanceStatus.RUNNING, InstanceStatus.PAUSED, InstanceStatus.BLOCKED)
        whole = task_ids is None
        cleanup = self._cleanup_after_cancel() if whole else set()
        if whole and cleanup:
            # the cleanup (runIf: always) still runs; the instance ends canceled after it
            self._canceling = True
            targets = [t for t in self.tasks.values()
                       if t.status in _UNFINISHED_TASK and t.task_id not in cleanup]
            self._set_status(InstanceStatus.RUNNING, "canceled: its cleanup and compensation"
                             " still run")
            self.rt.commits.stage(instance=self.inst)
            whole = False
        elif whole:
            targets = [t for t in self.tasks.values() if t.status in _UNFINISHED_TASK]
            # mark first: a task finishing right now must not start its children (#63); the
            # status becomes canceled when that is committed, once every task has stopped
            self._ended = True
        else:
            targets = self._select(task_ids, _UNFINISHED_TASK, "cancel")
        stop = StopRequest(TaskStatus.CANCELED, "canceled")
        now = utcnow()
        for t in targets:
            act = self.active.get(t.task_id)
            if act is not None:
                act.run.request_stop(stop, act.handle)
            else:
                t.status = TaskStatus.CANCELED
                t.reason = "canceled"
                t.ended_at = now
                self.rt.commits.stage(task=t)
        if whole:
            self.rt.spawn(self._finish_when_idle(), f"tideflow-cancel-{self.inst.id}")
        else:
            self._check_end()
        return [t.task_id for t in targets]

    def _cleanup_after_cancel(self) -> set[str]:
        """The tasks a cancel of the whole instance leaves to run: the runIf: always ones not
        started yet, unless the instance is already canceled (a second cancel stops them)."""
        if self._canceling or self.inst.status not in (
                InstanceStatus.RUNNING, InstanceStatus.BLOCKED, InstanceStatus.PAUSED):
            return set()
        # and the compensation steps, which run once the tasks being canceled have stopped
        return {t.task_id for t in self.tasks.values() if t.status == TaskStatus.INIT
                and (self.compiled.tasks[t.task_id].run_if == "always"
                     or compensation.is_step(t.task_id))}

    def _compensate(self, status: InstanceStatus, reason: str | None) -> bool:
        """At the end of the main path: start the compensation steps it needs (True: the
        instance goes on), or settle them (skipped, or the compensation's outcome)."""
        inst, now = self.inst, utcnow()
        if inst.compensation == compensation.RUNNING:
            inst.compensation = compensation.outcome(self.tasks)
            return False
        run: list[TaskRecord] = []
        skip = compensation.skip_all(self.tasks)
        if status != InstanceStatus.SUCCESS and inst.compensation is None:
            run, skip = compensation.begin(self.tasks)
            skip = skip if run else compensation.skip_all(self.tasks)
        for t in skip:
            t.status, t.ended_at = TaskStatus.SKIPPED, now
            t.reason = f"nothing to undo: '{compensation.compensated_id(t.task_id)}' did not" \
                " succeed" if run else "nothing to undo"
            self.rt.commits.stage(task=t)
        if not run:
            return False
        inst.compensation = compensation.RUNNING
        self._set_status(InstanceStatus.RUNNING, f"compensating: {reason}")
        self.rt.commits.stage(instance=inst)
        log.info("instance %s: compensating %d task(s)", inst.id, len(run))
        self._recount()
        self._start_ready([t.task_id for t in run])
        self._check_end()
        return True

    async def _finish_when_idle(self) -> None:
        while self.active:
            await asyncio.wait([a.handle for a in self.active.values()])
        if self.inst.compensation == compensation.RUNNING:
            self.inst.compensation = compensation.outcome(self.tasks)
        await self._finalize(InstanceStatus.CANCELED, "canceled")

    def retry(self, task_ids: list[str] | None = None) -> list[str]:
        self._require("retry", InstanceStatus.FAILED, InstanceStatus.CANCELED)
        retryable = frozenset({TaskStatus.FAILED, TaskStatus.CANCELED})
        targets = self._select(task_ids, retryable, "retry")
        # tasks a trigger rule skipped are judged again against what the retry changes
        for t in self.tasks.values():
            if skipped_by_rule(t):
                t.status, t.reason, t.ended_at = TaskStatus.INIT, None, None
                self.rt.commits.stage(task=t)
        for t in targets:
            t.status = TaskStatus.INIT
            t.reason = None
            t.ended_at = None
            t.decision = None
            self._retried.add(t.task_id)
            self.rt.commits.stage_many([t])
        self._ended = False
        self._canceling = False
        self.inst.ended_at = None
        self._set_status(InstanceStatus.RUNNING)
        self.rt.commits.stage(instance=self.inst)
        self._recount()
        self.rt.spawn(self.rt.fire(HookEvent.RETRY, self), "tideflow-hook")
        self._start_ready(self.tasks)
        self._check_end()
        return [t.task_id for t in targets]

    def continue_(self, task_ids: list[str] | None = None,
                  decision: Decision | None = None) -> list[str]:
        self._require("continue", InstanceStatus.RUNNING, InstanceStatus.BLOCKED,
                      InstanceStatus.PAUSED, InstanceStatus.FAILED)
        targets = self._select(task_ids, frozenset({TaskStatus.BLOCKED}), "continue")
        decision = decision or Decision()
        inputs = approvals.check_continue(targets, decision)
        approvals.record_continue(targets, inputs, decision, utcnow())
        for t in targets:
            t.status = TaskStatus.CONTINUE
            t.continued = True
            t.reason = None
            self.rt.commits.stage(task=t)
        if self.inst.status == InstanceStatus.FAILED:
            # a blocked branch next to a failed one goes on; the instance ends again by the
            # same rule (failed, unless the failed tasks are retried meanwhile)
            self._ended = False
            self.inst.ended_at = None
            self._recount()
        if self.inst.status in (InstanceStatus.BLOCKED, InstanceStatus.FAILED):
            self._set_status(InstanceStatus.RUNNING)
            self.rt.commits.stage(instance=self.inst)
        self.rt.spawn(self.rt.fire(HookEvent.CONTINUE, self), "tideflow-hook")
        self._start_ready([t.task_id for t in targets])
        self._check_end()
        return [t.task_id for t in targets]

    def reject(self, task_ids: list[str] | None, decision: Decision) -> list[str]:
        """Fail blocked approval tasks with the reason given."""
        self._require("reject", InstanceStatus.RUNNING, InstanceStatus.BLOCKED,
                      InstanceStatus.PAUSED, InstanceStatus.FAILED)
        if task_ids is None:
            targets = approvals.blocked_approvals(list(self.tasks.values()))
            if not targets:
                raise InvalidStateError(f"instance {self.inst.id} has no blocked approval to"
                                        " reject", state=self.inst.status.value)
        else:
            targets = self._select(task_ids, frozenset({TaskStatus.BLOCKED}), "reject")
        approvals.check_reject(targets, decision)
        approvals.record_reject(targets, decision, utcnow())
        self.rt.commits.stage_many(targets)
        if self.inst.status == InstanceStatus.FAILED:
            # as a continue would: the instance ends again by the same rule (its runIf:
            # failed tasks below the approval get their turn)
            self._ended = False
            self.inst.ended_at = None
            self._recount()
        if self.inst.status in (InstanceStatus.BLOCKED, InstanceStatus.FAILED):
            self._set_status(InstanceStatus.RUNNING)
            self.rt.commits.stage(instance=self.inst)
        self._check_end()
        return [t.task_id for t in targets]

    def pause(self) -> None:
        self._require("pause", InstanceStatus.RUNNING)
        self._set_status(InstanceStatus.PAUSED, "paused")
        self.rt.commits.stage(instance=self.inst)
        self._check_end()

    def resume(self) -> None:
        self._require("resume", InstanceStatus.PAUSED)
        self._set_status(InstanceStatus.RUNNING)
        self.rt.commits.stage(instance=self.inst)
        self._start_ready(self.tasks)
        self._check_end()

    async def shutdown(self) -> None:
        """Stop driving the instance without changing what is recorded (engine close): the
        attempts in flight are picked up again by the next start."""
        self._ended = True
        handles = [a.handle for a in self.active.values()]
        for a in self.active.values():
            a.run.stop = StopRequest(TaskStatus.RUNNING, "node stopping")
            a.handle.cancel()
        if handles:
            await asyncio.wait(handles, timeout=self.rt.settings.cancel_grace_secs)

