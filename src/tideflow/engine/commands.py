"""Commands on instances (retry, cancel, continue, reject, pause, resume): applied at once to an
instance this node drives, otherwise checked against the recorded state and queued for the
process that drives it. A cancel of an instance nobody has started is applied in the database
at once by whoever receives it.

Queued commands are taken in two steps: claimed, then deleted once applied and committed."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..clock import utcnow
from ..errors import InputError, InvalidStateError, NotFoundError, StoreError, TideflowError
from ..states import InstanceStatus, TaskStatus
from ..store.records import CommandRecord, InstanceRecord
from . import approvals, compensation
from .approvals import Decision
from .hooks import HookEvent
from .runner import InstanceRunner

if TYPE_CHECKING:
    from ..cluster.node import ClusterNode
    from ..cluster.waker import Waker
    from ..store.base import Store
    from .compiled import CompiledDag
    from .hooks import Hooks
    from .runtime import Runtime
    from .settings import EngineSettings

log = logging.getLogger("tideflow.engine")

_IN_FLIGHT = (TaskStatus.RUNNING, TaskStatus.ENDING, TaskStatus.RETRYING)
_UNSTARTED = (InstanceStatus.INIT, InstanceStatus.SCHEDULED)

_EFFECTS: dict[str, Callable[[InstanceRecord], bool]] = {
    "cancel": lambda i: i.status.is_final
    and not any(t.status in _IN_FLIGHT for t in i.tasks),
    "retry": lambda i: i.status not in (InstanceStatus.FAILED, InstanceStatus.CANCELED),
    "continue": lambda i: not any(t.status == TaskStatus.BLOCKED for t in i.tasks)
    or i.status.is_final,
    "reject": lambda i: not approvals.blocked_approvals(i.tasks) or i.status.is_final,
    "pause": lambda i: i.status != InstanceStatus.RUNNING,
    "resume": lambda i: i.status != InstanceStatus.PAUSED,
}


class CommandVerbs:
    """The command verbs of :class:`~tideflow.engine.engine.Engine`."""

    if TYPE_CHECKING:
        settings: EngineSettings
        store: Store
        node_id: str
        hooks: Hooks
        last_queued_command: int | None
        _cluster: ClusterNode | None
        _runners: dict[str, InstanceRunner]
        _waiting: dict[str, collections.deque[tuple[InstanceRecord, CompiledDag]]]
        _wake_commands: asyncio.Event
        _waker: Waker | None
        _commands_applied: set[int]
        _commands_applying: set[int]
        _closed: bool

        def _require_rt(self) -> Runtime: ...
        def _runner_ended(self, runner: InstanceRunner) -> None: ...
        async def _load_runner(self, instance_id: str, *, recovering: bool,
                               loaded: InstanceRecord | None = None) -> InstanceRunner: ...
        @staticmethod
        def _snapshot(inst: InstanceRecord) -> InstanceRecord: ...

    def _apply_or_release(self, runner: InstanceRunner, kind: str, ids: list[str] | None,
                          decision: Decision | None = None) -> None:
        try:
            self._apply(runner, kind, ids, decision)
        except TideflowError:
            # a final instance loaded only for this command goes back to the store
            if runner.inst.status.is_final and not runner.active:
                self._runner_ended(runner)
            raise

    # -- picking instances up -------------------------------------------------------------------
    async def _pick_up(
        self,
        insts: Sequence[InstanceRecord],
        then: Callable[[list[InstanceRunner]], Awaitable[None]],
    ) -> list[InstanceRunner]:
        """Drive these instances here from now on. Each is recovered once (an attempt found
        in flight is recorded as interrupted and its task owed one new attempt), then
        ``then`` applies the commands for them, and only then does anything start: a cancel
        of a run not started yet starts nothing, a pause leaves the interrupted task
        waiting."""
        runners: list[InstanceRunner] = []
        for inst in insts:
            if inst.id in self._runners:
                continue
            try:
                runner = await self._load_runner(inst.id, recovering=False, loaded=inst)
            except TideflowError as exc:
                log.error("could not pick up instance %s: %s", inst.id, exc)
                continue
            runner.prepare(recovering=inst.status.is_unfinished)
            runners.append(runner)
        try:
            await then(runners)
        finally:
            for runner in runners:
                if self._runners.get(runner.inst.id) is not runner:
                    continue
                if runner.inst.status.is_unfinished:
                    await runner.start()
                elif not runner.active and not runner.finished:
                    self._runner_ended(runner)  # final, and no command started it again
        return runners

    async def _apply_queued_soon(self, scope: Sequence[str] | None, *, worker: str | None
                                 ) -> None:
        try:
            await self._apply_queued(scope, worker=worker)
        except StoreError as exc:
            # they stay queued: the command loop applies them on its next look
            log.warning("could not read queued commands yet: %s", exc)

    def _held(self, instance_id: str) -> tuple[InstanceRecord, CompiledDag] | None:
        """Single node: the instance when it waits in its DAG's maxActiveRuns queue."""
        for queue in self._waiting.values():
            for entry in queue:
                if entry[0].id == instance_id:
                    return entry
        return None

    async def _command_unstarted(
        self, kind: str, inst: InstanceRecord, ids: list[str] | None
    ) -> InstanceRecord | None:
        """A command for an instance no process has started: ``init``/``scheduled`` with no
        owner (cluster: waiting for the Dispatcher), or held here by maxActiveRuns. Only a
        cancel acts on it, applied at once in the database (nothing ever starts); the state
        table refuses the others. None when a dispatch took the instance first."""
        _check_command(kind, inst, ids)
        rt = self._require_rt()
        held = self._held(inst.id)
        if not await self.store.cancel_unstarted(inst.id, ids, worker=inst.worker,
                                                 now=utcnow()):
            return None
        if held is not None:
            if ids is None:
                self._waiting[held[0].dag_id].remove(held)
            else:
                for t in held[0].tasks:
                    if t.task_id in ids and not t.status.is_final:
                        t.status, t.reason = TaskStatus.CANCELED, "canceled"
        if self._cluster is not None:
            self._cluster.waker.notify()
        done = await self.store.get_instance(inst.id, with_tasks=True)
        if ids is None:
            # nobody owns it: the hook runs here, once the cancel is committed
            if rt.observers:
                rt.observers.emit("instance_changed", done, inst.status.value)
            if self.hooks.has(HookEvent.CANCEL):
                # as every hook gets it: a copy without its tasks
                await self.hooks.fire(HookEvent.CANCEL, replace(done.snapshot(), tasks=[]),
                                      rt.executor)
        return done

    # -- commands ---------------------------------------------------------------------------------
    async def _apply_one(self, kind: str, instance_id: str, ids: list[str] | None,
                         decision: Decision | None = None,
                         ) -> InstanceRunner | InstanceRecord | None:
        """Apply a command on this node when it drives (or may drive) the instance: the
        runner that applied it, or the instance canceled before it started; None when the
        command must be queued for the process that drives it."""
        held = self._held(instance_id)
        if held is not None:
            inst = await self.store.get_instance(instance_id, with_tasks=True)
            done = await self._command_unstarted(kind, inst, ids)
            if done is None:  # pragma: no cover - a held instance has one owner: this node
                raise InvalidStateError(f"instance {instance_id} changed meanwhile; try again",
                                        state=inst.status.value)
            return done
        runner = self._runners.get(instance_id)
        if runner is not None and runner.finished:
            await runner.closed.wait()
            runner = self._runners.get(instance_id)
        if runner is not None:
            self._apply_or_release(runner, kind, ids, decision)
            return runner
        if not self.settings.recover or self._cluster is not None:
            return None
        inst = await self.store.get_instance(instance_id, with_tasks=True)
        _check_command(kind, inst, ids, decision)

        async def apply(runners: list[InstanceRunner]) -> None:
            for r in runners:
                self._apply_or_release(r, kind, ids, decision)
            await self._apply_queued_soon([instance_id], worker=None)

        picked = await self._pick_up([inst], apply)
        return picked[0] if picked else self._runners.get(instance_id)

    async def _command(
        self, kind: str, instance_id: str, task_ids: Sequence[str] | None, wait: float | None,
        decision: Decision | None = None,
    ) -> InstanceRecord:
        self._require_rt()
        self.last_queued_command = None
        ids = list(task_ids) if task_ids is not None else None
        applied = await self._apply_one(kind, instance_id, ids, decision)
        if applied is None:
            return await self._queue_command(kind, instance_id, ids, wait, decision)
        if isinstance(applied, InstanceRecord):
            return applied
        runner = applied
        if wait:
            if kind == "cancel" and ids is None:
                # done when every task has stopped and the final row is written
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(runner.closed.wait(), wait)
            else:
                await runner.wait_until(_EFFECTS[kind], wait)
        return self._snapshot(runner.inst)

    @staticmethod
    def _apply(runner: InstanceRunner, kind: str, ids: list[str] | None,
               decision: Decision | None = None) -> None:
        if kind == "retry":
            runner.retry(ids)
        elif kind == "cancel":
            runner.cancel(ids)
        elif kind == "continue":
            runner.continue_(ids, decision)
        elif kind == "reject":
            runner.reject(ids, decision or Decision())
        elif kind == "pause":
            runner.pause()
        elif kind == "resume":
            runner.resume()
        else:  # pragma: no cover - kinds are fixed by the public verbs
            raise InputError(f"unknown command '{kind}'")

    async def _queue_command(
        self, kind: str, instance_id: str, ids: list[str] | None, wait: float | None,
        decision: Decision | None = None,
    ) -> InstanceRecord:
        """Check the command against the recorded state, then leave it for the process that
        drives the instance — or, for a cancel of an instance nobody has started, apply it
        in the database at once."""
        inst = await self.store.get_instance(instance_id, with_tasks=True)
        _check_command(kind, inst, ids, decision)
        if inst.worker is None and inst.status in _UNSTARTED:
            done = await self._command_unstarted(kind, inst, ids)
            if done is not None:
                return done
            # a worker took it meanwhile: the command goes to that worker
            inst = await self.store.get_instance(instance_id, with_tasks=True)
            _check_command(kind, inst, ids, decision)
        command_id = await self.store.add_command(
            CommandRecord(None, instance_id, kind, ids, utcnow(),
                          decision.to_payload() if decision is not None else None)
        )
        self.last_queued_command = command_id
        if self._cluster is not None:
            self._cluster.waker.notify()
        if not wait:
            return inst
        return await self.wait_for_command(instance_id, kind, command_id, wait)

    async def wait_for_command(
        self, instance_id: str, kind: str, command_id: int | None, wait: float
    ) -> InstanceRecord:
        """Wait (up to ``wait`` seconds) until the owner of the instance took a queued command
        and its effect shows; returns the instance as it is then."""
        # the effect of a queued command is that its owner took and applied it (a retried
        # instance may well have failed again by the time we look)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while (command_id is not None and loop.time() < deadline
               and await self.store.command_pending(command_id)):
            await asyncio.sleep(0.05)
        while True:
            inst = await self.store.get_instance(instance_id, with_tasks=True)
            if _EFFECTS[kind](inst) or kind == "retry" or loop.time() >= deadline:
                return inst
            await asyncio.sleep(0.05)

    async def _apply_queued(self, scope: Sequence[str] | None, *, worker: str | None) -> bool:
        """Take the commands queued for the instances in ``scope`` (or those ``worker`` owns,
        or all) and apply them, in two steps: claim them, and delete them only once applied
        and their effect committed — a claim or delete whose reply was lost is simply done
        again (the ids applied here are remembered until deleted)."""
        rt = self._require_rt()
        holder = self.node_id
        if self._commands_applied:
            # applied earlier, but their delete failed (or its reply was lost); their effects
            # are durable before they go (one may have been applied just now, elsewhere)
            left = list(self._commands_applied)
            await rt.commits.commit()
            await self.store.finish_commands(holder, left)
            self._commands_applied.difference_update(left)
        commands = await self.store.claim_commands(holder, scope, worker=worker)
        if not commands:
            return False
        fresh = [c for c in commands if c.id is not None and c.id not in self._commands_applied
                 and c.id not in self._commands_applying]
        self._commands_applying.update(c.id for c in fresh if c.id is not None)

        elsewhere: list[str] = []

        async def apply(_: list[InstanceRunner]) -> None:
            for cmd in fresh:
                assert cmd.id is not None
                try:
                    if await self._apply_one(cmd.kind, cmd.instance_id, cmd.task_ids,
                                             Decision.from_payload(cmd.payload)) is None:
                        elsewhere.append(cmd.instance_id)  # not driven here after all
                        continue
                    log.info("applied queued %s to instance %s", cmd.kind, cmd.instance_id)
                except StoreError as exc:
                    log.warning("queued %s for instance %s not applied yet: %s",
                                cmd.kind, cmd.instance_id, exc)
                    continue
                except TideflowError as exc:
                    log.warning("queued %s for instance %s refused: %s",
                                cmd.kind, cmd.instance_id, exc)
                self._commands_applied.add(cmd.id)

        try:
            # instances not driven here yet are loaded first, so that their commands apply
            # before anything of them starts
            missing = [iid for iid in dict.fromkeys(c.instance_id for c in fresh)
                       if iid not in self._runners and self._held(iid) is None]
            if missing and (self._cluster is not None or self.settings.recover):
                found = await self.store.get_instances(missing, with_tasks=True)
            else:
                found = []
            await self._pick_up(found, apply)
        finally:
            self._commands_applying.difference_update(c.id for c in fresh if c.id is not None)
        if elsewhere:
            # e.g. it ended here a moment ago: whoever drives it next takes the command
            await self.store.release_commands(elsewhere)
        done = [c.id for c in commands if c.id in self._commands_applied]
        if done:
            # their effects are durable before the commands go
            await rt.commits.commit()
            await self.store.finish_commands(holder, done)
            self._commands_applied.difference_update(done)
        return bool(fresh)

    async def _command_loop(self) -> None:
        """Commands queued by other processes (CLI, API servers) for instances driven here."""
        marker: int | None = None
        failing = False
        pushed = self._waker is not None and self._waker.pushes
        wake = self._waker.channel() if self._waker is not None else None
        while True:
            busy = bool(self._runners)
            if pushed:
                delay = self.settings.command_catchup_secs
            else:
                delay = (
                    self.settings.command_poll_busy_secs if busy
                    else self.settings.command_poll_idle_secs
                )
            if wake is not None:
                await wake.wait(delay)
            else:
                # not wait_for: on Python 3.11 it can swallow the cancellation of close()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake_commands.wait()
            self._wake_commands.clear()
            if self._closed:
                return  # woken by close(): stop between queries, never in one
            try:
                now = await self.store.change_marker()
                if now == marker and not self._commands_applied:
                    continue
                if marker is not None and not pushed and self._waker is not None:
                    self._waker.poke()  # another writer changed the file: the cron looks too
                marker = now
                scope = None if self.settings.recover else list(self._runners)
                if scope is not None and not scope:
                    continue
                await self._apply_queued(scope, worker=None)
            except TideflowError as exc:
                # once per outage; the poll itself is the retry
                if not failing:
                    log.warning("could not read queued commands (polling on): %s", exc)
                failing = True
                marker = None
                continue
            if failing:
                log.info("reading queued commands again")
                failing = False

    async def retry(
        self, instance_id: str, task_ids: Sequence[str] | None = None, *, wait: float | None = None
    ) -> InstanceRecord:
        """Retry the failed/canceled tasks of a failed or canceled instance (or the given
        ones). Each retried task gets one more attempt; the attempt count continues."""
        return await self._command("retry", instance_id, task_ids, wait)

    async def cancel(
        self, instance_id: str, task_ids: Sequence[str] | None = None, *, wait: float | None = None
    ) -> InstanceRecord:
        """Cancel an unfinished instance (or only the given tasks): running tasks get their
        cancellation, tasks not yet started never start."""
        return await self._command("cancel", instance_id, task_ids, wait)

    async def continue_(
        self, instance_id: str, task_ids: Sequence[str] | None = None, *,
        inputs: Mapping[str, Any] | None = None, by: str | None = None,
        wait: float | None = None,
    ) -> InstanceRecord:
        """Continue the blocked tasks of an instance (or the given ones). An approval takes
        its decision: ``inputs`` (checked against the ones it declares) and ``by`` (one of
        its approvers, when it names them); a decision that does not fit changes nothing."""
        decision = Decision(inputs=dict(inputs) if inputs is not None else None, by=by)
        return await self._command("continue", instance_id, task_ids, wait, decision)

    async def reject(
        self, instance_id: str, task_ids: Sequence[str] | None = None, *,
        reason: str | None = None, by: str | None = None, wait: float | None = None,
    ) -> InstanceRecord:
        """Reject blocked approval tasks (the given ones, or all of the instance): each fails
        with ``reason``, recorded with who decided."""
        decision = Decision(reason=reason, by=by)
        return await self._command("reject", instance_id, task_ids, wait, decision)

    async def pause(self, instance_id: str, *, wait: float | None = None) -> InstanceRecord:
        """Pause a running instance: running tasks finish, no new task starts."""
        return await self._command("pause", instance_id, None, wait)

    async def resume(self, instance_id: str, *, wait: float | None = None) -> InstanceRecord:
        return await self._command("resume", instance_id, None, wait)

    # Fastflow-flavoured names for the same verbs
    async def retry_instance(self, instance_id: str, *, wait: float | None = None
                             ) -> InstanceRecord:
        return await self.retry(instance_id, wait=wait)

    async def retry_tasks(self, instance_id: str, task_ids: Sequence[str], *,
                          wait: float | None = None) -> InstanceRecord:
        return await self.retry(instance_id, task_ids, wait=wait)

    async def cancel_instance(self, instance_id: str, *, wait: float | None = None
                              ) -> InstanceRecord:
        return await self.cancel(instance_id, wait=wait)

    async def cancel_tasks(self, instance_id: str, task_ids: Sequence[str], *,
                           wait: float | None = None) -> InstanceRecord:
        return await self.cancel(instance_id, task_ids, wait=wait)

    async def continue_instance(self, instance_id: str, *, wait: float | None = None
                                ) -> InstanceRecord:
        return await self.continue_(instance_id, wait=wait)

    async def continue_tasks(self, instance_id: str, task_ids: Sequence[str], *,
                             wait: float | None = None) -> InstanceRecord:
        return await self.continue_(instance_id, task_ids, wait=wait)

    async def pause_instance(self, instance_id: str, *, wait: float | None = None
                             ) -> InstanceRecord:
        return await self.pause(instance_id, wait=wait)

    async def resume_instance(self, instance_id: str, *, wait: float | None = None
                              ) -> InstanceRecord:
        return await self.resume(instance_id, wait=wait)


