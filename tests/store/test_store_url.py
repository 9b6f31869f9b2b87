"""Database URLs, the store factory, SQLite specifics and error translation."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import pytest
from store_factories import make_dag, make_instance, make_tasks

from tideflow.errors import InputError, MissingDependencyError, StoreError
from tideflow.states import TaskStatus
from tideflow.store.base import Store
from tideflow.store.sql import SqlStore
from tideflow.store.url import make_store, parse_url


@pytest.mark.parametrize(
    ("url", "drivername", "database"),
    [
        ("sqlite:///relative.db", "sqlite+aiosqlite", "relative.db"),
        ("sqlite:////abs/path.db", "sqlite+aiosqlite", "/abs/path.db"),
        ("sqlite:///:memory:", "sqlite+aiosqlite", ":memory:"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite", "x.db"),
        ("mysql://user:pass@host:3306/db", "mysql+asyncmy", "db"),
        ("mariadb://user@host/db", "mysql+asyncmy", "db"),
        ("mysql+asyncmy://user@host/db", "mysql+asyncmy", "db"),
        ("postgresql://user@host:5432/db", "postgresql+asyncpg", "db"),
        ("postgres://user@host/db", "postgresql+asyncpg", "db"),
        ("postgresql+asyncpg://user@host/db", "postgresql+asyncpg", "db"),
    ],
)
def test_urls_map_to_async_drivers(url: str, drivername: str, database: str) -> None:
    parsed = parse_url(url)
    assert parsed.url.drivername == drivername
    assert parsed.url.database == database


def test_mysql_urls_get_utf8mb4() -> None:
    assert parse_url("mysql://u@h/db").url.query["charset"] == "utf8mb4"
    assert parse_url("mysql://u@h/db?charset=utf8").url.query["charset"] == "utf8"


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("", "empty"),
        ("not a url", "cannot be parsed"),
        ("oracle://u@h/db", "unsupported database 'oracle'"),
        ("mysql+pymysql://u@h/db", "not an async driver"),
        ("postgresql+psycopg2://u@h/db", "not an async driver"),
        ("mysql://u@h:3306", "names no database"),
        ("postgresql://u@h:5432/", "names no database"),
        ("sqlite://host/x.db", "has no host"),
        ("mysql://u@h:port/db", "cannot be parsed"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, complaint: str) -> None:
    with pytest.raises(InputError, match=complaint):
        parse_url(url)


def test_messages_hide_passwords() -> None:
    with pytest.raises(InputError) as info:
        parse_url("oracle://scott:tiger@h/db")
    assert "tiger" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "extra"),
    [("mysql://u@h/db", "tideflow[mysql]"), ("postgres://u@h/db", "tideflow[postgres]")],
)
def test_a_missing_driver_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, url: str, extra: str
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("asyncmy", "asyncpg") else real(name, *a),
    )
    with pytest.raises(MissingDependencyError, match=extra.replace("[", r"\[")):
        make_store(url)


async def test_make_store_gives_an_unopened_store(tmp_path: Path) -> None:
    store = make_store(f"sqlite:///{tmp_path}/deep/er/file.db", table_prefix="x_")
    assert isinstance(store, Store)
    assert store.dialect == "sqlite"
    assert not (tmp_path / "deep").exists()  # nothing touched before open()
    await store.open()
    try:
        assert (tmp_path / "deep" / "er" / "file.db").exists()
    finally:
        await store.close()


async def test_relative_sqlite_paths_are_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = make_store("sqlite:///data/tf.db")
    await store.open()
    await store.close()
    assert (tmp_path / "data" / "tf.db").exists()


async def test_sqlite_runs_in_wal_mode(sqlite_url: str) -> None:
    store = SqlStore(sqlite_url)
    await store.open()
    try:
        async with store.engine.connect() as conn:
            mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
            keys = (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar()
            timeout = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar()
        assert (mode, keys, timeout) == ("wal", 1, 10_000)
    finally:
        await store.close()


async def test_in_memory_store_serialises_concurrent_use() -> None:
    store = SqlStore("sqlite:///:memory:")
    await store.open()
    try:
        await store.save_dag(make_dag())
        instances = [make_instance(f"i{n:02d}") for n in range(20)]
        await asyncio.gather(
            *(store.create_instance(i, make_tasks(i.id, ["a", "b"])) for i in instances)
        )
        for i in instances:
            i.tasks = make_tasks(i.id, ["a", "b"])
            i.tasks[0].status = TaskStatus.SUCCESS
        await asyncio.gather(*(store.write([i], i.tasks) for i in instances))
        got = await store.get_instance("i07")
        assert got.tasks[0].status == TaskStatus.SUCCESS
        assert len(await store.list_instances()) == 20
        assert await store.change_marker() == 0
    finally:
        await store.close()


@pytest.mark.parametrize(
    "url", ["mysql://root@127.0.0.1:1/nothing", "postgresql://postgres@127.0.0.1:1/nothing"]
)
async def test_an_unreachable_server_is_a_store_error(url: str) -> None:
    store = make_store(url)
    with pytest.raises(StoreError, match="127.0.0.1") as info:
        await store.open()
    assert type(info.value) is StoreError


async def test_an_unusable_sqlite_path_is_an_input_error(tmp_path: Path) -> None:
    """A path that cannot hold the database is the user's to fix (InputError naming it),
    not a database outage to wait out."""
    (tmp_path / "tf.db").mkdir()  # a directory where the database file should be
    store = make_store(f"sqlite:///{tmp_path / 'tf.db'}")
    with pytest.raises(InputError, match="cannot be opened for writing"):
        await store.open()
