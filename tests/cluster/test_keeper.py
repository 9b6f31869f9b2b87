"""The Keeper contract on SQLite, MariaDB and PostgreSQL, and on etcd (next to PostgreSQL,
which records the leader's token): leases, tokens, nodes, mutex.

etcd's leases are whole seconds (one at least, with the test server's short election
timeout) and etcd looks for expired ones every half second, so the etcd runs use longer
TTLs and waits (``Timing``); the assertions are the same."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest

from tideflow import LockLostError
from tideflow.clock import utcnow
from tideflow.cluster.etcd import EtcdKeeper
from tideflow.cluster.keeper import Keeper
from tideflow.cluster.mutex import Mutex
from tideflow.store.records import NodeRecord
from tideflow.store.sql.store import SqlStore


@dataclass(frozen=True)
class Timing:
    #: a short TTL, and a wait after which a lease of that TTL has surely expired
    short: float
    expired: float
    #: whether a renewal that arrives after the expiry, no one having taken the lease, keeps
    #: it (the SQL Keeper); etcd deletes an expired lease's key at once
    late_renewal_keeps: bool = True


SQL_TIMING = Timing(short=0.3, expired=0.5)
ETCD_TIMING = Timing(short=1.0, expired=2.2, late_renewal_keeps=False)


_URLS = {"sqlite": "sqlite_url", "mysql": "mysql_url", "postgresql": "postgres_url"}


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql),
                        pytest.param("postgresql", marks=pytest.mark.postgres),
                        pytest.param("etcd", marks=pytest.mark.postgres)])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def timing(kind: str) -> Timing:
    return ETCD_TIMING if kind == "etcd" else SQL_TIMING


@pytest.fixture
def urls(kind: str, request: pytest.FixtureRequest) -> tuple[str, str | None]:
    """The database's URL, and etcd's for the etcd Keeper (the database then PostgreSQL)."""
    if kind != "etcd":
        return request.getfixturevalue(_URLS[kind]), None
    return request.getfixturevalue("postgres_url"), request.getfixturevalue("etcd_url")


@pytest.fixture
async def keeper(urls: tuple[str, str | None]) -> AsyncIterator[Keeper]:
    """The SQL Keeper on each backend, and the etcd Keeper (its fencing row on
    PostgreSQL)."""
    db, etcd_url = urls
    store = SqlStore(db)
    await store.open()
    if etcd_url is None:
        yield store
        await store.close()
        return
    etcd = EtcdKeeper(etcd_url, store, node_ttl_secs=ETCD_TIMING.short)
    await etcd.open()
    yield etcd
    await etcd.close()
    await store.close()


def _node(node_id: str, incarnation: str) -> NodeRecord:
    now = utcnow()
    return NodeRecord(node_id=node_id, incarnation=incarnation, role="worker", host="h",
                      pid=1, started_at=now, heartbeat_at=now, capacity=10, running=0,
                      assigned=0, labels={"zone": "a"}, actions=["shell"])


async def test_db_clock_is_utc_and_current(keeper: Keeper) -> None:
    now = await keeper.db_now()
    assert abs((now - utcnow()).total_seconds()) < 5
    assert now.utcoffset() == timedelta(0)


async def test_lease_tokens_grow_and_exclude(keeper: Keeper, timing: Timing) -> None:
    t = timing
    a = await keeper.acquire_lease("leader", "a", t.short)
    assert a is not None and a.holder == "a"
    assert await keeper.acquire_lease("leader", "b", t.short) is None
    again = await keeper.acquire_lease("leader", "a", t.short)  # re-entrant: same token
    assert again is not None and again.token == a.token
    assert await keeper.renew_lease("leader", "a", a.token, t.short)
    await asyncio.sleep(t.expired)
    b = await keeper.acquire_lease("leader", "b", 5)
    assert b is not None and b.token > a.token
    # the old holder has lost it: renew and release say so
    assert not await keeper.renew_lease("leader", "a", a.token, 5)
    assert not await keeper.release_lease("leader", "a", a.token)
    assert await keeper.release_lease("leader", "b", b.token)
    c = await keeper.acquire_lease("leader", "a", 5)
    assert c is not None and c.token > b.token


async def test_nodes_register_heartbeat_and_take_over(keeper: Keeper, timing: Timing) -> None:
    await keeper.put_node(_node("n1", "inc-1"))
    assert await keeper.heartbeat("n1", "inc-1", running=3, assigned=2)
    nodes = await keeper.list_nodes(unhealthy_secs=5)
    assert [(n.node_id, n.alive, n.running, n.labels) for n in nodes] == [
        ("n1", True, 3, {"zone": "a"})]
    await keeper.put_node(_node("n1", "inc-2"))  # a restarted pod with the same id
    assert not await keeper.heartbeat("n1", "inc-1", running=0, assigned=0)
    assert await keeper.heartbeat("n1", "inc-2", running=0, assigned=0)
    await asyncio.sleep(timing.expired)
    nodes = await keeper.list_nodes(unhealthy_secs=timing.short)
    assert not nodes[0].alive and nodes[0].heartbeat_age_secs >= timing.short
    # a heartbeat after the silence makes it live again
    assert await keeper.heartbeat("n1", "inc-2", running=0, assigned=0)
    assert [n.alive for n in await keeper.list_nodes(unhealthy_secs=5)] == [True]
    await keeper.remove_node("n1", "inc-2")
    assert await keeper.list_nodes(unhealthy_secs=5) == []


async def test_mutex_excludes_reenters_and_reports_loss(keeper: Keeper, timing: Timing) -> None:
    t = timing
    first = Mutex(keeper, "job", identity="one", ttl_secs=t.short)
    second = Mutex(keeper, "job", identity="two", ttl_secs=5)
    token = await first.acquire()
    assert not await second.try_acquire()
    assert await Mutex(keeper, "job", identity="one", ttl_secs=t.short).acquire(
        timeout=1) == token
    await asyncio.sleep(t.expired)  # first's TTL runs out
    assert await second.acquire(timeout=2) > token
    assert not await first.release()  # lost
    with pytest.raises(LockLostError):
        async with Mutex(keeper, "other", identity="x", ttl_secs=t.short):
            await asyncio.sleep(t.expired)
            await Mutex(keeper, "other", identity="y", ttl_secs=5).acquire(timeout=1)


async def test_mutex_auto_extend_keeps_it(keeper: Keeper, timing: Timing) -> None:
    held = Mutex(keeper, "long", identity="a", ttl_secs=timing.short, auto_extend=True)
    async with held:
        await asyncio.sleep(timing.expired * 1.5)
        assert not await Mutex(keeper, "long", identity="b", ttl_secs=1).try_acquire()


async def test_beat_heartbeats_renews_and_campaigns(keeper: Keeper, timing: Timing) -> None:
    """One beat: heartbeat, and either renew the lease held with a token or take a free or
    expired one; it reports the lease as it stands and, when asked, the live nodes."""
    t = timing
    await keeper.put_node(_node("n1", "i1"))
    await keeper.put_node(_node("n2", "i2"))
    kw = {"running": 1, "assigned": 2, "lease_secs": t.short * 2}
    # no lease yet: a beat does not create it (acquire_lease does)
    first = await keeper.beat("n1", "i1", holder="n1/i1", token=None, campaign=True, **kw)
    assert first.alive and first.lease is None and first.live is None
    taken = await keeper.acquire_lease("leader", "n1/i1", t.short * 2)
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
    if t.late_renewal_keeps:
        # a renewal that comes back after the expiry, while no one took the lease, keeps the
        # token (a slowed-down leader is not a new leader) ...
        await asyncio.sleep(t.short * 2 + 0.2)
        late = await keeper.beat("n1", "i1", holder="n1/i1", token=taken.token,
                                 campaign=False, **kw)
        assert late.lease is not None and late.lease.holder == "n1/i1"
        assert late.lease.token == taken.token
        assert late.lease.expires_at is not None and late.lease.expires_at > late.now
    # ... but once it expires, the follower's beat takes it with a larger token (a beat that
    # finds it free says so, and the node takes it at once, as ClusterNode does) ...
    await asyncio.sleep(t.short * 2 + t.expired - t.short)
    won = await keeper.beat("n2", "i2", holder="n2/i2", token=None, campaign=True, **kw)
    won_lease = won.lease or await keeper.acquire_lease("leader", "n2/i2", t.short * 2)
    assert won_lease is not None and won_lease.holder == "n2/i2"
    assert won_lease.token > taken.token
    # ... and the old holder's renewal with its stale token changes nothing
    stale = await keeper.beat("n1", "i1", holder="n1/i1", token=taken.token, campaign=False,
                              **kw)
    assert stale.lease is not None and stale.lease.holder == "n2/i2"
    assert stale.lease.token == won_lease.token
    # a node whose row a newer incarnation took is told so
    await keeper.put_node(_node("n1", "i3"))
    gone = await keeper.beat("n1", "i1", holder="n1/i1", token=None, campaign=False, **kw)
    assert not gone.alive
