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
        self.running = 0

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
