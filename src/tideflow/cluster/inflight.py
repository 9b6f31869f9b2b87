"""The database calls a node's loops have in flight, so that stopping the loops cancels them
between two calls rather than inside one.

A call cancelled inside leaves its connection in the middle of the protocol: the pool then
fails to reset it and logs the error with a traceback (MariaDB's driver), or the PostgreSQL
driver opens a connection only to cancel the query — noise on every command's exit, and work
for the server. A loop marks each call with :meth:`InFlight.call`; :meth:`InFlight.stop` waits
(a bounded moment: a call hung on an unreachable server must not hold the exit) until none is
in flight, then cancels the loops where they wait."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable

#: how long stopping waits for the calls in flight before it cancels them anyway
STOP_GRACE_SECS = 2.0


class InFlight:
    """Calls in flight on one event loop (use one instance per loop)."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.asynccontextmanager
    async def call(self) -> AsyncIterator[None]:
        self._count += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._count -= 1
            if not self._count:
                self._idle.set()

    async def stop(self, tasks: Iterable[asyncio.Task[object]],
                   grace: float = STOP_GRACE_SECS) -> None:
        """Cancel ``tasks`` once no call is in flight (or ``grace`` has passed), and wait
        until each has ended, whatever it ended with."""
        tasks = [t for t in tasks if t is not asyncio.current_task()]
        if not tasks:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                while self._count:  # a loop may start its next call before this wakes
                    await self._idle.wait()
        # nothing awaits between the check above and these cancels: a loop that was between
        # two calls is cancelled where it waits
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
