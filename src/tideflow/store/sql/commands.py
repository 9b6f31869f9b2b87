"""The SQL store's command queue and change marker."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from ...errors import StoreError
from ...states import InstanceStatus, TaskStatus
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
            payload=None if command.payload is None else dumps(command.payload),
            created_at=command.created_at,
        )
        async with self._tx("queue a command", write=True) as conn:
            result = await conn.execute(q)
            key = result.inserted_primary_key
            await self._announce(conn)
        if key is None:  # pragma: no cover - every backend reports the new id
            raise StoreError("the database did not return the new command's id")
        return int(key[0])

    def _scope(
        self, instance_ids: Sequence[str] | None, worker: str | None
    ) -> list[sa.ColumnElement[bool]]:
        c, i = self.tables.commands, self.tables.instances
        where: list[sa.ColumnElement[bool]] = []
        if instance_ids is not None:
            where.append(c.c.instance_id.in_(list(instance_ids)))
        if worker is not None:
            where.append(c.c.instance_id.in_(sa.select(i.c.id).where(i.c.worker == worker)))
        return where

    async def claim_commands(
        self, holder: str, instance_ids: Sequence[str] | None = None, *,
        worker: str | None = None,
    ) -> list[CommandRecord]:
        """Claim the queued commands (for the given instances, or those owned by ``worker``,
        or all) that nobody else claimed, and return every command ``holder`` holds there,
        oldest first: a claim whose reply was lost is returned again by the next call.
        Claimed commands stay until :meth:`finish_commands` deletes them."""
        c = self.tables.commands
        if instance_ids is not None and not instance_ids:
            return []
        scope = self._scope(instance_ids, worker)
        async with self._tx("claim commands", write=True) as conn:
            await conn.execute(
                c.update()
                .where(*scope, sa.or_(c.c.claimed_by.is_(None), c.c.claimed_by == holder))
                .values(claimed_by=holder)
            )
            rows = (await conn.execute(
                sa.select(c).where(*scope, c.c.claimed_by == holder).order_by(c.c.id)
            )).all()
        return [
            CommandRecord(
                id=r.id,
                instance_id=r.instance_id,
                kind=r.kind,
                task_ids=loads(r.task_ids),
                created_at=r.created_at,
                payload=loads(r.payload),
            )
            for r in rows
        ]

    async def finish_commands(self, holder: str, command_ids: Sequence[int]) -> None:
        """Delete applied commands that ``holder`` still holds (deleting twice is harmless)."""
        c = self.tables.commands
        ids = list(command_ids)
        if not ids:
            return
        async with self._tx("delete applied commands", write=True) as conn:
            for start in range(0, len(ids), _CHUNK):
                await conn.execute(c.delete().where(
                    c.c.id.in_(ids[start : start + _CHUNK]), c.c.claimed_by == holder))

    async def release_commands(self, instance_ids: Sequence[str] | None = None) -> None:
        """Give the claimed commands of these instances (or all) back to the queue: whoever
        claimed them stopped driving those instances without applying them."""
        c = self.tables.commands
        if instance_ids is not None and not instance_ids:
            return
        async with self._tx("release claimed commands", write=True) as conn:
            await conn.execute(
                c.update()
                .where(*self._scope(instance_ids, None), c.c.claimed_by.is_not(None))
                .values(claimed_by=None)
            )

    async def withdraw_command(self, command_id: int) -> bool:
        """Delete a command nobody claimed yet; False when someone had (it is theirs)."""
        c = self.tables.commands
        async with self._tx("withdraw a command", write=True) as conn:
            done = await conn.execute(
                c.delete().where(c.c.id == command_id, c.c.claimed_by.is_(None)))
        return bool(done.rowcount)

    async def command_pending(self, command_id: int) -> bool:
        """Whether the command is still queued and unclaimed (its instance's owner has not
        taken it yet)."""
        c = self.tables.commands
        async with self._tx("read a queued command") as conn:
            row = (await conn.execute(
                sa.select(c.c.id).where(c.c.id == command_id, c.c.claimed_by.is_(None))
            )).first()
        return row is not None

    async def cancel_unstarted(
        self, instance_id: str, task_ids: Sequence[str] | None, *, worker: str | None,
        now: datetime,
    ) -> bool:
        """Cancel an instance that no process has started (``init`` or ``scheduled``, owned by
        ``worker``, or by nobody), or only the given tasks of it, in one transaction; False
        when it is no longer so (a dispatch got there first). The status check is in the
        statement itself, as in the Dispatcher's assignment: one of them wins."""
        i, t = self.tables.instances, self.tables.tasks
        owner = i.c.worker.is_(None) if worker is None else i.c.worker == worker
        unstarted = [s.value for s in (InstanceStatus.INIT, InstanceStatus.SCHEDULED)]
        stop = [s.value for s in TaskStatus if not s.is_final]
        async with self._tx("cancel an instance not started yet", write=True) as conn:
            mark = i.update().where(i.c.id == instance_id, i.c.status.in_(unstarted), owner)
            if task_ids is None:
                mark = mark.values(status=InstanceStatus.CANCELED.value, reason="canceled",
                                   ended_at=now, updated_at=now)
            else:
                mark = mark.values(updated_at=now)
            if not (await conn.execute(mark)).rowcount:
                return False
            tasks = t.update().where(t.c.instance_id == instance_id, t.c.status.in_(stop))
            if task_ids is not None:
                tasks = tasks.where(t.c.task_id.in_(list(task_ids)))
            await conn.execute(tasks.values(status=TaskStatus.CANCELED.value,
                                             reason="canceled", ended_at=now))
            await self._announce(conn)
        return True

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
