"""The SQL store's instance and task operations, the group commit among them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ...errors import InputError, NotFoundError, StoreError, WriteRefusedError
from ..records import InstanceFilter, InstanceRecord, TaskRecord
from .database import TRIES, Database
from .rows import (
    INSTANCE_STATE_COLUMNS,
    TASK_STATE_COLUMNS,
    instance_from_row,
    instance_row,
    instance_values,
    task_from_row,
    task_values,
)
from .schema import Tables
from .sqlite_direct import CompiledStatement

#: rows per statement when reading by a list of ids (far below every bind-parameter limit)
_CHUNK = 1000


class InstanceMethods(Database):
    """Instances, their tags and tasks; the group commit."""

    _write_stmts: tuple[sa.Update, sa.Update] | None = None
    _direct_stmts: tuple[CompiledStatement, CompiledStatement] | None = None
    _direct_insert_stmts: (
        tuple[CompiledStatement, CompiledStatement, CompiledStatement] | None
    ) = None

    def _write_statements(self) -> tuple[sa.Update, sa.Update]:
        """The group commit's two UPDATEs (tasks, instances), keyed by bind parameters."""
        # built once: SQLAlchemy then finds their compiled form in its cache on every call
        if self._write_stmts is None:
            t, i = self.tables.tasks, self.tables.instances
            update_tasks = (
                t.update()
                .where(t.c.instance_id == sa.bindparam("k_instance_id"))
                .where(t.c.task_id == sa.bindparam("k_task_id"))
                .values({c: sa.bindparam(c, type_=t.c[c].type) for c in TASK_STATE_COLUMNS})
            )
            update_instances = (
                i.update()
                .where(i.c.id == sa.bindparam("k_id"))
                .values({c: sa.bindparam(c, type_=i.c[c].type) for c in INSTANCE_STATE_COLUMNS})
            )
            self._write_stmts = (update_tasks, update_instances)
        return self._write_stmts

    def _direct_statements(self) -> tuple[CompiledStatement, CompiledStatement]:
        """The same UPDATEs compiled for SQLite's direct connection."""
        if self._direct_stmts is None:
            dialect = self.engine.dialect
            tasks, instances = self._write_statements()
            self._direct_stmts = (
                CompiledStatement.compile(tasks, dialect),
                CompiledStatement.compile(instances, dialect),
            )
        return self._direct_stmts

    @staticmethod
    def _check_rowcount(
        conn: AsyncConnection, result: sa.CursorResult[Any], expected: int, what: str
    ) -> None:
        dialect = conn.dialect
        sane = (
            dialect.supports_sane_multi_rowcount if expected > 1 else dialect.supports_sane_rowcount
        )
        if sane and 0 <= result.rowcount < expected:
            raise NotFoundError(
                f"cannot write {what} rows: {expected - result.rowcount} of {expected} do not "
                "exist (deleted meanwhile?)"
            )

    @staticmethod
    def _insert_rows(
        instances: Sequence[InstanceRecord],
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        """Rows for new instances (each with its ``tasks``): instances, tags, tasks."""
        inst_rows: list[dict[str, Any]] = []
        tag_rows: list[dict[str, Any]] = []
        task_rows: list[dict[str, Any]] = []
        for instance in instances:
            inst_rows.append(instance_row(instance))
            tag_rows.extend(
                {"instance_id": instance.id, "key": k, "value": v}
                for k, v in instance.tags.items()
            )
            for seq, task in enumerate(instance.tasks):
                row = task_values(task)
                row.update(instance_id=instance.id, task_id=task.task_id, seq=seq)
                task_rows.append(row)
        return inst_rows, tag_rows, task_rows

    def _direct_inserts(self) -> tuple[CompiledStatement, CompiledStatement, CompiledStatement]:
        """INSERTs of new instances, tags and tasks compiled for SQLite's direct connection."""
        if self._direct_insert_stmts is None:
            dialect = self.engine.dialect
            t = self.tables

            def insert(table: sa.Table) -> CompiledStatement:
                stmt = table.insert().values(
                    {c.name: sa.bindparam(c.name, type_=c.type) for c in table.columns
                     if not (c.autoincrement is True and c.primary_key)}
                )
                return CompiledStatement.compile(stmt, dialect)

            self._direct_insert_stmts = (insert(t.instances), insert(t.tags), insert(t.tasks))
        return self._direct_insert_stmts

    async def create_instance(self, instance: InstanceRecord, tasks: Sequence[TaskRecord]) -> None:
        """Insert the instance, its tags and all its task rows in one transaction; tasks keep
        the order given. ConflictError when the id exists."""
        t = self.tables
        if list(instance.tasks) != list(tasks):
            instance = _with_tasks(instance, tasks)
        (inst_row,), tags, task_rows = self._insert_rows([instance])
        self.check_statement_sizes([inst_row], "new instance", "id")
        async with self._tx(
            f"create instance {instance.id!r}",
            write=True,
            conflict=f"DAG instance {instance.id!r} already exists (or two of its tasks share "
            "an id)",
        ) as conn:
            await insert_new(conn, t, ([inst_row], tags, task_rows))

    async def find_by_idempotency_key(self, dag_id: str, key: str) -> str | None:
        """The id of the instance of ``dag_id`` started with ``key``, if any."""
        i = self.tables.instances
        async with self._tx("find an instance by idempotency key") as conn:
            row = (
                await conn.execute(
                    sa.select(i.c.id).where(i.c.dag_id == dag_id, i.c.idempotency_key == key)
                )
            ).first()
        return None if row is None else str(row.id)

    async def get_instance(self, instance_id: str, *, with_tasks: bool = True) -> InstanceRecord:
        """The instance with its tags and (``with_tasks``) its tasks in definition order."""
        t = self.tables
        async with self._tx(f"read instance {instance_id!r}") as conn:
            row = (
                await conn.execute(sa.select(t.instances).where(t.instances.c.id == instance_id))
            ).first()
            if row is None:
                raise NotFoundError(f"DAG instance {instance_id!r} not found")
            tag_rows = await conn.execute(
                sa.select(t.tags.c.key, t.tags.c.value).where(t.tags.c.instance_id == instance_id)
            )
            tags = {r.key: r.value for r in tag_rows}
            tasks: list[TaskRecord] = []
            if with_tasks:
                task_rows = await conn.execute(
                    sa.select(t.tasks)
                    .where(t.tasks.c.instance_id == instance_id)
                    .order_by(t.tasks.c.seq)
                )
                tasks = [task_from_row(r) for r in task_rows]
        return instance_from_row(row, tags, tasks)

    async def get_instances(
        self, instance_ids: Sequence[str], *, with_tasks: bool = True
    ) -> list[InstanceRecord]:
        t = self.tables
        out: list[InstanceRecord] = []
        ids = list(dict.fromkeys(instance_ids))
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            async with self._tx(f"read {len(chunk)} instances") as conn:
                rows = (await conn.execute(
                    sa.select(t.instances).where(t.instances.c.id.in_(chunk)))).all()
                tags: dict[str, dict[str, str]] = {}
                for r in await conn.execute(
                        sa.select(t.tags.c.instance_id, t.tags.c.key, t.tags.c.value)
                        .where(t.tags.c.instance_id.in_(chunk))):
                    tags.setdefault(r.instance_id, {})[r.key] = r.value
                tasks: dict[str, list[TaskRecord]] = {}
                if with_tasks:
                    for r in await conn.execute(
                            sa.select(t.tasks).where(t.tasks.c.instance_id.in_(chunk))
                            .order_by(t.tasks.c.instance_id, t.tasks.c.seq)):
                        tasks.setdefault(r.instance_id, []).append(task_from_row(r))
            out.extend(instance_from_row(row, tags.get(row.id, {}), tasks.get(row.id, []))
                       for row in rows)
        return out

    async def list_instances(
        self,
        filter: InstanceFilter | None = None,
        *,
        limit: int = 100,
        before_id: str | None = None,
    ) -> list[InstanceRecord]:
        """Newest first, with tags, without tasks. Filters are ANDed: every given tag must
        match; ``created_after`` is inclusive and ``created_before`` exclusive."""
        if limit < 1:
            raise InputError(f"limit must be at least 1, not {limit}")
        i, tg = self.tables.instances, self.tables.tags
        q = sa.select(i)
        f = filter or InstanceFilter()
        if f.dag_id is not None:
            q = q.where(i.c.dag_id == f.dag_id)
        if f.statuses is not None:
            q = q.where(i.c.status.in_([s.value for s in f.statuses]))
        if f.worker is not None:
            q = q.where(i.c.worker == f.worker)
        if f.created_after is not None:
            q = q.where(i.c.created_at >= f.created_after)
        if f.created_before is not None:
            q = q.where(i.c.created_at < f.created_before)
        for key, value in (f.tags or {}).items():
            q = q.where(
                sa.exists().where(tg.c.instance_id == i.c.id, tg.c.key == key, tg.c.value == value)
            )
        if before_id is not None:
            q = q.where(i.c.id < before_id)
        q = q.order_by(i.c.id.desc()).limit(limit)
        async with self._tx("list instances") as conn:
            rows = (await conn.execute(q)).all()
            tags: dict[str, dict[str, str]] = {r.id: {} for r in rows}
            ids = list(tags)
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                for tag in await conn.execute(
                    sa.select(tg.c.instance_id, tg.c.key, tg.c.value).where(
                        tg.c.instance_id.in_(chunk)
                    )
                ):
                    tags[tag.instance_id][tag.key] = tag.value
        return [instance_from_row(r, tags[r.id]) for r in rows]

    async def write(
        self,
        instances: Sequence[InstanceRecord],
        tasks: Sequence[TaskRecord],
        *,
        new_instances: Sequence[InstanceRecord] = (),
        owner: str | None = None,
        epochs: Mapping[str, int] | None = None,
    ) -> set[str]:
        """See :meth:`_write_rows`. A write is retried after a lost connection without
        knowing whether it committed; when its new instances turn out to exist already (a
        duplicate key on their ids), that earlier attempt did commit them: they are written
        as updates instead (left out when fenced: their rows then belong to the Dispatcher),
        so the retry neither fails forever nor drops them."""
        try:
            return await self._write_rows(instances, tasks, new_instances=new_instances,
                                          owner=owner, epochs=epochs)
        except StoreError as exc:
            cause = exc.__cause__
            if cause is None or not self._hooks.is_unique_violation(cause):
                raise
            existing = await self._existing_ids([i.id for i in new_instances])
            if not existing:
                # not a lost reply's own earlier insert: writing it again is refused again
                raise WriteRefusedError(f"{exc.message} (a duplicate key)") from exc
        fresh = [i for i in new_instances if i.id not in existing]
        again = [i for i in new_instances if i.id in existing]
        if owner is None:
            instances = [*instances, *again]
            tasks = [*tasks, *(t for i in again for t in i.tasks)]
        return await self._write_rows(instances, tasks, new_instances=fresh, owner=owner,
                                      epochs=epochs)

    async def _existing_ids(self, ids: list[str]) -> set[str]:
        i = self.tables.instances
        found: set[str] = set()
        async with self._tx("read instance ids") as conn:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                rows = await conn.execute(sa.select(i.c.id).where(i.c.id.in_(chunk)))
                found.update(str(r.id) for r in rows)
        return found

    async def _write_rows(
        self,
        instances: Sequence[InstanceRecord],
        tasks: Sequence[TaskRecord],
        *,
        new_instances: Sequence[InstanceRecord] = (),
        owner: str | None = None,
        epochs: Mapping[str, int] | None = None,
    ) -> set[str]:
        """Insert ``new_instances`` (with their tags and tasks), then write the given rows as
        they are now, all in one transaction: one executemany statement per table.
        NotFoundError, and nothing written, when an updated row does not exist.

        With ``owner`` the updates are fenced: the instance rows are locked first, and the
        rows of every instance no longer owned by ``owner`` at its epoch (from ``epochs``, or
        the written instance record) are left out; their ids are returned. On SQLite (one
        executing process per file) nothing is fenced."""
        if not instances and not tasks and not new_instances:
            return set()
        new_inst_rows, new_tag_rows, new_task_rows = self._insert_rows(new_instances)
        # rows in key order: concurrent writers then lock rows in the same order (no deadlock)
        task_params = []
        for task in sorted(tasks, key=_task_key):
            p = task_values(task)
            p["k_instance_id"] = task.instance_id
            p["k_task_id"] = task.task_id
            task_params.append(p)
        instance_params = []
        for inst in sorted(instances, key=_instance_key):
            p = instance_values(inst)
            p["k_id"] = inst.id
            instance_params.append(p)
        for rows, what, key in ((new_inst_rows, "new instance", "id"),
                                (new_task_rows, "new task", "instance_id"),
                                (task_params, "task", "k_instance_id"),
                                (instance_params, "instance", "k_id")):
            self.check_statement_sizes(rows, what, key)
        if self._direct is not None:
            # one thread hop for the whole transaction; SQLite waits out other writers itself
            direct_tasks, direct_instances = self._direct_statements()
            ins_inst, ins_tags, ins_tasks = self._direct_inserts()
            async with self._translating("write instance and task rows"):
                counts = await self._direct.write(
                    [
                        (ins_inst, new_inst_rows),
                        (ins_tags, new_tag_rows),
                        (ins_tasks, new_task_rows),
                        (direct_tasks, task_params),
                        (direct_instances, instance_params),
                    ]
                )
            if counts is not None:
                raise NotFoundError(
                    "cannot write the rows: some of the given instance or task rows do not "
                    "exist (deleted meanwhile?); nothing was written"
                )
            return set()
        update_tasks, update_instances = self._write_statements()
        if (owner is None and not new_instances and self._hooks.name == "postgresql"
                and len(task_params) + len(instance_params) == 1):
            # one row, unfenced (a single node): one statement that commits by itself is one
            # round trip, against three with BEGIN and COMMIT; it is just as durable. This is
            # a chain's every step (W2).
            stmt, what = (update_tasks, "task") if task_params else (update_instances,
                                                                     "instance")
            async with self._connect("write a task or instance row") as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                result = await conn.execute(stmt, (task_params or instance_params)[0])
                self._check_rowcount(conn, result, 1, what)
            return set()
        known_epochs = dict(epochs or {})
        known_epochs.update({i.id: i.epoch for i in instances})
        for attempt in range(TRIES):
            try:
                async with self._tx("write instance and task rows", write=True) as conn:
                    t = self.tables
                    fenced: set[str] = set()
                    if owner is not None:
                        ids = sorted(
                            {p["k_instance_id"] for p in task_params}
                            | {p["k_id"] for p in instance_params}
                        )
                        fenced = await self._fenced(conn, ids, owner, known_epochs)
                        if fenced:
                            task_params = [
                                p for p in task_params if p["k_instance_id"] not in fenced
                            ]
                            instance_params = [
                                p for p in instance_params if p["k_id"] not in fenced
                            ]
                    await insert_new(conn, t, (new_inst_rows, new_tag_rows, new_task_rows))
                    if task_params:
                        result = await conn.execute(update_tasks, task_params)
                        self._check_rowcount(conn, result, len(task_params), "task")
                    if instance_params:
                        result = await conn.execute(update_instances, instance_params)
                        self._check_rowcount(conn, result, len(instance_params), "instance")
                return fenced
            except StoreError as exc:
                cause = exc.__cause__
                if attempt + 1 == TRIES or cause is None or not self._hooks.is_transient(cause):
                    raise
        return set()  # pragma: no cover - the loop returns or raises

    async def _fenced(
        self, conn: AsyncConnection, ids: list[str], owner: str, epochs: dict[str, int]
    ) -> set[str]:
        """Lock the instance rows about to be written and return those ``owner`` no longer
        owns (another worker took them over: a larger epoch)."""
        i = self.tables.instances
        current: dict[str, tuple[str | None, int]] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            rows = await conn.execute(
                sa.select(i.c.id, i.c.worker, i.c.epoch)
                .where(i.c.id.in_(chunk))
                .order_by(i.c.id)
                .with_for_update()
            )
            current.update({r.id: (r.worker, r.epoch) for r in rows})
        fenced = set()
        for iid in ids:
            worker, epoch = current.get(iid, (None, -1))
            if worker != owner or (iid in epochs and epochs[iid] != epoch):
                fenced.add(iid)
        return fenced


def _task_key(t: TaskRecord) -> tuple[str, str]:
    return (t.instance_id, t.task_id)


def _instance_key(i: InstanceRecord) -> str:
    return i.id


async def insert_new(
    conn: AsyncConnection,
    t: Tables,
    rows: tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    """Insert the rows of new instances (instances, tags, tasks: see ``_insert_rows``)."""
    instances, tags, tasks = rows
    if instances:
        await conn.execute(t.instances.insert(), instances)
    if tags:
        await conn.execute(t.tags.insert(), tags)
    if tasks:
        # executemany: SQLAlchemy batches these into multi-row INSERTs within the backends'
        # bind-parameter limits
        await conn.execute(t.tasks.insert(), tasks)


def _with_tasks(instance: InstanceRecord, tasks: Sequence[TaskRecord]) -> InstanceRecord:
    return replace(instance, tasks=list(tasks))
