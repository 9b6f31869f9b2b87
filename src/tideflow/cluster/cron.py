"""The cron trigger: one instance per tick of every scheduled DAG, exactly once across the
cluster. It runs on the leader (or on a single node); the tick is recorded with its instance
in one transaction under a unique (DAG, tick) key, so a new leader that reconsiders a tick
the old one fired finds it taken, and a tick the old one never got to is fired by the new
one (with ``catchup: all``) or folded into the latest (``catchup: latest``)."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from ..clock import Clock
from ..definition.model import DagDef
from ..errors import TideflowError
from ..states import DagStatus
from ..store.records import DagRecord
from .waker import WakeChannel

log = logging.getLogger("tideflow.cron")


def _zone(tz: str | None) -> ZoneInfo:
    return ZoneInfo(tz or "UTC")


def due_ticks(
    cron: str,
    tz: str | None,
    since: datetime,
    now: datetime,
    *,
    catchup: str = "latest",
    max_catchup: int = 10,
) -> list[datetime]:
    """The ticks ``t`` with ``since < t <= now`` to fire now, oldest first, in UTC:
    the latest only, or (``catchup == "all"``) each of the last ``max_catchup``. Bounded:
    it walks back from ``now``, never forward from a long-gone ``since``."""
    zone = _zone(tz)
    # croniter's get_prev is strictly before its start: start just after now
    it = croniter(cron, now.astimezone(zone) + timedelta(microseconds=1))
    wanted = 1 if catchup == "latest" else max_catchup
    ticks: list[datetime] = []
    while len(ticks) < wanted:
        tick = it.get_prev(datetime).astimezone(UTC)
        if tick <= since:
            break
        ticks.append(tick)
    return list(reversed(ticks))


def next_fire_times(cron: str, tz: str | None, after: datetime, count: int = 5) -> list[datetime]:
    """The next ``count`` fire times after ``after``, in UTC."""
    it = croniter(cron, after.astimezone(_zone(tz)))
    return [it.get_next(datetime).astimezone(UTC) for _ in range(count)]


Fire = Callable[[DagRecord, datetime], Awaitable[bool]]


class CronTrigger:
    """Fires the due ticks of the scheduled DAGs, then sleeps until the next one is due.

    Where the database pushes changes (``wake``), a registered or changed DAG wakes it and
    otherwise it re-reads the DAG list only every ``recheck_secs``; elsewhere it looks every
    second. Either way it looks at most once a second unless a tick is due sooner, so a
    stream of wake-ups on a busy cluster costs nothing extra."""

    #: the shortest pause between two looks when no tick is due sooner
    min_gap_secs = 1.0

    def __init__(
        self,
        list_dags: Callable[[], Awaitable[list[DagRecord]]],
        last_tick: Callable[[str], Awaitable[datetime | None]],
        now: Callable[[], Awaitable[datetime]],
        fire: Fire,
        clock: Clock | None = None,
    ) -> None:
        self._list_dags = list_dags
        self._last_tick = last_tick
        self._now = now
        self._fire = fire
        self._clock = clock or Clock()

    async def run(self, wake: WakeChannel | None = None, recheck_secs: float = 30.0,
                  stop: asyncio.Event | None = None) -> None:
        """Fire ticks until cancelled, or until ``stop`` is set (and ``wake`` poked)."""
        failing = False
        stop = stop or asyncio.Event()
        while not stop.is_set():
            delay = self.min_gap_secs
            try:
                delay = await self.tick_once()
                if failing:
                    log.info("cron trigger: looking at the schedules again")
                failing = False
            except TideflowError as exc:
                # once per outage: the next look is the retry
                (log.debug if failing else log.warning)("cron trigger: %s", exc)
                failing = True
            if self._clock.skips:
                # virtual time: sleep until the next tick, or until a DAG changes
                await self._clock.wait(wake.event if wake is not None else stop, delay)
                if wake is not None:
                    wake.event.clear()
                continue
            first = min(delay, self.min_gap_secs)
            if await self._clock.wait(stop, first):
                return
            if wake is not None and delay > first:
                await wake.wait(min(delay - first, recheck_secs))

    async def tick_once(self) -> float:
        """Fire what is due; return the seconds until the next tick of any scheduled DAG
        (infinity when none is scheduled)."""
        dags = [d for d in await self._list_dags()
                if d.definition.cron and d.status == DagStatus.NORMAL and not d.paused]
        if not dags:
            return math.inf
        now = await self._now()
        soonest = math.inf
        for rec in dags:
            dag: DagDef = rec.definition
            assert dag.cron is not None
            last = await self._last_tick(rec.id)
            # a DAG (re-)registered, re-enabled or resumed starts from then: no backfill of
            # the time before it was scheduled or while it was stopped or paused
            since = max(t for t in (last, rec.updated_at) if t is not None)
            for tick in due_ticks(dag.cron, dag.timezone, since, now,
                                  catchup=dag.catchup, max_catchup=dag.max_catchup):
                if await self._fire(rec, tick):
                    log.info("cron: %s fired for %s", rec.id, tick.isoformat())
            upcoming = next_fire_times(dag.cron, dag.timezone, now, 1)[0]
            soonest = min(soonest, (upcoming - now).total_seconds())
        # a hair past the tick, so that the database's clock has reached it
        return max(0.0, soonest) + 0.005
