"""Task outputs: stored with the task's result, read by descendants in their templates, shown
in the instance's JSON; on each backend."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tideflow import ActionContext, DefinitionError, Engine, InstanceStatus, TaskStatus
from tideflow.serialize import instance_to_json
from tideflow.store.url import make_store

from .dags import dag, task


async def test_outputs_reach_descendants_and_are_stored(db_url: str,
                                                        make_engine: Callable[..., Engine]
                                                        ) -> None:
    seen: dict[str, Any] = {}

    async def alloc(ctx: ActionContext, params: Any) -> dict[str, Any]:
        return {"clusterId": "c-7", "nodes": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
                "items": ["not", "the", "dict", "method"], "size": 3}

    async def use(ctx: ActionContext, params: Any) -> None:
        # the parents' outputs are in the database before this task starts
        store = make_store(db_url)
        await store.open()
        try:
            stored = await store.get_instance(ctx.instance_id)
        finally:
            await store.close()
        seen["stored"] = {t.task_id: t.output for t in stored.tasks}
        seen[ctx.task_id] = params

    def nothing(ctx: ActionContext, params: Any) -> None:
        return None

    async with make_engine(db_url) as engine:
        engine.actions.add_function("alloc", alloc)
        engine.actions.add_function("use", use)
        engine.actions.add_function("nothing", nothing)
        await engine.register_dag(dag(
            "outs",
            task("make-cluster", "alloc"),
            task("quiet", "nothing"),
            task("mid", "shell", ["make-cluster", "quiet"],
                 params={"cmd": ["echo", "{{tasks.make-cluster.output.clusterId}}"]}),
            task("leaf", "use", ["mid"], params={
                "id": "{{tasks.make-cluster.output.clusterId}}",
                "ip": "{{ tasks.make-cluster.output.nodes.1.ip }}",
                "items": "{{tasks.make-cluster.output.items}}",
                "whole": "{{tasks['make-cluster'].output.nodes[0]}}",
                "size": "{{ tasks['make-cluster'].output.size + 1 }}",
                "exit": "{{tasks.mid.output.exitCode}}",
                "quiet": "{{tasks.quiet.output}}",
                "status": "{{tasks.mid.status}}",
            }),
        ))
        inst = await engine.run_dag("outs", wait=30)
        assert inst.status == InstanceStatus.SUCCESS, inst.reason
        assert seen["leaf"] == {
            "id": "c-7", "ip": "10.0.0.2", "items": ["not", "the", "dict", "method"],
            "whole": '{"ip":"10.0.0.1"}', "size": "4", "exit": 0, "quiet": None,
            "status": "success",
        }
        assert seen["stored"]["make-cluster"]["clusterId"] == "c-7"
        assert seen["stored"]["mid"] == {"exitCode": 0}
        assert seen["stored"]["quiet"] is None

    async with make_engine(db_url, node_id="other") as again:
        stored = await again.get_instance(inst.id)
        by = {t.task_id: t for t in stored.tasks}
        assert by["make-cluster"].output["nodes"][0] == {"ip": "10.0.0.1"}
        assert by["mid"].output == {"exitCode": 0}
        assert by["leaf"].output is None
        shown = {t["taskId"]: t for t in instance_to_json(stored)["tasks"]}
        assert shown["mid"]["output"] == {"exitCode": 0}
        assert shown["leaf"]["output"] is None


async def test_a_missing_field_fails_the_reader_with_the_path(engine: Engine) -> None:
    engine.actions.add_function("alloc", lambda ctx, p: {"clusterId": "c-1"})
    await engine.register_dag(dag(
        "miss",
        task("alloc", "alloc"),
        task("use", "shell", ["alloc"], params={"cmd": ["echo", "{{tasks.alloc.output.nope}}"]}),
    ))
    inst = await engine.run_dag("miss", wait=30)
    use = next(t for t in inst.tasks if t.task_id == "use")
    assert use.status == TaskStatus.FAILED
    assert "tasks.alloc.output has no 'nope'" in (use.reason or "")
    assert "clusterId" in (use.reason or "")


@dataclasses.dataclass
class Cluster:
    id: str
    size: int


@pytest.mark.parametrize(
    ("returned", "stored"),
    [
        ("text", "text"),
        (3, 3),
        ((1, 2), [1, 2]),
        (Cluster("c", 2), {"id": "c", "size": 2}),
        ({"nested": {"deep": [True, None, 1.5]}}, {"nested": {"deep": [True, None, 1.5]}}),
    ],
)
async def test_returned_values_are_stored_as_json(engine: Engine, returned: Any,
                                                  stored: Any) -> None:
    engine.actions.add_function("ret", lambda ctx, p: returned)
    await engine.register_dag(dag("ret", task("t", "ret")))
    inst = await engine.run_dag("ret", wait=30)
    assert inst.status == InstanceStatus.SUCCESS, inst.reason
    assert inst.tasks[0].output == stored


@pytest.mark.parametrize(
    ("returned", "reason"),
    [
        (object(), "cannot be stored as the task's output"),
        (float("nan"), "cannot be stored as the task's output"),
        ("x" * (1024 * 1024 + 1), "more than the limit of 1,048,576 bytes"),
    ],
)
async def test_an_output_that_cannot_be_stored_fails_the_task(
    engine: Engine, returned: Any, reason: str
) -> None:
    engine.actions.add_function("ret", lambda ctx, p: returned)
    await engine.register_dag(dag("bad", task("t", "ret"), task("after", "shell", ["t"],
                                                               params={"cmd": ["true"]})))
    inst = await engine.run_dag("bad", wait=30)
    first = inst.tasks[0]
    assert first.status == TaskStatus.FAILED
    assert reason in (first.reason or "")
    assert first.output is None
    assert inst.tasks[1].status == TaskStatus.INIT


async def test_a_retried_task_keeps_only_the_output_of_its_last_attempt(engine: Engine) -> None:
    calls: list[int] = []

    def flaky(ctx: ActionContext, params: Any) -> dict[str, int]:
        calls.append(ctx.attempt)
        if len(calls) == 2:
            raise RuntimeError("second run fails")
        return {"attempt": ctx.attempt}

    engine.actions.add_function("flaky", flaky)
    await engine.register_dag(dag("again", task("t", "flaky")))
    inst = await engine.run_dag("again", wait=30)
    assert inst.tasks[0].output == {"attempt": 1}
    # a failed run leaves no output behind
    second = await engine.run_dag("again", wait=30)
    assert second.tasks[0].status == TaskStatus.FAILED
    assert second.tasks[0].output is None
    await engine.retry(second.id)
    done = await engine.wait_for(second.id, timeout=30, settled=False)
    assert done.tasks[0].output == {"attempt": 2}


async def test_reading_a_task_that_is_not_an_ancestor_is_refused(engine: Engine) -> None:
    engine.actions.add_function("alloc", lambda ctx, p: {"id": 1})
    with pytest.raises(DefinitionError) as caught:
        await engine.register_dag(dag(
            "side",
            task("a", "alloc"),
            task("b", "shell", params={"cmd": ["echo", "{{tasks.a.output.id}}"]}),
            task("c", "shell", ["b"], params={"cmd": ["echo", "{{tasks.zz.output}}",
                                                      "{{ tasks['c'].output }}"]}),
        ))
    text = str(caught.value)
    assert "reads the output of task 'a', which it does not depend on" in text
    assert "reads the output of task 'zz', which does not exist" in text
    assert "reads the output of task 'c', which it does not depend on" in text


_CRASH_SCRIPT = textwrap.dedent("""
    import asyncio, json, sys
    from tideflow import Engine, EngineSettings

    DAG = {"id": "crash-out", "tasks": [
        {"id": "alloc", "actionName": "alloc"},
        {"id": "use", "actionName": "shell", "dependOn": ["alloc"],
         "params": {"cmd": ["sh", "-c", "echo $0 >> " + sys.argv[2]
                            + "; while [ -f " + sys.argv[3] + " ]; do sleep 0.1; done",
                            "{{tasks.alloc.output.clusterId}}"]}},
    ]}
    CALLS = []

    async def alloc(ctx, params):
        return {"clusterId": "c-" + str(ctx.attempt)}

    async def main():
        async with Engine.from_url(sys.argv[1], settings=EngineSettings(node_id="n")) as e:
            e.actions.add_function("alloc", alloc)
            if sys.argv[4] == "start":
                await e.register_dag(DAG)
                inst = await e.run_dag("crash-out")
                print(inst.id, flush=True)
                await asyncio.sleep(3600)
            else:
                inst = await e.wait_for(sys.argv[4], timeout=60, settled=False)
                print(json.dumps({"status": inst.status.value,
                                  "outputs": [t.output for t in inst.tasks],
                                  "attempts": [t.attempts for t in inst.tasks],
                                  "cmd": inst.tasks[1].params["cmd"]}))

    asyncio.run(main())
