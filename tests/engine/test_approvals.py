"""Approvals that carry a decision: continue with typed inputs and who decided, and reject."""

from __future__ import annotations

from typing import Any

import pytest

from tideflow import Engine, EngineSettings, InputError, InstanceStatus, InvalidStateError
from tideflow import TaskStatus as TS

from .dags import dag, task

SIGN_OFF = task("sign-off", "approval", ["build"], params={
    "message": "Hand over?",
    "inputs": {
        "ticket": {"type": "string", "required": True, "pattern": "^T-[0-9]+$"},
        "size": {"type": "integer", "defaultValue": 3, "minimum": 1, "maximum": 50},
        "region": {"type": "string", "enum": ["eu", "us"]},
        "notify": {"type": "boolean"},
    },
    "approvers": ["alice", "{{owner}}"],
})
DAG = dag(
    "handover",
    task("build", "shell", params={"cmd": ["true"]}),
    SIGN_OFF,
    task("ship", "shell", ["sign-off"], params={"cmd": ["true"]}),
    task("on-reject", "shell", ["sign-off"], runIf="failed",
         params={"cmd": ["echo", "why: {{tasks.sign-off.output.reason}}"]}),
    vars={"owner": {"defaultValue": "bob"}},
)


def _task(inst: Any, tid: str) -> Any:
    return next(t for t in inst.tasks if t.task_id == tid)


async def _blocked(engine: Engine) -> str:
    await engine.register_dag(DAG)
    inst = await engine.run_dag("handover", wait=30)
    assert inst.status == InstanceStatus.BLOCKED
    return inst.id


async def test_continue_with_inputs_records_the_decision(db_url: str) -> None:
    async with Engine.from_url(db_url, settings=EngineSettings(node_id="n1")) as engine:
        iid = await _blocked(engine)
        await engine.continue_(iid, ["sign-off"], inputs={"ticket": "T-42", "notify": "true"},
                               by="bob")
        done = await engine.wait_for(iid, timeout=30, settled=False)
        assert done.status == InstanceStatus.SUCCESS
        sign = _task(done, "sign-off")
        assert sign.decision is not None
        assert sign.decision["inputs"] == {"ticket": "T-42", "size": 3, "notify": True}
        assert sign.decision["by"] == "bob" and sign.decision["at"]
        assert any(tr.message.startswith("approved by bob: ticket='T-42'") for tr in sign.traces)
        assert _task(done, "on-reject").status == TS.SKIPPED
    async with Engine.from_url(db_url, settings=EngineSettings(node_id="n2")) as again:
        stored = _task(await again.get_instance(iid), "sign-off")
        assert stored.decision == sign.decision


@pytest.mark.parametrize(("inputs", "by", "message"), [
    ({}, "alice", "input 'ticket' is required"),
    ({"ticket": "nope"}, "alice", "must match the pattern"),
    ({"ticket": "T-1", "size": "many"}, "alice", "input 'size' must be an integer"),
    ({"ticket": "T-1", "size": 99}, "alice", "at most 50"),
    ({"ticket": "T-1", "region": "mars"}, "alice", "must be one of 'eu', 'us'"),
    ({"ticket": "T-1", "colour": "red"}, "alice", "'colour': not an input of it"),
    ({"ticket": "T-1"}, None, "may only be decided by alice, bob"),
    ({"ticket": "T-1"}, "mallory", "'mallory' may not decide approval 'sign-off'"),
])
async def test_bad_decision_is_refused_and_changes_nothing(
        engine: Engine, inputs: dict[str, Any], by: str | None, message: str) -> None:
    iid = await _blocked(engine)
    before = await engine.get_instance(iid)
    with pytest.raises(InputError, match=message):
        await engine.continue_(iid, inputs=inputs, by=by)
    after = await engine.get_instance(iid)
    assert after.status == InstanceStatus.BLOCKED
    assert _task(after, "sign-off").status == TS.BLOCKED
    assert _task(after, "sign-off").traces == _task(before, "sign-off").traces


