"""The test kit: contexts for unit tests, DAGs in memory with fakes, a clock that skips time."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from pydantic import BaseModel

from tideflow import ActionContext, ActionRegistry, SyncEngine
from tideflow.actions.wait import WaitAction
from tideflow.states import InstanceStatus, TaskStatus
from tideflow.testing import (
    Fake,
    Kit,
    SkippingClock,
    make_context,
    memory_engine,
    run_action,
    run_dag,
)

RETRYING = {
    "id": "flaky",
    "tasks": [
        {"id": "call", "actionName": "remote",
         "retry": {"maxAttempts": 3, "backoffSecs": 60, "maxBackoffSecs": 600}},
        {"id": "after", "actionName": "notify", "dependOn": ["call"]},
    ],
}


async def test_three_attempts_with_a_minute_of_back_off_take_well_under_a_second() -> None:
    clock = SkippingClock()
    remote = Fake(raises=[OSError("connection refused"), OSError("connection refused")],
                  returns={"ok": True})
    began = time.monotonic()
    notify = Fake()
    inst = await run_dag(RETRYING, fakes={"remote": remote, "notify": notify}, clock=clock)
    elapsed = time.monotonic() - began
    assert inst.status == InstanceStatus.SUCCESS
    call = next(t for t in inst.tasks if t.task_id == "call")
    assert call.attempts == 3
    assert [a.status for a in call.attempt_history] == ["failed", "failed", "success"]
    assert "connection refused" in (call.attempt_history[0].reason or "")
    assert remote.attempts == [1, 2, 3]
    assert notify.attempts == [1]
    # back-off 60 s then 120 s (with up to full jitter below that): minutes of virtual time
    assert clock.skipped >= 60
    assert elapsed < 1.0, elapsed


async def test_wait_tasks_and_sensors_sleep_on_the_clock() -> None:
    looks: list[int] = []

    async def sensor(ctx: ActionContext, params: Any) -> str:
        # a sensor: look every 5 minutes until the thing is there
        while len(looks) < 4:
            looks.append(ctx.attempt)
            await ctx.sleep(300)
        return "ready"

    dag = {"id": "waits", "tasks": [
        {"id": "pause", "actionName": "wait", "params": {"waitingTime": "2h"}},
        {"id": "poll", "actionName": "sensor", "dependOn": ["pause"], "timeoutSecs": 60},
    ]}
    clock = SkippingClock()
    began = time.monotonic()
    inst = await run_dag(dag, fakes={"sensor": sensor}, clock=clock)
    assert inst.status == InstanceStatus.SUCCESS, [(t.task_id, t.reason) for t in inst.tasks]
    assert looks == [1, 1, 1, 1]
    assert clock.skipped >= 2 * 3600 + 4 * 300
    assert time.monotonic() - began < 1.0


async def test_concurrent_sleeps_end_in_order_of_their_virtual_times() -> None:
    clock = SkippingClock()
    ended: list[int] = []

    async def nap(secs: int) -> None:
        await clock.sleep(secs)
        ended.append(secs)

    start = clock.now()
    await asyncio.gather(nap(30), nap(10), nap(20))
    assert ended == [10, 20, 30]
    assert (clock.now() - start).total_seconds() == 30


async def test_a_cancelled_sleep_does_not_move_time() -> None:
    clock = SkippingClock()
    start = clock.now()
    sleeper = asyncio.ensure_future(clock.sleep(1000))
    await asyncio.sleep(0)
    sleeper.cancel()
    await clock.sleep(5)
    assert (clock.now() - start).total_seconds() == 5


async def test_cron_ticks_fire_as_virtual_minutes_pass(tideflow_kit: Kit) -> None:
    ran = Fake()
    dag = {"id": "minutely", "cron": "* * * * *", "tasks": [{"id": "a", "actionName": "job"}]}
    async with tideflow_kit.engine(fakes={"job": ran}, dags=[dag]) as engine:
        deadline = time.monotonic() + 10
        while len(await engine.list_instances(dag_id="minutely")) < 3:
            assert time.monotonic() < deadline, "three ticks did not fire"
            await asyncio.sleep(0.01)
        found = await engine.list_instances(dag_id="minutely")
        ticks = sorted(i.cron_tick for i in found if i.cron_tick is not None)
        assert len(ticks) >= 3
        assert all((b - a).total_seconds() == 60 for a, b in zip(ticks, ticks[1:], strict=False))


class Greeting(BaseModel):
    name: str
    times: int = 1


class Greet:
    name = "greet"
    params_model = Greeting

    def run(self, ctx: ActionContext, params: Greeting) -> str:
        ctx.trace(f"greeting {params.name}")
        ctx.log.info("greeting %s %d times", params.name, params.times)
        ctx.share_data["greeted"] = params.name
        return " ".join([f"hello {params.name} in {ctx.vars['region']}"] * params.times)

    def retry_before(self, ctx: ActionContext, params: Greeting) -> None:
        ctx.trace("retrying")


async def test_make_context_runs_an_action_without_an_engine() -> None:
    ctx = make_context(vars={"region": "eu"}, share_data={"seen": "x"}, attempt=2,
                       params={"name": "ada", "times": "2"})
    out = await run_action(Greet(), ctx)
    assert out == "hello ada in eu hello ada in eu"  # "2" weakly typed to 2, as the engine does
    assert ctx.traces == ["retrying", "greeting ada"]  # attempt 2: retry_before ran
    assert ctx.logs == [("INFO", "greeting ada 2 times")]
    assert ctx.written == ["greeted"]
    assert dict(ctx.share_data) == {"seen": "x", "greeted": "ada"}
    assert ctx.attempt == 2


async def test_run_action_refuses_bad_params_as_the_engine_would() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        await run_action(Greet(), make_context(vars={"region": "eu"}), params={"times": "2"})


async def test_the_wait_action_is_instant_on_the_kits_clock(tideflow_kit: Kit) -> None:
    ctx = tideflow_kit.make_context(params={"waitingTime": "3d"})
    began = time.monotonic()
    await tideflow_kit.run_action(WaitAction(), ctx)
    assert time.monotonic() - began < 0.5
    assert tideflow_kit.clock.skipped == 3 * 86400
    assert ctx.traces == ["waiting 3d"]


async def test_a_fake_keeps_the_params_model_of_the_action_it_replaces() -> None:
    registry = ActionRegistry()
    registry.register(Greet())
    fake = Fake(returns="fake hello")
    dag = {"id": "g", "vars": {"region": {"defaultValue": "us"}},
           "tasks": [{"id": "hi", "actionName": "greet", "params": {"name": "{{region}}",
                                                                      "times": "3"}}]}
    inst = await run_dag(dag, actions=lambda r: r.register(Greet()), fakes={"greet": fake},
                         vars={"region": "eu"})
    assert inst.status == InstanceStatus.SUCCESS
    assert fake.calls[0].params == Greeting(name="eu", times=3)
    assert fake.calls[0].vars == {"region": "eu"}
    assert inst.tasks[0].output == "fake hello"


async def test_a_fake_of_a_builtin_action_replaces_it() -> None:
    shell = Fake(share={"out": "done"})
    dag = {"id": "sh", "tasks": [{"id": "rm", "actionName": "shell",
                                  "params": {"cmd": ["rm", "-rf", "/nonexistent-tideflow"]}}]}
    inst = await run_dag(dag, fakes={"shell": shell})
    assert inst.status == InstanceStatus.SUCCESS
    assert inst.share_data == {"out": "done"}
    assert shell.calls[0].params.cmd == ["rm", "-rf", "/nonexistent-tideflow"]


async def test_a_failing_fake_fails_the_task_with_its_reason() -> None:
    dag = {"id": "f", "tasks": [{"id": "x", "actionName": "boom"}]}
    inst = await run_dag(dag, fakes={"boom": Fake(raises=[RuntimeError("quota exceeded")])})
    assert inst.status == InstanceStatus.FAILED
    assert inst.tasks[0].status == TaskStatus.FAILED
    assert inst.tasks[0].reason == "RuntimeError: quota exceeded"


async def test_a_sync_fake_runs_in_the_thread_pool_so_its_timeout_applies() -> None:
    # a sync action blocks its worker thread, not the engine: the timeout ends the attempt
    dag = {"id": "t", "tasks": [{"id": "x", "actionName": "slow", "timeoutSecs": 1}]}
    for fake in (Fake(fn=lambda ctx, p: time.sleep(1.6)), lambda ctx, p: time.sleep(1.6)):
        inst = await run_dag(dag, fakes={"slow": fake})
        assert inst.tasks[0].status == TaskStatus.FAILED
        assert "timed out" in (inst.tasks[0].reason or ""), inst.tasks[0].reason
    returning = Fake(fn=lambda ctx, p: {"n": p["n"] + 1})
    inst = await run_dag({"id": "r", "tasks": [{"id": "x", "actionName": "add",
                                                "params": {"n": 1}}]}, fakes={"add": returning})
    assert inst.status == InstanceStatus.SUCCESS and returning.attempts == [1]


async def test_memory_engines_are_separate() -> None:
    async with memory_engine(dags=[RETRYING], fakes={"remote": Fake(), "notify": Fake()}) as a, \
            memory_engine() as b:
        assert [d.id for d in await a.list_dags()] == ["flaky"]
        assert await b.list_dags() == []


def test_the_plugin_fixtures_give_a_kit_on_one_clock(tideflow_kit: Kit,
                                                     skipping_clock: SkippingClock) -> None:
    assert tideflow_kit.clock is skipping_clock
    assert tideflow_kit.make_context().clock is skipping_clock
    assert SyncEngine is not None


async def test_a_task_that_stopped_sleeping_holds_time_back_once() -> None:
    """A task that slept on the clock and went on to other work holds the next wake-up for
    max_hold_secs at most, not every wake-up after it."""
    clock = SkippingClock(max_hold_secs=0.2)
    await clock.sleep(1)  # this task now sleeps no more: it goes on to wait below
    began = time.monotonic()
    await asyncio.gather(*(asyncio.ensure_future(clock.sleep(n)) for n in range(1, 21)))
    assert time.monotonic() - began < 0.2 + 0.5
    assert clock.skipped == 21
