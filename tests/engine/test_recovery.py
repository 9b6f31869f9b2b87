"""A node that stops mid-run: the next start picks its instances up and finishes them."""

from __future__ import annotations

import asyncio
from typing import Any

from tideflow import ActionContext, ActionRegistry, InstanceStatus, TaskStatus

from .dags import dag, task


def _registry(gate: asyncio.Event | None, calls: list[str]) -> ActionRegistry:
    reg = ActionRegistry()

    async def hold(ctx: ActionContext, params: Any) -> None:
        calls.append(f"{ctx.task_id}#{ctx.attempt}")
        if gate is not None:
            await gate.wait()

    reg.add_function("hold", hold)
    return reg


async def test_restart_resumes_unfinished_instance(make_engine: Any) -> None:
    calls: list[str] = []
    first = make_engine(registry=_registry(asyncio.Event(), calls))
    async with first:
        await first.register_dag(dag("rec", task("a", "hold"), task("b", "hold", ["a"])))
        inst = await first.run_dag("rec")
        while not calls:
            await asyncio.sleep(0.01)
    # the first engine stopped with `a` in flight
    second = make_engine(registry=_registry(None, calls))
    async with second:
        done = await second.wait_for(inst.id, timeout=10)
        assert done.status == InstanceStatus.SUCCESS
        a = done.tasks[0]
        assert a.attempts == 2
        assert a.attempt_history[0].status == TaskStatus.FAILED
        assert "interrupted" in (a.attempt_history[0].reason or "")
        assert calls == ["a#1", "a#2", "b#1"]


async def test_run_only_mode_leaves_other_instances(make_engine: Any) -> None:
    calls: list[str] = []
    first = make_engine(registry=_registry(asyncio.Event(), calls))
    async with first:
        await first.register_dag(dag("rec2", task("a", "hold")))
        inst = await first.run_dag("rec2")
        while not calls:
            await asyncio.sleep(0.01)
    driver = make_engine(registry=_registry(None, calls), recover=False)
    async with driver:
        await asyncio.sleep(0.2)
        still = await driver.get_instance(inst.id)
        assert still.status == InstanceStatus.RUNNING
        assert calls == ["a#1"]


async def test_commands_from_another_process_are_applied(make_engine: Any) -> None:
    """An engine that does not drive the instance queues the command for the one that does."""
    calls: list[str] = []
    owner = make_engine(registry=_registry(None, calls), recover=False)
    async with owner:
        await owner.register_dag(dag("q", task("ok", "approval"), task("b", "hold", ["ok"])))
        inst = await owner.run_dag("q", wait=5)
        assert inst.status == InstanceStatus.BLOCKED
        other = make_engine(registry=_registry(None, []), recover=False, node_id="cli")
        async with other:
            await other.continue_(inst.id)
        done = await owner.wait_for(inst.id, timeout=5, settled=False)
        assert done.status == InstanceStatus.SUCCESS
        assert calls == ["b#1"]


class _SlowAfter:
    name = "slow-after"

    def __init__(self, gate: asyncio.Event | None, calls: list[str]) -> None:
        self.gate = gate
        self.calls = calls

    async def run(self, ctx: ActionContext, params: Any) -> None:
        self.calls.append("run")

    async def run_after(self, ctx: ActionContext, params: Any) -> None:
        self.calls.append("after")
        if self.gate is not None:
            await self.gate.wait()


async def test_ending_task_resumes_at_run_after(make_engine: Any) -> None:
    calls: list[str] = []
    reg = ActionRegistry()
    reg.register(_SlowAfter(asyncio.Event(), calls))
    first = make_engine(registry=reg)
    async with first:
        await first.register_dag(dag("end", task("a", "slow-after")))
        inst = await first.run_dag("end")
        while calls != ["run", "after"]:
            await asyncio.sleep(0.01)
    stored = await _stored_task(make_engine, inst.id)
    assert stored == TaskStatus.ENDING
    reg2 = ActionRegistry()
    reg2.register(_SlowAfter(None, calls))
    async with make_engine(registry=reg2) as second:
        done = await second.wait_for(inst.id, timeout=10, settled=False)
        assert done.status == InstanceStatus.SUCCESS
        assert calls == ["run", "after", "after"]  # run() is not repeated
        assert done.tasks[0].attempts == 1


async def _stored_task(make_engine: Any, instance_id: str) -> TaskStatus:
    async with make_engine(recover=False) as peek:
        return (await peek.get_instance(instance_id)).tasks[0].status


async def test_instance_whose_action_is_gone_fails_visibly(make_engine: Any) -> None:
    calls: list[str] = []
    first = make_engine(registry=_registry(asyncio.Event(), calls))
    async with first:
        await first.register_dag(dag("gone", task("a", "hold"), task("b", "hold", ["a"])))
        inst = await first.run_dag("gone")
        while not calls:
            await asyncio.sleep(0.01)
    async with make_engine(registry=ActionRegistry()) as second:  # no "hold" here
        done = await second.wait_for(inst.id, timeout=10, settled=False)
        assert done.status == InstanceStatus.FAILED
        assert "not registered" in (done.tasks[0].reason or "")
