"""SQLite's hot paths on a connection of the ``sqlite3`` module itself.

Through SQLAlchemy and aiosqlite every cursor open, execute, fetch and close is a hop to the
driver's thread and back (about eleven for one group commit); here a whole write transaction
is one hop. The statements are the store's SQLAlchemy statements compiled once for SQLite, so
each query is still written once. The connection also reads ``PRAGMA data_version``, which
then changes for commits of every other connection (the pool's included) but not for this
connection's own group commits.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from ...errors import StoreError
from .dialects import SQLITE_BUSY_TIMEOUT_MS

_T = TypeVar("_T")


@dataclass(frozen=True)
class CompiledStatement:
    """A statement compiled for SQLite, turning a row of named values into its parameters."""

    sql: str
    #: (bind name, type conversion or None) in the order of the statement's placeholders
    binds: tuple[tuple[str, Callable[[Any], Any] | None], ...]

    @classmethod
    def compile(cls, statement: ClauseElement, dialect: Dialect) -> CompiledStatement:
        """Compile ``statement`` for ``dialect`` (a SQLite one: qmark placeholders)."""
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        names = compiled.positiontup or []
        binds = compiled.binds
        return cls(
            str(compiled),
            tuple((n, binds[n].type.dialect_impl(dialect).bind_processor(dialect)) for n in names),
        )

    def parameters(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        """The positional parameters for one row (types converted as SQLAlchemy would)."""
        return tuple([row[n] if p is None else p(row[n]) for n, p in self.binds])


class SqliteDirect:
    """One sqlite3 connection used from one thread of its own."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        """Start the thread and connect."""
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="tideflow-sqlite")
        self._conn = await self._run(self._connect)

    def _connect(self) -> sqlite3.Connection:
        # autocommit at the module level: transactions are begun explicitly below
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        # the same settings as the engine's connections (the file is in WAL mode already)
        conn.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    async def _run(self, fn: Callable[[], _T]) -> _T:
        if self._executor is None:
            raise StoreError("the store is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("the store is not open")
        return self._conn

    async def data_version(self) -> int:
        """``PRAGMA data_version`` on this connection."""

        def read() -> int:
            row = self._connection().execute("PRAGMA data_version").fetchone()
            return int(row[0])

        return await self._run(read)

    async def write(
        self, batches: Sequence[tuple[CompiledStatement, Sequence[Mapping[str, Any]]]]
    ) -> list[int] | None:
        """Run each statement for its rows in one IMMEDIATE transaction and commit. When a
        statement changes fewer rows than it was given, roll back and return the counts."""
        prepared = [(s.sql, [s.parameters(r) for r in rows]) for s, rows in batches if rows]

        def work() -> list[int] | None:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                counts = []
                for sql, params in prepared:
                    counts.append(conn.executemany(sql, params).rowcount)
                if any(c < len(p) for c, (_, p) in zip(counts, prepared, strict=True)):
                    conn.execute("ROLLBACK")
                    return counts
                conn.execute("COMMIT")
                return None
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        return await self._run(work)

    async def close(self) -> None:
        """Close the connection and let the thread end."""
        executor, self._executor = self._executor, None
        conn, self._conn = self._conn, None
        if executor is None:
            return
        try:
            if conn is not None:
                await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        finally:
            executor.shutdown(wait=False)
