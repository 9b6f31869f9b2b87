"""The few places where SQLite, MySQL/MariaDB and PostgreSQL differ.

Every query is written once in SQLAlchemy Core; what remains per backend is how to connect,
how to recognise a unique violation or a transient conflict, how to hold the migration lock,
and how to notice commits made elsewhere.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import StaticPool

from ...errors import StoreError

#: SQLite waits this long for another writer before giving up with "database is locked"
SQLITE_BUSY_TIMEOUT_MS = 10_000
#: MySQL's GET_LOCK waits this long (seconds) for another node's migration
MIGRATION_LOCK_TIMEOUT_S = 600

#: execution option that makes the next SQLite transaction BEGIN IMMEDIATE
IMMEDIATE = "tideflow_immediate"


def driver_error(exc: BaseException) -> BaseException:
    """The driver's exception inside a SQLAlchemy one (or ``exc`` itself)."""
    orig = getattr(exc, "orig", None)
    return orig if isinstance(orig, BaseException) else exc


def _sqlstate(exc: BaseException) -> str | None:
    err = driver_error(exc)
    for attr in ("sqlstate", "pgcode"):
        code = getattr(err, attr, None)
        if isinstance(code, str):
            return code
    return None


def _mysql_errno(exc: BaseException) -> int | None:
    args = getattr(driver_error(exc), "args", ())
    return args[0] if args and isinstance(args[0], int) else None


#: a pooled connection unused for longer than this is checked before it is handed out
IDLE_PING_SECS = 5.0

#: the server ends a session whose transaction waits this long on its client: a node frozen
#: (SIGSTOP, a VM pause) in the middle of a transaction would otherwise keep its row locks,
#: and with them the leader's lease, for as long as it stays frozen. tideflow's own
#: transactions never wait on the client for more than milliseconds.
IDLE_TRANSACTION_TIMEOUT_SECS = 5


