"""Store contract, instances and tasks: create, read, group-commit writes and listing."""

from __future__ import annotations

import dataclasses
from datetime import timedelta, timezone

import pytest
from store_factories import T0, at, make_instance, make_tasks

from tideflow.errors import ConflictError, InputError, NotFoundError
from tideflow.states import InstanceStatus, TaskStatus
from tideflow.store.records import AttemptRecord, InstanceFilter, TraceEntry
from tideflow.store.sql import SqlStore


async def test_create_and_get_with_tags_and_10000_tasks(store: SqlStore) -> None:
    # ids out of alphabetical order: tasks come back in the order they were given
    ids = [f"task-{(n * 7919) % 10000:05d}" for n in range(10_000)]
    instance = make_instance("i1", tags={"team": "infra", "env": "prod", "ünï": "cödé"})
    tasks = make_tasks("i1", ids)
    await store.create_instance(instance, tasks)

    got = await store.get_instance("i1")
    assert got.tags == {"team": "infra", "env": "prod", "ünï": "cödé"}
    assert [t.task_id for t in got.tasks] == ids
    assert got.tasks[1].depend_on == [ids[0]]
    assert got.tasks == tasks
    assert dataclasses.replace(got, tasks=[]) == instance

    light = await store.get_instance("i1", with_tasks=False)
    assert light.tasks == []
    assert light.tags == instance.tags


async def test_create_twice_is_a_conflict(store: SqlStore) -> None:
    await store.create_instance(make_instance("i1"), make_tasks("i1", ["a"]))
    with pytest.raises(ConflictError, match="'i1'"):
        await store.create_instance(make_instance("i1"), make_tasks("i1", ["b"]))
    # the failed create left nothing behind
    assert [t.task_id for t in (await store.get_instance("i1")).tasks] == ["a"]


async def test_get_missing_instance_names_it(store: SqlStore) -> None:
    with pytest.raises(NotFoundError, match="'nope'"):
        await store.get_instance("nope")


async def test_write_round_trips_every_field(store: SqlStore) -> None:
    instance = make_instance("i1", tags={"a": "b"})
    tasks = make_tasks("i1", ["extract", "load", "report"])
    await store.create_instance(instance, tasks)

    big = "x" * 100_000  # beyond MySQL's 64 KB TEXT
    instance.status = InstanceStatus.RUNNING
    instance.reason = "résumé ✓ 🚀"
    instance.vars = {"region": "eu-west", "ключ": "значение"}
    instance.share_data = {"out": "日本語", "json": '{"k": [1, 2]}', "empty": "", "big": big}
    instance.selector = {"zone": "b", "gpu": "true"}
    instance.worker = "node-1"
    instance.epoch = 3
    instance.priority = -2
    instance.dag_version = 2
    instance.updated_at = at(5)
    instance.ended_at = at(6)

    first, second, third = tasks
    first.status = TaskStatus.SUCCESS
    first.reason = None
    first.attempts = 2
    first.attempt_history = [
        AttemptRecord(1, TaskStatus.FAILED, "exit 1: ошибка", at(1), at(2), "node-1"),
        AttemptRecord(2, TaskStatus.SUCCESS, None, at(3), at(4), "node-2"),
    ]
    first.params = {
        "cmd": ["echo", "héllo"],
        "nested": {"z": 1, "a": [1.5, None, True, {"deep": "🚀"}]},
        "big": big,
    }
    first.traces = [TraceEntry(at(1), "started"), TraceEntry(at(2), 'line\nbreak "quoted"')]
    first.started_at = at(1)
    first.ended_at = at(4)
    second.status = TaskStatus.BLOCKED
    second.continued = True
    second.name = "renamed"
    second.action_name = "http"
    second.depend_on = ["extract", "report"]
    second.params = ["a", "list"]
    second.attempts = 1
    second.attempt_history = [AttemptRecord(1, TaskStatus.RUNNING, None, at(3), None, None)]
    second.started_at = at(3)
    third.params = "plain string"

    await store.write([instance], [first, second, third])
    got = await store.get_instance("i1")
    assert dataclasses.replace(got, tasks=[]) == instance
    assert got.tasks == [first, second, third]
    assert got.tasks[0].attempt_history[0].started_at.tzinfo is not None


async def test_write_converts_other_timezones_to_utc(store: SqlStore) -> None:
    instance = make_instance("i1")
    await store.create_instance(instance, [])
    plus_two = timezone(timedelta(hours=2))
    instance.updated_at = (T0 + timedelta(hours=1)).astimezone(plus_two)
    await store.write([instance], [])
    got = await store.get_instance("i1")
    assert got.updated_at == T0 + timedelta(hours=1)
    assert got.updated_at.utcoffset() == timedelta(0)


