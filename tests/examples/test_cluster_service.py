"""examples/cluster-service against a real cluster: two ``tideflow server`` workers that load
the example's actions and templates on PostgreSQL, driven through the example's ``workflow``
interface from this process (a watcher), and by its main.py in a subprocess."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from workflow import (
    BadRequest,
    CommandRefused,
    Run,
    RunNotFound,
    RunStatus,
    Workflow,
    consts,
)
from workflow.impl import TideflowWorkflow, connect

from .conftest import EXAMPLE

pytestmark = [pytest.mark.cluster, pytest.mark.postgres]

WORKERS = ("svc-w1", "svc-w2")
TEMPLATES = EXAMPLE / "workflow" / "dag" / "cluster"


class Workers:
    """Two worker processes started the way the example's README says."""

    def __init__(self, db_url: str, tmp: Path) -> None:
        self.db_url = db_url
        self.tmp = tmp
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def env(self, pod_name: str | None = None) -> dict[str, str]:
        env = {**os.environ,
               "PYTHONPATH": os.pathsep.join(p for p in (str(EXAMPLE),
                                                         os.environ.get("PYTHONPATH")) if p)}
        env.pop("POD_NAME", None)
        if pod_name:
            env["POD_NAME"] = pod_name
        return env

    def start(self, name: str) -> None:
        # The node id comes from POD_NAME, as in the StatefulSet of deploy/k8s.
        cmd = [sys.executable, "-m", "tideflow.cli.main", "server", "--role", "worker",
               "--db", self.db_url, "--actions", "workflow.action", "--dags", str(TEMPLATES),
               "--unhealthy-secs", "3", "--heartbeat-secs", "0.5"]
        with open(self.tmp / f"{name}.log", "ab") as out:
            self.procs[name] = subprocess.Popen(
                cmd, cwd=self.tmp, env=self.env(name), stdout=out, stderr=subprocess.STDOUT
            )

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def stop(self) -> dict[str, int | None]:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
                codes[name] = None
        return codes


