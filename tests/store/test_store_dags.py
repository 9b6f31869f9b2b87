"""Store contract, DAGs: versions, definitions, status and deletion. Runs on every backend."""

from __future__ import annotations

import asyncio

import pytest
from store_factories import make_dag, make_instance, make_tasks

from tideflow.definition.model import DagDef
from tideflow.errors import ConflictError, NotFoundError
from tideflow.states import DagStatus, InstanceStatus
from tideflow.store.sql import SqlStore


async def test_every_save_makes_a_new_version(store: SqlStore) -> None:
    first = await store.save_dag(make_dag(name="first"))
    second = await store.save_dag(make_dag(name="second"))
    assert (first.version, second.version) == (1, 2)

    newest = await store.get_dag("build")
    assert newest.version == 2
    assert newest.definition.name == "second"
    old = await store.get_dag("build", 1)
    assert old.version == 1
    assert old.definition.name == "first"
    # created when the id was first registered, updated at the newest registration
    assert newest.created_at == first.created_at
    assert newest.updated_at >= first.updated_at
    assert newest.created_at.tzinfo is not None

    listed = await store.list_dags()
    assert [(d.id, d.version) for d in listed] == [("build", 2)]


async def test_list_dags_is_by_id_newest_version(store: SqlStore) -> None:
    for dag_id in ("zulu", "alpha", "mike"):
        await store.save_dag(make_dag(dag_id))
    await store.save_dag(make_dag("mike", name="again"))
    listed = await store.list_dags()
    assert [(d.id, d.version) for d in listed] == [("alpha", 1), ("mike", 2), ("zulu", 1)]


async def test_definition_round_trips_with_precheck_order(store: SqlStore) -> None:
    dag = DagDef.model_validate(
        {
            "id": "precheck",
            "name": "Prüfung ✓",
            "desc": "unicode: 日本語 🚀",
            "vars": {"dryRun": {"defaultValue": "false"}, "zone": {"desc": "z", "secret": True}},
            "cron": "0 2 * * *",
            "timezone": "Europe/Paris",
            "tasks": [
                {
                    "id": "first",
                    "actionName": "shell",
                    "params": {"nested": {"b": [1, 2.5, None, True], "a": {"z": "ä", "y": ""}}},
                    "timeoutSecs": 30,
                    "retry": {"maxAttempts": 3, "backoffSecs": 1, "maxBackoffSecs": 30},
                    # a map in Fastflow's form: the order written must survive storage
                    "preCheck": {
                        "zeta": {
                            "act": "skip",
                            "conditions": [
                                {"source": "vars", "key": "dryRun", "op": "in", "values": ["1"]}
                            ],
                        },
                        "alpha": {
                            "act": "block",
                            "conditions": [
                                {
                                    "source": "share-data",
                                    "key": "k",
                                    "op": "not-in",
                                    "values": ["b", "a"],
                                }
                            ],
                        },
                        "mike": {"act": "skip", "conditions": []},
                    },
                },
                {"id": "second", "actionName": "http", "dependOn": ["first"]},
            ],
        }
    )
    await store.save_dag(dag)
    got = (await store.get_dag("precheck")).definition
    assert got == dag
    assert [c.name for c in got.tasks[0].pre_check] == ["zeta", "alpha", "mike"]
    assert list(got.tasks[0].params["nested"]) == ["b", "a"]
    assert got.to_dict() == dag.to_dict()


async def test_get_dag_not_found_names_id_and_version(store: SqlStore) -> None:
    with pytest.raises(NotFoundError, match="'nope'"):
        await store.get_dag("nope")
    await store.save_dag(make_dag())
    with pytest.raises(NotFoundError, match="'build' version 7"):
        await store.get_dag("build", 7)


