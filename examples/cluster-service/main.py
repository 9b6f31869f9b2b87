"""Business code: create a cluster, then delete it, through the workflow interface.

    TIDEFLOW_DB=postgresql://tideflow@db:5432/tideflow python main.py --name demo

The functions below see only ``workflow.Workflow`` and ``workflow.consts``; ``main`` is the one
place that picks the implementation (a tideflow watcher: the cluster's workers do the work)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from workflow import Run, RunStatus, Workflow, WorkflowError, consts
from workflow.impl import connect

#: how long the business code waits for one operation before reporting it as still running
OPERATION_TIMEOUT_SECS = 300.0


class OperationFailed(Exception):
    def __init__(self, what: str, run: Run) -> None:
        failed = [f"{s.id}: {s.reason}" for s in run.steps if s.status == "failed"]
        super().__init__(f"{what} ended {run.status} (run {run.id}): "
                         + ("; ".join(failed) or run.reason or "no reason recorded"))
        self.run = run


async def create_cluster(
    wf: Workflow, name: str, *, tenant: str, region: str, size: int
) -> Run:
    """Create a cluster and return the finished run; its outputs hold the new resources."""
    run = await wf.run_with_tags(
        consts.DAG_CREATE_CLUSTER,
        tags={consts.TAG_CLUSTER: name, consts.TAG_TENANT: tenant},
        vars={consts.VAR_CLUSTER_NAME: name, consts.VAR_REGION: region,
              consts.VAR_SIZE: str(size)},
        wait=OPERATION_TIMEOUT_SECS,
    )
    if not run.succeeded:
        raise OperationFailed(f"creating cluster {name}", run)
    return run


async def delete_cluster(wf: Workflow, created: Run, *, tenant: str) -> Run:
    """Delete the cluster a successful create run made."""
    name = created.vars[consts.VAR_CLUSTER_NAME]
    inputs = {key: created.outputs[key] for key in consts.DELETE_INPUTS}
    run = await wf.run_with_tags(
        consts.DAG_DELETE_CLUSTER,
        tags={consts.TAG_CLUSTER: name, consts.TAG_TENANT: tenant},
        vars={consts.VAR_CLUSTER_NAME: name, **inputs},
        wait=OPERATION_TIMEOUT_SECS,
    )
    if not run.succeeded:
        raise OperationFailed(f"deleting cluster {name}", run)
    return run


def _print_run(run: Run) -> None:
    print(f"{run.dag_id} {run.id}: {run.status} on {run.worker}")
    for step in run.steps:
        did = run.outputs.get(consts.OUT_OP_PREFIX + step.id, "")
        print(f"  {step.id:<22} {step.status:<8} {did}")


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=os.environ.get("TIDEFLOW_DB"),
                        help="database URL (default: $TIDEFLOW_DB)")
    parser.add_argument("--role", choices=["watcher", "worker"], default="watcher",
                        help="watcher: the cluster's workers execute (default); worker: this "
                             "process executes too")
    parser.add_argument("--name", default="demo", help="the cluster to create and delete")
    parser.add_argument("--tenant", default="team-a")
    parser.add_argument("--region", default="eu-west-1")
    parser.add_argument("--size", type=int, default=3)
    args = parser.parse_args(argv)
    if not args.db:
        parser.error("give --db URL or set TIDEFLOW_DB")

    wf = await connect(args.db, role=args.role)
    try:
        created = await create_cluster(wf, args.name, tenant=args.tenant,
                                       region=args.region, size=args.size)
        _print_run(created)
        deleted = await delete_cluster(wf, created, tenant=args.tenant)
        _print_run(deleted)
        history = await wf.list_runs(tags={consts.TAG_CLUSTER: args.name,
                                           consts.TAG_TENANT: args.tenant})
        print(f"runs for cluster {args.name}: "
              + ", ".join(f"{r.dag_id}={r.status}" for r in history))
        return 0 if all(r.status == RunStatus.SUCCESS for r in (created, deleted)) else 1
    except (WorkflowError, OperationFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        await wf.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