@pytest.fixture
def workers(postgres_url: str, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(postgres_url, tmp_path)
    for name in WORKERS:
        w.start(name)
    yield w
    codes = w.stop()
    assert codes == dict.fromkeys(WORKERS, 0), (codes, [w.log(n) for n in WORKERS])


@pytest.fixture
async def wf(workers: Workers) -> AsyncIterator[Workflow]:
    flow = await connect(workers.db_url, node_id="svc-test-watcher")
    try:
        await _wait_for_workers(flow)
        yield flow
    finally:
        await flow.close()


async def _wait_for_workers(flow: Workflow) -> None:
    """Runs would wait for the workers anyway; waiting here keeps the timings readable."""
    assert isinstance(flow, TideflowWorkflow)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        nodes = await flow.engine.list_nodes()
        if set(WORKERS) <= {n.node_id for n in nodes if n.alive and n.role == "worker"}:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the workers did not register within 30 s")


def _cluster_vars(name: str, **more: str) -> dict[str, str]:
    return {consts.VAR_CLUSTER_NAME: name, consts.VAR_API_LATENCY_SECS: "0.05", **more}


def _ran_on_its_worker(run: Run) -> None:
    """Every step that ran says so in the run's outputs, done by the worker that owns it (not
    by this process, which only watches)."""
    assert run.worker in WORKERS
    for step in run.steps:
        if step.status == "skipped":
            continue
        op = run.outputs[consts.OUT_OP_PREFIX + step.id]
        assert op.endswith(f"on {run.worker})"), (step.id, op)


async def test_create_then_delete_runs_on_the_workers(workers: Workers, wf: Workflow) -> None:
    created = await wf.run_with_tags(
        consts.DAG_CREATE_CLUSTER, {consts.TAG_CLUSTER: "c1", consts.TAG_TENANT: "t1"},
        _cluster_vars("c1", **{consts.VAR_SIZE: "5"}), wait=30,
    )
    assert created.status == RunStatus.SUCCESS, created
    _ran_on_its_worker(created)
    out = created.outputs
    assert out[consts.OUT_VPC_ID].startswith("vpc-")
    assert out[consts.OUT_CLUSTER_ID].startswith("cls-")
    assert out[consts.OUT_NODE_POOL_ID].startswith("np-")
    assert out[consts.OUT_DNS_NAME] == "c1.eu-west-1.clusters.internal"
    assert out[consts.OUT_ENDPOINT] == f"https://{out[consts.OUT_CLUSTER_ID]}.api.internal:6443"
    assert "created node pool" in out["op.create-node-pool"] and " of 5 in " in (
        out["op.create-node-pool"])
    assert out[consts.OUT_NOTIFIED].startswith("cluster c1 (cls-")
    assert {s.id: s.status for s in created.steps} == {
        **dict.fromkeys(["check-quota", "create-vpc", "create-control-plane", "create-node-pool",
                         "join-node-pool", "register-dns", "notify"], "success"),
        # nothing to undo: the undo steps were not needed
        **dict.fromkeys([consts.STEP_UNDO_PREFIX + s for s in (
            "create-vpc", "create-control-plane", "create-node-pool", "register-dns")],
            "skipped")}
    assert created.compensation is None

    deleted = await wf.run_with_tags(
        consts.DAG_DELETE_CLUSTER, {consts.TAG_CLUSTER: "c1", consts.TAG_TENANT: "t1"},
        {consts.VAR_CLUSTER_NAME: "c1", consts.VAR_NOTIFY: "false",
         **{k: out[k] for k in consts.DELETE_INPUTS}},
        wait=30,
    )
    assert deleted.status == RunStatus.SUCCESS, deleted
    _ran_on_its_worker(deleted)
    ops = deleted.outputs
    assert ops["op.delete-vpc"].startswith(f"deleted vpc {out[consts.OUT_VPC_ID]} ")
    assert ops["op.delete-control-plane"].startswith(
        f"deleted control-plane {out[consts.OUT_CLUSTER_ID]} ")
    assert ops[consts.OUT_SNAPSHOT_ID].startswith("snap-")
    assert deleted.step("notify").status == "skipped"  # the preCheck on notify=false
    assert consts.OUT_NOTIFIED not in ops

    runs = await wf.list_runs(tags={consts.TAG_CLUSTER: "c1"})
    assert [(r.dag_id, r.status) for r in runs] == [
        (consts.DAG_DELETE_CLUSTER, RunStatus.SUCCESS),
        (consts.DAG_CREATE_CLUSTER, RunStatus.SUCCESS),
    ]

    # The same, from the example's main.py as its README runs it.
    await _main_py_creates_and_deletes(workers, wf)


async def _main_py_creates_and_deletes(workers: Workers, wf: Workflow) -> None:
    """The README's command, against the same workers (beside another watcher)."""
    started = time.monotonic()
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "main.py", "--name", "c3", "--tenant", "t3"],
        cwd=EXAMPLE, env={**workers.env(), "TIDEFLOW_DB": workers.db_url},
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "create-cluster" in done.stdout and "delete-cluster" in done.stdout
    assert "runs for cluster c3: delete-cluster=success, create-cluster=success" in done.stdout
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(("create-", "delete-"))]
    assert all(ln.endswith(WORKERS) for ln in lines), lines
    assert time.monotonic() - started < 30
    assert {r.dag_id for r in await wf.list_runs(tags={consts.TAG_CLUSTER: "c3"})} == {
        consts.DAG_CREATE_CLUSTER, consts.DAG_DELETE_CLUSTER}


