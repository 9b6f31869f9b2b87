"""Cron ticks with a fixed clock: what fires, catch-up, time zones, next fire times."""

from __future__ import annotations

from datetime import UTC, datetime

from tideflow.cluster.cron import due_ticks, next_fire_times


def t(h: int, m: int = 0, s: int = 0, d: int = 26) -> datetime:
    return datetime(2026, 11, d, h, m, s, tzinfo=UTC)


def test_nothing_due_before_the_next_tick() -> None:
    assert due_ticks("0 2 * * *", None, t(2, 0), t(3, 0)) == []


def test_the_tick_itself_is_due() -> None:
    assert due_ticks("0 3 * * *", None, t(2, 30), t(3, 0)) == [t(3, 0)]


def test_latest_only_after_downtime() -> None:
    assert due_ticks("0 * * * *", None, t(2, 30), t(7, 10)) == [t(7)]


def test_all_missed_ticks_capped_oldest_first() -> None:
    got = due_ticks("0 * * * *", None, t(2, 30), t(7, 10), catchup="all", max_catchup=3)
    assert got == [t(5), t(6), t(7)]
    every = due_ticks("0 * * * *", None, t(2, 30), t(7, 10), catchup="all", max_catchup=10)
    assert every == [t(3), t(4), t(5), t(6), t(7)]


def test_a_long_downtime_is_bounded() -> None:
    since = datetime(2020, 1, 1, tzinfo=UTC)
    got = due_ticks("* * * * * *", None, since, t(12), catchup="all", max_catchup=5)
    assert got == [t(11, 59, 56), t(11, 59, 57), t(11, 59, 58), t(11, 59, 59), t(12)]


def test_timezone() -> None:
    # 02:00 in Shanghai is 18:00 UTC the day before
    assert due_ticks("0 2 * * *", "Asia/Shanghai", t(17, d=25), t(19, d=25)) == [
        datetime(2026, 11, 25, 18, tzinfo=UTC)]
    assert next_fire_times("0 2 * * *", "Asia/Shanghai", t(19, d=25), 2) == [
        datetime(2026, 11, 26, 18, tzinfo=UTC), datetime(2026, 11, 27, 18, tzinfo=UTC)]


def test_seconds_field() -> None:
    assert due_ticks("* * * * * */2", None, t(1, 0, 0), t(1, 0, 5), catchup="all") == [
        t(1, 0, 2), t(1, 0, 4)]
