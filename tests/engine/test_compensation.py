"""Compensation (saga): the succeeded tasks of a failed or canceled instance are undone, in
reverse dependency order, durably, each step with its own retry; no retry afterwards."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tideflow import (
    ActionContext,
    DefinitionError,
    Engine,
    EngineSettings,
    InstanceStatus,
    InvalidStateError,
)
from tideflow import TaskStatus as TS
from tideflow.serialize import instance_to_json

from .dags import dag, task


def _by(inst: Any) -> dict[str, Any]:
    return {t.task_id: t for t in inst.tasks}


def _saga(fail: str = "boom", undo_b: str = "undo") -> dict[str, Any]:
    return dag(
        "saga",
        task("a", "make", params={"name": "{{region}}-a"},
             compensate={"actionName": "undo", "params": {"id": "{{tasks.a.output.id}}"}}),
        task("b", "make", ["a"], params={"name": "b"},
             compensate={"actionName": undo_b, "params": {"id": "{{tasks.b.output.id}}"},
                         "retry": {"maxAttempts": 2, "backoffSecs": 0}}),
        task("side", "make", params={"name": "side"},
             compensate={"actionName": "undo", "params": {"id": "side"}}),
        task("c", fail, ["b"]),
        task("never", "make", ["c"], params={"name": "never"},
             compensate={"actionName": "undo", "params": {"id": "never"}}),
        vars={"region": {"defaultValue": "eu"}},
    )


def _actions(engine: Engine, undone: list[str]) -> None:
    async def make(ctx: ActionContext, params: Any) -> dict[str, str]:
        return {"id": f"id-{params['name']}"}

    async def undo(ctx: ActionContext, params: Any) -> None:
        undone.append(params["id"])

    async def broken(ctx: ActionContext, params: Any) -> None:
        undone.append(f"broken:{params['id']}")
        raise RuntimeError("cannot delete")

    async def boom(ctx: ActionContext, params: Any) -> None:
        raise RuntimeError("boom")

    for name, fn in (("make", make), ("undo", undo), ("broken", broken), ("boom", boom)):
        engine.actions.add_function(name, fn)


async def test_failure_undoes_succeeded_tasks_in_reverse_order(db_url: str) -> None:
    undone: list[str] = []
    async with Engine.from_url(db_url, settings=EngineSettings(node_id="n1")) as engine:
        _actions(engine, undone)
        await engine.register_dag(_saga())
        inst = await engine.run_dag("saga", wait=30)
        assert inst.status == InstanceStatus.FAILED, inst.reason
        assert inst.reason is not None and inst.reason.startswith("task 'c' failed")
        assert inst.compensation == "done"
        by = _by(inst)
        assert by["compensate:b"].status == TS.SUCCESS
        assert by["compensate:a"].status == TS.SUCCESS
        assert by["compensate:side"].status == TS.SUCCESS
        assert by["compensate:never"].status == TS.SKIPPED
        assert by["compensate:a"].depend_on == ["compensate:b"]
        # b was built on a: b is undone before a; rendered from the task's output
        assert undone.index("id-b") < undone.index("id-eu-a")
        assert sorted(undone) == ["id-b", "id-eu-a", "side"]
        assert by["compensate:a"].params == {"id": "id-eu-a"}
        shown = instance_to_json(inst)
        assert shown["compensation"] == "done"
        assert "compensate:a" in [t["taskId"] for t in shown["tasks"]]
        with pytest.raises(InvalidStateError, match="compensated .*start a new run"):
            await engine.retry(inst.id)
    async with Engine.from_url(db_url, settings=EngineSettings(node_id="n2")) as again:
        stored = await again.get_instance(inst.id)
        assert stored.compensation == "done"
        assert _by(stored)["compensate:a"].status == TS.SUCCESS
        # refused from another process too, before anything is queued
        with pytest.raises(InvalidStateError, match="compensated"):
            await again.retry(inst.id)


async def test_success_needs_no_compensation(engine: Engine) -> None:
    undone: list[str] = []
    _actions(engine, undone)
    doc = _saga(fail="make")
    doc["tasks"][3]["params"] = {"name": "c"}
    await engine.register_dag(doc)
    inst = await engine.run_dag("saga", wait=30)
    assert inst.status == InstanceStatus.SUCCESS
    assert inst.compensation is None and undone == []
    assert {t.status for t in inst.tasks if t.task_id.startswith("compensate:")} == {TS.SKIPPED}


async def test_failing_step_retries_then_stops_the_steps_above(db_url: str) -> None:
    undone: list[str] = []
    async with Engine.from_url(db_url, settings=EngineSettings(node_id="n1")) as engine:
        _actions(engine, undone)
        await engine.register_dag(_saga(undo_b="broken"))
        inst = await engine.run_dag("saga", wait=30)
        assert inst.status == InstanceStatus.FAILED
        assert inst.compensation == "failed"
        by = _by(inst)
        assert by["compensate:b"].status == TS.FAILED and by["compensate:b"].attempts == 2
        assert by["compensate:a"].status == TS.INIT  # never undone before what is built on it
        assert undone.count("broken:id-b") == 2 and "id-eu-a" not in undone
        # the refusal does not claim that the work was undone
        with pytest.raises(InvalidStateError) as caught:
            await engine.retry(inst.id)
        assert "compensation failed" in str(caught.value)
        assert "may not have been undone" in str(caught.value)
        assert "compensate:*" in str(caught.value) and "has been undone" not in str(caught.value)


async def test_nothing_to_undo_keeps_the_instance_retryable(engine: Engine) -> None:
    undone: list[str] = []
    _actions(engine, undone)
    await engine.register_dag(dag(
        "first-fails", task("x", "boom", compensate={"actionName": "undo", "params": {"id": "x"}})))
    inst = await engine.run_dag("first-fails", wait=30)
    assert inst.status == InstanceStatus.FAILED and inst.compensation is None
    assert _by(inst)["compensate:x"].status == TS.SKIPPED
    await engine.retry(inst.id)


async def test_cancel_compensates(db_url: str) -> None:
    undone: list[str] = []
    started = asyncio.Event()

    async def hold(ctx: ActionContext, params: Any) -> None:
        started.set()
        await asyncio.sleep(60)

    async with Engine.from_url(db_url, settings=EngineSettings(node_id="n1")) as engine:
        _actions(engine, undone)
        engine.actions.add_function("hold", hold)
        await engine.register_dag(dag(
            "cancel-saga",
            task("a", "make", params={"name": "a"},
                 compensate={"actionName": "undo", "params": {"id": "{{tasks.a.output.id}}"}}),
            task("b", "hold", ["a"],
                 compensate={"actionName": "undo", "params": {"id": "b"}})))
        inst = await engine.run_dag("cancel-saga")
        await asyncio.wait_for(started.wait(), 10)
        done = await engine.cancel(inst.id, wait=20)
        assert done.status == InstanceStatus.CANCELED
        assert done.compensation == "done"
        by = _by(done)
        assert by["b"].status == TS.CANCELED
        assert by["compensate:a"].status == TS.SUCCESS
        assert by["compensate:b"].status == TS.SKIPPED
        assert undone == ["id-a"]


async def test_compensation_resumes_after_a_crash(sqlite_url: str, tmp_path: Any) -> None:
    """The node stops during a compensation step: the next start runs that step again (one
    more attempt) and finishes the compensation."""
    marker = tmp_path / "undo-started"
    first = Engine.from_url(sqlite_url, settings=EngineSettings(node_id="n1"))
    await first.start()
    await first.register_dag(dag(
        "crash-saga",
        task("a", "shell", params={"cmd": ["true"]},
             compensate={"actionName": "shell", "params": {"cmd": [
                 "sh", "-c", f"test -e {marker} || (touch {marker}; sleep 30)"]}}),
        task("b", "shell", ["a"], params={"cmd": ["false"]})))
    inst = await first.run_dag("crash-saga")
    for _ in range(300):
        if marker.exists():
            break
        await asyncio.sleep(0.05)
    assert marker.exists()
    mid = await first.get_instance(inst.id)
    assert mid.status == InstanceStatus.RUNNING and mid.compensation == "running"
    await first.close()
    async with Engine.from_url(sqlite_url, settings=EngineSettings(node_id="n1")) as second:
        done = await second.wait_for(inst.id, timeout=30, settled=False)
        assert done.status == InstanceStatus.FAILED and done.compensation == "done"
        step = _by(done)["compensate:a"]
        assert step.status == TS.SUCCESS and step.attempts == 2
        assert step.attempt_history[0].status == TS.FAILED


async def test_compensate_params_are_checked_at_registration(engine: Engine) -> None:
    with pytest.raises(DefinitionError) as caught:
        await engine.register_dag(dag(
            "cnope",
            task("f", "shell", params={"cmd": ["echo"]}, compensate={
                "actionName": "shell",
                "params": {"cmd": ["echo", "{{tasks.nope.output.x}}", "{{ nosuchvar }}",
                                   "{{tasks.g.output.exitCode}}"]}}),
            task("g", "shell", params={"cmd": ["false"]}),
        ))
    text = str(caught.value)
    assert "compensate.params.cmd[1]: reads the output of task 'nope', which does not exist" \
        in text
    assert "compensate.params.cmd[2]: uses 'nosuchvar'" in text
    # any task of the instance may be read, ancestor or not
    assert "'g'" not in text and len(caught.value.problems) == 2
