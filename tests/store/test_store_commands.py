"""Store contract, the command queue and the change marker."""

from __future__ import annotations

import asyncio

from store_factories import at

from tideflow.store.records import CommandRecord
from tideflow.store.sql import SqlStore


def command(instance_id: str, kind: str, task_ids: list[str] | None = None) -> CommandRecord:
    return CommandRecord(None, instance_id, kind, task_ids, at(1))


async def test_commands_are_claimed_oldest_first_and_kept_until_finished(
    store: SqlStore
) -> None:
    first = await store.add_command(command("i1", "cancel"))
    second = await store.add_command(command("i2", "retry", ["a", "b"]))
    third = await store.add_command(command("i1", "continue", []))
    assert first < second < third
    assert await store.command_pending(first)

    taken = await store.claim_commands("n1")
    assert [(c.id, c.instance_id, c.kind, c.task_ids) for c in taken] == [
        (first, "i1", "cancel", None),
        (second, "i2", "retry", ["a", "b"]),
        (third, "i1", "continue", []),
    ]
    assert taken[0].created_at == at(1)
    assert not await store.command_pending(first)  # claimed: its owner has it
    # a claim whose reply was lost: the same holder gets them again; nobody else does
    assert [c.id for c in await store.claim_commands("n1")] == [first, second, third]
    assert await store.claim_commands("n2") == []
    await store.finish_commands("n2", [first])  # not n2's: stays
    await store.finish_commands("n1", [first, second])
    await store.finish_commands("n1", [first])  # twice is harmless
    assert [c.id for c in await store.claim_commands("n1")] == [third]


async def test_claim_commands_for_given_instances(store: SqlStore) -> None:
    await store.add_command(command("i1", "pause"))
    await store.add_command(command("i2", "cancel"))
    await store.add_command(command("i3", "resume"))
    assert await store.claim_commands("n1", []) == []
    taken = await store.claim_commands("n1", ["i3", "i1"])
    assert [c.instance_id for c in taken] == ["i1", "i3"]
    assert [c.instance_id for c in await store.claim_commands("n2")] == ["i2"]


async def test_released_commands_go_to_the_next_claimer(store: SqlStore) -> None:
    one = await store.add_command(command("i1", "pause"))
    two = await store.add_command(command("i2", "cancel"))
    await store.claim_commands("dead")
    await store.release_commands(["i1"])
    assert [c.id for c in await store.claim_commands("n2")] == [one]
    await store.release_commands()
    assert [c.id for c in await store.claim_commands("n3")] == [one, two]


async def test_withdraw_only_an_unclaimed_command(store: SqlStore) -> None:
    one = await store.add_command(command("i1", "pause"))
    two = await store.add_command(command("i2", "pause"))
    await store.claim_commands("n1", ["i1"])
    assert not await store.withdraw_command(one)
    assert await store.withdraw_command(two)
    assert not await store.command_pending(two)
    assert [c.id for c in await store.claim_commands("n1")] == [one]


async def test_two_claimers_never_share_a_command(store: SqlStore, other_store: SqlStore) -> None:
    ids = [await store.add_command(command(f"i{n}", "cancel")) for n in range(20)]
    results = await asyncio.gather(
        *(s.claim_commands(h) for s, h in ((store, "a"), (other_store, "b"),
                                           (store, "c"), (other_store, "d")))
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