def ping_when_idle(engine: AsyncEngine, idle_secs: float = IDLE_PING_SECS) -> None:
    """Check a pooled connection before use only when it sat idle for ``idle_secs``.

    SQLAlchemy's ``pool_pre_ping`` checks every checkout, which on asyncpg is three round
    trips (BEGIN, a ping, ROLLBACK): it would double an idle node's queries and add to every
    commit's latency. A connection used a moment ago is known good; one that sat idle may
    have been cut (a database restart), and a failed check makes the pool open a fresh one.
    A connection that dies between two close uses fails that one transaction, which the
    callers retry (the pool is then renewed as a whole)."""
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, proxy: Any) -> None:
        # a connection the server closed (a restart) is known closed without a round trip
        is_closed = getattr(getattr(dbapi_conn, "driver_connection", None), "is_closed", None)
        if callable(is_closed) and is_closed():
            raise sa.exc.DisconnectionError("the server closed the connection")
        if time.monotonic() - record.info.get("tideflow_used", 0.0) > idle_secs:
            try:
                dialect.do_ping(dbapi_conn)
            except Exception as exc:
                raise sa.exc.DisconnectionError(f"connection check failed: {exc}") from exc

    @event.listens_for(pool, "checkin")
    def _checkin(dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info["tideflow_used"] = time.monotonic()


class DialectHooks:
    """The behaviour the SQL store needs from one backend."""

    #: "sqlite", "mysql" or "postgresql"
    name: str = ""

    def engine_options(self, url: URL) -> dict[str, Any]:
        """Keyword arguments for ``create_async_engine``."""
        return {}

    def install(self, engine: AsyncEngine) -> None:
        """Attach connection events to a new engine."""

    async def prepare(self, url: URL) -> None:
        """Settings of the database itself, made once before the engine connects."""

    def driver_errors(self) -> tuple[type[BaseException], ...]:
        """Driver exception types that may surface without a SQLAlchemy wrapper."""
        return ()

    def is_unique_violation(self, exc: BaseException) -> bool:
        """Whether ``exc`` is a duplicate key on a primary key or unique index."""
        raise NotImplementedError

    def is_transient(self, exc: BaseException) -> bool:
        """Whether ``exc`` is a deadlock or serialisation failure worth one more try."""
        return False

    def refusal(self, exc: BaseException) -> str | None:
        """When ``exc`` is the database refusing the data itself (too large, text it cannot
        store, a constraint other than a duplicate key), which no retry can change: a note
        naming the limit, else None."""
        return None

    async def statement_limit(self, conn: AsyncConnection) -> int | None:
        """The most bytes one statement may carry, where the server cuts the connection
        instead of answering with an error beyond it (MySQL's max_allowed_packet)."""
        return None

    @asynccontextmanager
    async def migration_lock(self, conn: AsyncConnection, name: str) -> AsyncIterator[None]:
        """Hold the database-wide migration lock ``name`` while the block runs.

        The caller begins and commits its own transaction inside the block, so the lock is
        released only after the new schema is committed."""
        yield

    def uses_sqlite_direct(self, url: URL) -> bool:
        """Whether the hot paths run on a direct ``sqlite3`` connection (SQLite files only;
        see :mod:`.sqlite_direct`)."""
        return False

    async def db_now(self, conn: AsyncConnection) -> datetime:
        """The database server's clock, in UTC: liveness and leases are judged by it."""
        raise NotImplementedError

    async def announce(self, conn: AsyncConnection, channel: str) -> None:
        """Tell the other nodes, when this transaction commits, that something they act on
        changed (a DAG, a queued command). Only PostgreSQL can; elsewhere they poll."""
        return None


class SqliteHooks(DialectHooks):
    name = "sqlite"

    async def db_now(self, conn: AsyncConnection) -> datetime:
        # one file, one machine: the machine's clock is the database's
        return datetime.now(UTC)

    def engine_options(self, url: URL) -> dict[str, Any]:
        if _sqlite_memory(url):
            # one in-memory database exists per connection: all users must share one
            return {"poolclass": StaticPool}
        return {}

    def install(self, engine: AsyncEngine) -> None:
        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy's begin event issue BEGIN itself: the sqlite3 module would
            # otherwise start transactions late (not before SELECT) and never IMMEDIATE.
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            try:
                # per connection; WAL mode is a property of the file, set by prepare()
                cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
                cursor.execute("PRAGMA synchronous = NORMAL")
                cursor.execute("PRAGMA foreign_keys = ON")
            finally:
                cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: sa.Connection) -> None:
            # A deferred transaction that reads and then writes fails at once with
            # SQLITE_BUSY (ignoring busy_timeout) if another connection wrote meanwhile;
            # writers therefore take the write lock up front.
            if conn.get_execution_options().get(IMMEDIATE):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.exec_driver_sql("BEGIN")

    async def prepare(self, url: URL) -> None:
        if not _sqlite_memory(url) and url.database:
            await asyncio.to_thread(_enable_wal, url.database)

    def driver_errors(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.Error,)

    def is_unique_violation(self, exc: BaseException) -> bool:
        err = driver_error(exc)
        # SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE
        if getattr(err, "sqlite_errorcode", None) in (1555, 2067):
            return True
        return "UNIQUE constraint failed" in str(err)

    def refusal(self, exc: BaseException) -> str | None:
        err = driver_error(exc)
        code = getattr(err, "sqlite_errorcode", None)
        if code == sqlite3.SQLITE_TOOBIG or "too big" in str(err):
            return "a value over SQLite's length limit (SQLITE_MAX_LENGTH)"
        if isinstance(err, (sqlite3.DataError, sqlite3.IntegrityError)) and not (
                self.is_unique_violation(exc)):
            return "data SQLite does not accept"
        return None

    @asynccontextmanager
    async def migration_lock(self, conn: AsyncConnection, name: str) -> AsyncIterator[None]:
        # One file has one writer: BEGIN IMMEDIATE on the migration's own transaction is
        # the lock, waiting up to busy_timeout for another process's migration.
        await conn.execution_options(**{IMMEDIATE: True})
        yield

    def uses_sqlite_direct(self, url: URL) -> bool:
        return not _sqlite_memory(url)


class MysqlHooks(DialectHooks):
    name = "mysql"

    async def db_now(self, conn: AsyncConnection) -> datetime:
        value = (await conn.execute(sa.text("SELECT UTC_TIMESTAMP(6)"))).scalar_one()
        return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]

    def engine_options(self, url: URL) -> dict[str, Any]:
        return {
            # a MySQL ping is one cheap round trip (COM_PING), and asyncmy cannot tell
            # without one that the server went away: check every connection handed out
            "pool_pre_ping": True,
            "pool_use_lifo": True,  # see PostgresHooks.engine_options
            # below the server's default wait_timeout, so idle connections are renewed
            "pool_recycle": 3600,
            # the same visibility rules as PostgreSQL, and fewer gap-lock deadlocks
            "isolation_level": "READ COMMITTED",
        }

    def install(self, engine: AsyncEngine) -> None:
        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            try:
                # MariaDB's name for it; MySQL has no such setting and goes without
                cursor.execute(
                    f"SET SESSION idle_transaction_timeout = {IDLE_TRANSACTION_TIMEOUT_SECS}")
            except Exception:
                pass
            finally:
                cursor.close()

    def driver_errors(self) -> tuple[type[BaseException], ...]:
        try:
            from asyncmy import errors  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            return ()
        return (errors.Error,)

    def is_unique_violation(self, exc: BaseException) -> bool:
        return _mysql_errno(exc) == 1062  # ER_DUP_ENTRY

    def is_transient(self, exc: BaseException) -> bool:
        return _mysql_errno(exc) in (1213, 1205)  # deadlock, lock wait timeout

    def refusal(self, exc: BaseException) -> str | None:
        errno = _mysql_errno(exc)
        if errno in _MYSQL_TOO_LARGE:
            return "a value over MySQL/MariaDB's size limits (max_allowed_packet)"
        if errno in _MYSQL_REFUSED:
            return "data MySQL/MariaDB does not accept"
        return None

    async def statement_limit(self, conn: AsyncConnection) -> int | None:
        value = (await conn.execute(sa.text("SELECT @@max_allowed_packet"))).scalar()
        return int(value) if value else None

    @asynccontextmanager
    async def migration_lock(self, conn: AsyncConnection, name: str) -> AsyncIterator[None]:
        # GET_LOCK names are server-wide and at most 64 characters
        key = "tideflow-migrate-" + hashlib.sha1(name.encode()).hexdigest()[:32]
        got = (
            await conn.execute(
                sa.text("SELECT GET_LOCK(:k, :t)"), {"k": key, "t": MIGRATION_LOCK_TIMEOUT_S}
            )
        ).scalar()
        await conn.commit()
        if got != 1:
            raise StoreError(
                f"timed out after {MIGRATION_LOCK_TIMEOUT_S} s waiting for another node's "
                "schema migration; try again"
            )
        quiet = _DropPrimaryKeyNameNote()
        driver_log = logging.getLogger("asyncmy")
        driver_log.addFilter(quiet)
        try:
            yield
        finally:
            driver_log.removeFilter(quiet)
            await conn.execute(sa.text("SELECT RELEASE_LOCK(:k)"), {"k": key})
            await conn.commit()