async def test_retry_cancel_and_list_through_the_interface(wf: Workflow) -> None:
    tags = {consts.TAG_CLUSTER: "c2", consts.TAG_TENANT: "t2"}
    # The control plane fails on its first two attempts: its retry policy allows two, so the
    # run fails, while the independent node-pool branch still finishes.
    flaky = await wf.run_with_tags(
        consts.DAG_CREATE_CLUSTER, tags,
        _cluster_vars("c2", **{consts.VAR_FAIL_FIRST_ATTEMPTS: "2"}), wait=30,
    )
    assert flaky.status == RunStatus.FAILED, flaky
    cp = flaky.step("create-control-plane")
    assert (cp.status, cp.attempts) == ("failed", 2)
    assert "no control-plane capacity" in (cp.reason or "")
    assert flaky.step("create-node-pool").status == "success"
    assert flaky.step("join-node-pool").status == "init"
    # what it created was deleted again, the node pool before the network it sits in
    assert flaky.compensation == "done"
    undo = consts.STEP_UNDO_PREFIX
    assert flaky.step(undo + "create-node-pool").status == "success"
    assert flaky.step(undo + "create-vpc").status == "success"
    assert flaky.step(undo + "create-control-plane").status == "skipped"
    out = flaky.outputs
    assert out[f"op.{undo}create-vpc"].startswith(f"deleted vpc {out[consts.OUT_VPC_ID]} ")
    assert out[f"op.{undo}create-node-pool"].startswith(
        f"deleted node-pool {out[consts.OUT_NODE_POOL_ID]} ")
    # an undone run is not retried (409: start a new run), and a new run succeeds
    with pytest.raises(CommandRefused, match="compensated"):
        await wf.retry(flaky.id)
    again = await wf.run_with_tags(consts.DAG_CREATE_CLUSTER, tags, _cluster_vars("c2"),
                                   wait=30)
    assert again.status == RunStatus.SUCCESS, again
    _ran_on_its_worker(again)

    # A long boot, canceled while it runs.
    slow = await wf.run_with_tags(
        consts.DAG_CREATE_CLUSTER, tags, _cluster_vars("c2", **{consts.VAR_BOOT_SECS: "60"}))
    deadline = time.monotonic() + 20
    while (await wf.get_run(slow.id)).step("create-node-pool").status != "running":
        assert time.monotonic() < deadline, "the node pool never started booting"
        await asyncio.sleep(0.05)
    started = time.monotonic()
    canceled = await wf.cancel(slow.id, wait=10)
    assert canceled.status == RunStatus.CANCELED, canceled
    assert time.monotonic() - started < 5  # the boot was interrupted, not waited out
    assert canceled.step("create-node-pool").status == "canceled"
    assert canceled.step("notify").status in ("init", "canceled")
    with pytest.raises(CommandRefused):
        await wf.cancel(slow.id)

    assert canceled.compensation == "done"  # the network it had created is gone again
    assert canceled.step(consts.STEP_UNDO_PREFIX + "create-vpc").status == "success"

    listed = await wf.list_runs(tags=tags)
    assert [r.id for r in listed] == [slow.id, again.id, flaky.id]
    assert [r.id for r in await wf.list_runs(tags=tags, status=RunStatus.CANCELED)] == [slow.id]
    assert await wf.list_runs(dag_id=consts.DAG_DELETE_CLUSTER) == []
    # listings hold no steps, hence no outputs: a run read on its own has them
    assert listed[1].outputs == {}
    flaky_again = await wf.get_run(flaky.id)
    assert flaky_again.outputs[consts.OUT_VPC_ID].startswith("vpc-")

    with pytest.raises(RunNotFound):
        await wf.get_run("no-such-run")
    with pytest.raises(BadRequest):
        await wf.run(consts.DAG_CREATE_CLUSTER, {"clusterNmae": "typo"})
    # typed inputs: a run that does not fit them is refused, naming the var and the rule
    with pytest.raises(BadRequest, match="run var 'clusterName' is required"):
        await wf.run(consts.DAG_CREATE_CLUSTER, {consts.VAR_SIZE: "3"})
    with pytest.raises(BadRequest, match=r"run var 'size' must be a whole number"):
        await wf.run(consts.DAG_CREATE_CLUSTER, _cluster_vars("c9", **{consts.VAR_SIZE: "many"}))
    with pytest.raises(BadRequest, match=r"run var 'clusterName' must match the pattern"):
        await wf.run(consts.DAG_CREATE_CLUSTER, _cluster_vars("Not A Name"))
    assert await wf.list_runs(tags={consts.TAG_CLUSTER: "c9"}) == []


