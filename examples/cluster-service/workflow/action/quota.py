"""``check-quota``: shared by every template that allocates machines."""

from __future__ import annotations

from tideflow import ActionContext, ActionRegistry

from workflow.action import cloud
from workflow.action.params import Params

#: the largest cluster the (simulated) account may create
MAX_NODES = 50


class CheckQuotaParams(Params):
    region: str
    size: int
    latency_secs: float = 0.1


async def check_quota(ctx: ActionContext, params: CheckQuotaParams) -> dict[str, str]:
    if params.size > MAX_NODES:
        # No retry policy on this step: asking again will not raise the quota.
        raise cloud.CloudError(
            f"quota exceeded in {params.region}: {params.size} nodes asked, "
            f"{MAX_NODES} allowed per cluster"
        )
    return await cloud.call(ctx, f"quota ok for {params.size} nodes in {params.region}",
                            params.latency_secs)


def register(registry: ActionRegistry) -> None:
    registry.add_function("check-quota", check_quota, params_model=CheckQuotaParams)
