"""The SQL store's part of schedules and run limits: cron ticks and active-run counts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from ...errors import ConflictError
from ...states import InstanceStatus
from ..records import InstanceRecord
from .database import Database, utcnow
from .instances import InstanceMethods, insert_new

#: instances that count against maxActiveRuns (those still waiting in `init` do not)
ACTIVE = [
    InstanceStatus.SCHEDULED.value,
    InstanceStatus.RUNNING.value,
    InstanceStatus.PAUSED.value,
    InstanceStatus.BLOCKED.value,
]


class ScheduleMethods(Database):
    async def last_cron_tick(self, dag_id: str) -> datetime | None:
        """The newest tick of ``dag_id`` that fired (or was skipped)."""
        c = self.tables.cron_ticks
        # ORDER BY the typed column (not max()): the value comes back as a UTC datetime
        q = sa.select(c.c.tick).where(c.c.dag_id == dag_id).order_by(c.c.tick.desc()).limit(1)
        async with self._tx("read the last cron tick") as conn:
            row = (await conn.execute(q)).first()
        return None if row is None else row.tick

    async def fire_cron_tick(
        self, dag_id: str, tick: datetime, instance: InstanceRecord | None
    ) -> bool:
        """Record that ``tick`` of ``dag_id`` fired, creating ``instance`` (None: the tick was
        skipped) in the same transaction. False when the tick had fired already: the unique
        key, not timing, decides."""
        t = self.tables
        try:
            async with self._tx(
                f"fire cron tick {tick.isoformat()} of {dag_id!r}",
                write=True,
                conflict="the tick fired already",
            ) as conn:
                await conn.execute(t.cron_ticks.insert().values(
                    dag_id=dag_id, tick=tick, fired_at=utcnow(),
                    instance_id=None if instance is None else instance.id,
                ))
                if instance is not None:
                    await insert_new(conn, t, InstanceMethods._insert_rows([instance]))
        except ConflictError:
            return False
        return True

    async def active_counts(self, dag_ids: Sequence[str]) -> dict[str, int]:
        """Instances of each DAG that count against maxActiveRuns."""
        if not dag_ids:
            return {}
        i = self.tables.instances
        q = (
            sa.select(i.c.dag_id, sa.func.count())
            .where(i.c.dag_id.in_(sorted(set(dag_ids))), i.c.status.in_(ACTIVE))
            .group_by(i.c.dag_id)
        )
        async with self._tx("count active instances") as conn:
            return {r[0]: int(r[1]) for r in await conn.execute(q)}
