"""A clock whose sleeps take no real time, for tests."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from ..clock import Clock, utcnow


class SkippingClock(Clock):
    """Time that jumps ahead: every sleep on this clock (retry back-off, ``wait`` tasks,
    ``ctx.sleep`` in an action, the cron trigger) ends after a moment of real time, and "now"
    moves on by what was slept. Sleeps end in the order of their virtual wake-up times, so a
    sleep of 10 s ends before a concurrent one of 20 s.

    Time moves on only once the work a wake-up started has settled: when every task that
    sleeps on this clock and is still alive sleeps again (the cron trigger after firing its
    tick, a task between two retries), or has not for ``max_hold_secs`` of real time since
    it woke (it went on to something else). Work that really runs (a subprocess, an HTTP
    call) keeps real time, and so do attempt timeouts: they guard real work."""

    skips = True

    def __init__(self, start: datetime | None = None, *, settle_secs: float = 0.001,
                 max_hold_secs: float = 0.25) -> None:
        self._now = start or utcnow()
        self.settle_secs = settle_secs
        self.max_hold_secs = max_hold_secs
        #: seconds slept on this clock so far (the real time a test saved)
        self.skipped = 0.0
        self._timers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._driver: asyncio.Task[None] | None = None
        #: the tasks that sleep on this clock, and how many sleeps each is in now
        self._sleepers: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        self._asleep: weakref.WeakKeyDictionary[asyncio.Task[Any], int] = \
            weakref.WeakKeyDictionary()
        #: when each task last woke (time.monotonic())
        self._woke: weakref.WeakKeyDictionary[asyncio.Task[Any], float] = \
            weakref.WeakKeyDictionary()

    def now(self) -> datetime:
        return self._now

    @contextmanager
    def _sleeping(self) -> Iterator[None]:
        task = asyncio.current_task()
        if task is None:
            yield
            return
        self._sleepers.add(task)
        self._asleep[task] = self._asleep.get(task, 0) + 1
        try:
            yield
        finally:
            left = self._asleep.get(task, 1) - 1
            if left:
                self._asleep[task] = left
            else:
                self._asleep.pop(task, None)
                self._woke[task] = time.monotonic()

    async def sleep(self, secs: float) -> None:
        if secs <= 0:
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        if not math.isinf(secs):
            heapq.heappush(self._timers,
                           (self._now + timedelta(seconds=secs), next(self._seq), fut))
            if self._driver is None or self._driver.done() or self._driver.get_loop() is not loop:
                self._driver = loop.create_task(self._drive(), name="tideflow-skipping-clock")
        with self._sleeping():
            await fut

    async def wait(self, event: asyncio.Event, secs: float) -> bool:
        with self._sleeping():
            return await super().wait(event, secs)

    async def advance(self, secs: float) -> None:
        """Let ``secs`` of virtual time pass, with every sleep due meanwhile ending in turn."""
        await self.sleep(secs)

    def _settled(self) -> bool:
        gone = time.monotonic() - self.max_hold_secs
        return all(t.done() or t in self._asleep or self._woke.get(t, 0.0) < gone
                   for t in list(self._sleepers))

    async def _drive(self) -> None:
        while self._timers:
            await asyncio.sleep(self.settle_secs)
            while not self._settled():
                await asyncio.sleep(self.settle_secs)
            while self._timers and self._timers[0][2].done():
                heapq.heappop(self._timers)  # cancelled sleeps
            if not self._timers:
                return
            when, _, fut = heapq.heappop(self._timers)
            if when > self._now:
                self.skipped += (when - self._now).total_seconds()
                self._now = when
            fut.set_result(None)
