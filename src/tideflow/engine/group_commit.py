"""Group commit: state changes of many tasks written in one transaction.

The engine stages rows as it changes them (staging the same row twice keeps one copy: the row
is written as it is at flush time). ``commit()`` returns once everything staged so far is
durable, which is what lets a task's children start. One flush runs at a time; whatever is
staged during a flush goes into the next one, so the busier the engine, the bigger the batch.

A flush that fails because the database is unreachable (StoreError) is retried with back-off
and jitter; rows are never dropped for that. A flush refused for what some rows contain
(WriteRefusedError: too large, text the database cannot store; or an instance's row deleted
meanwhile) is split per instance, so the other instances' rows still land; a write the database
refuses is never tried again. Whoever waits on a refused instance's rows gets the
WriteRefusedError and decides what to store instead (the task fails without its result).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence

from ..errors import StoreError, TideflowError, WriteRefusedError
from ..store.base import Store
from ..store.records import InstanceRecord, TaskRecord

log = logging.getLogger("tideflow.engine")


class GroupCommit:
    def __init__(
        self,
        store: Store,
        *,
        max_backoff_secs: float = 5.0,
        linger_secs: float = 0.005,
        owner: str | None = None,
        epochs: Callable[[], Mapping[str, int]] | None = None,
        on_fenced: Callable[[set[str]], None] | None = None,
    ) -> None:
        self._store = store
        #: fencing: writes land only for instances ``owner`` still owns at these epochs
        self._owner = owner
        self._epochs = epochs
        self._on_fenced = on_fenced
        self._new: dict[str, InstanceRecord] = {}
        self._instances: dict[str, InstanceRecord] = {}
        self._tasks: dict[tuple[str, str], TaskRecord] = {}
        #: who waits for the next flush, and for which instance's rows (None: any)
        self._waiters: list[tuple[asyncio.Future[None], str | None]] = []
        self._wake = asyncio.Event()
        #: someone waits for a commit: flush now rather than linger
        self._urgent = asyncio.Event()
        self._linger = linger_secs
        self._closed = False
        self._max_backoff = max_backoff_secs
        self._loop_task: asyncio.Task[None] | None = None
        self._last_error: str | None = None
        #: counters for the benchmark and metrics
        self.flushes = 0
        self.rows_written = 0

    def start(self) -> None:
        self._loop_task = asyncio.get_running_loop().create_task(
            self._run(), name="tideflow-group-commit"
        )

    def stage(
        self,
        instance: InstanceRecord | None = None,
        task: TaskRecord | None = None,
        *,
        urgent: bool = False,
    ) -> None:
        """Stage rows for the next flush; ``urgent`` flushes without the linger."""
        if urgent:
            self._urgent.set()
        if instance is not None and instance.id not in self._new:
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
        """Stage the given rows and wait until everything staged so far is committed.
        Raises WriteRefusedError when the database refuses this instance's rows."""
        self.stage(instance, task)
        iid = instance.id if instance is not None else task.instance_id if task else None
        await self._wait(iid)

    async def create(self, instance: InstanceRecord) -> None:
        """Insert a new instance (with its tags and tasks) in the next flush and wait for it:
        many runs submitted at once share one transaction."""
        self._new[instance.id] = instance
        self._wake.set()
        await self._wait(instance.id)

    async def _wait(self, iid: str | None) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((fut, iid))
        self._urgent.set()
        await fut

    def _pending(self) -> bool:
        return bool(self._new or self._instances or self._tasks)

    async def _run(self) -> None:
        failures = 0
        outage_started = 0.0
        while True:
            await self._wake.wait()
            if not self._waiters and not self._closed and self._linger > 0:
                # nobody waits on these rows (an attempt's start, a trace): let them ride
                # with the next commit someone does wait for, or go after a short linger
                try:
                    await asyncio.wait_for(self._urgent.wait(), self._linger)
                except TimeoutError:
                    pass
            self._wake.clear()
            self._urgent.clear()
            if not self._pending():
                self._release(self._waiters)
                self._waiters = []
                if self._closed:
                    return
                continue
            new, instances, tasks, waiters = self._new, self._instances, self._tasks, self._waiters
            self._new, self._instances, self._tasks, self._waiters = {}, {}, {}, []
            try:
                refused = await self._flush(new, instances, tasks)
            except StoreError as exc:
                self._last_error = exc.message
                failures += 1
                self._restage(new, instances, tasks)
                self._waiters = waiters + self._waiters
                delay = min(self._max_backoff, 0.05 * 2 ** min(failures, 10))
                delay *= 0.5 + random.random() / 2
                if failures == 1:
                    # once per outage: a line per retry would flood the log while it lasts
                    outage_started = time.monotonic()
                    log.warning("state writes failing, held in memory and retried with "
                                "back-off until the database answers: %s", exc)
                else:
                    log.debug("state write failed again (%s); retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay)
                self._wake.set()
                continue
            if failures:
                log.warning("state writes resumed after %d failed attempt(s) over %.1fs",
                            failures, time.monotonic() - outage_started)
            failures = 0
            self._release(waiters, refused)
            if self._closed and not self._pending():
                self._release(self._waiters)
                self._waiters = []
                return

    async def _flush(
        self,
        new: dict[str, InstanceRecord],
        instances: dict[str, InstanceRecord],
        tasks: dict[tuple[str, str], TaskRecord],
    ) -> dict[str, WriteRefusedError]:
        """Write the rows; returns the instances whose rows the database refused."""
        refused: dict[str, WriteRefusedError] = {}
        try:
            fenced = await self._store.write(
                list(instances.values()),
                list(tasks.values()),
                new_instances=list(new.values()),
                owner=self._owner,
                epochs=self._epochs() if self._epochs is not None else None,
            )
            if fenced:
                log.warning("writes refused for %d instance(s) now owned elsewhere: %s",
                            len(fenced), ", ".join(sorted(fenced)[:5]))
                if self._on_fenced is not None:
                    self._on_fenced(fenced)
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever it is, retrying it would not help
            log.warning("state write refused (%s); writing instance by instance", exc)
            refused = await self._flush_each(new, instances, tasks)
        self.flushes += 1
        self.rows_written += len(new) + len(instances) + len(tasks)
        return refused

    async def _flush_each(
        self,
        new: dict[str, InstanceRecord],
        instances: dict[str, InstanceRecord],
        tasks: dict[tuple[str, str], TaskRecord],
    ) -> dict[str, WriteRefusedError]:
        refused: dict[str, WriteRefusedError] = {}
        ids = set(new) | set(instances) | {k[0] for k in tasks}
        for iid in sorted(ids):
            try:
                await self._store.write(
                    [instances[iid]] if iid in instances else [],
                    [t for k, t in tasks.items() if k[0] == iid],
                    new_instances=[new[iid]] if iid in new else [],
                    owner=self._owner,
                    epochs=self._epochs() if self._epochs is not None else None,
                )
            except StoreError:
                raise
            except WriteRefusedError as exc:
                log.error("the database refused the rows of instance %s: %s", iid, exc.message)
                refused[iid] = exc
            except TideflowError as exc:
                log.error("dropped the state of instance %s: %s", iid, exc)
            except Exception as exc:  # noqa: BLE001 - a driver's own refusal, untranslated
                log.exception("the database refused the rows of instance %s", iid)
                refused[iid] = WriteRefusedError(
                    f"the database refused the write: {type(exc).__name__}: {exc}"[:2000])
        return refused

    def _restage(
        self,
        new: dict[str, InstanceRecord],
        instances: dict[str, InstanceRecord],
        tasks: dict[tuple[str, str], TaskRecord],
    ) -> None:
        # put the rows back unless a newer staging of the same row is already there
        for k, inst in new.items():
            self._new.setdefault(k, inst)
            self._instances.pop(k, None)
        for k, inst in instances.items():
            if k not in self._new:
                self._instances.setdefault(k, inst)
        for tk, task in tasks.items():
            self._tasks.setdefault(tk, task)

    @staticmethod
    def _release(waiters: list[tuple[asyncio.Future[None], str | None]],
                 refused: Mapping[str, WriteRefusedError] | None = None) -> None:
        for fut, iid in waiters:
            if fut.done():
                continue
            error = refused.get(iid) if refused and iid is not None else None
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)

    async def close(self, timeout: float = 30.0) -> None:
        """Flush what is staged, then stop; after ``timeout`` seconds of failing writes,
        give up on them."""
        self._closed = True
        self._wake.set()
        if self._loop_task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._loop_task), timeout=timeout)
            except TimeoutError:
                self._loop_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._loop_task
                ids = sorted(set(self._new) | set(self._instances)
                             | {k[0] for k in self._tasks})
                log.error("gave up writing the state of %d instance(s) at close after %gs: %s;"
                          " they stay unfinished in the database until an engine recovers "
                          "them: %s", len(ids), timeout, self._last_error or "no answer",
                          ", ".join(ids[:5]))
                gone = StoreError(f"not written: {self._last_error or 'no answer'}")
                for fut, _ in self._waiters:
                    if not fut.done():
                        fut.set_exception(gone)
