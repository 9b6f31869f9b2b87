"""The example service's actions and DAG templates, tested the way a service tests its own:
in memory with tideflow.testing, on a clock that skips the simulated cloud's waits."""

from __future__ import annotations

import time

import pytest
from workflow.action import register_actions
from workflow.action.cluster.create_cluster.actions import CreateNodePoolParams, create_node_pool
from workflow.action.quota import check_quota
from workflow.consts import OUT_NODE_POOL_ID

from tideflow import function_action
from tideflow.states import InstanceStatus, TaskStatus
from tideflow.testing import Fake, Kit

from .conftest import EXAMPLE

CREATE = EXAMPLE / "workflow" / "dag" / "cluster" / "create-cluster.yaml"
#: waits a real run of the example would spend: minutes of booting, seconds per API call
SLOW = {"clusterName": "shop", "size": 5, "bootSecs": 900, "apiLatencySecs": 20}


async def test_a_cluster_is_created_in_virtual_time(tideflow_kit: Kit) -> None:
    notify = Fake(returns={"notified": "yes"})
    began = time.monotonic()
    inst = await tideflow_kit.run_dag(CREATE, vars=SLOW, actions=register_actions,
                                      fakes={"notify": notify})
    assert inst.status == InstanceStatus.SUCCESS, [(t.task_id, t.reason) for t in inst.tasks]
    assert time.monotonic() - began < 3
    assert tideflow_kit.clock.skipped >= 900  # the boot alone
    outputs = {t.task_id: t.output for t in inst.tasks}
    assert outputs["create-node-pool"][OUT_NODE_POOL_ID].startswith("np-")
    message = notify.calls[0].params.message
    assert message.startswith("cluster shop (cls-")
    assert message.endswith("is ready at shop.eu-west-1.clusters.internal")


async def test_a_flaky_control_plane_is_retried_then_undone(tideflow_kit: Kit) -> None:
    notify = Fake()
    inst = await tideflow_kit.run_dag(CREATE, vars={**SLOW, "failFirstAttempts": 2},
                                      actions=register_actions, fakes={"notify": notify})
    assert inst.status == InstanceStatus.FAILED
    tasks = {t.task_id: t for t in inst.tasks}
    plane = tasks["create-control-plane"]
    assert plane.attempts == 2
    assert all("no control-plane capacity" in (a.reason or "") for a in plane.attempt_history)
    # what was built is deleted again, and nobody is told the cluster is ready
    assert tasks["compensate:create-vpc"].status == TaskStatus.SUCCESS
    assert tasks["compensate:create-node-pool"].status == TaskStatus.SUCCESS
    assert notify.calls == []


async def test_one_step_with_a_context_and_no_engine(tideflow_kit: Kit) -> None:
    ctx = tideflow_kit.make_context(params={"vpcId": "vpc-1", "size": "4", "bootSecs": "600"},
                                    attempt=2)
    action = function_action("create-node-pool", create_node_pool, CreateNodePoolParams)
    out = await tideflow_kit.run_action(action, ctx)
    assert out[OUT_NODE_POOL_ID].startswith("np-")
    assert "(attempt 2 on " in out["op"]
    assert ctx.traces[0].startswith("booting 4 machines for np-")
    assert tideflow_kit.clock.skipped >= 600


async def test_the_quota_step_refuses_a_cluster_too_big(tideflow_kit: Kit) -> None:
    from workflow.action.cloud import CloudError
    from workflow.action.quota import CheckQuotaParams

    with pytest.raises(CloudError, match="quota exceeded in eu: 51 nodes asked, 50 allowed"):
        await check_quota(tideflow_kit.make_context(), CheckQuotaParams(region="eu", size=51))
