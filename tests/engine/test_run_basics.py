"""Running DAGs on one node: ready rule, parallelism, share data, templates, failures."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tideflow import (
    ActionContext,
    Engine,
    InputError,
    InstanceStatus,
    InvalidStateError,
    TaskStatus,
)

from .dags import dag, task


def _register_common(engine: Engine, log: list[str]) -> None:
    async def noop(ctx: ActionContext, params: Any) -> None:
        log.append(ctx.task_id)

    async def boom(ctx: ActionContext, params: Any) -> None:
        raise RuntimeError(params.get("msg", "boom"))

    async def put(ctx: ActionContext, params: Any) -> None:
        for k, v in params.items():
            ctx.share_data[k] = v

    engine.actions.add_function("noop", noop)
    engine.actions.add_function("boom", boom)
    engine.actions.add_function("put", put)


async def test_chain_and_share_data(engine: Engine) -> None:
    log: list[str] = []
    _register_common(engine, log)
    seen: dict[str, Any] = {}

    async def read(ctx: ActionContext, params: Any) -> None:
        seen.update(params)

    engine.actions.add_function("read", read)
    await engine.register_dag(dag(
        "chain",
        task("a", "put", params={"cluster": "c-{{region}}"}),
        task("b", "read", ["a"], params={"got": "{{shareData.cluster}}",
                                         "go": "{{.shareData.cluster}}",
                                         "r": "{{ vars.region | upper }}",
                                         "f": "{{.vars.region.Value}}"}),
        vars={"region": {"defaultValue": "eu"}},
    ))
    inst = await engine.run_dag("chain", {"region": "us"}, wait=10)
    assert inst.status == InstanceStatus.SUCCESS
    assert inst.share_data == {"cluster": "c-us"}
    assert seen == {"got": "c-us", "go": "c-us", "r": "US", "f": "us"}
    # the stored row says the same
    stored = await engine.store.get_instance(inst.id)
    assert stored.share_data == {"cluster": "c-us"}
    assert [t.status for t in stored.tasks] == [TaskStatus.SUCCESS, TaskStatus.SUCCESS]
    assert stored.tasks[1].params["got"] == "c-us"


async def test_parallel_branches_start_together(engine: Engine) -> None:
    barrier = asyncio.Barrier(5)

    async def meet(ctx: ActionContext, params: Any) -> None:
        # only passes when all five run at the same time
        await asyncio.wait_for(barrier.wait(), 5)

    engine.actions.add_function("meet", meet)
    _register_common(engine, [])
    await engine.register_dag(dag(
        "fan", task("root"), *[task(f"p{i}", "meet", ["root"]) for i in range(5)],
        task("join", "noop", [f"p{i}" for i in range(5)]),
    ))
    inst = await engine.run_dag("fan", wait=20)
    assert inst.status == InstanceStatus.SUCCESS, inst.reason


async def test_concurrency_limit(make_engine: Any) -> None:
    async with make_engine(concurrency=2) as engine:
        running = 0
        peak = 0

        async def busy(ctx: ActionContext, params: Any) -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.02)
            running -= 1

        engine.actions.add_function("busy", busy)
        await engine.register_dag(dag("wide", *[task(f"t{i}", "busy") for i in range(8)]))
        inst = await engine.run_dag("wide", wait=20)
        assert inst.status == InstanceStatus.SUCCESS
        assert peak == 2


async def test_failure_keeps_independent_branch(engine: Engine) -> None:
    log: list[str] = []
    _register_common(engine, log)
    await engine.register_dag(dag(
        "branches",
        task("bad", "boom", params={"msg": "disk full"}),
        task("after-bad", "noop", ["bad"]),
        task("good", "noop"),
        task("after-good", "noop", ["good"]),
    ))
    inst = await engine.run_dag("branches", wait=10)
    assert inst.status == InstanceStatus.FAILED
    by = {t.task_id: t for t in inst.tasks}
    assert by["bad"].status == TaskStatus.FAILED
    assert "disk full" in (by["bad"].reason or "")
    assert by["after-bad"].status == TaskStatus.INIT
    assert by["good"].status == TaskStatus.SUCCESS
    assert by["after-good"].status == TaskStatus.SUCCESS
    assert "bad" in (inst.reason or "")


async def test_missing_share_key_fails_with_clear_reason(engine: Engine) -> None:
    _register_common(engine, [])
    await engine.register_dag(dag("miss", task("a", "noop", params={"x": "{{shareData.nope}}"})))
    inst = await engine.run_dag("miss", wait=10)
    assert inst.status == InstanceStatus.FAILED
    assert "nope" in (inst.tasks[0].reason or "")


async def test_var_value_with_braces_is_literal(engine: Engine) -> None:
    got: dict[str, Any] = {}

    async def read(ctx: ActionContext, params: Any) -> None:
        got.update(params)

    engine.actions.add_function("read", read)
    await engine.register_dag(dag(
        "lit", task("a", "read", params={"v": "{{ x }}", "w": "{{cluster-name}}"}),
        vars={"x": {"defaultValue": ""}, "cluster-name": {"defaultValue": "c1"}},
    ))
    inst = await engine.run_dag("lit", {"x": "{{ 7*7 }}"}, wait=10)
    assert inst.status == InstanceStatus.SUCCESS
    assert got == {"v": "{{ 7*7 }}", "w": "c1"}


async def test_undeclared_var_refused_and_nothing_created(engine: Engine) -> None:
    _register_common(engine, [])
    await engine.register_dag(dag("v", task("a"), vars={"known": {"defaultValue": "1"}}))
    with pytest.raises(InputError, match="unknown"):
        await engine.run_dag("v", {"unknown": "x"})
    assert await engine.list_instances(dag_id="v") == []


async def test_stopped_dag_refuses_to_run(engine: Engine) -> None:
    _register_common(engine, [])
    await engine.register_dag(dag("s", task("a"), status="stopped"))
    with pytest.raises(InvalidStateError, match="stopped"):
        await engine.run_dag("s")


async def test_instance_keeps_its_version(engine: Engine) -> None:
    gate = asyncio.Event()
    seen: list[str] = []

    async def hold(ctx: ActionContext, params: Any) -> None:
        await gate.wait()

    async def note(ctx: ActionContext, params: Any) -> None:
        seen.append(params["v"])

    engine.actions.add_function("hold", hold)
    engine.actions.add_function("note", note)
    await engine.register_dag(dag("ver", task("a", "hold"), task("b", "note", ["a"],
                                                                  params={"v": "one"})))
    inst = await engine.run_dag("ver")
    rec = await engine.register_dag(dag("ver", task("a", "hold"),
                                         task("b", "note", ["a"], params={"v": "two"})))
    assert rec.version == 2
    gate.set()
    done = await engine.wait_for(inst.id, timeout=10)
    assert done.status == InstanceStatus.SUCCESS
    assert done.dag_version == 1
    assert seen == ["one"]


async def test_tags_and_listing(engine: Engine) -> None:
    _register_common(engine, [])
    await engine.register_dag(dag("t", task("a")))
    a = await engine.run_dag_with_tags("t", {"team": "db", "env": "prod"}, wait=10)
    b = await engine.run_dag("t", tags={"team": "db", "env": "dev"}, wait=10)
    found = await engine.list_instances(tags={"team": "db", "env": "prod"})
    assert [i.id for i in found] == [a.id]
    both = await engine.list_instances(dag_id="t", status="success")
    assert {i.id for i in both} == {a.id, b.id}
    assert both[0].id == b.id  # newest first


async def test_wide_fan_in(engine: Engine) -> None:
    _register_common(engine, [])
    n = 10_000
    parents = [task(f"p{i}") for i in range(n)]
    await engine.register_dag(dag("fanin", *parents, task("sink", "noop",
                                                          [f"p{i}" for i in range(n)])))
    inst = await engine.run_dag("fanin", wait=120)
    assert inst.status == InstanceStatus.SUCCESS
    assert inst.tasks[-1].task_id == "sink"
    assert inst.tasks[-1].status == TaskStatus.SUCCESS


async def test_hooks_fire(engine: Engine) -> None:
    _register_common(engine, [])
    events: list[tuple[str, str]] = []
    for ev in ("before_run", "success", "fail"):
        engine.on(ev, lambda inst, ev=ev: events.append((ev, inst.status.value)))
    await engine.register_dag(dag("h", task("a")))
    await engine.register_dag(dag("hf", task("a", "boom")))
    await engine.run_dag("h", wait=10)
    await engine.run_dag("hf", wait=10)
    await asyncio.sleep(0.1)
    assert ("before_run", "running") in events
    assert ("success", "success") in events
    assert ("fail", "failed") in events
    with pytest.raises(InputError):
        engine.on("nonsense", lambda i: None)


async def test_python_action_under_allowed_prefix(make_engine: Any) -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    try:
        async with make_engine(python_allowed_prefixes=("pyfuncs",)) as engine:
            await engine.register_dag(dag(
                "py",
                task("sum", "python", params={"func": "pyfuncs:add",
                                              "kwargs": {"a": "{{x}}", "b": 2},
                                              "saveAs": "total"}),
                task("denied", "python", params={"func": "os:getcwd"}),
                vars={"x": {"defaultValue": "40"}},
            ))
            inst = await engine.run_dag("py", wait=10)
            by = {t.task_id: t for t in inst.tasks}
            assert by["sum"].status == TaskStatus.SUCCESS, by["sum"].reason
            assert inst.share_data["total"] == "42"
            assert by["denied"].status == TaskStatus.FAILED
            assert "pyfuncs" in (by["denied"].reason or "")
    finally:
        sys.path.remove(str(Path(__file__).parent))


async def test_dag_status_change_applies_to_the_next_run(engine: Engine) -> None:
    _register_common(engine, [])
    await engine.register_dag(dag("st2", task("a")))
    await engine.run_dag("st2", wait=5)
    await engine.set_dag_status("st2", "stopped")
    with pytest.raises(InvalidStateError, match="stopped"):
        await engine.run_dag("st2")
    await engine.set_dag_status("st2", "normal")
    assert (await engine.run_dag("st2", wait=5)).status == InstanceStatus.SUCCESS


async def test_late_share_data_write_of_an_abandoned_thread_is_dropped(engine: Engine) -> None:
    import threading
    import time as _time

    wrote = threading.Event()
    refused: list[BaseException] = []

    def slow_writer(ctx: ActionContext, params: Any) -> None:
        _time.sleep(0.4)
        try:
            ctx.share_data["late"] = "yes"
        except Exception as exc:  # the attempt is over
            refused.append(exc)
        ctx.trace("too late")
        wrote.set()

    engine.actions.add_function("slow_writer", slow_writer)
    await engine.register_dag(dag("late", task("a", "slow_writer", timeoutSecs=0.1)))
    inst = await engine.run_dag("late", wait=5)
    assert inst.status == InstanceStatus.FAILED
    await asyncio.get_running_loop().run_in_executor(None, wrote.wait, 5)
    now = await engine.get_instance(inst.id)
    assert "late" not in now.share_data
    assert refused and not any("too late" in t.message for t in now.tasks[0].traces)


async def test_run_refuses_tags_and_selector_that_are_not_mappings(engine: Engine) -> None:
    await engine.register_dag({"id": "plain", "tasks": [
        {"id": "a", "actionName": "shell", "params": {"cmd": ["true"]}}]})
    with pytest.raises(InputError, match="tags must be a mapping"):
        await engine.run_dag("plain", tags=[("k", "v")])  # type: ignore[arg-type]
    with pytest.raises(InputError, match="selector label key"):
        await engine.run_dag("plain", selector={"": "x"})
    for bad in (True, "10", 1.5, 1_000_001, -1_000_001):
        with pytest.raises(InputError, match="priority"):
            await engine.run_dag("plain", priority=bad)  # type: ignore[arg-type]
    assert await engine.list_instances(dag_id="plain") == []
