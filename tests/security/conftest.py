"""Engines for the security tests: a real store on a fresh SQLite file, built per test."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tideflow import ActionRegistry, Engine, EngineSettings


@pytest.fixture
def make_engine(sqlite_url: str) -> Callable[..., Engine]:
    """Build an engine on this test's SQLite file; the test starts it."""

    def make(registry: ActionRegistry | None = None, **settings: Any) -> Engine:
        settings.setdefault("node_id", "security-node")
        return Engine.from_url(sqlite_url, actions=registry, settings=EngineSettings(**settings))

    return make
