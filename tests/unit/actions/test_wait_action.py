"""The wait action and its duration grammar."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from action_probe import Probe, parse
from pydantic import ValidationError

from tideflow.actions.base import ActionSpec
from tideflow.actions.wait import WaitAction, WaitParams, parse_duration


def params(raw: Any) -> WaitParams:
    result: WaitParams = parse(WaitAction(), {"waitingTime": raw})
    return result


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0s", 0.0),
        ("0ms", 0.0),
        ("10ms", 0.01),
        ("1500ms", 1.5),
        ("30s", 30.0),
        ("1m", 60.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("007s", 7.0),
    ],
)
def test_grammar_accepts(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)
    assert params(text).seconds == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["1.5s", "10", 10, "", "s", "-1s", "1 s", " 1s", "1S", "1w", "1m30s", "1sec"]
)
def test_grammar_refuses_and_quotes_it(text: Any) -> None:
    with pytest.raises(ValidationError, match=r"\^\[0-9\]\+\(ms\|s\|m\|h\|d\)\$"):
        params(text)
    if isinstance(text, str):
        with pytest.raises(ValueError, match="does not match"):
            parse_duration(text)


def test_unknown_param_is_refused() -> None:
    with pytest.raises(ValidationError, match="waitTime"):
        parse(WaitAction(), {"waitTime": "1s"})


def test_holds_no_slot_and_times_out_after_its_duration() -> None:
    spec = ActionSpec(WaitAction())
    assert spec.holds_slot is False
    timeout = spec.default_timeout(params("10m"))
    assert timeout is not None and timeout > 600
    assert spec.default_timeout(params("0s")) == pytest.approx(5.0)


async def test_waits_at_least_its_duration(probe: Probe) -> None:
    started = time.monotonic()
    await WaitAction().run(probe.ctx, params("50ms"))
    assert time.monotonic() - started >= 0.05
    assert probe.traces == ["waiting 50ms"]


async def test_zero_wait_returns_at_once(probe: Probe) -> None:
    started = time.monotonic()
    await WaitAction().run(probe.ctx, params("0s"))
    assert time.monotonic() - started < 0.05


async def test_cancellation_is_prompt(probe: Probe) -> None:
    task = asyncio.create_task(WaitAction().run(probe.ctx, params("1h")))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
