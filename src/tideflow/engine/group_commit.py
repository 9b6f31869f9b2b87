"""Group commit: state changes of many tasks written in one transaction.

The engine stages rows as it changes them (staging the same row twice keeps one copy: the row
is written as it is at flush time). ``commit()`` returns once everything staged so far is
durable, which is what lets a task's children start. One flush runs at a time; whatever is
staged during a flush goes into the next one, so the busier the engine, the bigger the batch.
A failed flush is retried with back-off; rows are never dropped.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence

from ..errors import TideflowError
from ..store.base import Store
from ..store.records import InstanceRecord, TaskRecord

log = logging.getLogger("tideflow.engine")


class GroupCommit:
    def __init__(self, store: Store, *, max_backoff_secs: float = 5.0) -> None:
        self._store = store
        self._instances: dict[str, InstanceRecord] = {}
        self._tasks: dict[tuple[str, str], TaskRecord] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        self._closed = False
        self._max_backoff = max_backoff_secs
        self._loop_task: asyncio.Task[None] | None = None
        #: counters for the benchmark and metrics
        self.flushes = 0
        self.rows_written = 0

    def start(self) -> None:
        self._loop_task = asyncio.get_running_loop().create_task(
            self._run(), name="tideflow-group-commit"
        )

    def stage(self, instance: InstanceRecord | None = None, task: TaskRecord | None = None) -> None:
        if instance is not None:
            self._instances[instance.id] = instance
        if task is not None:
            self._tasks[(task.instance_id, task.task_id)] = task
        self._wake.set()

    def stage_many(self, tasks: Sequence[TaskRecord]) -> None:
        for t in tasks:
            self._tasks[(t.instance_id, t.task_id)] = t
        self._wake.set()

    async def commit(
        self, instance: InstanceRecord | None = None, task: TaskRecord | None = None
    ) -> None:
        """Stage the given rows and wait until everything staged so far is committed."""
        self.stage(instance, task)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        await fut

    async def _run(self) -> None:
        failures = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._instances and not self._tasks:
                self._release(self._waiters)
                self._waiters = []
                if self._closed:
                    return
                continue
            instances, tasks, waiters = self._instances, self._tasks, self._waiters
            self._instances, self._tasks, self._waiters = {}, {}, []
            try:
                await self._store.write(list(instances.values()), list(tasks.values()))
            except TideflowError as exc:
                failures += 1
                # put the rows back unless a newer staging of the same row is already there
                for k, inst in instances.items():
                    self._instances.setdefault(k, inst)
                for tk, task in tasks.items():
                    self._tasks.setdefault(tk, task)
                self._waiters = waiters + self._waiters
                delay = min(self._max_backoff, 0.05 * 2 ** min(failures, 10))
                delay *= 0.5 + random.random() / 2
                log.warning("state write failed (%s); retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay)
                self._wake.set()
                continue
            failures = 0
            self.flushes += 1
            self.rows_written += len(instances) + len(tasks)
            self._release(waiters)
            if self._closed and not self._instances and not self._tasks:
                self._release(self._waiters)
                self._waiters = []
                return

    @staticmethod
    def _release(waiters: list[asyncio.Future[None]]) -> None:
        for w in waiters:
            if not w.done():
                w.set_result(None)

    async def close(self) -> None:
        """Flush what is staged, then stop."""
        self._closed = True
        self._wake.set()
        if self._loop_task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._loop_task), timeout=30)
            except TimeoutError:
                self._loop_task.cancel()
                log.error("gave up flushing state at close: the database is unreachable")
