"""Private database servers for the outage tests, one per test (each starts in about a second).

``private_postgres`` and ``private_mariadb`` yield a running server from ``tests/dbservers.py``
that the test may stop, restart or kill; it is stopped and deleted afterwards whatever happens.
Without the server binaries the tests skip, except under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbservers import PrivateMariaDB, PrivatePostgres


def _require(missing: str | None) -> None:
    if missing is None:
        return
    if os.environ.get("CI"):
        pytest.fail(missing, pytrace=False)
    pytest.skip(missing)


@pytest.fixture
def private_postgres(tmp_path: Path) -> Iterator[PrivatePostgres]:
    _require(PrivatePostgres.missing_binaries())
    with PrivatePostgres(tmp_path / "pg") as server:
        yield server


@pytest.fixture
def private_mariadb(tmp_path: Path) -> Iterator[PrivateMariaDB]:
    _require(PrivateMariaDB.missing_binaries())
    with PrivateMariaDB(tmp_path / "mariadb") as server:
        yield server
