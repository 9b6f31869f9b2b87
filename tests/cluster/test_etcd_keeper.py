"""The etcd Keeper's own parts: its URL, which stores it may sit next to, and the leader's
token recorded in the SQL store so that a deposed leader's writes are refused there."""

from __future__ import annotations

from pathlib import Path

import pytest

from tideflow import Engine, InputError
from tideflow.cluster.etcd import EtcdKeeper, EtcdUrl, make_keeper
from tideflow.cluster.scheduling import LeaderFence
from tideflow.store.sql.store import SqlStore


def test_url_names_endpoints_and_prefix() -> None:
    url = EtcdUrl.parse("etcd://10.0.0.1:2379,etcd-2:2380/team-a/flows")
    assert url.endpoints == (("10.0.0.1", 2379), ("etcd-2", 2380))
    assert url.path == "team-a/flows"
    assert EtcdUrl.parse("etcd://etcd").endpoints == (("etcd", 2379),)
    assert EtcdUrl.parse("etcd://etcd:2379").path == "tideflow"


@pytest.mark.parametrize("bad, says", [
    ("http://etcd:2379", "use etcd://"),
    ("etcd://etcd:notaport", "is not host:port"),
    ("etcd://etcd:2379,", "is not host:port"),
    ("etcd://user@etcd:2379", "no user"),
    ("etcd://etcd:2379/a//b", "empty segment"),
])
def test_bad_url_is_refused_saying_why(bad: str, says: str) -> None:
    with pytest.raises(InputError, match=says) as info:
        EtcdUrl.parse(bad)
    assert repr(bad) in info.value.message


def test_sqlite_with_etcd_is_refused(tmp_path: Path) -> None:
    """A SQLite file belongs to one process: there is no cluster for etcd to coordinate."""
    with pytest.raises(InputError, match="MariaDB, MySQL or PostgreSQL"):
        Engine.from_url(f"sqlite:///{tmp_path / 'x.db'}", keeper="etcd://127.0.0.1:2379")
    assert not (tmp_path / "x.db").exists()


@pytest.mark.postgres
async def test_the_leaders_token_fences_the_store(postgres_url: str, etcd_url: str) -> None:
    """Each leader records its etcd token in the store's lease row; once a successor has
    recorded its larger one, the deposed leader can neither record nor extend its own."""
    store = SqlStore(postgres_url)
    await store.open()
    a, b = (make_keeper(etcd_url, store, table_prefix="tf_") for _ in range(2))
    try:
        for k in (a, b):
            await k.open()
        first = await a.acquire_lease("leader", "a/1", 1)
        assert first is not None
        row = await store.get_lease("leader")
        assert row is not None and (row.holder, row.token) == ("a/1", first.token)
        # a is cut off: its etcd lease ends (as it would once its TTL ran out)
        kv = await a._get(a._key("lease", "leader"), "test")
        await a._revoke(kv.lease)
        second = await b.acquire_lease("leader", "b/1", 5)
        assert second is not None and second.token > first.token
        row = await store.get_lease("leader")
        assert row is not None and (row.holder, row.token) == ("b/1", second.token)
        # the old leader is refused in the store, and in etcd
        assert not await store.fence_leader(LeaderFence("a/1", first.token), 5)
        assert not await a.renew_lease("leader", "a/1", first.token, 5)
        row = await store.get_lease("leader")
        assert row is not None and (row.holder, row.token) == ("b/1", second.token)
        # giving it up frees the row for the next one
        assert await b.release_lease("leader", "b/1", second.token)
        row = await store.get_lease("leader")
        assert row is not None and row.holder is None
    finally:
        for k in (a, b):
            await k.close()
        await store.close()


async def test_unreachable_etcd_is_a_store_error_naming_it() -> None:
    from tideflow import StoreError

    class NoStore(SqlStore):
        pass

    store = NoStore("sqlite:///:memory:")
    await store.open()
    keeper = EtcdKeeper("etcd://127.0.0.1:9/x", store)
    await keeper.open()
    try:
        with pytest.raises(StoreError, match="etcd .*127.0.0.1:9"):
            await keeper.get_node("n1")
    finally:
        await keeper.close()
        await store.close()


