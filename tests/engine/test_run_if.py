"""Trigger rules (runIf: success | failed | always) on every backend."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tideflow import ActionContext, DefinitionError, Engine, EngineSettings, InstanceStatus
from tideflow import TaskStatus as TS

from .dags import dag, task

FAIL = {"cmd": ["false"]}
OK = {"cmd": ["true"]}


def _by_id(inst: Any) -> dict[str, Any]:
    return {t.task_id: t for t in inst.tasks}


async def test_failed_path_runs_cleanup_and_keeps_the_status(db_url: str) -> None:
    async with Engine.from_url(db_url, settings=EngineSettings(node_id="n1")) as engine:
        await engine.register_dag(dag(
            "rif",
            task("a", "shell", params=OK),
            task("b", "shell", ["a"], params=FAIL),
            task("c", "shell", ["b"], params=OK),                     # below a failure: init
            task("d", "shell", ["c"], params=OK, runIf="failed"),     # c counts as failed
            task("e", "shell", ["a"], params=OK, runIf="failed"),     # a succeeded: skipped
            task("f", "shell", ["e"], params=OK),                     # below a runIf skip
            task("g", "shell", ["d", "e"], params=OK, runIf="always"),
        ))
        inst = await engine.run_dag("rif", wait=30)
        assert inst.status == InstanceStatus.FAILED
        assert inst.reason is not None and "task 'b' failed" in inst.reason
        by = _by_id(inst)
        assert by["c"].status == TS.INIT
        assert by["d"].status == TS.SUCCESS
        assert by["e"].status == TS.SKIPPED and by["e"].reason.startswith("runIf: failed")
        assert by["f"].status == TS.SKIPPED and "'e' did not run" in by["f"].reason
        assert by["g"].status == TS.SUCCESS
    # read back from the database the same
    async with Engine.from_url(db_url, settings=EngineSettings(node_id="n2")) as again:
        stored = _by_id(await again.get_instance(inst.id))
        assert {k: v.status for k, v in stored.items()} == {k: v.status for k, v in by.items()}


async def test_success_path_skips_failure_handlers(engine: Engine) -> None:
    await engine.register_dag(dag(
        "ok",
        task("a", "shell", params=OK),
        task("on-fail", "shell", ["a"], params=OK, runIf="failed"),
        task("page", "shell", ["on-fail"], params=OK),
        task("cleanup", "shell", ["a"], params=OK, runIf="always"),
    ))
    inst = await engine.run_dag("ok", wait=30)
    assert inst.status == InstanceStatus.SUCCESS
    by = _by_id(inst)
    assert by["on-fail"].status == TS.SKIPPED
    assert by["page"].status == TS.SKIPPED
    assert by["cleanup"].status == TS.SUCCESS


async def test_failing_cleanup_after_success_fails_the_instance(engine: Engine) -> None:
    await engine.register_dag(dag(
        "cf", task("a", "shell", params=OK),
        task("cleanup", "shell", ["a"], params=FAIL, runIf="always")))
    inst = await engine.run_dag("cf", wait=30)
    assert inst.status == InstanceStatus.FAILED
    assert "cleanup" in (inst.reason or "")


async def test_failed_handler_runs_while_independent_branch_still_runs(engine: Engine) -> None:
    gate = asyncio.Event()
    seen: list[str] = []

    async def slow(ctx: ActionContext, params: Any) -> None:
        await gate.wait()

    async def note(ctx: ActionContext, params: Any) -> None:
        seen.append(ctx.task_id)
        gate.set()

    engine.actions.add_function("slow", slow)
    engine.actions.add_function("note", note)
    await engine.register_dag(dag(
        "par", task("x", "shell", params=FAIL), task("long", "slow"),
        task("h", "note", ["x"], runIf="failed")))
    inst = await engine.run_dag("par", wait=30)
    assert inst.status == InstanceStatus.FAILED
    assert seen == ["h"]


async def test_always_cleanup_runs_after_cancel(db_url: str) -> None:
    started = asyncio.Event()
    ran: list[str] = []

    async def hold(ctx: ActionContext, params: Any) -> None:
        started.set()
        await asyncio.sleep(60)

    async def clean(ctx: ActionContext, params: Any) -> None:
        ran.append(ctx.task_id)

    async with Engine.from_url(db_url, settings=EngineSettings(node_id="n1")) as engine:
        engine.actions.add_function("hold", hold)
        engine.actions.add_function("clean", clean)
        await engine.register_dag(dag(
            "cc", task("a", "hold"), task("b", "shell", ["a"], params=OK),
            task("on-fail", "clean", ["b"], runIf="failed"),
            task("cleanup", "clean", ["b"], runIf="always")))
        inst = await engine.run_dag("cc")
        await asyncio.wait_for(started.wait(), 10)
        done = await engine.cancel(inst.id, wait=10)
        assert done.status == InstanceStatus.CANCELED
        by = _by_id(done)
        assert by["a"].status == TS.CANCELED and by["b"].status == TS.CANCELED
        assert by["cleanup"].status == TS.SUCCESS
        assert by["on-fail"].status == TS.CANCELED
        assert ran == ["cleanup"]


async def test_second_cancel_stops_the_cleanup(engine: Engine) -> None:
    started = asyncio.Event()

    async def hold(ctx: ActionContext, params: Any) -> None:
        started.set()
        await asyncio.sleep(60)

    engine.actions.add_function("hold", hold)
    await engine.register_dag(dag(
        "c2", task("a", "shell", params={"cmd": ["sleep", "30"]}),
        task("cleanup", "hold", ["a"], runIf="always")))
    inst = await engine.run_dag("c2")
    await asyncio.sleep(0.3)
    first = await engine.cancel(inst.id)
    assert first.status == InstanceStatus.RUNNING  # the cleanup is still owed
    await asyncio.wait_for(started.wait(), 10)
    done = await engine.cancel(inst.id, wait=10)
    assert done.status == InstanceStatus.CANCELED
    assert _by_id(done)["cleanup"].status == TS.CANCELED


async def test_retry_judges_skipped_handlers_again(engine: Engine) -> None:
    flag = {"fail": True}

    async def maybe(ctx: ActionContext, params: Any) -> None:
        if flag["fail"]:
            raise RuntimeError("no")

    engine.actions.add_function("maybe", maybe)
    await engine.register_dag(dag(
        "rt", task("a", "maybe"), task("b", "shell", ["a"], params=OK),
        task("fin", "shell", ["b"], params=OK, runIf="always")))
    inst = await engine.run_dag("rt", wait=30)
    assert inst.status == InstanceStatus.FAILED
    assert _by_id(inst)["fin"].status == TS.SUCCESS  # b can never run: counts as final
    flag["fail"] = False
    await engine.retry(inst.id)
    done = await engine.wait_for(inst.id, timeout=30, settled=False)
    assert done.status == InstanceStatus.SUCCESS
    assert _by_id(done)["b"].status == TS.SUCCESS


async def test_cleanup_resumes_after_a_crash(sqlite_url: str, tmp_path: Any) -> None:
    """A node stopping in the middle of a cleanup: the next start runs it again and the
    instance still ends with what the main path earned."""
    marker = tmp_path / "cleanup-ran"
    first = Engine.from_url(sqlite_url, settings=EngineSettings(node_id="n1"))
    await first.start()
    await first.register_dag(dag(
        "crash", task("a", "shell", params=FAIL),
        task("cleanup", "shell", ["a"], runIf="failed",
             params={"cmd": ["sh", "-c", f"test -e {marker} || (touch {marker}; sleep 30)"]})))
    inst = await first.run_dag("crash")
    for _ in range(200):
        if marker.exists():
            break
        await asyncio.sleep(0.05)
    await first.close()  # the cleanup's attempt is left in flight
    async with Engine.from_url(sqlite_url, settings=EngineSettings(node_id="n1")) as second:
        done = await second.wait_for(inst.id, timeout=30, settled=False)
        assert done.status == InstanceStatus.FAILED
        cleanup = _by_id(done)["cleanup"]
        assert cleanup.status == TS.SUCCESS and cleanup.attempts == 2


def test_run_if_failed_needs_parents() -> None:
    from tideflow.definition.loader import load_dag_dict

    with pytest.raises(DefinitionError, match="runIf: failed but no dependOn"):
        load_dag_dict(dag("x", task("a", "shell", runIf="failed")))
    with pytest.raises(DefinitionError, match="runIf"):
        load_dag_dict(dag("x", task("a", "shell"), task("b", "shell", ["a"], runIf="never")))
