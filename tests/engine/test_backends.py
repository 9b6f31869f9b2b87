"""The same engine behaviour on SQLite, MariaDB and PostgreSQL."""

from __future__ import annotations

from typing import Any

from tideflow import ActionContext, Engine, EngineSettings, InstanceStatus, SyncEngine, TaskStatus

from .dags import dag, task


async def test_engine_on_each_backend(db_url: str) -> None:
    calls = {"flaky": 0}

    async with Engine.from_url(db_url, settings=EngineSettings(node_id="n1")) as engine:
        async def put(ctx: ActionContext, params: Any) -> None:
            ctx.share_data["k"] = params["v"]

        async def flaky(ctx: ActionContext, params: Any) -> None:
            calls["flaky"] += 1
            if calls["flaky"] == 1:
                raise RuntimeError("once")

        engine.actions.add_function("put", put)
        engine.actions.add_function("flaky", flaky)
        await engine.register_dag(dag(
            "b",
            task("a", "put", params={"v": "{{x}}"}),
            *[task(f"m{i}", "flaky" if i == 0 else "shell", ["a"],
                   params={} if i == 0 else {"cmd": ["echo", "{{shareData.k}}"]},
                   retry={"maxAttempts": 2, "backoffSecs": 0}) for i in range(4)],
            task("gate", "approval", [f"m{i}" for i in range(4)]),
            task("z", "shell", ["gate"], params={"cmd": ["true"]}),
            vars={"x": {"defaultValue": "dflt"}},
        ))
        inst = await engine.run_dag("b", {"x": "ü-1"}, tags={"env": "ci"}, wait=30)
        assert inst.status == InstanceStatus.BLOCKED, inst.reason
        await engine.continue_(inst.id)
        done = await engine.wait_for(inst.id, timeout=30, settled=False)
        assert done.status == InstanceStatus.SUCCESS, done.reason

    # everything reads back the same from the database, in a new engine
    async with Engine.from_url(db_url, settings=EngineSettings(node_id="n2")) as again:
        stored = await again.get_instance(inst.id)
        assert stored.status == InstanceStatus.SUCCESS
        assert stored.share_data == {"k": "ü-1"}
        assert stored.tags == {"env": "ci"}
        by = {t.task_id: t for t in stored.tasks}
        assert by["m0"].attempts == 2
        assert [a.status for a in by["m0"].attempt_history] == [
            TaskStatus.FAILED, TaskStatus.SUCCESS]
        assert any("ü-1" in tr.message for tr in by["m1"].traces)
        assert all(t.status == TaskStatus.SUCCESS for t in stored.tasks)
        found = await again.list_instances(tags={"env": "ci"}, status="success")
        assert [i.id for i in found] == [inst.id]


def test_sync_facade(sqlite_url: str) -> None:
    with SyncEngine(Engine.from_url(sqlite_url)) as engine:
        engine.register_dag(dag("s", task("a", "shell", params={"cmd": ["echo", "hi"]})))
        inst = engine.run_dag("s", wait=10)
        assert inst.status == InstanceStatus.SUCCESS
        assert engine.get_instance(inst.id).tasks[0].status == TaskStatus.SUCCESS
        assert [i.id for i in engine.list_instances()] == [inst.id]
