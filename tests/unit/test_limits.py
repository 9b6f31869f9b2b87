"""The size limits and the text cleaning every write goes through, and how each backend's
refusals are told from outages."""

from __future__ import annotations

import sqlite3

import pytest

from tideflow import InputError, LimitError
from tideflow.limits import Limits, clean_text, cut_text, show_bytes
from tideflow.store.sql.dialects import MysqlHooks, PostgresHooks, SqliteHooks


def test_values_over_the_limit_name_it() -> None:
    limits = Limits(max_value_bytes=4096)
    assert limits.check_value("v", "x" * 4096) == 4096
    with pytest.raises(LimitError, match=r"share-data value 'k' is 4\.0 KiB.*max_value_bytes"):
        limits.check_share_data("k", {"k": "é" * 2049})  # 4098 bytes in UTF-8
    with pytest.raises(LimitError, match="max_value_bytes"):
        limits.check_value("output", {"a": "x" * 5000})
    with pytest.raises(InputError, match="max_trace_bytes"):
        Limits(max_trace_bytes=10)


def test_text_is_cut_and_cleaned() -> None:
    assert cut_text("abc", 10) == "abc"
    cut = cut_text("é" * 10_000, 2000)
    assert len(cut.encode()) <= 2000 and cut.endswith("more bytes]")
    assert clean_text("a\x00b\ud800c") == "a\\x00b\ufffdc"
    assert show_bytes(1024 * 1024) == "1 MiB" and show_bytes(1536) == "1.5 KiB"


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__("pg")
        self.sqlstate = sqlstate


class _MyError(Exception):
    pass


@pytest.mark.parametrize(("state", "refused"), [
    ("54000", True), ("22021", True), ("22P05", True), ("23502", True),
    ("23505", False), ("40001", False), ("08006", False), ("57P01", False)])
def test_postgres_refusals(state: str, refused: bool) -> None:
    assert (PostgresHooks().refusal(_PgError(state)) is not None) is refused


@pytest.mark.parametrize(("errno", "refused"), [
    (1153, True), (1406, True), (1366, True), (1062, False), (2013, False), (2006, False),
    (1213, False)])
def test_mysql_refusals(errno: int, refused: bool) -> None:
    assert (MysqlHooks().refusal(_MyError(errno, "x")) is not None) is refused


def test_sqlite_refusals() -> None:
    hooks = SqliteHooks()
    assert "SQLITE_MAX_LENGTH" in (hooks.refusal(sqlite3.DataError("string or blob too big"))
                                   or "")
    assert hooks.refusal(sqlite3.OperationalError("database or disk is full")) is None
    assert hooks.refusal(sqlite3.OperationalError("database is locked")) is None
    assert hooks.refusal(sqlite3.IntegrityError("UNIQUE constraint failed: t.id")) is None
    assert hooks.refusal(sqlite3.IntegrityError("NOT NULL constraint failed: t.x")) is not None
