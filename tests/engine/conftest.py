"""Engines for the engine tests: a real store on a fresh database, built per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tideflow import ActionRegistry, Engine, EngineSettings


@pytest.fixture
def make_engine(sqlite_url: str) -> Callable[..., Engine]:
    """Build an engine on this test's SQLite file (or another URL); the test starts it."""

    def make(url: str | None = None, registry: ActionRegistry | None = None, **settings: Any
             ) -> Engine:
        settings.setdefault("node_id", "test-node")
        return Engine.from_url(url or sqlite_url, actions=registry,
                               settings=EngineSettings(**settings))

    return make


@pytest.fixture
async def engine(make_engine: Callable[..., Engine]) -> AsyncIterator[Engine]:
    async with make_engine() as eng:
        yield eng
