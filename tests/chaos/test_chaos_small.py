"""The chaos run in a size that fits the suite (the full size runs from its own command)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .chaos import chaos

pytestmark = pytest.mark.cluster


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.postgres),
                        pytest.param("mysql", marks=pytest.mark.mysql)])
def server_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(
        "postgres_url" if request.param == "postgresql" else "mysql_url")
    return url


async def test_chaos_small(server_url: str, tmp_path: Path) -> None:
    report = await chaos(server_url, tmp_path, runs=150, kill_every=2.0, max_secs=120, seed=3,
                         submit_secs=8.0)
    assert report.ok, report.problems
    assert report.kills, "no node was killed"