def test_server_refuses_sqlite_with_etcd(tmp_path: Path) -> None:
    import subprocess
    import sys

    db = tmp_path / "one.db"
    done = subprocess.run(
        [sys.executable, "-m", "tideflow.cli.main", "server", "--db", f"sqlite:///{db}",
         "--keeper", "etcd://127.0.0.1:2379"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "needs a database every node shares" in done.stderr
    assert not db.exists()


@pytest.mark.postgres
async def test_a_deployment_keeps_to_the_keeper_it_recorded(postgres_url: str,
                                                            etcd_url: str) -> None:
    """The first node records the deployment's Keeper in its database: a node naming another
    etcd path, or none (the SQL Keeper), is refused before it joins, naming both."""
    from tideflow.cluster.node import ClusterSettings
    from tideflow.engine.settings import EngineSettings

    store = SqlStore(postgres_url)
    await store.open()
    first = make_keeper(etcd_url, store, table_prefix="tf_")
    other = make_keeper(f"{etcd_url}/other", store, table_prefix="tf_")
    try:
        await first.open()
        path = etcd_url.split("/", 3)[3]
        with pytest.raises(InputError) as info:
            await other.open()
        assert f"etcd (path /{path})" in info.value.message
        assert f"etcd (path /{path}/other)" in info.value.message
        sql_node = Engine.from_url(postgres_url, settings=EngineSettings(
            node_id="w4", cluster=ClusterSettings(role="worker")))
        with pytest.raises(InputError, match=r"this node names the database \(the SQL"):
            await sql_node.start()
        await sql_node.close()
        # a client without TIDEFLOW_KEEPER (a watcher) is told, rather than shown no nodes
        client = Engine.from_url(postgres_url, settings=EngineSettings(
            node_id="cli-1", recover=False, cluster=ClusterSettings(role="watcher")))
        with pytest.raises(InputError, match="TIDEFLOW_KEEPER"):
            await client.start()
        await client.close()
        assert (await store.get_lease("leader")) is None  # the refused node took nothing
        assert await store.list_nodes(unhealthy_secs=5) == []
    finally:
        await first.close()
        await other.close()
        await store.close()


@pytest.mark.postgres
@pytest.mark.mysql
async def test_two_databases_never_share_etcd_keys(postgres_url: str, mysql_url: str,
                                                   etcd_url: str) -> None:
    """Two deployments on the same etcd URL and table prefix keep apart: the keys are under
    each deployment's own id."""
    from tideflow.clock import utcnow
    from tideflow.store.records import NodeRecord

    stores = [SqlStore(postgres_url), SqlStore(mysql_url)]
    keepers = [make_keeper(etcd_url, s, table_prefix="tf_") for s in stores]
    try:
        for s, k in zip(stores, keepers, strict=True):
            await s.open()
            await k.open()
        now = utcnow()
        await keepers[0].put_node(NodeRecord(
            node_id="pg-1", incarnation="i1", role="worker", host="h", pid=1, started_at=now,
            heartbeat_at=now, capacity=1, running=0, assigned=0, labels={}, actions=[]))
        assert [n.node_id for n in await keepers[0].list_nodes(unhealthy_secs=5)] == ["pg-1"]
        assert await keepers[1].list_nodes(unhealthy_secs=5) == []
    finally:
        for k in keepers:
            await k.close()
        for s in stores:
            await s.close()


@pytest.mark.postgres
async def test_tokens_only_grow_when_etcd_is_replaced(postgres_url: str,
                                                      etcd_url: str) -> None:
    """A new etcd restarts its revisions at 1, far below the tokens the database recorded
    under the old one: the leader's token (and a mutex's) still comes out larger, and a
    smaller token is refused by the store even once the recorded one expired."""
    import asyncio

    store = SqlStore(postgres_url)
    await store.open()
    old = 10**9  # the old etcd's leader, many revisions in
    assert await store.fence_leader(LeaderFence("old/1", old), 0.2)
    await asyncio.sleep(0.4)  # its row expired
    assert not await store.fence_leader(LeaderFence("stale/1", 7), 5)
    keeper = make_keeper(etcd_url, store, table_prefix="tf_")
    try:
        await keeper.open()
        lease = await keeper.acquire_lease("leader", "new/1", 5)
        assert lease is not None and lease.token > old
        row = await store.get_lease("leader")
        assert row is not None and (row.holder, row.token) == ("new/1", lease.token)
        assert await keeper.renew_lease("leader", "new/1", lease.token, 5)
        mutex = await keeper.acquire_lease("mutex:m", "x", 5)
        assert mutex is not None and mutex.token > lease.token
        assert await keeper.release_lease("mutex:m", "x", mutex.token)
        assert await keeper.release_lease("leader", "new/1", lease.token)
    finally:
        await keeper.close()
        await store.close()


def test_client_with_keeper_variable_on_sqlite_names_the_variable(tmp_path: Path) -> None:
    """The client verbs have no --keeper flag: the refusal names the variable to unset."""
    import os
    import subprocess
    import sys

    db = tmp_path / "one.db"
    done = subprocess.run(
        [sys.executable, "-m", "tideflow.cli.main", "node", "list", "--db", f"sqlite:///{db}"],
        env={**os.environ, "TIDEFLOW_KEEPER": "etcd://127.0.0.1:2379"},
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done
    assert "TIDEFLOW_KEEPER" in done.stderr


def test_a_hand_built_keeper_takes_the_stores_table_prefix() -> None:
    store = SqlStore("postgresql://h/db", table_prefix="team_a_")
    assert EtcdKeeper("etcd://127.0.0.1:2379", store).table_prefix == "team_a_"
    assert make_keeper("etcd://127.0.0.1:2379", store).table_prefix == "team_a_"


def test_fractional_timings_are_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    """etcd's leases are whole seconds: a fractional lease or unhealthy time is rounded up,
    and the operator is told."""
    store = SqlStore("postgresql://h/db")
    keeper = EtcdKeeper("etcd://127.0.0.1:2379", store)
    with caplog.at_level("WARNING", logger="tideflow.cluster"):
        keeper.configure(unhealthy_secs=0.7, lease_secs=0.5)
        keeper.configure(unhealthy_secs=3, lease_secs=2)
    said = [r.getMessage() for r in caplog.records]
    assert said == ["--unhealthy-secs 0.7: etcd's leases are whole seconds, so it lasts 1 s",
                    "--lease-secs 0.5: etcd's leases are whole seconds, so it lasts 1 s"]


async def test_the_sql_keeper_never_takes_the_lease_of_an_etcd_deployment(
        server_url: str) -> None:
    """Even a node that skipped the check at start cannot take the leader's row over from an
    etcd deployment: neither by acquiring it nor at its heartbeat's campaign."""
    from datetime import datetime

    from tideflow.store.records import NodeRecord

    store = SqlStore(server_url)
    await store.open()
    try:
        assert await store.deployment_keeper("etcd:tideflow", record=True)
        assert await store.fence_leader(LeaderFence("e/1", 5), 0.1)  # its row expires
        now = datetime.now().astimezone()
        await store.put_node(NodeRecord(
            node_id="s1", incarnation="i", role="worker", host="h", pid=1, started_at=now,
            heartbeat_at=now, capacity=1, running=0, assigned=0, labels={}, actions=[]))
        import asyncio

        await asyncio.sleep(0.3)
        assert await store.acquire_lease("leader", "s1/i", 5) is None
        beat = await store.beat("s1", "i", running=0, assigned=0, holder="s1/i", token=None,
                                campaign=True, lease_secs=5)
        assert beat.lease is not None and beat.lease.holder == "e/1"
        assert await store.acquire_lease("mutex:m", "x", 5) is not None  # mutexes are not
    finally:
        await store.close()
