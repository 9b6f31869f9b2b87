"""The SQL store's command queue and change marker."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from ...errors import StoreError
from ..records import CommandRecord
from .database import Database
from .rows import dumps, loads

#: commands deleted per statement (far below every bind-parameter limit)
_CHUNK = 1000


class CommandMethods(Database):
    """The command queue and the change marker."""

    async def add_command(self, command: CommandRecord) -> int:
        """Queue a command; returns its id (ids grow: the oldest command has the lowest)."""
        c = self.tables.commands
        q = c.insert().values(
            instance_id=command.instance_id,
            kind=command.kind,
            task_ids=None if command.task_ids is None else dumps(list(command.task_ids)),
            created_at=command.created_at,
        )
        async with self._tx("queue a command", write=True) as conn:
            result = await conn.execute(q)
            key = result.inserted_primary_key
            await self._announce(conn)
        if key is None:  # pragma: no cover - every backend reports the new id
            raise StoreError("the database did not return the new command's id")
        return int(key[0])

    async def take_commands(
        self, instance_ids: Sequence[str] | None = None, *, worker: str | None = None
    ) -> list[CommandRecord]:
        """Remove and return queued commands (for the given instances, or those owned by
        ``worker``, or all), oldest first. Two takers never receive the same command."""
        c, i = self.tables.commands, self.tables.instances
        if instance_ids is not None and not instance_ids:
            return []
        q = sa.select(c).order_by(c.c.id).with_for_update()
        if instance_ids is not None:
            q = q.where(c.c.instance_id.in_(list(instance_ids)))
        if worker is not None:
            q = q.where(c.c.instance_id.in_(sa.select(i.c.id).where(i.c.worker == worker)))
        async with self._tx("take commands", write=True) as conn:
            rows = (await conn.execute(q)).all()
            ids = [r.id for r in rows]
            for start in range(0, len(ids), _CHUNK):
                await conn.execute(c.delete().where(c.c.id.in_(ids[start : start + _CHUNK])))
        return [
            CommandRecord(
                id=r.id,
                instance_id=r.instance_id,
                kind=r.kind,
                task_ids=loads(r.task_ids),
                created_at=r.created_at,
            )
            for r in rows
        ]

    async def command_pending(self, command_id: int) -> bool:
        """Whether the command is still queued (not yet taken by its instance's owner)."""
        c = self.tables.commands
        async with self._tx("read a queued command") as conn:
            row = (await conn.execute(sa.select(c.c.id).where(c.c.id == command_id))).first()
        return row is not None

    async def change_marker(self) -> int:
        """SQLite files: ``PRAGMA data_version``, which changes on every commit by another
        process or by this store's other connections (not by :meth:`write`); elsewhere the
        newest command id. Only a hint to look again."""
        if self._direct is not None:
            async with self._translating("read the change marker"):
                return await self._direct.data_version()
        c = self.tables.commands
        async with self._tx("read the change marker") as conn:
            return int((await conn.execute(sa.select(sa.func.max(c.c.id)))).scalar() or 0)
