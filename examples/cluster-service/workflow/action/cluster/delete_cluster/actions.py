"""The steps of ``delete-cluster`` that only it uses."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tideflow import ActionContext, ActionRegistry

from workflow.action import cloud
from workflow.action.params import Params
from workflow.consts import OUT_SNAPSHOT_ID


class SnapshotClusterParams(Params):
    cluster_id: str
    latency_secs: float = 0.1


async def snapshot_cluster(ctx: ActionContext, params: SnapshotClusterParams
                           ) -> dict[str, str]:
    snap = cloud.new_id("snap")
    done = await cloud.call(ctx, f"saved {params.cluster_id}'s state as {snap}",
                            params.latency_secs)
    return {**done, OUT_SNAPSHOT_ID: snap}


class DeleteParams(Params):
    """Every delete step takes the id of what it deletes."""

    id: str
    latency_secs: float = 0.1


Delete = Callable[[ActionContext, DeleteParams], Awaitable[dict[str, str]]]


def _deleter(kind: str) -> Delete:
    async def delete(ctx: ActionContext, params: DeleteParams) -> dict[str, str]:
        # Deleting what is already gone succeeds: a retried or re-run step must not fail on
        # the work its interrupted attempt finished.
        return await cloud.call(ctx, f"deleted {kind} {params.id}", params.latency_secs)

    return delete


def register(registry: ActionRegistry) -> None:
    registry.add_function("snapshot-cluster", snapshot_cluster,
                          params_model=SnapshotClusterParams)
    for kind in ("node-pool", "dns", "control-plane", "vpc"):
        registry.add_function(f"delete-{kind}", _deleter(kind), params_model=DeleteParams)
