"""Time as the engine sees it: wall-clock time for records, and the clock that retry back-off,
``wait`` tasks, actions' own waits (``ctx.sleep``) and the cron trigger sleep on.

:class:`Clock` is real time. An engine is given one (``Engine(store, clock=...)``), so that a
test can give it :class:`tideflow.testing.SkippingClock` instead and a back-off of minutes
passes at once. Timeouts and the engine's own polling stay on real time: they guard work that
really runs."""

from __future__ import annotations

import asyncio
import contextlib
import math
from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, as every JSON shape of tideflow shows times."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Clock:
    """Real time. Subclasses change what "now" is and how long a sleep takes."""

    #: True when time is not real: the cron trigger then reads :meth:`now` rather than the
    #: database's clock
    skips = False

    def now(self) -> datetime:
        """The current time, in UTC."""
        return utcnow()

    async def sleep(self, secs: float) -> None:
        """Sleep ``secs`` (``math.inf``: until cancelled)."""
        if math.isinf(secs):
            await asyncio.Event().wait()
        await asyncio.sleep(max(0.0, secs))

    async def wait(self, event: asyncio.Event, secs: float) -> bool:
        """Wait until ``event`` is set or ``secs`` have passed; True when it was set."""
        if event.is_set():
            return True
        if math.isinf(secs):
            await event.wait()
            return True
        setter = asyncio.ensure_future(event.wait())
        sleeper = asyncio.ensure_future(self.sleep(secs))
        try:
            await asyncio.wait((setter, sleeper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in (setter, sleeper):
                if not fut.done():
                    fut.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await fut
        return event.is_set()
