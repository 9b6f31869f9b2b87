"""Fixtures of the cluster tests."""

from __future__ import annotations

import pytest


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.postgres),
                        pytest.param("mysql", marks=pytest.mark.mysql)])
def server_url(request: pytest.FixtureRequest) -> str:
    """A database URL on each server backend (PostgreSQL, then MariaDB)."""
    url: str = request.getfixturevalue(
        "postgres_url" if request.param == "postgresql" else "mysql_url")
    return url
