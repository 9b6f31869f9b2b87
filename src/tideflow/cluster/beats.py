"""An event loop in a thread of its own, for a node's heartbeat and lease renewal.

A node's main loop can be busy for seconds at a time — hundreds of instances to pick up,
requests to answer, a machine whose CPUs are all taken — and a heartbeat queued behind that
work arrives late: the node looks dead, its runs move, the leader loses its lease. On its own
thread and its own database connection, the beat waits for nothing but the CPU."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from .inflight import InFlight

T = TypeVar("T")


class LoopThread:
    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        #: the database calls in flight on this thread's loop (stopping waits for them)
        self.calls = InFlight()

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` on this thread's loop."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on this thread's loop and wait for it from the caller's loop."""
        return await asyncio.wrap_future(self.submit(coro))

    async def stop(self, then: Coroutine[Any, Any, None] | None = None) -> None:
        """Cancel what runs on the thread (between two database calls), run ``then`` there
        (closing what it used), stop its loop and wait for the thread to end."""
        if not self._thread.is_alive():
            if then is not None:
                then.close()
            return

        async def cancel_all() -> None:
            await self.calls.stop(asyncio.all_tasks())
            if then is not None:
                with contextlib.suppress(Exception):
                    await then

        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.call(cancel_all()), 10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        await asyncio.to_thread(self._thread.join, 10)
