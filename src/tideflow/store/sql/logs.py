"""The SQL store's task logs: chunks of lines inserted in batches, read back by cursor."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from ...errors import StoreError
from ..records import LogChunk, LogLineTuple
from .database import Database
from .sqlite_direct import CompiledStatement

#: chunks read per query
_PAGE = 200


class LogMethods(Database):
    """Writing and reading the ``task_logs`` table."""

    _direct_log_insert: CompiledStatement | None = None

    async def write_task_logs(self, chunks: Sequence[LogChunk]) -> None:
        """Insert the chunks in one transaction, in instance order: a writer takes the
        instance rows' key locks (the foreign key) in the same order as the group commit.
        WriteRefusedError when a chunk's instance no longer exists (deleted meanwhile)."""
        if not chunks:
            return
        rows = [
            {
                "instance_id": c.instance_id,
                "task_id": c.task_id,
                "attempt": c.attempt,
                "line_count": len(c.lines),
                # [[time, stream, text, level], ...], the time in Unix microseconds
                "body": json.dumps(c.lines, ensure_ascii=False, separators=(",", ":")),
            }
            for c in sorted(chunks, key=lambda c: c.instance_id)
        ]
        self.check_statement_sizes(rows, "task log", "instance_id")
        if self._direct is not None:
            # SQLite: on the state writes' own connection and thread, one transaction after
            # another, rather than a second writer waiting on the file's lock
            if self._direct_log_insert is None:
                t = self.tables.task_logs
                self._direct_log_insert = CompiledStatement.compile(t.insert().values(
                    {c.name: sa.bindparam(c.name, type_=c.type) for c in t.columns
                     if c.name != "id"}), self.engine.dialect)
            async with self._translating("write task logs"):
                await self._direct.write([(self._direct_log_insert, rows)])
            return
        async with self._tx("write task logs", write=True) as conn:
            await conn.execute(self.tables.task_logs.insert(), rows)

    async def read_task_logs(
        self,
        instance_id: str,
        task_id: str | None = None,
        *,
        attempt: int | None = None,
        after: int | None = None,
        limit: int = _PAGE,
        newest: bool = False,
    ) -> list[LogChunk]:
        """Up to ``limit`` chunks of the instance's log (one task's, one attempt's), oldest
        first after the cursor ``after``; with ``newest`` the last ``limit`` chunks (still
        returned oldest first)."""
        t = self.tables.task_logs
        q = sa.select(t.c.id, t.c.task_id, t.c.attempt, t.c.body).where(
            t.c.instance_id == instance_id)
        if task_id is not None:
            q = q.where(t.c.task_id == task_id)
        if attempt is not None:
            q = q.where(t.c.attempt == attempt)
        if after is not None:
            q = q.where(t.c.id > after)
        q = q.order_by(t.c.id.desc() if newest else t.c.id).limit(limit)
        async with self._tx("read task logs") as conn:
            rows = list((await conn.execute(q)).all())
        if newest:
            rows.reverse()
        return [LogChunk(instance_id, r.task_id, r.attempt, _lines(r.body), r.id) for r in rows]


def _lines(body: str) -> list[LogLineTuple]:
    try:
        raw: Any = json.loads(body)
    except ValueError as exc:  # pragma: no cover - written by the engine only
        raise StoreError(f"a task log row is not JSON: {exc}") from exc
    return [(int(x[0]), str(x[1]), str(x[2]), x[3] if len(x) > 3 else None) for x in raw]