async def test_worker_killed_while_a_failed_create_is_undone(postgres_url: str,
                                                              tmp_path: Path) -> None:
    """A create fails; while its deletes run, the worker doing them is SIGKILLed: the other
    worker inherits the run and finishes undoing it, each delete once per attempt."""
    w = Workers(postgres_url, tmp_path)
    for name in WORKERS:
        w.start(name)
    try:
        flow = await connect(postgres_url, node_id="svc-kill-watcher")
        try:
            await _wait_for_workers(flow)
            run = await flow.run(consts.DAG_CREATE_CLUSTER, _cluster_vars(
                "c3", **{consts.VAR_FAIL_FIRST_ATTEMPTS: "2",
                         consts.VAR_UNDO_LATENCY_SECS: "3"}))
            undo_vpc = consts.STEP_UNDO_PREFIX + "create-vpc"
            undo_pool = consts.STEP_UNDO_PREFIX + "create-node-pool"
            deadline = time.monotonic() + 60
            while True:
                mid = await flow.get_run(run.id)
                if "running" in (mid.step(undo_pool).status, mid.step(undo_vpc).status):
                    break
                assert time.monotonic() < deadline, mid
                await asyncio.sleep(0.05)
            assert mid.compensation == "running" and mid.status == RunStatus.RUNNING
            victim = mid.worker
            assert victim in WORKERS
            w.procs[victim].send_signal(signal.SIGKILL)
            w.procs[victim].wait(10)
            done = await flow.wait_run(run.id, 120)
            assert done.status == RunStatus.FAILED, done
            assert done.compensation == "done"
            assert done.worker != victim
            for step in (undo_pool, undo_vpc):
                assert done.step(step).status == "success"
                assert done.step(step).attempts <= 2  # the killed attempt, then one more
            assert done.outputs[f"op.{undo_vpc}"].endswith(f"on {done.worker})")
        finally:
            await flow.close()
    finally:
        w.stop()


async def test_a_confirmed_delete_waits_for_a_decision(wf: Workflow) -> None:
    ids = {consts.OUT_CLUSTER_ID: "cls-0001", consts.OUT_VPC_ID: "vpc-0001",
           consts.OUT_NODE_POOL_ID: "np-0001"}
    run = await wf.run(consts.DAG_DELETE_CLUSTER, {
        consts.VAR_CLUSTER_NAME: "c4", consts.VAR_CONFIRM: "true", consts.VAR_NOTIFY: "false",
        consts.VAR_API_LATENCY_SECS: "0.05", **ids}, wait=30)
    assert run.status == RunStatus.BLOCKED, run
    step = consts.STEP_CONFIRM_DELETE
    assert run.step(step).reason == "delete cluster c4 (cls-0001)?"
    with pytest.raises(BadRequest, match="must match the pattern"):
        await wf.approve(run.id, step, {consts.INPUT_TICKET: "please"}, by="ops-lead")
    with pytest.raises(BadRequest, match="'intern' may not decide"):
        await wf.approve(run.id, step, {consts.INPUT_TICKET: "CHG-7"}, by="intern")
    assert (await wf.get_run(run.id)).status == RunStatus.BLOCKED
    done = await wf.approve(run.id, step, {consts.INPUT_TICKET: "CHG-7"},
                            by=consts.APPROVERS[0], wait=30)
    assert done.status == RunStatus.SUCCESS, done
    # the decision is the step's output: who, when, with which ticket
    assert done.outputs["by"] == "ops-lead" and done.outputs["decision"] == "approved"
    assert done.outputs["inputs"] == '{"ticket": "CHG-7"}'
    assert done.outputs["op.delete-vpc"].startswith("deleted vpc vpc-0001 ")

    refused = await wf.run(consts.DAG_DELETE_CLUSTER, {
        consts.VAR_CLUSTER_NAME: "c5", consts.VAR_CONFIRM: "true", **ids}, wait=30)
    rejected = await wf.reject(refused.id, step, "not during the freeze",
                               by=consts.APPROVERS[1], wait=30)
    assert rejected.status == RunStatus.FAILED
    assert rejected.step(step).reason == "rejected by sre-on-call: not during the freeze"
    assert rejected.step("delete-vpc").status == "init"
