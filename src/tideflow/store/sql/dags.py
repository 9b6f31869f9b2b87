"""The SQL store's DAG operations: versions, definitions, status and deletion."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from pydantic import ValidationError

from ...definition.model import DagDef
from ...errors import ConflictError, NotFoundError, StoreError
from ...states import DagStatus, InstanceStatus
from ..records import DagRecord
from .database import TRIES, Database, utcnow
from .rows import dumps, loads

_FINAL = [s.value for s in InstanceStatus if s.is_final]
# Encoding or decoding a definition past these sizes takes long enough (a 20,000-task one:
# a second or two) to stall the event loop, and with it the node's heartbeat: a thread does it.
_LARGE_TASKS = 200
_LARGE_TEXT = 100_000

T = TypeVar("T")


def _encode(dag: DagDef) -> str:
    return dumps(dag.to_dict())


async def _off_loop_if(large: bool, fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(fn, *args) if large else fn(*args)


class DagMethods(Database):
    """DAG versions, definitions, status and deletion."""

    async def save_dag(self, dag: DagDef) -> DagRecord:
        """Store a new version of ``dag.id``; the DAG's status becomes the definition's.

        When the newest version holds this very definition, nothing is stored and that version
        comes back with ``unchanged`` set. The comparison is made under the DAG row's lock (or,
        for a new id, settled by the primary keys: the loser of two first registrations retries
        and finds the winner's row), so nodes registering the same files at once make one
        version between them."""
        definition = await _off_loop_if(len(dag.tasks) > _LARGE_TASKS, _encode, dag)
        for attempt in range(TRIES):
            try:
                return await self._save_dag(dag, definition)
            except StoreError as exc:
                # two nodes registering the same DAG at once: the loser retries on top
                if attempt + 1 == TRIES or not self._retryable(exc):
                    raise
        raise AssertionError("unreachable")

    async def _save_dag(self, dag: DagDef, definition: str) -> DagRecord:
        d, v, i = self.tables.dags, self.tables.dag_versions, self.tables.instances
        now = utcnow()
        async with self._tx(f"save DAG {dag.id!r}", write=True) as conn:
            current = (
                await conn.execute(
                    sa.select(d.c.created_at, d.c.version, d.c.status, d.c.updated_at,
                              d.c.paused)
                    .where(d.c.id == dag.id)
                    .with_for_update()
                )
            ).first()
            if current is not None:
                stored = (
                    await conn.execute(
                        sa.select(v.c.definition).where(
                            v.c.dag_id == dag.id, v.c.version == current.version
                        )
                    )
                ).scalar()
                if stored is not None and _same(stored, definition):
                    return DagRecord(dag.id, current.version, dag, DagStatus(current.status),
                                     current.created_at, current.updated_at, unchanged=True,
                                     paused=bool(current.paused))
            top = (
                await conn.execute(sa.select(sa.func.max(v.c.version)).where(v.c.dag_id == dag.id))
            ).scalar() or 0
            if current is None:
                # a DAG deleted and registered again must not reuse the version numbers its
                # old instances refer to
                used = (
                    await conn.execute(
                        sa.select(sa.func.max(i.c.dag_version)).where(i.c.dag_id == dag.id)
                    )
                ).scalar() or 0
                top = max(top, used)
            version = top + 1
            await conn.execute(
                v.insert().values(
                    dag_id=dag.id,
                    version=version,
                    definition=definition,
                    status=dag.status.value,
                    created_at=now,
                )
            )
            if current is None:
                created = now
                await conn.execute(
                    d.insert().values(
                        id=dag.id,
                        version=version,
                        status=dag.status.value,
                        created_at=now,
                        updated_at=now,
                    )
                )
            else:
                created = current.created_at
                await conn.execute(
                    d.update()
                    .where(d.c.id == dag.id)
                    .values(version=version, status=dag.status.value, updated_at=now)
                )
            await self._announce(conn)
        paused = bool(current is not None and current.paused)
        return DagRecord(dag.id, version, dag, dag.status, created, now, paused=paused)

    def _dag_select(self) -> sa.Select[Any]:
        d, v = self.tables.dags, self.tables.dag_versions
        return sa.select(
            v.c.dag_id,
            v.c.version,
            v.c.definition,
            v.c.status.label("version_status"),
            v.c.created_at.label("version_created_at"),
            d.c.version.label("current_version"),
            d.c.status,
            d.c.created_at,
            d.c.updated_at,
            d.c.paused,
        ).select_from(v.outerjoin(d, d.c.id == v.c.dag_id))

    @staticmethod
    def _dag_from_row(row: Any) -> DagRecord:
        try:
            definition = DagDef.from_document(loads(row.definition))
        except (ValidationError, ValueError) as exc:
            raise StoreError(
                f"the stored definition of DAG {row.dag_id!r} version {row.version} cannot be "
                f"read: {exc}"
            ) from exc
        if row.current_version is None:
            # a version kept after its DAG was deleted, for instances still running on it
            status, created, updated = row.version_status, row.version_created_at, None
        else:
            status, created = row.status, row.created_at
            updated = row.updated_at if row.version == row.current_version else None
        return DagRecord(
            id=row.dag_id,
            version=row.version,
            definition=definition,
            status=DagStatus(status),
            created_at=created,
            updated_at=updated or row.version_created_at,
            paused=bool(row.paused),
        )

    async def get_dag(self, dag_id: str, version: int | None = None) -> DagRecord:
        """The newest version, or the given one. ``created_at`` is when the DAG id was first
        registered; ``updated_at`` its last change (for an older version: when it was saved);
        ``status`` is the DAG's current one."""
        d, v = self.tables.dags, self.tables.dag_versions
        q = self._dag_select().where(v.c.dag_id == dag_id)
        q = q.where(v.c.version == (d.c.version if version is None else version))
        async with self._tx(f"read DAG {dag_id!r}") as conn:
            row = (await conn.execute(q)).first()
        if row is None:
            which = "" if version is None else f" version {version}"
            raise NotFoundError(f"DAG {dag_id!r}{which} not found")
        return await _off_loop_if(len(row.definition) > _LARGE_TEXT, self._dag_from_row, row)

    async def list_dags(self) -> list[DagRecord]:
        """The newest version of every DAG, by id."""
        d, v = self.tables.dags, self.tables.dag_versions
        q = self._dag_select().where(v.c.version == d.c.version).order_by(v.c.dag_id)
        async with self._tx("list DAGs") as conn:
            rows = (await conn.execute(q)).all()
        large = sum(len(r.definition) for r in rows) > _LARGE_TEXT
        return await _off_loop_if(large, lambda: [self._dag_from_row(r) for r in rows])

    async def set_dag_status(self, dag_id: str, status: DagStatus) -> None:
        """Set the status of the DAG (all versions); NotFoundError for an unknown id."""
        d = self.tables.dags
        q = d.update().where(d.c.id == dag_id).values(status=status.value, updated_at=utcnow())
        async with self._tx(f"set the status of DAG {dag_id!r}", write=True) as conn:
            if (await conn.execute(q)).rowcount == 0:
                raise NotFoundError(f"DAG {dag_id!r} not found")
            await self._announce(conn)

    async def set_dag_paused(self, dag_id: str, paused: bool) -> bool:
        """Pause or resume the DAG's schedule (all versions, no new one); True when that
        changed it. Only a change touches ``updated_at``, which the cron trigger counts ticks
        from: resuming fires no tick missed while paused, and resuming a running schedule
        again skips none. NotFoundError for an unknown id."""
        d = self.tables.dags
        q = (d.update().where(d.c.id == dag_id, d.c.paused == (not paused))
             .values(paused=paused, updated_at=utcnow()))
        what = "pause" if paused else "resume"
        async with self._tx(f"{what} the schedule of DAG {dag_id!r}", write=True) as conn:
            if (await conn.execute(q)).rowcount:
                await self._announce(conn)
                return True
            found = (await conn.execute(sa.select(d.c.id).where(d.c.id == dag_id))).first()
        if found is None:
            raise NotFoundError(f"DAG {dag_id!r} not found")
        return False

    async def delete_dag(self, dag_id: str, *, force: bool = False) -> None:
        """Delete the DAG. Refused (ConflictError) while it has unfinished instances unless
        ``force``; forced, the versions those instances run on are kept until they end, so
        they can finish. Instances are history and stay."""
        d, v, i = self.tables.dags, self.tables.dag_versions, self.tables.instances
        unfinished = sa.and_(i.c.dag_id == dag_id, i.c.status.not_in(_FINAL))
        async with self._tx(f"delete DAG {dag_id!r}", write=True) as conn:
            found = (
                await conn.execute(sa.select(d.c.id).where(d.c.id == dag_id).with_for_update())
            ).first()
            if found is None:
                raise NotFoundError(f"DAG {dag_id!r} not found")
            count = (
                await conn.execute(sa.select(sa.func.count()).select_from(i).where(unfinished))
            ).scalar_one()
            if count and not force:
                raise ConflictError(
                    f"DAG {dag_id!r} has {count} unfinished instance(s); let them end or cancel "
                    "them first, or delete with force",
                    details={"unfinished": count},
                )
            await conn.execute(d.delete().where(d.c.id == dag_id))
            await self._announce(conn)
            in_use = sa.select(i.c.dag_version).where(unfinished).distinct()
            await conn.execute(
                v.delete().where(v.c.dag_id == dag_id, v.c.version.not_in(in_use.scalar_subquery()))
            )


def _same(stored: str, definition: str) -> bool:
    """Whether a stored definition is ``definition`` (the text, or an older text of it)."""
    if stored == definition:
        return True
    try:
        return bool(loads(stored) == loads(definition))
    except ValueError:
        return False
