"""The chaos run in a size that fits the suite (the full size runs from its own command):
kills and pauses of nodes, the leader's among them, and one restart of a private database
server, with every invariant of the full run checked."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .chaos import Plan, PrivateMariaDB, PrivatePostgres, chaos, faults, private_server

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
    assert report.ok, report.problems
    log: faults.FaultLog = report.faults
    assert log.of("kill"), "no node was killed"
    assert any(p.past_lease and p.leader for p in log.of("pause")), \
        "the leader was not paused past its lease"
    assert len(log.of("db-restart")) == 1, "the database did not restart"
    assert report.mutex is not None and report.mutex.sections >= plan.runs