def _check_command(kind: str, inst: InstanceRecord, ids: list[str] | None,
                   decision: Decision | None = None) -> None:
    """The state rules of DESIGN §3, checked on a recorded instance before a command is
    queued for the process that drives it."""
    st = inst.status
    refused = compensation.refusal(inst.id, inst.compensation, st.value, kind)
    if refused is not None:
        raise refused
    allowed: dict[str, tuple[InstanceStatus, ...]] = {
        "retry": (InstanceStatus.FAILED, InstanceStatus.CANCELED),
        "cancel": tuple(s for s in InstanceStatus if s.is_unfinished),
        "continue": (InstanceStatus.RUNNING, InstanceStatus.BLOCKED, InstanceStatus.PAUSED,
                     InstanceStatus.FAILED),
        "reject": (InstanceStatus.RUNNING, InstanceStatus.BLOCKED, InstanceStatus.PAUSED,
                   InstanceStatus.FAILED),
        "pause": (InstanceStatus.RUNNING,),
        "resume": (InstanceStatus.PAUSED,),
    }
    if st not in allowed[kind]:
        raise InvalidStateError(
            f"cannot {kind} instance {inst.id}: it is {st.value} "
            f"(only {' or '.join(s.value for s in allowed[kind])} instances can be)",
            state=st.value,
        )
    task_states = {
        "retry": {TaskStatus.FAILED, TaskStatus.CANCELED},
        "continue": {TaskStatus.BLOCKED},
        "reject": {TaskStatus.BLOCKED},
        "cancel": {s for s in TaskStatus if not s.is_final},
    }
    needed = task_states.get(kind)
    if kind != "cancel" and needed is not None and ids is None and not any(
            t.status in needed for t in inst.tasks):
        raise InvalidStateError(
            f"cannot {kind} instance {inst.id}: it is {st.value} and has no task to {kind} "
            f"(needs a task in {', '.join(sorted(needed))})",
            state=st.value,
        )
    if kind in task_states and ids is not None:
        by_id = {t.task_id: t for t in inst.tasks}
        for tid in ids:
            t = by_id.get(tid)
            if t is None:
                raise NotFoundError(f"instance {inst.id} has no task '{tid}'")
            if t.status not in task_states[kind]:
                raise InvalidStateError(
                    f"cannot {kind} task '{tid}' of instance {inst.id}: it is {t.status.value}",
                    state=t.status.value,
                )
    # the decision is checked here too: a queued one that does not fit is refused now
    if kind in ("continue", "reject"):
        if ids is None:
            chosen = [t for t in inst.tasks if t.status == TaskStatus.BLOCKED]
            if kind == "reject":
                chosen = approvals.blocked_approvals(chosen)
        else:
            wanted = set(ids)
            chosen = [t for t in inst.tasks if t.task_id in wanted]
        if not chosen:
            what = "blocked approval" if kind == "reject" else "blocked task"
            raise InvalidStateError(f"instance {inst.id} has no {what} to {kind}",
                                    state=st.value)
        if kind == "continue":
            approvals.check_continue(chosen, decision or Decision())
        else:
            approvals.check_reject(chosen, decision or Decision())
