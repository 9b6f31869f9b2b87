"""The approval action."""

from __future__ import annotations

import pytest
from action_probe import make_probe, parse
from pydantic import ValidationError

from tideflow.actions.approval import ApprovalAction, ApprovalParams
from tideflow.actions.base import ActionSpec, BlockTask


async def test_blocks_with_its_message() -> None:
    probe = make_probe()
    with pytest.raises(BlockTask) as caught:
        await ApprovalAction().run(probe.ctx, parse(ApprovalAction(), {"message": "ship v2?"}))
    assert caught.value.reason == "ship v2?"


async def test_blocks_with_a_default_message() -> None:
    probe = make_probe()
    with pytest.raises(BlockTask, match="waiting for approval"):
        await ApprovalAction().run(probe.ctx, parse(ApprovalAction(), {}))


async def test_succeeds_once_continued() -> None:
    probe = make_probe(continued=True)
    out = await ApprovalAction().run(probe.ctx, parse(ApprovalAction(), {"message": "ship?"}))
    # the decision is its output (the engine records who decided when it is continued)
    assert out == {"decision": "approved", "inputs": {}, "by": None, "at": None}


def test_inputs_and_approvers_are_checked_as_params() -> None:
    params = parse(ApprovalAction(), {"inputs": {"size": {"type": "integer", "minimum": 1}},
                                      "approvers": ["alice", 7]})
    assert params.approvers == ["alice", "7"]
    assert params.inputs["size"].type == "integer"
    with pytest.raises(ValidationError, match="minimum and maximum"):
        parse(ApprovalAction(), {"inputs": {"x": {"type": "string", "minimum": 1}}})
    with pytest.raises(ValidationError, match="type"):
        parse(ApprovalAction(), {"inputs": {"x": {"type": "date"}}})


def test_holds_no_slot_and_has_no_timeout() -> None:
    spec = ActionSpec(ApprovalAction())
    assert spec.holds_slot is False
    assert spec.default_timeout(spec.parse_params({})) is None


def test_unknown_param_is_refused() -> None:
    with pytest.raises(ValidationError, match="msg"):
        parse(ApprovalAction(), {"msg": "x"})


async def test_the_decision_is_the_output() -> None:
    probe = make_probe(continued=True)
    probe.ctx.decision = {"decision": "approved", "inputs": {"n": 2}, "by": "al", "at": "t"}
    assert await ApprovalAction().run(probe.ctx, ApprovalParams.model_validate({})) == {
        "decision": "approved", "inputs": {"n": 2}, "by": "al", "at": "t"}
