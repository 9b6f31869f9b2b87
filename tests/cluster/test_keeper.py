"""The Keeper contract on SQLite, MariaDB and PostgreSQL: leases, tokens, nodes, mutex."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from tideflow import LockLostError
from tideflow.clock import utcnow
from tideflow.cluster.mutex import Mutex
from tideflow.store.records import NodeRecord
from tideflow.store.sql.store import SqlStore


@pytest.fixture
async def keeper(db_url: str) -> AsyncIterator[SqlStore]:
    store = SqlStore(db_url)
    await store.open()
    yield store
    await store.close()


def _node(node_id: str, incarnation: str) -> NodeRecord:
    now = utcnow()
    return NodeRecord(node_id=node_id, incarnation=incarnation, role="worker", host="h",
                      pid=1, started_at=now, heartbeat_at=now, capacity=10, running=0,
                      assigned=0, labels={"zone": "a"}, actions=["shell"])


async def test_db_clock_is_utc_and_current(keeper: SqlStore) -> None:
    now = await keeper.db_now()
    assert abs((now - utcnow()).total_seconds()) < 5
    assert now.utcoffset() == timedelta(0)


async def test_lease_tokens_grow_and_exclude(keeper: SqlStore) -> None:
    a = await keeper.acquire_lease("leader", "a", 0.5)
    assert a is not None and a.holder == "a"
    assert await keeper.acquire_lease("leader", "b", 0.5) is None
    again = await keeper.acquire_lease("leader", "a", 0.5)  # re-entrant: same token
    assert again is not None and again.token == a.token
    assert await keeper.renew_lease("leader", "a", a.token, 0.3)
    await asyncio.sleep(0.5)
    b = await keeper.acquire_lease("leader", "b", 5)
    assert b is not None and b.token > a.token
    # the old holder has lost it: renew and release say so
    assert not await keeper.renew_lease("leader", "a", a.token, 5)
    assert not await keeper.release_lease("leader", "a", a.token)
    assert await keeper.release_lease("leader", "b", b.token)
    c = await keeper.acquire_lease("leader", "a", 5)
    assert c is not None and c.token > b.token


async def test_nodes_register_heartbeat_and_take_over(keeper: SqlStore) -> None:
    await keeper.put_node(_node("n1", "inc-1"))
    assert await keeper.heartbeat("n1", "inc-1", running=3, assigned=2)
    nodes = await keeper.list_nodes(unhealthy_secs=5)
    assert [(n.node_id, n.alive, n.running, n.labels) for n in nodes] == [
        ("n1", True, 3, {"zone": "a"})]
    await keeper.put_node(_node("n1", "inc-2"))  # a restarted pod with the same id
    assert not await keeper.heartbeat("n1", "inc-1", running=0, assigned=0)
    assert await keeper.heartbeat("n1", "inc-2", running=0, assigned=0)
    await asyncio.sleep(0.3)
    nodes = await keeper.list_nodes(unhealthy_secs=0.2)
    assert not nodes[0].alive and nodes[0].heartbeat_age_secs >= 0.2
    await keeper.remove_node("n1", "inc-2")
    assert await keeper.list_nodes(unhealthy_secs=5) == []


async def test_mutex_excludes_reenters_and_reports_loss(keeper: SqlStore) -> None:
    first = Mutex(keeper, "job", identity="one", ttl_secs=0.4)
    second = Mutex(keeper, "job", identity="two", ttl_secs=5)
    token = await first.acquire()
    assert not await second.try_acquire()
    assert await Mutex(keeper, "job", identity="one", ttl_secs=0.4).acquire(timeout=1) == token
    await asyncio.sleep(0.5)  # first's TTL runs out
    assert await second.acquire(timeout=2) > token
    assert not await first.release()  # lost
    with pytest.raises(LockLostError):
        async with Mutex(keeper, "other", identity="x", ttl_secs=0.2):
            await asyncio.sleep(0.3)
            await Mutex(keeper, "other", identity="y", ttl_secs=5).acquire(timeout=1)


async def test_mutex_auto_extend_keeps_it(keeper: SqlStore) -> None:
    held = Mutex(keeper, "long", identity="a", ttl_secs=0.3, auto_extend=True)
    async with held:
        await asyncio.sleep(0.8)
        assert not await Mutex(keeper, "long", identity="b", ttl_secs=1).try_acquire()


async def test_beat_heartbeats_renews_and_campaigns(keeper: SqlStore) -> None:
    """One beat: heartbeat, and either renew the lease held with a token or take a free or
    expired one; it reports the lease as it stands and, when asked, the live nodes."""
    await keeper.put_node(_node("n1", "i1"))
    await keeper.put_node(_node("n2", "i2"))
    kw = {"running": 1, "assigned": 2, "lease_secs": 0.6}
    # no lease row yet: a beat does not create it (acquire_lease does)
    first = await keeper.beat("n1", "i1", holder="n1/i1", token=None, campaign=True, **kw)
    assert first.alive and first.lease is None and first.live is None
    taken = await keeper.acquire_lease("leader", "n1/i1", 0.6)
    assert taken is not None
    # a follower's campaign leaves a held lease alone
    other = await keeper.beat("n2", "i2", holder="n2/i2", token=None, campaign=True, **kw)
    assert other.lease is not None and other.lease.holder == "n1/i1"
    assert other.lease.token == taken.token
    # the holder renews with its token and sees both nodes live
    renewed = await keeper.beat("n1", "i1", holder="n1/i1", token=taken.token,
                                campaign=False, unhealthy_secs=5, **kw)
    assert renewed.lease is not None and renewed.lease.token == taken.token
    assert renewed.lease.expires_at is not None and renewed.lease.expires_at > renewed.now
    assert renewed.live == frozenset({"n1/i1", "n2/i2"})
    node = await keeper.get_node("n1")
    assert node is not None and (node.running, node.assigned) == (1, 2)
    # a renewal that comes back after the expiry, while no one took the lease, keeps the
    # token (a slowed-down leader is not a new leader) ...
    await asyncio.sleep(0.8)
    late = await keeper.beat("n1", "i1", holder="n1/i1", token=taken.token, campaign=False,
                             **kw)
    assert late.lease is not None and late.lease.holder == "n1/i1"
    assert late.lease.token == taken.token
    assert late.lease.expires_at is not None and late.lease.expires_at > late.now
    # ... but once it expires, the follower's beat takes it with a larger token ...
    await asyncio.sleep(0.8)
    won = await keeper.beat("n2", "i2", holder="n2/i2", token=None, campaign=True, **kw)
    assert won.lease is not None and won.lease.holder == "n2/i2"
    assert won.lease.token > taken.token
    # ... and the old holder's renewal with its stale token changes nothing
    stale = await keeper.beat("n1", "i1", holder="n1/i1", token=taken.token, campaign=False,
                              **kw)
    assert stale.lease is not None and stale.lease.holder == "n2/i2"
    assert stale.lease.token == won.lease.token
    # a node whose row a newer incarnation took is told so
    await keeper.put_node(_node("n1", "i3"))
    gone = await keeper.beat("n1", "i1", holder="n1/i1", token=None, campaign=False, **kw)
    assert not gone.alive
