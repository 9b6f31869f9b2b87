"""Database fixtures shared by every test package.

Each test run creates its own database on the shared MariaDB and PostgreSQL servers
(``tf_test_<random>``) and drops it at the end; every test gets it empty. ``db_url`` runs a test
once per backend; ``sqlite_url``, ``mysql_url`` and ``postgres_url`` pick one.

A server that cannot be reached skips its tests, except under CI (the ``CI`` environment
variable set), where it fails them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["scheduling"]

MYSQL_HOST, MYSQL_PORT, MYSQL_USER, MYSQL_PASSWORD = "127.0.0.1", 3306, "root", ""
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
_CONNECT_TIMEOUT = 5


def _unreachable(what: str, exc: BaseException) -> None:
    message = f"{what} is not reachable: {type(exc).__name__}: {exc}"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


# -- MariaDB / MySQL ---------------------------------------------------------------------------
async def _mysql(*statements: str, database: str | None = None) -> list[Any]:
    import asyncmy  # type: ignore[import-untyped,unused-ignore]

    conn = await asyncio.wait_for(
        asyncmy.connect(
            host=MYSQL_HOST,
            port=MYSQL_PORT,
            user=MYSQL_USER,
            password=MYSQL_PASSWORD,
            database=database,
            autocommit=True,
        ),
        _CONNECT_TIMEOUT,
    )
    try:
        results: list[Any] = []
        async with conn.cursor() as cur:
            for sql in statements:
                await cur.execute(sql)
                results.append(await cur.fetchall())
        return results
    finally:
        conn.close()


async def _mysql_wipe(database: str) -> None:
    (rows,) = await _mysql(
        f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{database}'"
    )
    if rows:
        names = ", ".join(f"`{r[0]}`" for r in rows)
        await _mysql("SET FOREIGN_KEY_CHECKS = 0", f"DROP TABLE {names}", database=database)


@pytest.fixture(scope="session")
def mysql_database() -> Iterator[str]:
    """The name of this run's MariaDB database (created now, dropped at the end)."""
    name = f"tf_test_{secrets.token_hex(4)}"
    try:
        asyncio.run(_mysql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    except Exception as exc:  # any failure to reach the server
        _unreachable(f"MariaDB at {MYSQL_HOST}:{MYSQL_PORT}", exc)
    yield name
    asyncio.run(_mysql(f"DROP DATABASE IF EXISTS `{name}`"))


@pytest.fixture
def mysql_url(mysql_database: str) -> Iterator[str]:
    """A URL to this run's MariaDB database, emptied after the test."""
    yield f"mysql://{MYSQL_USER}@{MYSQL_HOST}:{MYSQL_PORT}/{mysql_database}"
    asyncio.run(_mysql_wipe(mysql_database))


# -- PostgreSQL --------------------------------------------------------------------------------
async def _pg(*statements: str, database: str = "postgres") -> None:
    import asyncpg

    conn = await asyncpg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, database=database, timeout=_CONNECT_TIMEOUT
    )
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """The name of this run's PostgreSQL database (created now, dropped at the end)."""
    name = f"tf_test_{secrets.token_hex(4)}"
    try:
        asyncio.run(_pg(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # any failure to reach the server
        _unreachable(f"PostgreSQL at {PG_HOST}:{PG_PORT}", exc)
    yield name
    asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def postgres_url(postgres_database: str) -> Iterator[str]:
    """A URL to this run's PostgreSQL database, emptied after the test."""
    yield f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{postgres_database}"
    asyncio.run(
        _pg("DROP SCHEMA public CASCADE", "CREATE SCHEMA public", database=postgres_database)
    )


# -- SQLite and all three ----------------------------------------------------------------------
@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A URL to a fresh SQLite file."""
    return f"sqlite:///{tmp_path / 'tideflow.db'}"


_URL_FIXTURES = {"sqlite": "sqlite_url", "mysql": "mysql_url", "postgresql": "postgres_url"}


@pytest.fixture(
    params=[
        pytest.param("sqlite"),
        pytest.param("mysql", marks=pytest.mark.mysql),
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ]
)
def db_url(request: pytest.FixtureRequest) -> str:
    """An empty database on each backend in turn: SQLite, MariaDB, PostgreSQL."""
    url: str = request.getfixturevalue(_URL_FIXTURES[request.param])
    return url


# -- etcd ----------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One private etcd for the run (tests/dbservers.py); each test keeps to its own key
    prefix (``etcd_url``). A test that restarts etcd starts its own."""
    from dbservers import PrivateEtcd

    missing = PrivateEtcd.missing_binaries()
    if missing:
        _unreachable("etcd", RuntimeError(missing))
    with PrivateEtcd(tmp_path_factory.mktemp("etcd")) as server:
        yield server


@pytest.fixture
def etcd_url(etcd_server: Any) -> str:
    """A keeper URL on the run's etcd, under a key prefix of this test's own."""
    return f"{etcd_server.url}/t{secrets.token_hex(4)}"
