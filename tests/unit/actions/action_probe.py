"""Helpers for the built-in action tests: a real ActionContext and a parser like the engine's."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from tideflow.actions.base import ActionContext, ActionSpec, ShareData


@dataclass
class Probe:
    """An ActionContext plus what the action did to it."""

    ctx: ActionContext
    traces: list[str] = field(default_factory=list)
    share: dict[str, str] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)

    def trace_text(self) -> str:
        return "\n".join(self.traces)


def make_probe(
    *,
    vars: dict[str, str] | None = None,
    share: dict[str, str] | None = None,
    continued: bool = False,
    task_id: str = "t1",
) -> Probe:
    traces: list[str] = []
    written: list[str] = []
    data = dict(share or {})
    ctx = ActionContext(
        dag_id="dag",
        instance_id="ins-1",
        task_id=task_id,
        attempt=1,
        vars=dict(vars or {}),
        share_data=ShareData(data, written.append),
        cancelled=asyncio.Event(),
        deadline=None,
        continued=continued,
        _trace=lambda message, flush: traces.append(message),
    )
    return Probe(ctx=ctx, traces=traces, share=data, written=written)


def parse(action: Any, raw: dict[str, Any]) -> Any:
    """Validate rendered params the way the engine does."""
    return ActionSpec(action).parse_params(raw)
