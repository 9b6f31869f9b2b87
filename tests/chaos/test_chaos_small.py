"""The chaos run in a size that fits the suite (the full size runs from its own command):
kills and pauses of nodes, the leader's among them, and one restart of a private database
server, with every invariant of the full run checked."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .chaos import (
    Plan,
    PrivateEtcd,
    PrivateMariaDB,
    PrivatePostgres,
    Report,
    chaos,
    faults,
    private_server,
)

pytestmark = pytest.mark.cluster


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.postgres),
                        pytest.param("mysql", marks=pytest.mark.mysql)])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Any, str]]:
    """(backend, its private server, a database URL on it)."""
    backend: str = request.param
    missing = (PrivatePostgres if backend == "postgresql" else PrivateMariaDB).missing_binaries()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing, pytrace=False)
        pytest.skip(missing)
    with private_server(backend, tmp_path / "db") as (srv, url):
        yield backend, srv, url


async def test_chaos_small(server: tuple[str, Any, str], tmp_path: Path) -> None:
    backend, srv, url = server
    plan = Plan(runs=150, fault_every=2.0, max_secs=90, seed=3, submit_secs=8.0,
                db_restart_at=5.0)
    report = await chaos(url, tmp_path, plan, srv, backend)
    _passed_with_every_fault(report, plan, restart="db-restart")


def _passed_with_every_fault(report: Report, plan: Plan, *, restart: str) -> None:
    """Every invariant held, and the run had what it was meant to: a kill, the leader paused
    past its lease, one ``restart`` (of the database or of etcd), the mutex sections."""
    assert report.ok, report.problems
    log: faults.FaultLog = report.faults
    assert log.of("kill"), "no node was killed"
    assert any(p.past_lease and p.leader for p in log.of("pause")), \
        "the leader was not paused past its lease"
    assert len(log.of(restart)) == 1, f"no {restart}"
    assert report.mutex is not None and report.mutex.sections >= plan.runs


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[PrivateEtcd]:
    missing = PrivateEtcd.missing_binaries()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing, pytrace=False)
        pytest.skip(missing)
    with PrivateEtcd(tmp_path / "etcd") as server:
        yield server


async def test_chaos_small_on_etcd(server: tuple[str, Any, str], etcd: PrivateEtcd,
                                   tmp_path: Path) -> None:
    """The same invariants with the etcd Keeper: kills, pauses (the leader's past its lease)
    and etcd crashing and starting again, down longer than the lease."""
    backend, srv, url = server
    plan = Plan(runs=100, fault_every=2.0, max_secs=90, seed=4, submit_secs=10.0,
                db_restart_at=None, etcd_restart_at=6.0, etcd_down_secs=4.0)
    report = await chaos(url, tmp_path, plan, srv, backend, etcd)
    _passed_with_every_fault(report, plan, restart="etcd-restart")


@pytest.fixture
def cpu_hog() -> Iterator[None]:
    """Every core busy several times over (stress-ng), for as long as the test runs."""
    if shutil.which("stress-ng") is None:
        why = "stress-ng is not installed (apt-get install stress-ng)"
        if os.environ.get("CI"):
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    hogs = 2 * (os.cpu_count() or 2)
    proc = subprocess.Popen(["stress-ng", "--cpu", str(hogs), "--timeout", "300s", "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.mark.alone
async def test_chaos_small_next_to_a_cpu_hog(server: tuple[str, Any, str], tmp_path: Path,
                                             cpu_hog: None) -> None:
    """The same faults on a machine whose CPUs are all taken twice over: no node exits by
    itself, every run ends `success`, and leadership changes only when a fault hits the
    leader."""
    backend, srv, url = server
    plan = Plan(runs=60, fault_every=3.0, max_secs=180, seed=5, submit_secs=8.0,
                db_restart_at=5.0)
    report = await chaos(url, tmp_path, plan, srv, backend)
    tokens = sorted({t for _, _, t in report.leader_samples})
    changes = max(0, len(tokens) - 1)
    log: faults.FaultLog = report.faults
    on_leader = [f for f in log.faults if f.leader and f.kind in ("kill", "pause")]
    print(f"{backend}: {changes} leader change(s) in {report.wall_secs:.0f}s, "
          f"{len(on_leader)} fault(s) on the leader, {len(log.faults)} in all; "
          f"{report.succeeded} of {report.runs} runs succeeded")
    assert report.ok, report.problems
    # each fault on the leader may move leadership once, the database restart once more
    assert changes <= len(on_leader) + 2, (tokens, [f.describe(report.t0) for f in log.faults])