async def test_a_bad_decision_names_every_problem_at_once(engine: Engine) -> None:
    iid = await _blocked(engine)
    with pytest.raises(InputError) as caught:
        await engine.continue_(iid, inputs={"size": 99, "colour": "red"}, by="carol")
    problems = caught.value.details["problems"]
    assert len(problems) == 4, problems
    assert problems[0].startswith("'carol' may not decide approval 'sign-off'")
    for part in ("'colour': not an input", "at most 50", "input 'ticket' is required"):
        assert any(part in p for p in problems), part
        assert part in str(caught.value)
    with pytest.raises(InputError) as caught:
        await engine.continue_(iid, inputs={"ticket": "T-1"})
    assert caught.value.details == {"problems": [
        "approval 'sign-off' may only be decided by alice, bob: say who decides with --by NAME"
        " (\"by\" in the request body)"]}
    with pytest.raises(InputError, match="'carol' may not decide") as caught:
        await engine.reject(iid, by="carol")
    assert len(caught.value.details["problems"]) == 1
    assert _task(await engine.get_instance(iid), "sign-off").status == TS.BLOCKED


async def test_inputs_for_a_task_that_is_not_an_approval_are_refused(engine: Engine) -> None:
    await engine.register_dag(dag("blk", task("a", "shell", params={"cmd": ["true"]},
                                              preCheck=[{"act": "block", "conditions": []}])))
    inst = await engine.run_dag("blk", wait=30)
    with pytest.raises(InputError, match="not an approval"):
        await engine.continue_(inst.id, inputs={"x": "1"})
    with pytest.raises(InvalidStateError, match="not an approval"):
        await engine.reject(inst.id, ["a"])
    await engine.continue_(inst.id, by="carol")
    done = await engine.wait_for(inst.id, timeout=10, settled=False)
    assert done.status == InstanceStatus.SUCCESS
    assert any(t.message == "continued by carol" for t in done.tasks[0].traces)


async def test_reject_fails_the_approval_with_the_reason(db_url: str) -> None:
    async with Engine.from_url(db_url, settings=EngineSettings(node_id="n1")) as engine:
        iid = await _blocked(engine)
        with pytest.raises(InputError, match="may only be decided"):
            await engine.reject(iid, ["sign-off"], reason="no")
        await engine.reject(iid, ["sign-off"], reason="not this week", by="alice")
        done = await engine.wait_for(iid, timeout=30, settled=False)
        assert done.status == InstanceStatus.FAILED
        assert done.reason == "task 'sign-off' failed: rejected by alice: not this week"
        sign = _task(done, "sign-off")
        assert sign.status == TS.FAILED
        assert sign.decision == {"decision": "rejected", "reason": "not this week",
                                 "by": "alice", "at": sign.decision["at"]}
        assert sign.attempt_history[-1].status == TS.FAILED
        # the decision is the output, as an approve's is: a runIf: failed handler reads it
        assert sign.output == sign.decision
        handler = _task(done, "on-reject")
        assert handler.status == TS.SUCCESS, handler.reason
        assert handler.params["cmd"] == ["echo", "why: not this week"]
    async with Engine.from_url(db_url, settings=EngineSettings(node_id="n2")) as engine:
        assert _task(await engine.get_instance(iid), "sign-off").output == sign.decision
        assert _task(done, "ship").status == TS.INIT
        # a retry asks again
        await engine.retry(iid, ["sign-off"])
        again = await engine.wait_for(iid, timeout=10)
        assert again.status == InstanceStatus.BLOCKED
        assert _task(again, "sign-off").decision is None
        assert _task(again, "sign-off").output is None
        with pytest.raises(InvalidStateError, match="it is init"):
            await engine.reject(iid, ["ship"])


async def test_decisions_queued_from_another_process(make_engine: Any) -> None:
    owner = make_engine(recover=False)
    async with owner:
        iid = await _blocked(owner)
        other = make_engine(recover=False, node_id="cli")
        async with other:
            # checked before it is queued: nothing reaches the owner
            with pytest.raises(InputError, match="is required"):
                await other.continue_(iid, by="alice")
            await other.continue_(iid, inputs={"ticket": "T-7", "size": "5"}, by="alice",
                                  wait=10)
        done = await owner.wait_for(iid, timeout=10, settled=False)
        assert done.status == InstanceStatus.SUCCESS
        assert _task(done, "sign-off").decision["inputs"] == {"ticket": "T-7", "size": 5}


async def test_reject_queued_from_another_process(make_engine: Any) -> None:
    owner = make_engine(recover=False)
    async with owner:
        iid = await _blocked(owner)
        other = make_engine(recover=False, node_id="cli")
        async with other:
            with pytest.raises(InvalidStateError, match="no blocked approval|it is"):
                await other.reject(iid, ["build"])
            await other.reject(iid, reason="too late", by="bob", wait=10)
        done = await owner.wait_for(iid, timeout=10, settled=False)
        assert done.status == InstanceStatus.FAILED
        assert _task(done, "sign-off").reason == "rejected by bob: too late"
