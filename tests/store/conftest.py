"""The store under test: a fresh SqlStore on each backend (see ``db_url``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tideflow.store.sql import SqlStore


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SqlStore]:
    s = SqlStore(db_url)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def other_store(db_url: str, store: SqlStore) -> AsyncIterator[SqlStore]:
    """A second store on the same database: another node, or another process on SQLite."""
    s = SqlStore(db_url)
    await s.open()
    try:
        yield s
    finally:
        await s.close()
