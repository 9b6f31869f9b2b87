"""Commands on instances (retry, cancel, continue, pause, resume): applied at once to an
instance this node drives, otherwise checked against the recorded state and queued for the
process that drives it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..clock import utcnow
from ..errors import InputError, InvalidStateError, NotFoundError, TideflowError
from ..states import InstanceStatus, TaskStatus
from ..store.records import CommandRecord, InstanceRecord
from .runner import InstanceRunner

if TYPE_CHECKING:
    from ..cluster.node import ClusterNode
    from ..cluster.waker import Waker
    from ..store.base import Store
    from .runtime import Runtime
    from .settings import EngineSettings

log = logging.getLogger("tideflow.engine")

_IN_FLIGHT = (TaskStatus.RUNNING, TaskStatus.ENDING, TaskStatus.RETRYING)

_EFFECTS: dict[str, Callable[[InstanceRecord], bool]] = {
    "cancel": lambda i: i.status.is_final
    and not any(t.status in _IN_FLIGHT for t in i.tasks),
    "retry": lambda i: i.status not in (InstanceStatus.FAILED, InstanceStatus.CANCELED),
    "continue": lambda i: not any(t.status == TaskStatus.BLOCKED for t in i.tasks)
    or i.status.is_final,
    "pause": lambda i: i.status != InstanceStatus.RUNNING,
    "resume": lambda i: i.status != InstanceStatus.PAUSED,
}


class CommandVerbs:
    """The command verbs of :class:`~tideflow.engine.engine.Engine`."""

    if TYPE_CHECKING:
        settings: EngineSettings
        store: Store
        last_queued_command: int | None
        _cluster: ClusterNode | None
        _runners: dict[str, InstanceRunner]
        _wake_commands: asyncio.Event
        _waker: Waker | None

        def _require_rt(self) -> Runtime: ...
        def _runner_ended(self, runner: InstanceRunner) -> None: ...
        async def _load_runner(self, instance_id: str, *, recovering: bool,
                               loaded: InstanceRecord | None = None) -> InstanceRunner: ...
        @staticmethod
        def _snapshot(inst: InstanceRecord) -> InstanceRecord: ...

    async def _runner_for_command(self, instance_id: str) -> InstanceRunner | None:
        """The runner that should apply a command here, loading the instance when this node
        may drive it; None when the command must be queued for another process."""
        runner = self._runners.get(instance_id)
        if runner is not None and runner.finished:
            await runner.closed.wait()
            runner = self._runners.get(instance_id)
        if runner is not None:
            return runner
        if not self.settings.recover or self._cluster is not None:
            return None
        inst = await self.store.get_instance(instance_id, with_tasks=False)
        return await self._load_runner(inst.id, recovering=inst.status.is_unfinished)

    def _apply_or_release(self, runner: InstanceRunner, kind: str, ids: list[str] | None) -> None:
        try:
            self._apply(runner, kind, ids)
        except TideflowError:
            # a final instance loaded only for this command goes back to the store
            if runner.inst.status.is_final and not runner.active:
                self._runner_ended(runner)
            raise

    # -- commands ---------------------------------------------------------------------------------
    async def _command(
        self, kind: str, instance_id: str, task_ids: Sequence[str] | None, wait: float | None
    ) -> InstanceRecord:
        self._require_rt()
        self.last_queued_command = None
        ids = list(task_ids) if task_ids is not None else None
        runner = await self._runner_for_command(instance_id)
        if runner is None:
            return await self._queue_command(kind, instance_id, ids, wait)
        self._apply_or_release(runner, kind, ids)
        if wait:
            if kind == "cancel" and ids is None:
                # done when every task has stopped and the final row is written
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(runner.closed.wait(), wait)
            else:
                await runner.wait_until(_EFFECTS[kind], wait)
        return self._snapshot(runner.inst)

    @staticmethod
    def _apply(runner: InstanceRunner, kind: str, ids: list[str] | None) -> None:
        if kind == "retry":
            runner.retry(ids)
        elif kind == "cancel":
            runner.cancel(ids)
        elif kind == "continue":
            runner.continue_(ids)
        elif kind == "pause":
            runner.pause()
        elif kind == "resume":
            runner.resume()
        else:  # pragma: no cover - kinds are fixed by the public verbs
            raise InputError(f"unknown command '{kind}'")

    async def _queue_command(
        self, kind: str, instance_id: str, ids: list[str] | None, wait: float | None
    ) -> InstanceRecord:
        """Check the command against the recorded state, then leave it for the process that
        drives the instance."""
        inst = await self.store.get_instance(instance_id, with_tasks=True)
        _check_command(kind, inst, ids)
        command_id = await self.store.add_command(
            CommandRecord(None, instance_id, kind, ids, utcnow())
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
            try:
                now = await self.store.change_marker()
                if now == marker:
                    continue
                if marker is not None and not pushed and self._waker is not None:
                    self._waker.poke()  # another writer changed the file: the cron looks too
                marker = now
                scope = None if self.settings.recover else list(self._runners)
                if scope is not None and not scope:
                    continue
                commands = await self.store.take_commands(scope)
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
            for cmd in commands:
                try:
                    runner = await self._runner_for_command(cmd.instance_id)
                    if runner is None:
                        continue
                    self._apply_or_release(runner, cmd.kind, cmd.task_ids)
                    log.info("applied queued %s to instance %s", cmd.kind, cmd.instance_id)
                except TideflowError as exc:
                    log.warning("queued %s for instance %s refused: %s",
                                cmd.kind, cmd.instance_id, exc)

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
        self, instance_id: str, task_ids: Sequence[str] | None = None, *, wait: float | None = None
    ) -> InstanceRecord:
        """Continue the blocked tasks of an instance (or the given ones)."""
        return await self._command("continue", instance_id, task_ids, wait)

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


def _check_command(kind: str, inst: InstanceRecord, ids: list[str] | None) -> None:
    """The state rules of DESIGN §3, checked on a recorded instance before a command is
    queued for the process that drives it."""
    st = inst.status
    allowed: dict[str, tuple[InstanceStatus, ...]] = {
        "retry": (InstanceStatus.FAILED, InstanceStatus.CANCELED),
        "cancel": tuple(s for s in InstanceStatus if s.is_unfinished),
        "continue": (InstanceStatus.RUNNING, InstanceStatus.BLOCKED, InstanceStatus.PAUSED),
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
        "cancel": {s for s in TaskStatus if not s.is_final},
    }
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
