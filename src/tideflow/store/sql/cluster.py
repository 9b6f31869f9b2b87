"""The SQL store's queries for the Dispatcher, the WatchDog and the claim loop."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ...cluster.keeper import LEADER_LEASE
from ...cluster.scheduling import LeaderFence, Pending, SchedulingStore
from ...errors import ConflictError, InputError
from ...states import InstanceStatus
from .database import Database
from .rows import loads

_UNFINISHED = [s.value for s in InstanceStatus if s.is_unfinished]


class ClusterMethods(Database, SchedulingStore):
    def _leader_holds(self, fence: LeaderFence, now: Any) -> sa.Exists:
        le = self.tables.leases
        return sa.exists().where(
            le.c.name == LEADER_LEASE,
            le.c.holder == fence.holder,
            le.c.token == fence.token,
            le.c.expires_at > now,
        )

    async def pending_instances(self, limit: int) -> list[Pending]:
        i = self.tables.instances
        q = (
            sa.select(i.c.id, i.c.dag_id, i.c.dag_version, i.c.priority, i.c.selector,
                      i.c.reason)
            .where(i.c.status == InstanceStatus.INIT.value, i.c.worker.is_(None))
            .order_by(i.c.priority.desc(), i.c.id)
            .limit(limit)
        )
        async with self._tx("read instances waiting for a worker") as conn:
            rows = (await conn.execute(q)).all()
        return [
            Pending(r.id, r.dag_id, r.dag_version, r.priority, loads(r.selector) or {},
                    reason=r.reason)
            for r in rows
        ]

    async def _each(
        self, conn: AsyncConnection, statements: Sequence[sa.Update]
    ) -> list[bool]:
        # one statement per row, in one transaction: every row's outcome is known on every
        # backend (asyncpg reports no row counts for executemany)
        return [bool((await conn.execute(s)).rowcount) for s in statements]

    async def assign(
        self, assignments: Sequence[tuple[str, str]], fence: LeaderFence
    ) -> list[str]:
        if not assignments:
            return []
        i = self.tables.instances
        async with self._tx("assign instances to workers", write=True) as conn:
            now = await self._hooks.db_now(conn)
            done = await self._each(conn, [
                i.update()
                .where(i.c.id == iid, i.c.status == InstanceStatus.INIT.value,
                       i.c.worker.is_(None), self._leader_holds(fence, now))
                .values(worker=worker, epoch=i.c.epoch + 1,
                        status=InstanceStatus.SCHEDULED.value, reason=None, updated_at=now)
                for iid, worker in sorted(assignments)
            ])
        return [iid for (iid, _), ok in zip(sorted(assignments), done, strict=True) if ok]

    async def set_waiting_reason(
        self, reasons: Sequence[tuple[str, str]], fence: LeaderFence
    ) -> None:
        if not reasons:
            return
        i = self.tables.instances
        async with self._tx("record why instances wait", write=True) as conn:
            now = await self._hooks.db_now(conn)
            await self._each(conn, [
                i.update()
                .where(i.c.id == iid, i.c.status == InstanceStatus.INIT.value,
                       self._leader_holds(fence, now))
                .values(reason=reason)
                for iid, reason in sorted(reasons)
            ])

    async def owner_load(self) -> dict[str, int]:
        i = self.tables.instances
        q = (
            sa.select(i.c.worker, sa.func.count())
            .where(i.c.status.in_(_UNFINISHED), i.c.worker.is_not(None))
            .group_by(i.c.worker)
        )
        async with self._tx("count instances per worker") as conn:
            return {r[0]: int(r[1]) for r in await conn.execute(q)}

    async def orphans(self, live_workers: Sequence[str], limit: int) -> list[Pending]:
        i, c = self.tables.instances, self.tables.commands
        owned_elsewhere: sa.ColumnElement[bool] = i.c.worker.is_not(None)
        if live_workers:
            owned_elsewhere = sa.and_(owned_elsewhere, i.c.worker.not_in(list(live_workers)))
        q = (
            sa.select(i.c.id, i.c.dag_id, i.c.dag_version, i.c.priority, i.c.selector,
                      i.c.worker, i.c.epoch)
            .where(
                owned_elsewhere,
                sa.or_(
                    i.c.status.in_(_UNFINISHED),
                    i.c.id.in_(sa.select(c.c.instance_id)),
                ),
            )
            .order_by(i.c.priority.desc(), i.c.id)
            .limit(limit)
        )
        async with self._tx("find the instances of dead workers") as conn:
            rows = (await conn.execute(q)).all()
        return [
            Pending(r.id, r.dag_id, r.dag_version, r.priority, loads(r.selector) or {},
                    worker=r.worker, epoch=r.epoch)
            for r in rows
        ]

    async def move(
        self, moves: Sequence[tuple[Pending, str]], fence: LeaderFence
    ) -> list[str]:
        if not moves:
            return []
        i = self.tables.instances
        ordered = sorted(moves, key=lambda m: m[0].id)
        async with self._tx("move instances to live workers", write=True) as conn:
            now = await self._hooks.db_now(conn)
            done = await self._each(conn, [
                i.update()
                .where(i.c.id == p.id, i.c.worker == p.worker, i.c.epoch == p.epoch,
                       self._leader_holds(fence, now))
                .values(worker=worker, epoch=i.c.epoch + 1, updated_at=now)
                for p, worker in ordered
            ])
            moved = [p.id for (p, _), ok in zip(ordered, done, strict=True) if ok]
            if moved:
                # what the dead owner claimed and did not apply goes to the new one
                c = self.tables.commands
                await conn.execute(c.update().where(c.c.instance_id.in_(moved))
                                   .values(claimed_by=None))
        return [p.id for (p, _), ok in zip(ordered, done, strict=True) if ok]

    async def bump_epochs(self, worker: str) -> int:
        i = self.tables.instances
        async with self._tx("fence the previous incarnation", write=True) as conn:
            done = await conn.execute(
                i.update()
                .where(i.c.worker == worker, i.c.status.in_(_UNFINISHED))
                .values(epoch=i.c.epoch + 1)
            )
        return int(done.rowcount or 0)

    async def owned(self, worker: str) -> dict[str, int]:
        i, c = self.tables.instances, self.tables.commands
        q = sa.select(i.c.id, i.c.epoch).where(
            i.c.worker == worker,
            sa.or_(i.c.status.in_(_UNFINISHED), i.c.id.in_(sa.select(c.c.instance_id))),
        )
        async with self._tx("read this worker's instances") as conn:
            return {r.id: int(r.epoch) for r in await conn.execute(q)}

    async def leader_token(self) -> int:
        le = self.tables.leases
        async with self._tx("read the leader's token") as conn:
            token = (await conn.execute(
                sa.select(le.c.token).where(le.c.name == LEADER_LEASE))).scalar()
        return int(token or 0)

    async def deployment_keeper(self, keeper: str, *, record: bool) -> int | None:
        for _ in range(3):
            try:
                return await self._deployment_keeper(keeper, record)
            except ConflictError:
                continue  # another node recorded it this moment: read theirs
        raise ConflictError("the deployment's Keeper is being recorded concurrently; retry")

    async def _deployment_keeper(self, keeper: str, record: bool) -> int | None:
        le = self.tables.leases
        async with self._tx("record the deployment's Keeper", write=record,
                            conflict="the deployment's Keeper was recorded concurrently") as conn:
            row = (await conn.execute(
                sa.select(le).where(le.c.name == KEEPER_ROW))).first()
            if row is None:
                if not record:
                    return None
                deployment = secrets.randbits(62) + 1
                await conn.execute(le.insert().values(
                    name=KEEPER_ROW, holder=keeper, token=deployment,
                    acquired_at=await self._hooks.db_now(conn), expires_at=None))
                return deployment
        if row.holder != keeper:
            raise InputError(
                f"this database's deployment keeps its membership in {_keeper_text(row.holder)}"
                f", but this node names {_keeper_text(keeper)}: every node and client of a "
                "deployment must name the same Keeper (--keeper / TIDEFLOW_KEEPER)")
        return int(row.token)

    async def fence_leader(self, fence: LeaderFence, ttl_secs: float) -> bool:
        try:
            return await self._fence_leader(fence, ttl_secs)
        except ConflictError:
            return False  # another leader created the row this moment: try again next beat

    async def _fence_leader(self, fence: LeaderFence, ttl_secs: float) -> bool:
        le = self.tables.leases
        async with self._tx("record the leader's fencing token", write=True,
                            conflict="the leader's lease row was created concurrently") as conn:
            # without waiting for the row: a frozen node's open transaction must not stall
            # the new leader (it tries again at its next beat)
            row = (await conn.execute(
                sa.select(le).where(le.c.name == LEADER_LEASE)
                .with_for_update(skip_locked=True))).first()
            now = await self._hooks.db_now(conn)
            if row is None:
                exists = (await conn.execute(
                    sa.select(le.c.name).where(le.c.name == LEADER_LEASE))).first()
                if exists is not None:
                    return False
                if ttl_secs > 0:
                    await conn.execute(le.insert().values(
                        name=LEADER_LEASE, holder=fence.holder, token=fence.token,
                        acquired_at=now, expires_at=now + timedelta(seconds=ttl_secs)))
                return True
            same = row.holder == fence.holder and int(row.token) == fence.token
            if ttl_secs <= 0:
                if same:
                    await conn.execute(le.update().where(le.c.name == LEADER_LEASE)
                                       .values(holder=None, expires_at=None))
                return same
            # a smaller token is a deposed leader's, even when the row expired: tokens only
            # grow (a new etcd's start above the recorded one, see EtcdKeeper._base)
            if not (same or int(row.token) < fence.token):
                return False
            await conn.execute(le.update().where(le.c.name == LEADER_LEASE).values(
                holder=fence.holder, token=fence.token,
                acquired_at=row.acquired_at if same else now,
                expires_at=now + timedelta(seconds=ttl_secs)))
            return True


#: the row of the leases table that records which Keeper the deployment uses (mutexes are
#: ``mutex:<name>``, the leader's lease ``leader``)
KEEPER_ROW = "keeper"


def _keeper_text(keeper: str | None) -> str:
    if keeper is not None and keeper.startswith("etcd:"):
        return f"etcd (path /{keeper[5:]})"
    return "the database (the SQL Keeper: no --keeper)"
