"""One task's run through its attempts: preCheck, render, the action's lifecycle, timeout,
cancellation and automatic retry. The InstanceRunner decides *when* a task starts; this module
decides what happens to it once started."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ..actions.base import ActionContext, ActionSpec, BlockTask, ShareData
from ..clock import utcnow
from ..definition.model import TaskDef
from ..errors import LimitError, TemplateError, TideflowError, WriteRefusedError
from ..limits import clean_text
from ..outputs import to_output
from ..states import TaskStatus
from ..store.records import AttemptRecord, TaskRecord, TraceEntry
from ..templates import mask_secrets
from . import oplog
from .nonretryable import not_retried_because
from .tasklogs import AttemptLog, ended_line, open_attempt_log

if TYPE_CHECKING:
    from .runner import InstanceRunner

log = logging.getLogger("tideflow.engine")


class Resume:
    """How a task found mid-flight after a restart picks up."""

    START = "start"  # a fresh attempt
    AFTER = "after"  # run() had finished: resume at run_after (Fastflow's `ending` rule)


@dataclass
class StopRequest:
    """Why a running attempt is being stopped."""

    status: TaskStatus  # canceled, or running for a shutdown (leave the row for recovery)
    reason: str


def _error_reason(exc: BaseException) -> str:
    if isinstance(exc, TideflowError):
        return exc.message
    text = str(exc)
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def _params_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "params"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "invalid params: " + "; ".join(parts)


class TaskRun:
    """Drives one task from its start to a result the runner can act on."""

    def __init__(
        self,
        runner: InstanceRunner,
        task: TaskRecord,
        tdef: TaskDef,
        spec: ActionSpec,
        resume: str = Resume.START,
        *,
        retried: bool = False,
    ) -> None:
        self.runner = runner
        #: the next attempt is a retry (manual or automatic): the action's retry_before runs
        self.retried = retried
        #: params rendered when the task started; every attempt of this start uses them
        self.rendered: Any = None
        self.task = task
        self.tdef = tdef
        self.spec = spec
        self.resume = resume
        self.stop: StopRequest | None = None
        self.cancel_event = asyncio.Event()
        self.in_attempt = False
        self._trace_open = False
        #: monotonic times: when the task became ready to start, and when its attempt began
        self.ready_at = time.monotonic()
        self.began_at = self.ready_at
        #: the current attempt's log (task logs)
        self.alog: AttemptLog | None = None

    # -- helpers --------------------------------------------------------------------------
    def _mask(self, text: str) -> str:
        secrets = self.runner.secret_values
        return mask_secrets(text, secrets) if secrets else text

    def _trace(self, message: str, flush: bool) -> None:
        if not self._trace_open:
            return  # the attempt is over (a late line from an abandoned thread)
        task = self.task
        rt = self.runner.rt
        task.traces.append(TraceEntry(utcnow(), rt.limits.cut_trace(self._mask(message))))
        rt.limits.bound_traces(task.traces, rt.settings.max_traces_per_task)
        if flush:
            self.runner.rt.commits.stage(task=task, urgent=True)

    def _log(self) -> AttemptLog:
        """The current attempt's log (opened here for an attempt resumed after a restart)."""
        alog = self.alog
        if alog is None or alog.attempt != self.task.attempts:
            alog = self.alog = open_attempt_log(self.runner, self.task)
        return alog

    def _timeout_for(self, params: Any) -> float | None:
        if self.tdef.timeout_secs > 0:
            return self.tdef.timeout_secs
        own = self.spec.default_timeout(params)
        if own is None:
            return None
        return own if own >= 0 else self.runner.rt.settings.default_timeout_secs

    def _precheck(self) -> tuple[str, str] | None:
        inst = self.runner.inst
        for check in self.tdef.pre_check:
            if check.act == "block" and self.task.continued:
                continue  # a continued task is past its block checks; skip checks still apply
            if check.fires(inst.vars, inst.share_data):
                label = f" '{check.name}'" if check.name else ""
                return check.act, f"preCheck{label} matched"
        return None

    # -- the run ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Run until the task is success, skipped, failed, canceled or blocked; the final
        state is committed before this returns."""
        task = self.task
        commits = self.runner.rt.commits
        if self.resume == Resume.START and task.status in (TaskStatus.INIT, TaskStatus.CONTINUE):
            verdict = self._precheck()
            if verdict is not None:
                act, why = verdict
                now = utcnow()
                task.status = TaskStatus.SKIPPED if act == "skip" else TaskStatus.BLOCKED
                task.reason = why
                if act == "skip":
                    task.ended_at = now
                await commits.commit(task=task)
                return
        while True:
            again = await self._attempt()
            if not again:
                return
            self.retried = True
            # retrying: back off, cancellable by a cancel command
            policy = self.tdef.retry
            assert policy is not None
            delay = policy.delay(task.attempts, random.random())
            task.status = TaskStatus.RETRYING
            self._log().engine(f"retrying in {delay:.2f}s: attempt {task.attempts + 1} of "
                               f"{policy.max_attempts} next")
            oplog.retrying(self.runner.rt.node_id, self.runner.inst, task, delay,
                           policy.max_attempts)
            commits.stage(task=task)
            if self.stop is None and self.cancel_event.is_set():
                self.cancel_event = asyncio.Event()  # the attempt timed out: a fresh signal
            await self.runner.rt.clock.wait(self.cancel_event, delay)
            self.ready_at = time.monotonic()
            if self.stop is not None:
                self._finish_stopped()
                await commits.commit(task=task)
                return

    async def _attempt(self) -> bool:
        """One attempt. Returns True when the task should be tried again."""
        task, spec, rt = self.task, self.spec, self.runner.rt
        inst = self.runner.inst
        resume_after = self.resume == Resume.AFTER
        self.resume = Resume.START
        share = ShareData(inst.share_data, self.runner.on_share_write, rt.limits)
        try:
            if resume_after and task.params is not None:
                rendered = task.params
            elif self.rendered is not None:
                rendered = self.rendered
            else:
                compiled = self.runner.compiled
                rendered = compiled.renderer.render(
                    task.task_id, self.tdef.params, inst.vars, inst.share_data,
                    compiled.outputs_for(task.task_id, self.runner.tasks),
                )
            rt.limits.check_value(f"the params of task '{task.task_id}' as rendered", rendered)
            self.rendered = rendered
            params = spec.parse_params(rendered)
        except (TemplateError, LimitError, ValidationError, TypeError, ValueError) as exc:
            # bad params are not worth retrying: the same input gives the same error
            reason = _params_error(exc) if isinstance(exc, ValidationError) else _error_reason(exc)
            self._begin_attempt(rendered=None)
            self._end_attempt(TaskStatus.FAILED, self._mask(reason))
            await self.runner.commit_task(task)
            return False

        slot = spec.holds_slot
        #: the failure is not worth another attempt (retry.nonRetryable and the like)
        final = False
        timeout: float | None = None
        acquired = False
        cluster_slot = None
        self.in_attempt = True  # from here on a cancel command interrupts us
        try:
            if spec.max_concurrency is not None:
                holder = f"{rt.node_id}/{inst.id}/{task.task_id}/{task.attempts + 1}"
                cluster_slot = await rt.action_slot(spec.name, spec.max_concurrency, holder,
                                                    self.cancel_event)
            if slot:
                await rt.executor.acquire_slot()
                acquired = True
            if self.stop is not None:
                raise asyncio.CancelledError  # canceled while waiting for a slot
            if not resume_after:
                self._begin_attempt(rendered)
            timeout = self._timeout_for(params)
            deadline = time.monotonic() + timeout if timeout is not None else None
            ctx = ActionContext(
                dag_id=inst.dag_id,
                instance_id=inst.id,
                task_id=task.task_id,
                attempt=task.attempts,
                vars=inst.vars,
                share_data=share,
                cancelled=self.cancel_event,
                deadline=deadline,
                continued=task.continued,
                limits=rt.limits,
                decision=task.decision,
                log=self._log().logger(),
                _trace=self._trace,
                _call_sync=rt.executor.call,
                clock=rt.clock,
            )
            rt.executor.running += 1
            self._trace_open = True
            limit = asyncio.timeout(timeout)
            try:
                async with limit, rt.observers.attempt_scope(inst, task):
                    if not resume_after:
                        if self.retried and spec.retry_before is not None:
                            await rt.executor.call(spec.retry_before, ctx, params)
                        if spec.run_before is not None:
                            await rt.executor.call(spec.run_before, ctx, params)
                        result = await rt.executor.call(spec.run, ctx, params)
                        # committed with the result (and before run_after): a restart
                        # resuming at run_after keeps it
                        task.output = to_output(result, rt.limits.max_value_bytes)
                        task.status = TaskStatus.ENDING
                        if spec.run_after is not None:
                            rt.commits.stage(task=task)
                    if spec.run_after is not None:
                        await rt.executor.call(spec.run_after, ctx, params)
            except TimeoutError:
                if not limit.expired():
                    raise  # the action's own TimeoutError: an ordinary failure
                self.cancel_event.set()
                self._end_attempt(TaskStatus.FAILED, f"timed out after {timeout:g}s",
                                  timed_out=True)
            finally:
                rt.executor.running -= 1
        except BlockTask as blk:
            self._end_attempt(TaskStatus.BLOCKED, self._mask(blk.reason), final=False)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self.stop is None or self.stop.status == TaskStatus.RUNNING or current is None:
                self._log().engine(f"attempt {task.attempts} interrupted: the engine is "
                                   "stopping; the task runs again when its instance is "
                                   "picked up")
                raise  # engine shutdown: leave the row as it is for recovery
            if current.cancelling():
                current.uncancel()
            self._finish_stopped()
        except Exception as exc:
            reason = self._mask(_error_reason(exc))
            why = not_retried_because(exc, self.tdef.retry)
            if why is not None and self._retry_owed():
                final = True
                reason = f"{reason} (not retried: {why})"
            self._end_attempt(TaskStatus.FAILED, reason)
        else:
            if task.status in (TaskStatus.RUNNING, TaskStatus.ENDING):
                self._end_attempt(TaskStatus.SUCCESS, None)
        finally:
            self.in_attempt = False
            # an abandoned sync call may still run in its thread: what it does now is dropped
            share.close()
            self._trace_open = False
            self._log().close()
            if acquired:
                rt.executor.release_slot()
            if cluster_slot is not None:
                try:
                    await cluster_slot.release()
                except TideflowError as exc:  # it expires with its TTL anyway
                    log.warning("could not release a slot of action %s: %s", spec.name, exc)

        if task.status == TaskStatus.FAILED and not final and self._retry_owed():
            rt.commits.stage(task=task)
            return True
        try:
            await self.runner.commit_task(task)
        except WriteRefusedError as exc:
            await self._refused(share, exc)
        return False

    async def _refused(self, share: ShareData, exc: WriteRefusedError) -> None:
        """The database will never take this task's result as it is. Tasks refused together
        (one flush, one instance row) take turns, the one that weighs most first: it fails
        without what it produced (its share-data writes undone); each one after it first tries
        its own result again, as it may have been refused only for the first one's data."""
        task, runner = self.task, self.runner
        log.error("the database refused the result of task %s of instance %s: %s",
                  task.task_id, runner.inst.id, exc.message)
        weight = share.written_bytes() + sum(len(t.message) for t in task.traces)
        turns = runner.refusals
        seen = turns.handled
        async with turns.cond:
            turns.waiting[task.task_id] = weight
            turns.cond.notify_all()
        await asyncio.sleep(0)  # the others refused in the same flush join first
        async with turns.cond:
            await turns.cond.wait_for(lambda: task.task_id == max(
                turns.waiting, key=lambda t: turns.waiting[t]))
            try:
                if turns.handled != seen:
                    try:
                        await runner.commit_task(task)
                        return
                    except WriteRefusedError as again:
                        exc = again
                if share.revert():
                    runner.share_dirty = True
                self.slim(f"its result could not be stored: {exc.message}")
                try:
                    await runner.commit_task(task)
                except WriteRefusedError as last:
                    log.error("gave up storing task %s of instance %s: %s", task.task_id,
                              runner.inst.id, last.message)
            finally:
                turns.handled += 1
                del turns.waiting[task.task_id]
                turns.cond.notify_all()

    def slim(self, reason: str) -> None:
        """Fail the task with ``reason``, keeping only what any database stores: no params,
        the last few traces, short reasons."""
        task = self.task
        now = utcnow()
        reason = clean_text(reason, 4096)
        task.params = None
        task.traces = task.traces[-5:]
        for entry in task.traces:
            entry.message = clean_text(entry.message, 1024)
        for attempt in task.attempt_history:
            if attempt.reason is not None:
                attempt.reason = clean_text(attempt.reason, 1024)
        task.status = TaskStatus.FAILED
        task.reason = reason
        task.ended_at = task.ended_at or now
        if task.attempt_history:
            last = task.attempt_history[-1]
            last.status = TaskStatus.FAILED
            last.reason = reason
            last.ended_at = last.ended_at or now

    def _retry_owed(self) -> bool:
        policy = self.tdef.retry
        return (
            policy is not None
            and self.task.attempts < policy.max_attempts
            and self.stop is None
        )

    def _begin_attempt(self, rendered: Any) -> None:
        task = self.task
        now = utcnow()
        task.attempts += 1
        task.status = TaskStatus.RUNNING
        task.reason = None
        task.params = rendered
        task.output = None
        task.ended_at = None
        if task.started_at is None:
            task.started_at = now
        task.attempt_history.append(
            AttemptRecord(task.attempts, TaskStatus.RUNNING, None, now, None,
                          self.runner.rt.node_id)
        )
        # not awaited: the start of an attempt need not be durable before it runs; a crash
        # before this lands re-runs the attempt, which at-least-once allows
        rt = self.runner.rt
        rt.commits.stage(task=task)
        self.began_at = time.monotonic()
        self._log().engine(f"attempt {task.attempts} started on {rt.node_id}")
        if rt.observers:
            rt.observers.emit("task_started", self.runner.inst, task,
                              self.began_at - self.ready_at)

    def _end_attempt(self, status: TaskStatus, reason: str | None, *, final: bool = True,
                     timed_out: bool = False) -> None:
        task = self.task
        now = utcnow()
        if reason is not None:
            reason = clean_text(reason)
        task.status = status
        task.reason = reason
        if final:
            task.ended_at = now
        if task.attempt_history:
            last = task.attempt_history[-1]
            if last.ended_at is None:
                last.status = status
                last.reason = reason
                last.ended_at = now
                self._log().engine(ended_line(last.attempt, status, reason))
                oplog.attempt_ended(self.runner.rt.node_id, self.runner.inst, task,
                                    last.attempt, status, reason, timed_out=timed_out)
                observers = self.runner.rt.observers
                if observers:
                    observers.emit("task_finished", self.runner.inst, task,
                                   time.monotonic() - self.began_at)

    def _finish_stopped(self) -> None:
        assert self.stop is not None
        self._end_attempt(self.stop.status, self.stop.reason)

    def request_stop(self, stop: StopRequest, handle: asyncio.Task[Any] | None) -> None:
        """Stop this task: a running attempt is cancelled, a back-off is cut short."""
        self.stop = stop
        self.cancel_event.set()
        if handle is not None and self.in_attempt:
            handle.cancel()