async def test_status_comes_from_the_definition_and_can_be_set(store: SqlStore) -> None:
    saved = await store.save_dag(make_dag(status="stopped"))
    assert saved.status == DagStatus.STOPPED
    await store.set_dag_status("build", DagStatus.NORMAL)
    assert (await store.get_dag("build")).status == DagStatus.NORMAL
    # the status belongs to the DAG, whichever version is read
    assert (await store.get_dag("build", 1)).status == DagStatus.NORMAL
    with pytest.raises(NotFoundError, match="'ghost'"):
        await store.set_dag_status("ghost", DagStatus.STOPPED)


async def test_delete_is_refused_while_instances_are_unfinished(store: SqlStore) -> None:
    await store.save_dag(make_dag())
    await store.save_dag(make_dag(name="v2"))
    await store.create_instance(
        make_instance("i1", status=InstanceStatus.RUNNING), make_tasks("i1", ["a"])
    )
    await store.create_instance(
        make_instance("i2", version=2, status=InstanceStatus.PAUSED), make_tasks("i2", ["a"])
    )
    await store.create_instance(make_instance("i3", status=InstanceStatus.SUCCESS), [])

    with pytest.raises(ConflictError, match="2 unfinished"):
        await store.delete_dag("build")
    assert (await store.get_dag("build")).version == 2

    await store.delete_dag("build", force=True)
    with pytest.raises(NotFoundError):
        await store.get_dag("build")
    assert await store.list_dags() == []
    # the versions unfinished instances run on stay readable until they end
    assert (await store.get_dag("build", 1)).definition.id == "build"
    assert (await store.get_dag("build", 2)).definition.name == "v2"
    # instances are history and stay
    assert (await store.get_instance("i3")).status == InstanceStatus.SUCCESS
    # registering the id again never reuses a version an old instance refers to
    assert (await store.save_dag(make_dag())).version == 3


async def test_delete_with_finished_instances_removes_every_version(store: SqlStore) -> None:
    await store.save_dag(make_dag())
    await store.save_dag(make_dag())
    await store.create_instance(make_instance("i1", status=InstanceStatus.FAILED), [])
    await store.create_instance(make_instance("i2", status=InstanceStatus.CANCELED), [])
    await store.delete_dag("build")
    for version in (1, 2):
        with pytest.raises(NotFoundError):
            await store.get_dag("build", version)
    with pytest.raises(NotFoundError, match="'build'"):
        await store.delete_dag("build")


async def test_concurrent_saves_get_distinct_versions(
    store: SqlStore, other_store: SqlStore
) -> None:
    stores = [store, other_store] * 3
    saved = await asyncio.gather(
        *(s.save_dag(make_dag("race", name=f"n{i}")) for i, s in enumerate(stores))
    )
    assert sorted(r.version for r in saved) == [1, 2, 3, 4, 5, 6]
    assert not any(r.unchanged for r in saved)
    assert (await store.get_dag("race")).version == 6


async def test_concurrent_saves_of_one_definition_make_one_version(
    store: SqlStore, other_store: SqlStore
) -> None:
    stores = [store, other_store] * 3
    saved = await asyncio.gather(*(s.save_dag(make_dag("same")) for s in stores))
    assert [r.version for r in saved] == [1] * 6
    assert sorted(r.unchanged for r in saved) == [False] + [True] * 5
    # and again later, with one changed in between
    assert (await store.save_dag(make_dag("same"))).unchanged
    changed = await store.save_dag(make_dag("same", name="other"))
    assert (changed.version, changed.unchanged) == (2, False)
    back = await other_store.save_dag(make_dag("same"))
    assert (back.version, back.unchanged) == (3, False)  # the newest version is compared


async def test_an_unchanged_definition_keeps_the_status_set_since(store: SqlStore) -> None:
    await store.save_dag(make_dag("kept"))
    await store.set_dag_status("kept", DagStatus.STOPPED)
    again = await store.save_dag(make_dag("kept"))
    assert (again.version, again.unchanged, again.status) == (1, True, DagStatus.STOPPED)
    assert (await store.get_dag("kept")).status == DagStatus.STOPPED
