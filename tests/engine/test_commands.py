"""Commands: cancel, pause/resume, preCheck skip/block, continue, approval."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tideflow import ActionContext, Engine, InstanceStatus, InvalidStateError, TaskStatus

from .dags import dag, task


def _gate_action(engine: Engine) -> tuple[asyncio.Event, list[str]]:
    gate = asyncio.Event()
    started: list[str] = []

    async def hold(ctx: ActionContext, params: Any) -> None:
        started.append(ctx.task_id)
        await gate.wait()

    async def noop(ctx: ActionContext, params: Any) -> None:
        started.append(ctx.task_id)

    engine.actions.add_function("hold", hold)
    engine.actions.add_function("noop", noop)
    return gate, started


async def _until(pred: Any, timeout: float = 5) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


async def test_cancel_running_instance(engine: Engine) -> None:
    gate, started = _gate_action(engine)
    await engine.register_dag(dag("c", task("a", "hold"), task("b", "noop", ["a"])))
    inst = await engine.run_dag("c")
    await _until(lambda: started == ["a"])
    done = await engine.cancel(inst.id, wait=5)
    assert done.status == InstanceStatus.CANCELED
    by = {t.task_id: t for t in done.tasks}
    assert by["a"].status == TaskStatus.CANCELED
    assert by["b"].status == TaskStatus.CANCELED and by["b"].attempts == 0
    gate.set()
    await asyncio.sleep(0.1)
    assert started == ["a"]
    with pytest.raises(InvalidStateError, match="canceled"):
        await engine.cancel(inst.id)


async def test_cancel_between_two_steps_of_a_chain(engine: Engine) -> None:
    started: list[str] = []
    holder: dict[str, str] = {}

    async def first(ctx: ActionContext, params: Any) -> None:
        started.append("a")
        # the cancel lands after a ends and before b could start
        asyncio.get_running_loop().call_soon(
            lambda: asyncio.ensure_future(engine.cancel(holder["id"])))

    async def second(ctx: ActionContext, params: Any) -> None:
        started.append("b")

    engine.actions.add_function("first", first)
    engine.actions.add_function("second", second)
    await engine.register_dag(dag("chain2", task("a", "first"), task("b", "second", ["a"])))
    inst = await engine.run_dag("chain2")
    holder["id"] = inst.id
    done = await engine.wait_for(inst.id, timeout=5)
    assert done.status == InstanceStatus.CANCELED
    assert started == ["a"]
    assert done.tasks[1].status == TaskStatus.CANCELED


async def test_cancel_given_tasks_only(engine: Engine) -> None:
    gate, started = _gate_action(engine)
    await engine.register_dag(dag("ct", task("a", "hold"), task("x", "hold")))
    inst = await engine.run_dag("ct")
    await _until(lambda: len(started) == 2)
    await engine.cancel(inst.id, ["a"])
    gate.set()
    done = await engine.wait_for(inst.id, timeout=5)
    by = {t.task_id: t for t in done.tasks}
    assert by["a"].status == TaskStatus.CANCELED
    assert by["x"].status == TaskStatus.SUCCESS
    assert done.status == InstanceStatus.CANCELED
    # retry the canceled task: the instance succeeds
    await engine.retry(inst.id)
    done = await engine.wait_for(inst.id, timeout=5)
    assert done.status == InstanceStatus.SUCCESS


async def test_pause_and_resume(engine: Engine) -> None:
    gate, started = _gate_action(engine)
    await engine.register_dag(dag("p", task("a", "hold"), task("b", "noop", ["a"])))
    inst = await engine.run_dag("p")
    await _until(lambda: started == ["a"])
    paused = await engine.pause(inst.id)
    assert paused.status == InstanceStatus.PAUSED
    gate.set()
    await asyncio.sleep(0.2)
    now = await engine.get_instance(inst.id)
    assert now.status == InstanceStatus.PAUSED
    assert now.tasks[0].status == TaskStatus.SUCCESS
    assert now.tasks[1].status == TaskStatus.INIT
    with pytest.raises(InvalidStateError, match="paused"):
        await engine.pause(inst.id)
    await engine.resume(inst.id)
    done = await engine.wait_for(inst.id, timeout=5)
    assert done.status == InstanceStatus.SUCCESS
    assert started == ["a", "b"]


async def test_precheck_in_file_order_and_continue(engine: Engine) -> None:
    _, started = _gate_action(engine)
    await engine.register_dag({
        "id": "pc",
        "vars": {"mode": {"defaultValue": "x"}},
        "tasks": [
            {"id": "a", "actionName": "noop", "preCheck": {
                "first-block": {"act": "block", "conditions": [
                    {"source": "vars", "key": "mode", "op": "in", "values": ["x"]}]},
                "then-skip": {"act": "skip", "conditions": [
                    {"source": "vars", "key": "mode", "op": "in", "values": ["x"]}]},
            }},
            {"id": "b", "actionName": "noop", "dependOn": ["a"], "preCheck": [
                {"act": "skip", "conditions": [
                    {"source": "vars", "key": "mode", "op": "not-in", "values": ["y"]}]}]},
            {"id": "c", "actionName": "noop", "dependOn": ["b"]},
        ],
    })
    inst = await engine.run_dag("pc", wait=5)
    assert inst.status == InstanceStatus.BLOCKED
    assert inst.tasks[0].status == TaskStatus.BLOCKED
    assert "first-block" in (inst.tasks[0].reason or "")
    # after continue the block check no longer applies; the skip check does
    await engine.continue_(inst.id, ["a"])
    done = await engine.wait_for(inst.id, timeout=5)
    by = {t.task_id: t.status for t in done.tasks}
    assert by == {"a": TaskStatus.SKIPPED, "b": TaskStatus.SKIPPED, "c": TaskStatus.SUCCESS}
    assert done.status == InstanceStatus.SUCCESS
    assert started == ["c"]


async def test_approval_blocks_until_continued(engine: Engine) -> None:
    _, started = _gate_action(engine)
    await engine.register_dag(dag("ap", task("ask", "approval", params={"message": "ok?"}),
                                  task("go", "noop", ["ask"])))
    inst = await engine.run_dag("ap", wait=5)
    assert inst.status == InstanceStatus.BLOCKED
    assert inst.tasks[0].reason == "ok?"
    with pytest.raises(InvalidStateError):
        await engine.continue_(inst.id, ["go"])
    await engine.continue_(inst.id, wait=5)
    done = await engine.wait_for(inst.id, timeout=5)
    assert done.status == InstanceStatus.SUCCESS
    assert started == ["go"]


async def test_retry_refused_on_running_instance(engine: Engine) -> None:
    gate, _ = _gate_action(engine)
    await engine.register_dag(dag("rr", task("a", "hold")))
    inst = await engine.run_dag("rr")
    with pytest.raises(InvalidStateError, match="running"):
        await engine.retry(inst.id)
    gate.set()
    await engine.wait_for(inst.id, timeout=5)


async def test_precheck_reads_share_data_written_by_a_parent(engine: Engine) -> None:
    _, started = _gate_action(engine)

    async def put(ctx: ActionContext, params: Any) -> None:
        ctx.share_data["mode"] = "maintenance"

    engine.actions.add_function("put", put)
    await engine.register_dag({
        "id": "sd",
        "tasks": [
            {"id": "probe", "actionName": "put"},
            {"id": "deploy", "actionName": "noop", "dependOn": ["probe"], "preCheck": {
                "in-maintenance": {"act": "skip", "conditions": [
                    {"source": "share-data", "key": "mode", "op": "in",
                     "values": ["maintenance"]}]}}},
            # a missing key makes a condition false, for not-in as well
            {"id": "notify", "actionName": "noop", "dependOn": ["probe"], "preCheck": {
                "never": {"act": "skip", "conditions": [
                    {"source": "share-data", "key": "absent", "op": "not-in",
                     "values": ["x"]}]}}},
        ],
    })
    inst = await engine.run_dag("sd", wait=5)
    by = {t.task_id: t.status for t in inst.tasks}
    assert by == {"probe": TaskStatus.SUCCESS, "deploy": TaskStatus.SKIPPED,
                  "notify": TaskStatus.SUCCESS}
    assert started == ["notify"]
