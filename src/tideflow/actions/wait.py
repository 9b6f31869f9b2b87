"""The ``wait`` action (alias ``ff-waiting``): sleep for a duration without holding a slot."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field, field_validator

from ._paramtypes import PARAMS_CONFIG
from .base import ActionContext

#: Fastflow's grammar for ``waitingTime``
GRAMMAR = r"^[0-9]+(ms|s|m|h|d)$"
_PATTERN = re.compile(GRAMMAR)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in a duration written as Fastflow's ``waitingTime``: ``500ms``, ``30s``, ``5m``,
    ``2h``, ``1d`` (``0s`` too). Raises ``ValueError`` quoting the grammar otherwise."""
    match = _PATTERN.match(text)
    if match is None:
        raise ValueError(
            f"waitingTime {text!r} does not match {GRAMMAR} "
            "(a whole number and a unit, e.g. 500ms, 30s, 5m, 2h, 1d)"
        )
    unit = match.group(1)
    return int(text[: -len(unit)]) * _UNIT_SECONDS[unit]


class WaitParams(BaseModel):
    """Params of :class:`WaitAction`."""

    model_config = PARAMS_CONFIG

    waiting_time: str = Field(alias="waitingTime")

    @field_validator("waiting_time", mode="before")
    @classmethod
    def _check(cls, value: Any) -> Any:
        # a bare number has no unit: report the grammar rather than a type error
        text = str(value) if isinstance(value, int | float) else value
        if isinstance(text, str):
            parse_duration(text)
        return text

    @property
    def seconds(self) -> float:
        return parse_duration(self.waiting_time)


class WaitAction:
    """Waits ``waitingTime``. It holds no execution slot, and its default timeout is its
    duration plus a margin, so a long wait is not cut short by the engine's default."""

    name = "wait"
    params_model = WaitParams
    holds_slot = False

    def default_timeout(self, params: WaitParams) -> float | None:
        return params.seconds * 1.1 + 5.0

    async def run(self, ctx: ActionContext, params: WaitParams) -> None:
        ctx.trace(f"waiting {params.waiting_time}")
        await ctx.sleep(params.seconds)
