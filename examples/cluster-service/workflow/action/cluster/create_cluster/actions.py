"""The steps of ``create-cluster`` that only it uses."""

from __future__ import annotations

from tideflow import ActionContext, ActionRegistry

from workflow.action import cloud
from workflow.action.params import Params
from workflow.consts import (
    OUT_CLUSTER_ID,
    OUT_DNS_NAME,
    OUT_ENDPOINT,
    OUT_NODE_POOL_ID,
    OUT_VPC_ID,
)


class CreateVpcParams(Params):
    cluster_name: str
    region: str
    latency_secs: float = 0.1


async def create_vpc(ctx: ActionContext, params: CreateVpcParams) -> dict[str, str]:
    vpc = cloud.new_id("vpc")
    done = await cloud.call(ctx, f"created {vpc} in {params.region} for {params.cluster_name}",
                            params.latency_secs)
    return {**done, OUT_VPC_ID: vpc}


class CreateControlPlaneParams(Params):
    vpc_id: str
    version: str
    latency_secs: float = 0.1
    fail_first_attempts: int = 0


async def create_control_plane(ctx: ActionContext, params: CreateControlPlaneParams
                               ) -> dict[str, str]:
    if ctx.attempt <= params.fail_first_attempts:
        await ctx.sleep(params.latency_secs)
        raise cloud.CloudError(
            f"no control-plane capacity in the zone (simulated, attempt {ctx.attempt})"
        )
    cluster = cloud.new_id("cls")
    done = await cloud.call(
        ctx, f"created control plane {cluster} v{params.version} in {params.vpc_id}",
        params.latency_secs)
    return {**done, OUT_CLUSTER_ID: cluster,
            OUT_ENDPOINT: f"https://{cluster}.api.internal:6443"}


class CreateNodePoolParams(Params):
    vpc_id: str
    size: int
    latency_secs: float = 0.1
    boot_secs: float = 0.2


async def create_node_pool(ctx: ActionContext, params: CreateNodePoolParams
                           ) -> dict[str, str]:
    pool = cloud.new_id("np")
    ctx.trace(f"booting {params.size} machines for {pool}", flush=True)
    # Booting is the long part: a cancel of the run stops it here.
    await ctx.sleep(params.boot_secs)
    done = await cloud.call(ctx, f"created node pool {pool} of {params.size} in {params.vpc_id}",
                            params.latency_secs)
    return {**done, OUT_NODE_POOL_ID: pool}


class JoinNodePoolParams(Params):
    cluster_id: str
    node_pool_id: str
    latency_secs: float = 0.1


async def join_node_pool(ctx: ActionContext, params: JoinNodePoolParams) -> dict[str, str]:
    return await cloud.call(ctx, f"joined {params.node_pool_id} to {params.cluster_id}",
                     params.latency_secs)


class RegisterDnsParams(Params):
    cluster_name: str
    region: str
    endpoint: str
    latency_secs: float = 0.1


async def register_dns(ctx: ActionContext, params: RegisterDnsParams) -> dict[str, str]:
    name = f"{params.cluster_name}.{params.region}.clusters.internal"
    done = await cloud.call(ctx, f"pointed {name} at {params.endpoint}", params.latency_secs)
    return {**done, OUT_DNS_NAME: name}


def register(registry: ActionRegistry) -> None:
    registry.add_function("create-vpc", create_vpc, params_model=CreateVpcParams)
    registry.add_function("create-control-plane", create_control_plane,
                          params_model=CreateControlPlaneParams)
    registry.add_function("create-node-pool", create_node_pool,
                          params_model=CreateNodePoolParams)
    registry.add_function("join-node-pool", join_node_pool, params_model=JoinNodePoolParams)
    registry.add_function("register-dns", register_dns, params_model=RegisterDnsParams)