async def test_write_of_a_missing_row_writes_nothing(store: SqlStore) -> None:
    instance = make_instance("i1")
    tasks = make_tasks("i1", ["a"])
    await store.create_instance(instance, tasks)
    ghost = make_tasks("i1", ["ghost"])[0]
    tasks[0].status = TaskStatus.RUNNING
    instance.status = InstanceStatus.RUNNING
    if store.dialect == "postgresql":
        # asyncpg reports no row counts for batches: a missing row cannot be detected there
        pytest.skip("row counts of executemany are unknown on asyncpg")
    with pytest.raises(NotFoundError, match="do not exist"):
        await store.write([instance], [tasks[0], ghost])
    got = await store.get_instance("i1")
    assert got.status == InstanceStatus.INIT
    assert got.tasks[0].status == TaskStatus.INIT


async def test_write_unchanged_rows_and_nothing(store: SqlStore) -> None:
    instance = make_instance("i1")
    tasks = make_tasks("i1", ["a", "b"])
    await store.create_instance(instance, tasks)
    # rewriting identical values is fine (MySQL counts matched, not changed, rows)
    await store.write([instance], tasks)
    await store.write([], [])
    assert await store.get_instance("i1") == dataclasses.replace(instance, tasks=tasks)


async def _populate(store: SqlStore) -> None:
    rows = [
        ("001", "build", InstanceStatus.SUCCESS, {"team": "a", "env": "prod"}, "w1"),
        ("002", "build", InstanceStatus.FAILED, {"team": "a", "env": "dev"}, "w2"),
        ("003", "deploy", InstanceStatus.RUNNING, {"team": "b", "env": "prod"}, "w1"),
        ("004", "build", InstanceStatus.RUNNING, {"team": "a", "env": "prod"}, "w2"),
        ("005", "deploy", InstanceStatus.PAUSED, {}, None),
        ("006", "build", InstanceStatus.INIT, {"team": "b"}, None),
    ]
    for n, (iid, dag, status, tags, worker) in enumerate(rows):
        instance = make_instance(
            iid, dag_id=dag, status=status, tags=tags, worker=worker, created=n * 60
        )
        await store.create_instance(instance, make_tasks(iid, ["t"]))


async def _ids(store: SqlStore, **filters: object) -> list[str]:
    found = await store.list_instances(InstanceFilter(**filters))  # type: ignore[arg-type]
    return [i.id for i in found]


async def test_list_filters(store: SqlStore) -> None:
    await _populate(store)
    assert await _ids(store) == ["006", "005", "004", "003", "002", "001"]
    assert await _ids(store, dag_id="deploy") == ["005", "003"]
    assert await _ids(store, statuses=[InstanceStatus.RUNNING, InstanceStatus.PAUSED]) == [
        "005",
        "004",
        "003",
    ]
    assert await _ids(store, worker="w1") == ["003", "001"]
    assert await _ids(store, tags={"team": "a"}) == ["004", "002", "001"]
    # several tags must all match
    assert await _ids(store, tags={"team": "a", "env": "prod"}) == ["004", "001"]
    assert await _ids(store, tags={"team": "b", "env": "dev"}) == []
    assert await _ids(store, tags={"nope": "x"}) == []
    # created_after is inclusive, created_before exclusive
    assert await _ids(store, created_after=at(120)) == ["006", "005", "004", "003"]
    assert await _ids(store, created_before=at(120)) == ["002", "001"]
    assert await _ids(store, created_after=at(60), created_before=at(180)) == ["003", "002"]
    assert await _ids(
        store, dag_id="build", statuses=[InstanceStatus.RUNNING], tags={"env": "prod"}
    ) == ["004"]


async def test_list_loads_tags_not_tasks(store: SqlStore) -> None:
    await _populate(store)
    found = {i.id: i for i in await store.list_instances()}
    assert found["001"].tags == {"team": "a", "env": "prod"}
    assert found["005"].tags == {}
    assert all(i.tasks == [] for i in found.values())
    assert found["003"].worker == "w1"
    assert found["003"].created_at == at(120)


async def test_list_pages_with_a_cursor(store: SqlStore) -> None:
    await _populate(store)
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page = await store.list_instances(limit=4, before_id=cursor)
        if not page:
            break
        pages.append([i.id for i in page])
        cursor = page[-1].id
    assert pages == [["006", "005", "004", "003"], ["002", "001"]]
    assert [i.id for i in await store.list_instances(limit=1)] == ["006"]
    with pytest.raises(InputError):
        await store.list_instances(limit=0)
