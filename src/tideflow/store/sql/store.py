"""The SQL store: one implementation of :class:`~tideflow.store.base.Store` for SQLite,
MySQL/MariaDB and PostgreSQL, on SQLAlchemy Core's async engine."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ...definition.model import DagDef
from ...errors import ConflictError, InputError, NotFoundError, StoreError, TideflowError
from ...states import DagStatus, InstanceStatus
from ..base import Store
from ..records import CommandRecord, DagRecord, InstanceFilter, InstanceRecord, TaskRecord
from ..url import DatabaseURL, parse_url
from . import migrate
from .dialects import IMMEDIATE, driver_error, hooks_for
from .rows import (
    INSTANCE_STATE_COLUMNS,
    TASK_STATE_COLUMNS,
    dumps,
    instance_from_row,
    instance_row,
    instance_values,
    loads,
    task_from_row,
    task_values,
)
from .schema import Tables, build_tables
from .sqlite_direct import CompiledStatement, SqliteDirect

_FINAL = [s.value for s in InstanceStatus if s.is_final]
#: rows per statement when deleting or reading by a list of ids (far below every
#: backend's bind-parameter limit)
_CHUNK = 1000
#: attempts for a transaction that hit a deadlock or a concurrent insert of the same key
_TRIES = 4


def _now() -> datetime:
    return datetime.now(UTC)


class SqlStore(Store):
    """The store on a SQL database; build it with :func:`tideflow.store.url.make_store`.

    Besides the :class:`Store` primitives it offers :meth:`upgrade`,
    :meth:`current_revision`, :meth:`head_revision` and the :attr:`tables` it works on."""

    def __init__(self, url: DatabaseURL | str, *, table_prefix: str = "tf_") -> None:
        self._url = url if isinstance(url, DatabaseURL) else parse_url(url)
        self.tables: Tables = build_tables(table_prefix)
        self.dialect = self._url.backend
        self._hooks = hooks_for(self._url.backend)
        #: what the database layer may raise (drivers raise some errors unwrapped)
        self._errors: tuple[type[BaseException], ...] = (
            SQLAlchemyError,
            OSError,
            *self._hooks.driver_errors(),
        )
        self._engine: AsyncEngine | None = None
        self._opened = False
        self._direct: SqliteDirect | None = None
        # an in-memory SQLite database is one shared connection: transactions must take turns
        self._serial: asyncio.Lock | None = None
        self._build_statements()

    def _build_statements(self) -> None:
        # built once: SQLAlchemy then finds their compiled form in its cache on every call
        t, i = self.tables.tasks, self.tables.instances
        self._update_tasks = (
            t.update()
            .where(t.c.instance_id == sa.bindparam("k_instance_id"))
            .where(t.c.task_id == sa.bindparam("k_task_id"))
            .values({c: sa.bindparam(c, type_=t.c[c].type) for c in TASK_STATE_COLUMNS})
        )
        self._update_instances = (
            i.update()
            .where(i.c.id == sa.bindparam("k_id"))
            .values({c: sa.bindparam(c, type_=i.c[c].type) for c in INSTANCE_STATE_COLUMNS})
        )

    @property
    def url(self) -> DatabaseURL:
        """The database URL (use ``url.display()`` to show it: it hides the password)."""
        return self._url

    @property
    def engine(self) -> AsyncEngine:
        """The SQLAlchemy engine, for components that share the store's database."""
        if self._engine is None:
            raise StoreError("the store is not open: call `await store.open()` first")
        return self._engine

    # -- lifecycle -------------------------------------------------------------------------
    async def open(self, *, migrate: bool = True) -> None:
        """Connect and check the schema; with ``migrate`` upgrade it first, under a database
        lock (safe when several nodes start at once). Raises SchemaError when the schema is
        missing or older (without ``migrate``) or newer than this version knows."""
        if self._opened:
            return
        try:
            await self._schema(migrate=migrate)
            path = self._url.sqlite_path
            if path is not None and self._hooks.uses_sqlite_direct(self._url.url):
                direct = SqliteDirect(path)
                self._direct = direct
                async with self._translating("open a connection"):
                    await direct.start()
                dialect = self.engine.dialect
                self._direct_tasks = CompiledStatement.compile(self._update_tasks, dialect)
                self._direct_instances = CompiledStatement.compile(self._update_instances, dialect)
            self._opened = True
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close every connection; the store can be opened again."""
        self._opened = False
        direct, self._direct = self._direct, None
        engine, self._engine = self._engine, None
        if direct is not None:
            with contextlib.suppress(Exception):
                await direct.close()
        if engine is not None:
            with contextlib.suppress(Exception):
                await engine.dispose()

    async def upgrade(self) -> str:
        """Bring the schema to the newest revision under the migration lock (for
        ``tideflow db upgrade``); returns that revision. Works on an unopened store."""
        return await self._schema(migrate=True)

    async def current_revision(self) -> str | None:
        """The schema revision recorded in the database (None when there is no schema)."""
        prefix = self.tables.prefix
        async with self._tx("read the schema revision") as conn:
            return await conn.run_sync(migrate.current_revision, prefix)

    @staticmethod
    def head_revision() -> str:
        """The newest schema revision this version of tideflow knows."""
        return migrate.head_revision()

    def _ensure_engine(self) -> AsyncEngine:
        if self._engine is None:
            path = self._url.sqlite_path
            if path is not None and path.parent != path:
                path.parent.mkdir(parents=True, exist_ok=True)
            engine = create_async_engine(self._url.url, **self._hooks.engine_options(self._url.url))
            self._hooks.install(engine)
            self._serial = asyncio.Lock() if self._url.is_memory else None
            self._engine = engine
        return self._engine

    async def _schema(self, *, migrate: bool) -> str:
        engine = self._ensure_engine()
        async with self._translating("prepare the database"):
            await self._hooks.prepare(self._url.url)
        prefix = self.tables.prefix
        lock_name = f"{self._url.url.database}:{prefix}"
        async with self._connect("open the database schema", engine) as conn:
            if not migrate:
                async with conn.begin():
                    return await conn.run_sync(migrate_check, prefix, False)
            async with self._hooks.migration_lock(conn, lock_name):
                async with conn.begin():
                    return await conn.run_sync(migrate_check, prefix, True)

    # -- connections, transactions and error translation -------------------------------------
    @contextlib.asynccontextmanager
    async def _translating(self, action: str, conflict: str | None = None) -> AsyncIterator[None]:
        """Turn driver and SQLAlchemy errors into StoreError (ConflictError for a duplicate
        key when ``conflict`` says what was duplicated)."""
        try:
            yield
        except TideflowError:
            raise
        except self._errors as exc:
            if conflict is not None and self._hooks.is_unique_violation(exc):
                raise ConflictError(conflict) from exc
            err = driver_error(exc)
            text = " ".join(str(err).split())[:500] or type(err).__name__
            raise StoreError(
                f"could not {action} on {self._url.display()}: {type(err).__name__}: {text}"
            ) from exc

    @contextlib.asynccontextmanager
    async def _connect(
        self, action: str, engine: AsyncEngine | None = None, conflict: str | None = None
    ) -> AsyncIterator[AsyncConnection]:
        async with self._translating(action, conflict):
            async with self._serial or contextlib.nullcontext():
                async with (engine or self.engine).connect() as conn:
                    yield conn

    @contextlib.asynccontextmanager
    async def _tx(
        self, action: str, *, write: bool = False, conflict: str | None = None
    ) -> AsyncIterator[AsyncConnection]:
        """One transaction; ``write`` ones take SQLite's write lock at BEGIN."""
        async with self._connect(action, conflict=conflict) as conn:
            if write:
                await conn.execution_options(**{IMMEDIATE: True})
            async with conn.begin():
                yield conn

    def _retryable(self, exc: StoreError) -> bool:
        cause = exc.__cause__
        return cause is not None and (
            self._hooks.is_transient(cause) or self._hooks.is_unique_violation(cause)
        )

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

    # -- DAGs --------------------------------------------------------------------------------
    async def save_dag(self, dag: DagDef) -> DagRecord:
        """Store a new version of ``dag.id``; the DAG's status becomes the definition's."""
        definition = dumps(dag.to_dict())
        for attempt in range(_TRIES):
            try:
                return await self._save_dag(dag, definition)
            except StoreError as exc:
                # two nodes registering the same DAG at once: the loser retries on top
                if attempt + 1 == _TRIES or not self._retryable(exc):
                    raise
        raise AssertionError("unreachable")

    async def _save_dag(self, dag: DagDef, definition: str) -> DagRecord:
        d, v, i = self.tables.dags, self.tables.dag_versions, self.tables.instances
        now = _now()
        async with self._tx(f"save DAG {dag.id!r}", write=True) as conn:
            current = (
                await conn.execute(
                    sa.select(d.c.created_at).where(d.c.id == dag.id).with_for_update()
                )
            ).first()
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
        return DagRecord(dag.id, version, dag, dag.status, created, now)

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
        ).select_from(v.outerjoin(d, d.c.id == v.c.dag_id))

    @staticmethod
    def _dag_from_row(row: Any) -> DagRecord:
        try:
            definition = DagDef.model_validate(loads(row.definition))
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
        return self._dag_from_row(row)

    async def list_dags(self) -> list[DagRecord]:
        """The newest version of every DAG, by id."""
        d, v = self.tables.dags, self.tables.dag_versions
        q = self._dag_select().where(v.c.version == d.c.version).order_by(v.c.dag_id)
        async with self._tx("list DAGs") as conn:
            rows = (await conn.execute(q)).all()
        return [self._dag_from_row(r) for r in rows]

    async def set_dag_status(self, dag_id: str, status: DagStatus) -> None:
        """Set the status of the DAG (all versions); NotFoundError for an unknown id."""
        d = self.tables.dags
        q = d.update().where(d.c.id == dag_id).values(status=status.value, updated_at=_now())
        async with self._tx(f"set the status of DAG {dag_id!r}", write=True) as conn:
            if (await conn.execute(q)).rowcount == 0:
                raise NotFoundError(f"DAG {dag_id!r} not found")

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
            in_use = sa.select(i.c.dag_version).where(unfinished).distinct()
            await conn.execute(
                v.delete().where(v.c.dag_id == dag_id, v.c.version.not_in(in_use.scalar_subquery()))
            )

    # -- instances and tasks -------------------------------------------------------------
    async def create_instance(self, instance: InstanceRecord, tasks: Sequence[TaskRecord]) -> None:
        """Insert the instance, its tags and all its task rows in one transaction; tasks keep
        the order given. ConflictError when the id exists."""
        t = self.tables
        tags = [
            {"instance_id": instance.id, "key": k, "value": v} for k, v in instance.tags.items()
        ]
        task_rows = []
        for seq, task in enumerate(tasks):
            row = task_values(task)
            row.update(instance_id=instance.id, task_id=task.task_id, seq=seq)
            task_rows.append(row)
        async with self._tx(
            f"create instance {instance.id!r}",
            write=True,
            conflict=f"DAG instance {instance.id!r} already exists (or two of its tasks share "
            "an id)",
        ) as conn:
            await conn.execute(t.instances.insert(), instance_row(instance))
            if tags:
                await conn.execute(t.tags.insert(), tags)
            if task_rows:
                # executemany: SQLAlchemy batches these into multi-row INSERTs within the
                # backends' bind-parameter limits
                await conn.execute(t.tasks.insert(), task_rows)

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

    async def write(self, instances: Sequence[InstanceRecord], tasks: Sequence[TaskRecord]) -> None:
        """Write the rows as they are now in one transaction, one executemany UPDATE per
        table (tags are written only by create_instance). NotFoundError, and nothing
        written, when a row does not exist."""
        if not instances and not tasks:
            return
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
        if self._direct is not None:
            # one thread hop for the whole transaction; SQLite waits out other writers itself
            async with self._translating("write instance and task rows"):
                counts = await self._direct.write(
                    [(self._direct_tasks, task_params), (self._direct_instances, instance_params)]
                )
            if counts is not None:
                raise NotFoundError(
                    "cannot write the rows: some of the given instance or task rows do not "
                    "exist (deleted meanwhile?); nothing was written"
                )
            return
        for attempt in range(_TRIES):
            try:
                async with self._tx("write instance and task rows", write=True) as conn:
                    if task_params:
                        result = await conn.execute(self._update_tasks, task_params)
                        self._check_rowcount(conn, result, len(task_params), "task")
                    if instance_params:
                        result = await conn.execute(self._update_instances, instance_params)
                        self._check_rowcount(conn, result, len(instance_params), "instance")
                return
            except StoreError as exc:
                cause = exc.__cause__
                if attempt + 1 == _TRIES or cause is None or not self._hooks.is_transient(cause):
                    raise

    # -- commands ------------------------------------------------------------------------
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
        if key is None:  # pragma: no cover - every backend reports the new id
            raise StoreError("the database did not return the new command's id")
        return int(key[0])

    async def take_commands(self, instance_ids: Sequence[str] | None = None) -> list[CommandRecord]:
        """Remove and return queued commands (for the given instances, or all), oldest first.
        Two takers never receive the same command."""
        c = self.tables.commands
        if instance_ids is not None and not instance_ids:
            return []
        q = sa.select(c).order_by(c.c.id).with_for_update()
        if instance_ids is not None:
            q = q.where(c.c.instance_id.in_(list(instance_ids)))
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


def migrate_check(conn: sa.Connection, prefix: str, upgrade: bool) -> str:
    """Check (and with ``upgrade`` migrate) the schema on a sync connection."""
    return migrate.check_or_upgrade(conn, prefix, upgrade)


def _task_key(t: TaskRecord) -> tuple[str, str]:
    return (t.instance_id, t.task_id)


def _instance_key(i: InstanceRecord) -> str:
    return i.id
