"""Commands on instances nobody has started, the final commit before waiters are told, and
queued commands taken in two steps (never lost, never applied twice) — on each backend."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tideflow import (
    ActionContext,
    Engine,
    EngineSettings,
    InstanceStatus,
    InvalidStateError,
    TaskStatus,
)
from tideflow.cluster.node import ClusterSettings
from tideflow.cluster.scheduling import LeaderFence
from tideflow.store.faults import Fault, FaultPlan, FaultyStore
from tideflow.store.records import CommandRecord
from tideflow.store.sql import SqlStore
from tideflow.store.url import make_store

from .dags import dag, task


def _watcher(url: str, node_id: str = "watcher") -> Engine:
    """A cluster node that executes nothing: with no worker, its runs stay ``init``."""
    return Engine.from_url(url, settings=EngineSettings(
        node_id=node_id, cluster=ClusterSettings(role="watcher")))


async def test_cancel_of_a_run_waiting_for_a_worker_is_applied_at_once(db_url: str) -> None:
    fired: list[str] = []
    async with _watcher(db_url) as engine:
        engine.on("cancel", lambda inst: fired.append(inst.status.value))
        await engine.register_dag(dag("w", task("a", "shell", params={"cmd": ["true"]}),
                                      task("b", "shell", ["a"], params={"cmd": ["true"]})))
        inst = await engine.run_dag("w", selector={"gpu": "yes"})
        assert inst.status == InstanceStatus.INIT
        with pytest.raises(InvalidStateError, match="it is init"):
            await engine.pause(inst.id)
        with pytest.raises(InvalidStateError, match="it is init"):
            await engine.resume(inst.id)
        done = await engine.cancel(inst.id, wait=5)
        assert done.status == InstanceStatus.CANCELED
        assert [t.status for t in done.tasks] == [TaskStatus.CANCELED] * 2
        assert all(t.attempts == 0 for t in done.tasks)
        assert fired == ["canceled"]
        stored = await engine.store.get_instance(inst.id)
        assert stored.status == InstanceStatus.CANCELED and stored.ended_at is not None
        with pytest.raises(InvalidStateError, match="canceled"):
            await engine.cancel(inst.id)
        # a second run: only one task canceled, the instance stays waiting
        other = await engine.run_dag("w", selector={"gpu": "yes"})
        part = await engine.cancel(other.id, ["b"])
        assert part.status == InstanceStatus.INIT
        assert {t.task_id: t.status for t in part.tasks} == {
            "a": TaskStatus.INIT, "b": TaskStatus.CANCELED}


async def test_cancel_and_dispatch_race_one_wins(db_url: str) -> None:
    """The cancel of an unowned run and the Dispatcher's assignment check the same state in
    their statements: whichever comes second changes nothing."""
    async with _watcher(db_url) as engine:
        store = engine.store
        assert isinstance(store, SqlStore)
        await engine.register_dag(dag("r", task("a", "shell", params={"cmd": ["true"]})))
        first = await engine.run_dag("r")
        second = await engine.run_dag("r")
        holder = "leader/1"
        lease = await store.acquire_lease("leader", holder, 30)
        assert lease is not None
        fence = LeaderFence(holder, lease.token)
        # canceled first: the assignment does not take it
        assert await store.cancel_unstarted(first.id, None, worker=None, now=first.created_at)
        assert await store.assign([(first.id, "w1")], fence) == []
        # assigned first: the unowned cancel does not apply; the command goes to the owner
        assert await store.assign([(second.id, "w1")], fence) == [second.id]
        assert not await store.cancel_unstarted(second.id, None, worker=None,
                                                now=second.created_at)
        queued = await engine.cancel(second.id)
        assert queued.status == InstanceStatus.SCHEDULED
        assert engine.last_queued_command is not None
        assert (await store.get_instance(first.id)).status == InstanceStatus.CANCELED


async def test_cancel_of_a_run_held_by_max_active_runs(engine: Engine) -> None:
    gate = asyncio.Event()
    started: list[str] = []

    async def hold(ctx: ActionContext, params: Any) -> None:
        started.append(ctx.instance_id)
        await gate.wait()

    engine.actions.add_function("hold", hold)
    await engine.register_dag(dag("lim", task("a", "hold"), maxActiveRuns=1))
    first = await engine.run_dag("lim")
    held = await engine.run_dag("lim")
    assert held.status == InstanceStatus.INIT
    with pytest.raises(InvalidStateError, match="it is init"):
        await engine.pause(held.id)
    done = await engine.cancel(held.id, wait=5)
    assert done.status == InstanceStatus.CANCELED
    assert done.tasks[0].status == TaskStatus.CANCELED
    gate.set()
    assert (await engine.wait_for(first.id, timeout=10)).status == InstanceStatus.SUCCESS
    await asyncio.sleep(0.2)
    assert started == [first.id]
    assert (await engine.store.get_instance(held.id)).status == InstanceStatus.CANCELED


async def test_cancel_queued_by_another_process_for_a_held_run(
    make_engine: Any, sqlite_url: str
) -> None:
    """A client queues the cancel; the node holding the run back applies it: the run never
    starts when the limit frees."""
    gate = asyncio.Event()
    started: list[str] = []

    async def hold(ctx: ActionContext, params: Any) -> None:
        started.append(ctx.instance_id)
        await gate.wait()

    async with make_engine() as engine:
        engine.actions.add_function("hold", hold)
        await engine.register_dag(dag("lim", task("a", "hold"), maxActiveRuns=1))
        first = await engine.run_dag("lim")
        held = await engine.run_dag("lim")
        async with make_engine(node_id="client", recover=False) as client:
            queued = await client.cancel(held.id, wait=5)
            assert client.last_queued_command is not None
            assert queued.status == InstanceStatus.CANCELED
        gate.set()
        assert (await engine.wait_for(first.id, timeout=10)).status == InstanceStatus.SUCCESS
        await asyncio.sleep(0.2)
        assert started == [first.id]


async def test_waiters_are_told_only_after_the_final_commit(db_url: str) -> None:
    """The end hook runs, then the final row is committed, then waiters wake: what a waiter
    is given is what a fresh reader of the database sees."""
    seen_in_hook: list[str] = []
    reader = make_store(db_url)
    await reader.open()
    try:
        async with Engine.from_url(db_url, settings=EngineSettings(node_id="n1")) as engine:
            async def slow_hook(inst: Any) -> None:
                stored = await reader.get_instance(inst.id, with_tasks=False)
                seen_in_hook.append(stored.status.value)
                await asyncio.sleep(0.3)

            engine.on("success", slow_hook)
            engine.on("cancel", slow_hook)
            await engine.register_dag(dag("f", task("a", "shell", params={"cmd": ["true"]})))
            inst = await engine.run_dag("f", wait=30)
            assert inst.status == InstanceStatus.SUCCESS
            assert (await reader.get_instance(inst.id)).status == InstanceStatus.SUCCESS
            assert seen_in_hook == ["running"]  # the hook ran before the final commit

            await engine.register_dag(dag("g", task("a", "approval")))
            blocked = await engine.run_dag("g", wait=30)
            assert blocked.status == InstanceStatus.BLOCKED
            waiter = asyncio.ensure_future(engine.wait_for(blocked.id, timeout=30,
                                                           settled=False))
            await engine.cancel(blocked.id)
            done = await waiter
            assert done.status == InstanceStatus.CANCELED
            assert (await reader.get_instance(blocked.id)).status == InstanceStatus.CANCELED
    finally:
        await reader.close()


async def test_queued_commands_survive_lost_replies_and_apply_once(db_url: str) -> None:
    """Commands queued by another process are claimed, applied, and deleted only after:
    with the replies of both steps lost at random, each is applied exactly once."""
    plan = FaultPlan(methods={
        "claim_commands": Fault(error_before=0.2, error_after=0.4),
        "finish_commands": Fault(error_before=0.2, error_after=0.4),
    })
    store = FaultyStore(make_store(db_url), plan, seed=3)
    settings = EngineSettings(node_id="n1", command_poll_busy_secs=0.01,
                              command_poll_idle_secs=0.02, command_catchup_secs=0.05)
    async with Engine(store, settings=settings) as engine:
        async def fail(ctx: ActionContext, params: Any) -> None:
            raise RuntimeError("no")

        engine.actions.add_function("fail", fail)
        await engine.register_dag(dag("q", task("a", "fail")))
        inst = await engine.run_dag("q", wait=30)
        assert inst.status == InstanceStatus.FAILED
        other = make_store(db_url)
        await other.open()
        try:
            for n in range(2, 6):
                cid = await other.add_command(
                    CommandRecord(None, inst.id, "retry", None, inst.created_at))
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 20
                while True:
                    now = await other.get_instance(inst.id)
                    if (now.status == InstanceStatus.FAILED and now.tasks[0].attempts == n
                            and not engine._commands_applied):
                        break
                    assert loop.time() < deadline, f"retry {n} not applied: {now}"
                    await asyncio.sleep(0.05)
                assert not await other.command_pending(cid)
            await asyncio.sleep(0.3)  # a second application would show as another attempt
            final = await other.get_instance(inst.id)
            assert final.tasks[0].attempts == 5
            assert await other.claim_commands("someone-else") == []  # all deleted
        finally:
            await other.close()
    assert store.injected_total() > 0


@pytest.mark.parametrize("first", ["continue", "retry"])
async def test_a_failed_branch_next_to_a_blocked_one(db_url: str, first: str) -> None:
    """The instance is failed (DESIGN §3), its reason names the blocked tasks, and either
    branch can go on: the blocked one continued, the failed one retried, in either order."""
    fails = {"n": 0}

    async def flaky(ctx: ActionContext, params: Any) -> None:
        fails["n"] += 1
        if fails["n"] == 1:
            raise RuntimeError("first time")

    async with Engine.from_url(db_url, settings=EngineSettings(node_id="n1")) as engine:
        engine.actions.add_function("flaky", flaky)
        await engine.register_dag(dag(
            "fb", task("bad", "flaky"), task("gate", "approval"),
            task("after", "shell", ["gate"], params={"cmd": ["true"]})))
        inst = await engine.run_dag("fb", wait=30)
        assert inst.status == InstanceStatus.FAILED
        assert inst.reason is not None and "blocked: gate" in inst.reason
        by = {t.task_id: t.status for t in inst.tasks}
        assert by == {"bad": TaskStatus.FAILED, "gate": TaskStatus.BLOCKED,
                      "after": TaskStatus.INIT}
        if first == "continue":
            await engine.continue_(inst.id, ["gate"])
            mid = await engine.wait_for(inst.id, timeout=30, settled=False)
            assert mid.status == InstanceStatus.FAILED  # "bad" still failed
            assert {t.task_id: t.status for t in mid.tasks}["after"] == TaskStatus.SUCCESS
            await engine.retry(inst.id)
        else:
            await engine.retry(inst.id)
            mid = await engine.wait_for(inst.id, timeout=30)
            assert mid.status == InstanceStatus.BLOCKED
            await engine.continue_(inst.id)
        done = await engine.wait_for(inst.id, timeout=30, settled=False)
        assert done.status == InstanceStatus.SUCCESS, done.reason
        assert {t.task_id: t.attempts for t in done.tasks}["bad"] == 2
