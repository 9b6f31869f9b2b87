"""The SQL store's connection to its database: engine, schema check and migration,
transactions, and the translation of driver errors into tideflow's."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ...errors import (
    ConflictError,
    InputError,
    SchemaError,
    StoreError,
    TideflowError,
    WriteRefusedError,
)
from ...limits import show_bytes
from ..url import DatabaseURL, parse_url
from . import migrate as migrations
from .dialects import IMMEDIATE, driver_error, hooks_for
from .schema import Tables, build_tables
from .sqlite_direct import SqliteDirect

#: attempts for a transaction that hit a deadlock or a concurrent insert of the same key
TRIES = 4


def _prepare_sqlite_file(path: Path) -> None:
    """Create the SQLite file's folder and check that the file can be written: a path that
    cannot be used is the user's to fix (InputError naming it), not a database outage."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise InputError(
            f"the folder of the SQLite database {str(path)!r} cannot be created: "
            f"{exc.filename or path.parent} is not a folder"
        ) from exc
    except OSError as exc:
        raise InputError(
            f"the folder of the SQLite database {str(path)!r} cannot be created: "
            f"{exc.strerror or exc}"
        ) from exc
    try:
        # opening for append creates an empty file (a valid empty database) or leaves it as is
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise InputError(
            f"the SQLite database {str(path)!r} cannot be opened for writing: "
            f"{exc.strerror or exc}"
        ) from exc


def utcnow() -> datetime:
    return datetime.now(UTC)


class Database:
    """Owns the engine of one database and table prefix; the store's parts run their queries
    through :meth:`_tx`."""

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
        #: the most bytes one statement may carry (MySQL's max_allowed_packet), read at open
        self.statement_limit: int | None = None
        # an in-memory SQLite database is one shared connection: transactions must take turns
        self._serial: asyncio.Lock | None = None

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
            async with self._connect("read the database's limits") as conn:
                self.statement_limit = await self._hooks.statement_limit(conn)
            path = self._url.sqlite_path
            if path is not None and self._hooks.uses_sqlite_direct(self._url.url):
                direct = SqliteDirect(path)
                self._direct = direct
                async with self._translating("open a connection"):
                    await direct.start()
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
            return await conn.run_sync(migrations.current_revision, prefix)

    async def check_ready(self) -> None:
        """Raise StoreError when the database is unreachable, SchemaError when its schema is
        not the one this code needs."""
        revision = await self.current_revision()
        head = self.head_revision()
        if revision != head:
            raise SchemaError(
                f"the database schema is at revision {revision or 'none'}, this tideflow needs "
                f"{head}: run `tideflow db upgrade`"
            )

    @staticmethod
    def head_revision() -> str:
        """The newest schema revision this version of tideflow knows."""
        return migrations.head_revision()

    def _ensure_engine(self) -> AsyncEngine:
        if self._engine is None:
            path = self._url.sqlite_path
            if path is not None and path.parent != path:
                _prepare_sqlite_file(path)
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
                    return await conn.run_sync(migrations.check_or_upgrade, prefix, False)
            async with self._hooks.migration_lock(conn, lock_name):
                async with conn.begin():
                    return await conn.run_sync(migrations.check_or_upgrade, prefix, True)

    # -- connections, transactions and error translation -------------------------------------
    @contextlib.asynccontextmanager
    async def _translating(self, action: str, conflict: str | None = None) -> AsyncIterator[None]:
        """Turn driver and SQLAlchemy errors into StoreError (ConflictError for a duplicate
        key when ``conflict`` says what was duplicated)."""
        try:
            yield
        except TideflowError:
            raise
        except UnicodeError as exc:
            # text no UTF-8 column can hold (a lone surrogate): the driver refuses to send it
            raise WriteRefusedError(
                f"could not {action}: the data holds text the database cannot store: {exc}"
            ) from exc
        except self._errors as exc:
            if conflict is not None and self._hooks.is_unique_violation(exc):
                raise ConflictError(conflict) from exc
            err = driver_error(exc)
            text = " ".join(str(err).split())[:500] or type(err).__name__
            refusal = self._hooks.refusal(exc)
            if refusal is not None:
                raise WriteRefusedError(
                    f"could not {action}: the database refused {refusal}: "
                    f"{type(err).__name__}: {text}"
                ) from exc
            raise StoreError(
                f"could not {action} on {self._url.display()}: {type(err).__name__}: {text}"
            ) from exc

    def check_statement_sizes(self, rows: list[dict[str, object]], what: str,
                              key: str) -> None:
        """Raise WriteRefusedError when one of ``rows`` (a statement's parameters each) is
        larger than the database takes in one statement: past that, MySQL/MariaDB cuts the
        connection instead of answering, which would look like an outage and be retried
        forever. ``key`` names the instance id among the parameters."""
        limit = self.statement_limit
        if limit is None:
            return
        for row in rows:
            texts = [v for v in row.values() if isinstance(v, str)]
            size = sum(len(t) for t in texts)
            if size * 2 + 4096 < limit:
                continue  # cannot be over, even with every character escaped
            # as sent: UTF-8, with quotes, backslashes and line breaks escaped
            size = sum(len(t.encode("utf-8", "surrogatepass")) + t.count("\\")
                       + t.count("'") + t.count('"') + t.count("\n") + t.count("\r")
                       + t.count("\x00") for t in texts) + 1024
            if size > limit:
                raise WriteRefusedError(
                    f"the {what} row of instance {row.get(key)} is {show_bytes(size)} as sent, "
                    f"more than the database takes in one statement ({show_bytes(limit)}: "
                    "MySQL/MariaDB's max_allowed_packet)",
                    details={"size": size, "limit": limit, "instance": row.get(key)},
                )

    @contextlib.asynccontextmanager
    async def _connect(
        self, action: str, engine: AsyncEngine | None = None, conflict: str | None = None
    ) -> AsyncIterator[AsyncConnection]:
        async with self._translating(action, conflict):
            async with self._serial or contextlib.nullcontext():
                async with (engine or self.engine).connect() as conn:
                    yield conn

    async def _announce(self, conn: AsyncConnection) -> None:
        """Wake the other nodes when this transaction commits (where the database can)."""
        await self._hooks.announce(conn, f"{self.tables.prefix}events")

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
