"""Pausing and resuming a DAG's schedule (no new version), on each backend: the cron stops
firing while paused, resumes from the next tick without firing the ticks it missed, and the
pause outlives a new version; manual runs go on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from tideflow import Engine, NotFoundError, dag_to_json

from .dags import dag, task


async def _ticks(engine: Engine) -> list[datetime]:
    found = await engine.list_instances(dag_id="tick", limit=1000)
    return sorted(i.cron_tick for i in found if i.cron_tick is not None)


async def test_pause_and_resume_a_schedule(make_engine: Callable[..., Engine], db_url: str
                                           ) -> None:
    async with make_engine(db_url) as engine:
        # catch-up "all": resuming must still not fire the ticks missed while paused
        first = await engine.register_dag(dag("tick", task("a", "wait",
                                                           params={"waitingTime": "0s"}),
                                              cron="* * * * * *", catchup="all",
                                              maxCatchup=100))
        assert first.paused is False
        await asyncio.sleep(2.5)
        paused = await engine.pause_dag("tick")
        assert paused.paused and paused.version == first.version  # no new version
        as_json = dag_to_json(paused)
        assert as_json["paused"] is True and as_json["nextFireTimes"] == []
        await asyncio.sleep(1.2)  # a tick being fired as it was paused has landed
        before = await _ticks(engine)
        assert len(before) >= 1
        await asyncio.sleep(2.5)
        assert await _ticks(engine) == before, "a paused schedule fired"

        # pausing again changes nothing; a manual run still works; a new version stays paused
        assert (await engine.pause_dag("tick")).updated_at == paused.updated_at
        manual = await engine.run_dag("tick", wait=10)
        assert manual.trigger == "manual" and manual.status.value == "success"
        again = await engine.register_dag(dag("tick", task("a", "wait",
                                                           params={"waitingTime": "0s"}),
                                              cron="* * * * * *", catchup="all",
                                              maxCatchup=100, desc="v2"))
        assert again.version == first.version + 1 and again.paused
        assert (await engine.get_dag("tick")).paused
        assert [d.paused for d in await engine.list_dags()] == [True]
        await asyncio.sleep(1.5)
        assert await _ticks(engine) == before

        resumed_at = datetime.now(UTC)
        resumed = await engine.resume_dag("tick")
        assert not resumed.paused and dag_to_json(resumed)["nextFireTimes"]
        assert (await engine.resume_dag("tick")).updated_at == resumed.updated_at
        await asyncio.sleep(3)
        after = [t for t in await _ticks(engine) if t not in before]
        assert len(after) >= 2, "the resumed schedule did not fire"
        # no catch-up: nothing for the ticks missed while paused
        assert min(after) > resumed_at.replace(microsecond=0), (resumed_at, after)

        with pytest.raises(NotFoundError):
            await engine.pause_dag("ghost")
        with pytest.raises(NotFoundError):
            await engine.resume_dag("ghost")
