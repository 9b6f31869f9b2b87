"""Cron on a single node, and maxActiveRuns there."""

from __future__ import annotations

import asyncio
from typing import Any

from tideflow import ActionContext, Engine, InstanceStatus

from .dags import dag, task


async def test_every_second_schedule_fires_once_per_tick(engine: Engine) -> None:
    seen: list[str] = []

    async def note(ctx: ActionContext, params: Any) -> None:
        seen.append(params["who"])

    engine.actions.add_function("note", note)
    await engine.register_dag(dag("tick", task("a", "note", params={"who": "{{who}}"}),
                                  cron="* * * * * *", cronVars={"who": "cron"},
                                  vars={"who": {"defaultValue": "manual"}}))
    await asyncio.sleep(3.5)
    found = await engine.list_instances(dag_id="tick")
    assert len(found) >= 2
    assert all(i.trigger == "cron" for i in found)
    ticks = [i.cron_tick for i in found]
    assert len(set(ticks)) == len(ticks)  # one instance per tick
    assert all(t is not None and t.microsecond == 0 for t in ticks)
    assert set(seen) == {"cron"}
    # stopping the DAG stops its schedule
    await engine.set_dag_status("tick", "stopped")
    await asyncio.sleep(1.5)
    before = len(await engine.list_instances(dag_id="tick"))
    await asyncio.sleep(2)
    assert len(await engine.list_instances(dag_id="tick")) == before


async def test_max_active_runs_holds_back_in_order(engine: Engine) -> None:
    gates: dict[str, asyncio.Event] = {}
    running: set[str] = set()
    peak = 0
    order: list[str] = []

    async def hold(ctx: ActionContext, params: Any) -> None:
        nonlocal peak
        running.add(ctx.instance_id)
        peak = max(peak, len(running))
        order.append(ctx.instance_id)
        gates.setdefault(ctx.instance_id, asyncio.Event())
        await gates[ctx.instance_id].wait()
        running.discard(ctx.instance_id)

    engine.actions.add_function("hold", hold)
    await engine.register_dag(dag("lim", task("a", "hold"), maxActiveRuns=2))
    ids = [(await engine.run_dag("lim")).id for _ in range(5)]
    await asyncio.sleep(0.3)
    waiting = await engine.get_instance(ids[2])
    assert waiting.status == InstanceStatus.INIT
    assert "maxActiveRuns 2" in (waiting.reason or "")
    for _ in range(10):
        await asyncio.sleep(0.2)
        for ev in list(gates.values()):
            ev.set()
    done = [await engine.wait_for(i, timeout=10, settled=False) for i in ids]
    assert all(d.status == InstanceStatus.SUCCESS for d in done)
    assert peak == 2
    assert order == ids  # in submission order


async def test_action_max_concurrency(engine: Engine) -> None:
    running = 0
    peak = 0

    async def fragile(ctx: ActionContext, params: Any) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.1)
        running -= 1

    engine.actions.add_function("fragile", fragile, max_concurrency=2)
    await engine.register_dag(dag("frag", *[task(f"t{i}", "fragile") for i in range(6)]))
    inst = await engine.run_dag("frag", wait=30)
    assert inst.status == InstanceStatus.SUCCESS
    assert peak == 2


async def test_cron_overlap_skip_records_the_tick_without_a_run(engine: Engine) -> None:
    gate = asyncio.Event()

    async def hold(ctx: ActionContext, params: Any) -> None:
        await gate.wait()

    engine.actions.add_function("hold", hold)
    await engine.register_dag(dag("skippy", task("a", "hold"), cron="* * * * * *",
                                  maxActiveRuns=1, cronOverlap="skip"))
    await asyncio.sleep(3.5)
    found = await engine.list_instances(dag_id="skippy")
    assert len(found) == 1  # the first tick runs; the next ones are skipped, not queued
    store: Any = engine.store
    last = await store.last_cron_tick("skippy")
    assert last is not None and last > found[0].cron_tick
    gate.set()
    await engine.set_dag_status("skippy", "stopped")
