"""``notify``: tells the owning team that an operation finished (simulated)."""

from __future__ import annotations

from tideflow import ActionContext, ActionRegistry

from workflow.action import cloud
from workflow.action.params import Params
from workflow.consts import OUT_NOTIFIED


class NotifyParams(Params):
    channel: str = "#platform"
    message: str
    latency_secs: float = 0.1


async def notify(ctx: ActionContext, params: NotifyParams) -> dict[str, str]:
    done = await cloud.call(ctx, f"posted to {params.channel}: {params.message}",
                            params.latency_secs)
    return {**done, OUT_NOTIFIED: params.message}


def register(registry: ActionRegistry) -> None:
    registry.add_function("notify", notify, params_model=NotifyParams)
