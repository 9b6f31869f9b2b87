"""The two cluster databases the tests run on, as fixture parameters."""

from __future__ import annotations

import pytest

#: ``@pytest.fixture(params=BACKENDS)``: once on PostgreSQL, once on MariaDB
BACKENDS = [pytest.param("postgresql", marks=pytest.mark.postgres),
            pytest.param("mysql", marks=pytest.mark.mysql)]


def backend_url(request: pytest.FixtureRequest) -> str:
    """The test database's URL for the fixture's parameter."""
    url: str = request.getfixturevalue("postgres_url" if request.param == "postgresql"
                                       else "mysql_url")
    return url