#: packet too large, data too long, row size too large
_MYSQL_TOO_LARGE = frozenset({1153, 1406, 1118, 1301})
#: incorrect string value, out of range, NULL in a NOT NULL column, foreign key, incorrect
#: datetime, invalid JSON, a CHECK constraint, invalid character string
_MYSQL_REFUSED = frozenset({1366, 1264, 1048, 1452, 1451, 1292, 3140, 4025, 1300})


class _DropPrimaryKeyNameNote(logging.Filter):
    """Alembic names its version table's primary key; MySQL ignores the name and the driver
    logs the server's note as a warning on every first migration. It means nothing here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).endswith("ignored for PRIMARY key.")


class PostgresHooks(DialectHooks):
    name = "postgresql"

    async def db_now(self, conn: AsyncConnection) -> datetime:
        # clock_timestamp(), not now(): now() is frozen at the transaction's start
        value = (await conn.execute(sa.text("SELECT clock_timestamp()"))).scalar_one()
        return value.astimezone(UTC)  # type: ignore[no-any-return]

    async def announce(self, conn: AsyncConnection, channel: str) -> None:
        # delivered at commit, and not at all on rollback
        await conn.execute(sa.text("SELECT pg_notify(:channel, '')"), {"channel": channel})

    def engine_options(self, url: URL) -> dict[str, Any]:
        # the most recently used connection first: a quiet node keeps reusing one known-good
        # connection instead of rotating through the pool (see ping_when_idle)
        return {
            "pool_use_lifo": True,
            "connect_args": {"server_settings": {
                "idle_in_transaction_session_timeout":
                    str(IDLE_TRANSACTION_TIMEOUT_SECS * 1000)}},
        }

    def install(self, engine: AsyncEngine) -> None:
        ping_when_idle(engine)

    def driver_errors(self) -> tuple[type[BaseException], ...]:
        try:
            import asyncpg
        except ImportError:
            return ()
        return (asyncpg.PostgresError, asyncpg.InterfaceError)

    def is_unique_violation(self, exc: BaseException) -> bool:
        return _sqlstate(exc) == "23505"

    def is_transient(self, exc: BaseException) -> bool:
        return _sqlstate(exc) in ("40001", "40P01")

    def refusal(self, exc: BaseException) -> str | None:
        state = _sqlstate(exc) or ""
        if state.startswith("54") or state == "22001":
            return "a value over PostgreSQL's size limits"
        if state.startswith("22") or (state.startswith("23") and state != "23505"):
            return "data PostgreSQL does not accept"
        return None

    @asynccontextmanager
    async def migration_lock(self, conn: AsyncConnection, name: str) -> AsyncIterator[None]:
        # a session lock, so that it outlives the migration's transaction until its commit
        key = int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], "big", signed=True)
        await conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": key})
        await conn.commit()
        try:
            yield
        finally:
            await conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            await conn.commit()


def hooks_for(backend: str) -> DialectHooks:
    """The hooks for ``backend`` ("sqlite", "mysql" or "postgresql")."""
    if backend == "sqlite":
        return SqliteHooks()
    if backend == "mysql":
        return MysqlHooks()
    if backend == "postgresql":
        return PostgresHooks()
    raise ValueError(f"no dialect hooks for {backend!r}")


def _sqlite_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:")


def _enable_wal(path: str) -> None:
    """Put the database file in WAL mode (it stays so). Processes starting together on a new
    file race for this switch, and SQLite reports the loser "locked" at once instead of
    waiting: the loser retries until the file is in WAL mode."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    conn = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        while True:
            try:
                if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
    finally:
        conn.close()
