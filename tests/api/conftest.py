"""A real API server (uvicorn in a subprocess) for the API tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .harness import ApiServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """One server per test module, on its own SQLite file (tests use their own DAG ids)."""
    tmp: Path = tmp_path_factory.mktemp("api")
    srv = ApiServer(f"sqlite:///{tmp / 'api.db'}", tmp).start()
    yield srv
    srv.stop()


@pytest.fixture
def client(server: ApiServer) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c
