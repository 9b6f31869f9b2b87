"""Store contract, the command queue and the change marker."""

from __future__ import annotations

import asyncio

from store_factories import at

from tideflow.store.records import CommandRecord
from tideflow.store.sql import SqlStore


def command(instance_id: str, kind: str, task_ids: list[str] | None = None) -> CommandRecord:
    return CommandRecord(None, instance_id, kind, task_ids, at(1))


async def test_commands_are_taken_oldest_first_once(store: SqlStore) -> None:
    first = await store.add_command(command("i1", "cancel"))
    second = await store.add_command(command("i2", "retry", ["a", "b"]))
    third = await store.add_command(command("i1", "continue", []))
    assert first < second < third

    taken = await store.take_commands()
    assert [(c.id, c.instance_id, c.kind, c.task_ids) for c in taken] == [
        (first, "i1", "cancel", None),
        (second, "i2", "retry", ["a", "b"]),
        (third, "i1", "continue", []),
    ]
    assert taken[0].created_at == at(1)
    assert await store.take_commands() == []


async def test_take_commands_for_given_instances(store: SqlStore) -> None:
    await store.add_command(command("i1", "pause"))
    await store.add_command(command("i2", "cancel"))
    await store.add_command(command("i3", "resume"))
    assert await store.take_commands([]) == []
    taken = await store.take_commands(["i3", "i1"])
    assert [c.instance_id for c in taken] == ["i1", "i3"]
    assert [c.instance_id for c in await store.take_commands()] == ["i2"]


async def test_two_takers_never_share_a_command(store: SqlStore, other_store: SqlStore) -> None:
    ids = [await store.add_command(command(f"i{n}", "cancel")) for n in range(20)]
    results = await asyncio.gather(
        *(s.take_commands() for s in (store, other_store, store, other_store))
    )
    taken = [c.id for batch in results for c in batch]
    assert sorted(i for i in taken if i is not None) == ids


async def test_change_marker_moves_when_another_connection_commits(
    store: SqlStore, other_store: SqlStore
) -> None:
    before = await store.change_marker()
    assert await store.change_marker() == before  # stable while nothing happens
    await other_store.add_command(command("i1", "cancel"))
    after = await store.change_marker()
    assert after != before