""")


def test_an_output_survives_a_sigkill(tmp_path: Path) -> None:
    """The parent's output is committed with its result: after the node is killed while the
    child runs, the restarted node runs the child again with the same output, and the parent
    is not run again."""
    script = tmp_path / "node.py"
    script.write_text(_CRASH_SCRIPT)
    db = f"sqlite:///{tmp_path / 'crash.db'}"
    runs, hold = tmp_path / "runs", tmp_path / "hold"
    hold.write_text("")
    first = subprocess.Popen([sys.executable, str(script), db, str(runs), str(hold), "start"],
                             stdout=subprocess.PIPE, text=True)
    assert first.stdout is not None
    instance_id = first.stdout.readline().strip()
    deadline = time.monotonic() + 30
    while not (runs.exists() and runs.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    hold.unlink()
    second = subprocess.run([sys.executable, str(script), db, str(runs), str(hold), instance_id],
                            capture_output=True, text=True, timeout=90)
    assert second.returncode == 0, second.stderr
    result = json.loads(second.stdout)
    assert result["status"] == "success"
    assert result["outputs"] == [{"clusterId": "c-1"}, {"exitCode": 0}]
    # the parent ran once; the child's first attempt may not have been recorded before the
    # kill (an attempt's start is not waited for), so only its runs are counted
    assert result["attempts"][0] == 1
    assert result["cmd"][-1] == "c-1"
    assert runs.read_text().split() == ["c-1", "c-1"]


class _OutputThenSlowAfter:
    name = "out-slow-after"

    def __init__(self, gate: asyncio.Event | None, calls: list[str]) -> None:
        self.gate = gate
        self.calls = calls

    async def run(self, ctx: ActionContext, params: Any) -> dict[str, str]:
        self.calls.append("run")
        return {"id": f"made-by-run-{len(self.calls)}"}

    async def run_after(self, ctx: ActionContext, params: Any) -> None:
        self.calls.append("after")
        if self.gate is not None:
            await self.gate.wait()


async def test_a_task_resumed_at_run_after_keeps_its_output(
    make_engine: Callable[..., Engine]
) -> None:
    calls: list[str] = []
    first = make_engine(registry=_registry(_OutputThenSlowAfter(asyncio.Event(), calls)))
    async with first:
        await first.register_dag(dag("ending", task("a", "out-slow-after"),
                                     task("b", "shell", ["a"], params={
                                         "cmd": ["echo", "{{tasks.a.output.id}}"]})))
        inst = await first.run_dag("ending")
        while calls != ["run", "after"]:
            await asyncio.sleep(0.01)
    async with make_engine(registry=_registry(_OutputThenSlowAfter(None, calls))) as second:
        done = await second.wait_for(inst.id, timeout=10, settled=False)
    assert done.status == InstanceStatus.SUCCESS, done.reason
    assert calls == ["run", "after", "after"]  # run() is not repeated
    assert done.tasks[0].output == {"id": "made-by-run-1"}
    assert done.tasks[1].params["cmd"] == ["echo", "made-by-run-1"]


def _registry(action: Any) -> Any:
    from tideflow import ActionRegistry

    reg = ActionRegistry()
    reg.register(action)
    return reg
