"""Automatic retry with back-off, manual retry, and per-attempt timeouts."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tideflow import ActionContext, Engine, InstanceStatus, TaskStatus

from .dags import dag, task


def _flaky(fails: int) -> Any:
    calls = {"n": 0}

    async def flaky(ctx: ActionContext, params: Any) -> None:
        calls["n"] += 1
        if calls["n"] <= fails:
            raise RuntimeError(f"flake {calls['n']}")

    return flaky, calls


async def test_retry_policy_recovers(engine: Engine) -> None:
    fn, calls = _flaky(2)
    engine.actions.add_function("flaky", fn)
    await engine.register_dag(dag("r", task("a", "flaky", retry={"maxAttempts": 3,
                                                                "backoffSecs": 0.01})))
    inst = await engine.run_dag("r", wait=10)
    assert inst.status == InstanceStatus.SUCCESS
    t = inst.tasks[0]
    assert t.attempts == 3 and calls["n"] == 3
    assert [a.status for a in t.attempt_history] == [
        TaskStatus.FAILED, TaskStatus.FAILED, TaskStatus.SUCCESS]
    assert t.attempt_history[0].reason == "RuntimeError: flake 1"


async def test_retry_exhausted_then_manual_retry_adds_one_attempt(engine: Engine) -> None:
    fn, calls = _flaky(3)
    engine.actions.add_function("flaky", fn)
    after: list[str] = []

    async def note(ctx: ActionContext, params: Any) -> None:
        after.append(ctx.task_id)

    engine.actions.add_function("note", note)
    await engine.register_dag(dag("r2", task("a", "flaky", retry={"maxAttempts": 2,
                                                                 "backoffSecs": 0}),
                                  task("b", "note", ["a"])))
    inst = await engine.run_dag("r2", wait=10)
    assert inst.status == InstanceStatus.FAILED
    assert inst.tasks[0].attempts == 2
    # third call still fails: one manual retry = one attempt
    again = await engine.retry(inst.id, wait=10)
    done = await engine.wait_for(inst.id, timeout=10)
    assert done.status == InstanceStatus.FAILED, again.status
    assert done.tasks[0].attempts == 3
    # fourth call succeeds, and the child runs
    await engine.retry(inst.id, ["a"])
    done = await engine.wait_for(inst.id, timeout=10)
    assert done.status == InstanceStatus.SUCCESS
    assert done.tasks[0].attempts == 4
    assert after == ["b"]


class _Lifecycle:
    name = "lifecycle"

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail_next = True

    async def run_before(self, ctx: ActionContext, params: Any) -> None:
        self.calls.append("before")

    async def retry_before(self, ctx: ActionContext, params: Any) -> None:
        self.calls.append("retry_before")

    async def run(self, ctx: ActionContext, params: Any) -> None:
        self.calls.append("run")
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("first")

    def run_after(self, ctx: ActionContext, params: Any) -> None:  # sync: runs in a thread
        self.calls.append("after")


async def test_lifecycle_order(engine: Engine) -> None:
    action = _Lifecycle()
    engine.actions.register(action)
    await engine.register_dag(dag("lc", task("a", "lifecycle",
                                             retry={"maxAttempts": 2, "backoffSecs": 0})))
    inst = await engine.run_dag("lc", wait=10)
    assert inst.status == InstanceStatus.SUCCESS
    assert action.calls == ["before", "run", "retry_before", "before", "run", "after"]


async def test_async_timeout_fails_attempt(engine: Engine) -> None:
    cancelled = asyncio.Event()

    async def slow(ctx: ActionContext, params: Any) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    engine.actions.add_function("slow", slow)
    await engine.register_dag(dag("to", task("a", "slow", timeoutSecs=0.2)))
    inst = await engine.run_dag("to", wait=10)
    assert inst.status == InstanceStatus.FAILED
    assert "timed out after 0.2s" in (inst.tasks[0].reason or "")
    assert cancelled.is_set()


async def test_sync_timeout_abandons_thread(engine: Engine) -> None:
    def blocking(ctx: ActionContext, params: Any) -> None:
        time.sleep(0.6)

    engine.actions.add_function("blocking", blocking)
    await engine.register_dag(dag("st", task("a", "blocking", timeoutSecs=0.1)))
    inst = await engine.run_dag("st", wait=10)
    assert inst.status == InstanceStatus.FAILED
    assert "timed out" in (inst.tasks[0].reason or "")
    assert engine.stats["abandoned_threads"] == 1


async def test_shell_timeout_kills_process(engine: Engine, tmp_path: Any) -> None:
    marker = tmp_path / "late"
    await engine.register_dag(dag("sh", task(
        "a", "shell", timeoutSecs=0.5,
        params={"cmd": ["sh", "-c", f"sleep 2 && touch {marker}"]})))
    inst = await engine.run_dag("sh", wait=10)
    assert inst.status == InstanceStatus.FAILED
    assert "timed out" in (inst.tasks[0].reason or "")
    await asyncio.sleep(2.5)
    assert not marker.exists()


async def test_attempt_after_a_timeout_gets_a_fresh_cancel_signal(engine: Engine) -> None:
    seen: list[bool] = []

    async def slow_once(ctx: ActionContext, params: Any) -> None:
        seen.append(ctx.is_cancelled)
        if ctx.attempt == 1:
            await asyncio.sleep(10)

    engine.actions.add_function("slow_once", slow_once)
    await engine.register_dag(dag("fresh", task("a", "slow_once", timeoutSecs=0.1,
                                                retry={"maxAttempts": 2, "backoffSecs": 0.2})))
    started = time.monotonic()
    inst = await engine.run_dag("fresh", wait=10)
    assert inst.status == InstanceStatus.SUCCESS
    assert seen == [False, False]
    assert time.monotonic() - started >= 0.1 + 0.15  # the back-off was not cut short
