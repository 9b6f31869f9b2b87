"""The Executor: execution slots and the thread pool that sync actions and hooks run in."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..actions.base import ActionSpec

log = logging.getLogger("tideflow.engine")


class Executor:
    def __init__(self, *, concurrency: int, sync_threads: int) -> None:
        self.slots = asyncio.Semaphore(concurrency)
        self.concurrency = concurrency
        self._pool = ThreadPoolExecutor(max_workers=sync_threads, thread_name_prefix="tideflow")
        #: sync calls whose attempt ended (timeout, cancel) while their thread still ran
        self.abandoned_threads = 0
        #: attempts running now, those that hold no slot (waits, approvals) included
        self.running = 0
        #: attempts holding a slot or waiting for one: the load the Dispatcher counts
        self.slot_demand = 0
        #: told (True/False) when ``slot_demand`` reaches or falls below ``concurrency``, so
        #: that a full worker is seen as full, and a freed one as free, without waiting for
        #: its next heartbeat
        self.on_saturation: Callable[[bool], None] | None = None

    @property
    def saturated(self) -> bool:
        return self.slot_demand >= self.concurrency

    async def acquire_slot(self) -> None:
        """Wait for an execution slot; the wait already counts as demand."""
        self._demand(1)
        try:
            await self.slots.acquire()
        except BaseException:
            self._demand(-1)
            raise

    def release_slot(self) -> None:
        self.slots.release()
        self._demand(-1)

    def _demand(self, delta: int) -> None:
        before = self.saturated
        self.slot_demand += delta
        if self.saturated != before and self.on_saturation is not None:
            self.on_saturation(self.saturated)

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call ``fn`` (sync or async). A sync call runs in the pool; if the awaiting attempt
        is cancelled, its thread cannot be stopped: it is abandoned and its result dropped."""
        if ActionSpec.is_async(fn):
            return await fn(*args)
        ctx = contextvars.copy_context()
        cfut = self._pool.submit(functools.partial(ctx.run, fn, *args))
        try:
            return await asyncio.wrap_future(cfut)
        except asyncio.CancelledError:
            if not cfut.done():
                self.abandoned_threads += 1
                log.warning("abandoned a sync call of %r still running in its thread", fn)
            raise

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
