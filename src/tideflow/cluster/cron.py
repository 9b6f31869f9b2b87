"""The cron trigger: one instance per tick of every scheduled DAG, exactly once across the
cluster. It runs on the leader (or on a single node); the tick is recorded with its instance
in one transaction under a unique (DAG, tick) key, so a new leader that reconsiders a tick
the old one fired finds it taken, and a tick the old one never got to is fired by the new
one (with ``catchup: all``) or folded into the latest (``catchup: latest``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from ..definition.model import DagDef
from ..errors import TideflowError
from ..states import DagStatus
from ..store.records import DagRecord

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
    """Looks at the scheduled DAGs about once a second (four times for second-level ones)."""

    def __init__(
        self,
        list_dags: Callable[[], Awaitable[list[DagRecord]]],
        last_tick: Callable[[str], Awaitable[datetime | None]],
        now: Callable[[], Awaitable[datetime]],
        fire: Fire,
    ) -> None:
        self._list_dags = list_dags
        self._last_tick = last_tick
        self._now = now
        self._fire = fire

    async def run(self) -> None:
        while True:
            fast = False
            try:
                fast = await self.tick_once()
            except TideflowError as exc:
                log.warning("cron trigger: %s", exc)
            await asyncio.sleep(0.25 if fast else 1.0)

    async def tick_once(self) -> bool:
        """Fire what is due; True when some schedule has second-level ticks."""
        fast = False
        dags = [d for d in await self._list_dags()
                if d.definition.cron and d.status == DagStatus.NORMAL]
        if not dags:
            return False
        now = await self._now()
        for rec in dags:
            dag: DagDef = rec.definition
            assert dag.cron is not None
            fast |= len(dag.cron.split()) == 6
            last = await self._last_tick(rec.id)
            # a DAG (re-)registered or re-enabled starts from then: no backfill of the time
            # before it was scheduled or while it was stopped
            since = max(t for t in (last, rec.updated_at) if t is not None)
            for tick in due_ticks(dag.cron, dag.timezone, since, now,
                                  catchup=dag.catchup, max_catchup=dag.max_catchup):
                if await self._fire(rec, tick):
                    log.info("cron: %s fired for %s", rec.id, tick.isoformat())
        return fast
