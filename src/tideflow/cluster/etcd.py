"""The Keeper on etcd v3: membership, leader election and mutexes in the coordination service
a deployment already runs, the SQL database keeping state only.

Keys, under ``/<path>/<table prefix><deployment id>`` (the URL's path, ``tideflow`` by
default; the id, in hex, is the random one the deployment recorded in its database with its
Keeper, so that two databases never share keys):

    lease/<name>   {"holder", "acquired_at"}, attached to an etcd lease of the lease's TTL;
                   the fencing token is the key's create revision plus the base
                   below, so it only grows
    meta/token-base  what tokens add to revisions: 0, or above the database's leader token
                   when this etcd's revisions started anew (see :meth:`EtcdKeeper._base`)
    node/<id>      the node's record (JSON), with the id of its liveness lease
    live/<id>      the node's incarnation, attached to its liveness lease (TTL: the
                   cluster's unhealthy time): alive while the key exists

etcd's leases are whole seconds, and etcd raises a TTL below its minimum (1.5 x its election
timeout, rounded up: 2 s with etcd's defaults) to that minimum. Times are this process's UTC
clock: a lease's end is the time its last renewal was asked for plus the TTL etcd granted,
which errs early (a new lease is renewed once its key is created: an etcd that restarted
meanwhile gives every lease a fresh TTL, counted from its own start).

The leader's writes stay fenced in the SQL store: holding the leader's lease here means both
holding the etcd key and having its token recorded in the store's lease row (see
:meth:`SchedulingStore.fence_leader`), which every fenced write compares against. A deposed
leader's token is smaller than its successor's, so once the successor has recorded its own,
every write made under the old one is refused."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ..clock import utcnow
from ..errors import InputError, StoreError
from ..extras import require_modules
from ..store.records import LeaseRecord, NodeRecord
from .keeper import LEADER_LEASE, Beat, ExternalKeeper, Keeper, holder_id
from .scheduling import LeaderFence, SchedulingStore, deployment_of

ETCD_EXTRA = "pip install 'tideflow[etcd]'"
#: one etcd request's limit: a stopped or unreachable etcd fails a beat, it does not stall it
_RPC_TIMEOUT_SECS = 2.0
#: gRPC's reconnection back-off goes up to two minutes by default: an etcd that restarts
#: must be found again within a lease
_CHANNEL_OPTIONS = {
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.min_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 500,
}

T = TypeVar("T")

log = logging.getLogger("tideflow.cluster")

#: the revisions one etcd's tokens may span before the next etcd's base
_TOKEN_BLOCK = 1 << 40


@dataclass(frozen=True)
class EtcdUrl:
    """``etcd://host:port[,host2:port2...][/path]``."""

    endpoints: tuple[tuple[str, int], ...]
    path: str

    @classmethod
    def parse(cls, url: str) -> EtcdUrl:
        where = f"keeper URL {url!r}"
        parts = urlsplit(url)
        if parts.scheme != "etcd":
            raise InputError(f"{where}: use etcd://host:port[,host:port...][/path]")
        if parts.query or parts.fragment or "@" in parts.netloc:
            raise InputError(f"{where}: no user, query or fragment; "
                             "use etcd://host:port[,host:port...][/path]")
        endpoints = []
        for item in parts.netloc.split(","):
            host, _, port = item.strip().rpartition(":")
            if not host:
                host, port = item.strip(), "2379"
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise InputError(f"{where}: {item!r} is not host:port")
            endpoints.append((host.strip("[]"), int(port)))
        path = parts.path.strip("/")
        if not path:
            path = "tideflow"
        if any(not seg for seg in path.split("/")):
            raise InputError(f"{where}: the path {parts.path!r} has an empty segment")
        return cls(tuple(endpoints), path)

    def __str__(self) -> str:
        hosts = ",".join(f"{h}:{p}" for h, p in self.endpoints)
        return f"etcd://{hosts}/{self.path}"


def make_keeper(url: str, store: object, *, table_prefix: str | None = None) -> EtcdKeeper:
    """The Keeper for ``--keeper URL`` next to ``store``, which must be a shared SQL store:
    the leader's fencing tokens are recorded there."""
    parsed = EtcdUrl.parse(url)
    backend = getattr(getattr(store, "url", None), "backend", None)
    if backend == "sqlite" or not isinstance(store, SchedulingStore):
        raise InputError(
            f"keeper {url!r} needs a database every node shares (MariaDB, MySQL or "
            "PostgreSQL): a SQLite file belongs to one process, so there is no cluster to "
            "coordinate; drop the keeper (--keeper, or the TIDEFLOW_KEEPER variable), or move "
            "the store to a database server")
    return EtcdKeeper(parsed, store, table_prefix=table_prefix)


def _ttl(secs: float) -> int:
    """etcd's leases are whole seconds: never shorter than asked."""
    return max(1, math.ceil(secs - 1e-9))


class EtcdKeeper(ExternalKeeper):
    def __init__(self, url: EtcdUrl | str, fence: SchedulingStore, *,
                 table_prefix: str | None = None, node_ttl_secs: float = 5.0) -> None:
        self.url = url if isinstance(url, EtcdUrl) else EtcdUrl.parse(url)
        self.fence = fence
        if table_prefix is None:
            # the store's own: a deployment's keys follow its tables
            tables = getattr(fence, "tables", None)
            table_prefix = str(getattr(tables, "prefix", "tf_"))
        self.table_prefix = table_prefix
        #: a node whose liveness lease is not renewed for this long is dead
        self.node_ttl_secs = node_ttl_secs
        self._root = f"/{self.url.path}/{table_prefix}"
        self._clients: list[Any] = []
        self._at = 0  # the endpoint in use; another is tried when it cannot be reached
        #: a twin's own store (its connections on the twin's loop), opened and closed with it
        self._twin_fence: Keeper | None = None
        self._token_base: int | None = None

    # -- connections -----------------------------------------------------------------------
    def configure(self, *, unhealthy_secs: float, lease_secs: float | None = None) -> None:
        self.node_ttl_secs = unhealthy_secs
        for option, secs in (("--unhealthy-secs", unhealthy_secs), ("--lease-secs", lease_secs)):
            if secs is not None and _ttl(secs) != secs:
                # etcd grants whole seconds: the operator should know the timing is not theirs
                log.warning("%s %g: etcd's leases are whole seconds, so it lasts %d s",
                            option, secs, _ttl(secs))

    async def open(self) -> None:
        require_modules("the etcd keeper", ("aetcd",), ETCD_EXTRA)
        # before gRPC loads: its fork handlers only log, at every shell task's fork, that
        # they were skipped; a child here execs at once and never uses gRPC (an operator's
        # own setting wins)
        os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
        import aetcd

        if self._clients:
            return
        # the deployment's id namespaces its keys: two databases never share a membership
        # list, whatever their path and table prefix; a node of a deployment on another
        # Keeper (or another etcd path) refuses to start
        deployment = await deployment_of(self.fence, f"etcd:{self.url.path}", record=True)
        self._root = f"/{self.url.path}/{self.table_prefix}{deployment:x}"
        self._clients = [
            aetcd.Client(host=host, port=port, timeout=_RPC_TIMEOUT_SECS,
                         options=_CHANNEL_OPTIONS)
            for host, port in self.url.endpoints]

    async def close(self) -> None:
        clients, self._clients = self._clients, []
        for c in clients:
            with contextlib.suppress(Exception):
                await c.close()

    def dedicated(self) -> EtcdKeeper | None:
        # the beat's own thread gets its own etcd channel, and its own connection to the
        # store for the leader's fencing row
        twin_store = self.fence.dedicated() if isinstance(self.fence, Keeper) else None
        if not isinstance(twin_store, SchedulingStore):
            return None
        twin = EtcdKeeper(self.url, twin_store, table_prefix=self.table_prefix,
                          node_ttl_secs=self.node_ttl_secs)
        twin._twin_fence = twin_store
        return twin

    async def open_dedicated(self) -> None:
        if self._twin_fence is not None:
            await self._twin_fence.open_dedicated()
        await self.open()

    async def close_dedicated(self) -> None:
        await self.close()
        if self._twin_fence is not None:
            await self._twin_fence.close_dedicated()

    async def _call(self, what: str, fn: Callable[[Any], Awaitable[T]]) -> T:
        """``fn(client)`` on the endpoint in use, then on each other one while they cannot
        be reached; any etcd failure becomes a StoreError naming what was being done."""
        if not self._clients:
            raise StoreError(f"the etcd keeper is not open ({what})")
        from aetcd import exceptions as ex

        last: Exception | None = None
        for i in range(len(self._clients)):
            at = (self._at + i) % len(self._clients)
            try:
                out = await fn(self._clients[at])
                self._at = at
                return out
            except (ex.ConnectionFailedError, ex.ConnectionTimeoutError, TimeoutError,
                    OSError) as exc:
                last = exc
            except ex.ClientError as exc:
                raise StoreError(f"etcd ({self.url}) failed to {what}: {exc}") from exc
        raise StoreError(f"etcd ({self.url}) cannot be reached to {what}: {last}") from last

    # -- keys --------------------------------------------------------------------------------
    def _key(self, kind: str, name: str) -> bytes:
        return f"{self._root}/{kind}/{name}".encode()

    async def _get(self, key: bytes, what: str) -> Any:
        return await self._call(what, lambda c: c.get(key))

    async def _keepalive(self, lease_id: int, what: str) -> int:
        """Renew an etcd lease; the TTL granted, 0 when the lease is gone."""
        reply = await self._call(what, lambda c: c.refresh_lease(lease_id))
        return int(getattr(reply, "TTL", 0) or 0)

    async def _grant(self, ttl_secs: float, what: str) -> tuple[int, int]:
        lease = await self._call(what, lambda c: c.lease(_ttl(ttl_secs)))
        return int(lease.id), int(lease.ttl)

    async def _revoke(self, lease_id: int) -> None:
        from aetcd import exceptions as ex

        with contextlib.suppress(StoreError, ex.ClientError):
            await self._call("revoke a lease", lambda c: c.revoke_lease(lease_id))

    async def _remaining(self, lease_id: int, what: str) -> int:
        info = await self._call(what, lambda c: c.get_lease_info(lease_id, keys=False))
        return max(0, int(info.TTL))

    async def _txn(self, what: str, compare: list[Any], success: list[Any],
                   failure: list[Any] | None = None) -> tuple[bool, list[Any]]:
        out: tuple[bool, list[Any]] = await self._call(
            what, lambda c: c.transaction(compare=compare, success=success,
                                          failure=failure or []))
        return out

    # -- clock -------------------------------------------------------------------------------
    async def db_now(self) -> datetime:
        return utcnow()

    # -- nodes -------------------------------------------------------------------------------
    async def put_node(self, node: NodeRecord) -> datetime:
        from aetcd.transactions import Put

        what = f"register node {node.node_id!r}"
        key = self._key("node", node.node_id)
        old = await self._get(key, what)
        if old is not None:
            prev = json.loads(old.value)
            if prev.get("lease"):
                await self._revoke(int(prev["lease"]))
        lease_id, _ = await self._grant(self.node_ttl_secs, what)
        now = utcnow()
        record = _node_json(node, now, lease_id)
        await self._txn(what, [], [
            Put(key, json.dumps(record).encode()),
            Put(self._key("live", node.node_id), node.incarnation.encode(), lease=lease_id),
        ])
        return now

    async def get_node(self, node_id: str) -> NodeRecord | None:
        kv = await self._get(self._key("node", node_id), "read a node")
        return None if kv is None else _node(json.loads(kv.value))

    async def heartbeat(
        self, node_id: str, incarnation: str, *, running: int, assigned: int
    ) -> bool:
        from aetcd.transactions import Mod, Put

        what = "heartbeat"
        key = self._key("node", node_id)
        kv = await self._get(key, what)
        if kv is None:
            return False
        record = json.loads(kv.value)
        if record["incarnation"] != incarnation:
            return False
        lease_id = int(record.get("lease") or 0)
        if not lease_id or await self._keepalive(lease_id, what) <= 0:
            # silent past its TTL: its liveness lease ended, and a new one starts now
            lease_id, _ = await self._grant(self.node_ttl_secs, what)
        record.update(lease=lease_id, running=running, assigned=assigned,
                      heartbeat_at=utcnow().isoformat())
        ok, _ = await self._txn(what, [Mod(key) == kv.mod_revision], [
            Put(key, json.dumps(record).encode()),
            Put(self._key("live", node_id), incarnation.encode(), lease=lease_id),
        ])
        if ok:
            return True
        # changed in between: by a newer incarnation (taken over), or by this one's own
        # load report
        again = await self.get_node(node_id)
        return again is not None and again.incarnation == incarnation

    async def remove_node(self, node_id: str, incarnation: str) -> None:
        from aetcd.transactions import Delete, Mod

        what = f"deregister node {node_id!r}"
        key = self._key("node", node_id)
        kv = await self._get(key, what)
        if kv is None:
            return
        record = json.loads(kv.value)
        if record["incarnation"] != incarnation:
            return
        ok, _ = await self._txn(what, [Mod(key) == kv.mod_revision], [
            Delete(key), Delete(self._key("live", node_id))])
        if ok and record.get("lease"):
            await self._revoke(int(record["lease"]))

    async def _nodes(self, what: str) -> tuple[list[tuple[Any, dict[str, Any]]],
                                               dict[str, str]]:
        """(kv, record) of every node, and the incarnation of each live one."""
        records = await self._call(
            what, lambda c: c.get_prefix(self._key("node", "")))
        lives = await self._call(
            what, lambda c: c.get_prefix(self._key("live", "")))
        live = {kv.key.decode().rsplit("/", 1)[1]: kv.value.decode() for kv in lives}
        return [(kv, json.loads(kv.value)) for kv in records], live

    async def prune_nodes(self, *, role: str, older_than_secs: float) -> int:
        from aetcd.transactions import Delete, Mod

        what = "prune stopped nodes"
        records, live = await self._nodes(what)
        now = utcnow()
        pruned = 0
        for kv, rec in records:
            if rec["role"] != role or live.get(rec["node_id"]) == rec["incarnation"]:
                continue
            age = (now - datetime.fromisoformat(rec["heartbeat_at"])).total_seconds()
            if age <= older_than_secs:
                continue
            ok, _ = await self._txn(what, [Mod(kv.key) == kv.mod_revision], [Delete(kv.key)])
            pruned += ok
        return pruned

    async def list_nodes(self, *, unhealthy_secs: float) -> list[NodeRecord]:
        # alive: the node's liveness lease (TTL: the unhealthy time it registered with) runs
        records, live = await self._nodes("list nodes")
        leader = await self._get(self._key("lease", LEADER_LEASE), "list nodes")
        leader_holder = None if leader is None else json.loads(leader.value)["holder"]
        now = utcnow()
        out = []
        for _, rec in sorted(records, key=lambda r: r[1]["node_id"]):
            node = _node(rec)
            node.alive = live.get(node.node_id) == node.incarnation
            node.heartbeat_age_secs = max(0.0, (now - node.heartbeat_at).total_seconds())
            node.is_leader = leader_holder == holder_id(node.node_id, node.incarnation)
            out.append(node)
        return out

    # -- leases ------------------------------------------------------------------------------
    async def acquire_lease(self, name: str, holder: str, ttl_secs: float) -> LeaseRecord | None:
        from aetcd.transactions import Create, Get, Put

        what = f"acquire lease {name!r}"
        key = self._key("lease", name)
        # read anew at each acquisition: an etcd replaced meanwhile has none yet
        base = await self._base(fresh=True)
        for _ in range(3):
            asked = utcnow()
            kv = await self._get(key, what)
            if kv is not None:
                value = json.loads(kv.value)
                if value["holder"] != holder:
                    return None
                # held by this holder already: extend it, same token
                ttl = await self._keepalive(kv.lease, what)
                if ttl <= 0:
                    continue  # it ended just now: take it anew
                lease = _lease(name, value, base + kv.create_revision,
                               asked + timedelta(seconds=ttl))
                return await self._fenced(lease, ttl_secs)
            lease_id, ttl = await self._grant(ttl_secs, what)
            value = {"holder": holder, "acquired_at": asked.isoformat()}
            ok, replies = await self._txn(
                what, [Create(key) == 0],
                [Put(key, json.dumps(value).encode(), lease=lease_id), Get(key)])
            if not ok:
                await self._revoke(lease_id)
                continue  # taken in between: see by whom
            created = replies[1][0][1]
            taken = utcnow()
            # the lease's TTL runs from its grant, and an etcd that restarted in between gave
            # it a fresh one of its own: its end is known only once renewed from here
            ttl = await self._keepalive(lease_id, what)
            if ttl <= 0:
                continue  # it ended already: the key went with it
            lease = _lease(name, value, base + created.create_revision,
                           taken + timedelta(seconds=ttl))
            # taken once the key was created, not when asked: a predecessor's key was gone by
            # then, so its end (which errs early) lies before this
            lease.acquired_at = taken
            return await self._fenced(lease, ttl_secs)
        return None

    async def _base(self, *, fresh: bool = False) -> int:
        """What every token adds to the key's create revision. etcd's revisions restart at 1
        in a new etcd (one replaced, or restored without its data): the first node to take a
        lease there records a base above every token this deployment's database has seen
        (the leader's; a block of 2**40 revisions per etcd), so tokens only grow."""
        if self._token_base is not None and not fresh:
            return self._token_base
        from aetcd.transactions import Create, Get, Put

        what = "read the tokens' base"
        key = self._key("meta", "token-base")
        kv = await self._get(key, what)
        if kv is None:
            seen = await self.fence.leader_token()
            base = (seen // _TOKEN_BLOCK + 1) * _TOKEN_BLOCK if seen else 0
            ok, replies = await self._txn(what, [Create(key) == 0],
                                          [Put(key, str(base).encode())], [Get(key)])
            if not ok:  # another node recorded it first: its base holds
                base = int(replies[0][0][1].value)
        else:
            base = int(kv.value)
        self._token_base = base
        return base

    async def _fenced(self, lease: LeaseRecord, ttl_secs: float) -> LeaseRecord | None:
        """The leader's lease is held only once its token is recorded in the store."""
        if lease.name != LEADER_LEASE:
            return lease
        assert lease.holder is not None
        if await self.fence.fence_leader(LeaderFence(lease.holder, lease.token), ttl_secs):
            return lease
        return None

    async def _held(self, name: str, holder: str, token: int, what: str) -> Any:
        kv = await self._get(self._key("lease", name), what)
        if kv is None or await self._base() + kv.create_revision != token:
            return None
        if json.loads(kv.value)["holder"] != holder:
            return None
        return kv

    async def renew_lease(self, name: str, holder: str, token: int, ttl_secs: float) -> bool:
        return await self._renew(name, holder, token, ttl_secs) is not None

    async def _renew(self, name: str, holder: str, token: int,
                     ttl_secs: float) -> LeaseRecord | None:
        what = f"renew lease {name!r}"
        asked = utcnow()
        kv = await self._held(name, holder, token, what)
        if kv is None:
            return None
        ttl = await self._keepalive(kv.lease, what)
        if ttl <= 0:
            return None
        lease = _lease(name, json.loads(kv.value), token, asked + timedelta(seconds=ttl))
        return await self._fenced(lease, ttl_secs)

    async def release_lease(self, name: str, holder: str, token: int) -> bool:
        from aetcd.transactions import Delete, Mod

        what = f"release lease {name!r}"
        kv = await self._held(name, holder, token, what)
        if kv is None:
            return False
        if name == LEADER_LEASE:
            # the store's row first: once the etcd key is gone a successor may record its own
            await self.fence.fence_leader(LeaderFence(holder, token), 0)
        key = self._key("lease", name)
        ok, _ = await self._txn(what, [Mod(key) == kv.mod_revision], [Delete(key)])
        await self._revoke(kv.lease)
        return bool(ok)

    async def get_lease(self, name: str) -> LeaseRecord | None:
        what = f"read lease {name!r}"
        kv = await self._get(self._key("lease", name), what)
        if kv is None:
            return None
        now = utcnow()
        left = await self._remaining(kv.lease, what)
        return _lease(name, json.loads(kv.value), await self._base() + kv.create_revision,
                      now + timedelta(seconds=left))

    async def beat(
        self,
        node_id: str,
        incarnation: str,
        *,
        running: int,
        assigned: int,
        holder: str,
        token: int | None,
        campaign: bool,
        lease_secs: float,
        unhealthy_secs: float | None = None,
    ) -> Beat:
        """The heartbeat, then the lease: renewed with ``token``; or, campaigning while
        another holds it, the beat waits (up to half a lease) for etcd to report the key
        gone, so that a dead leader's successor is known at once rather than a beat later.
        A free lease comes back as None: the node takes it with ``acquire_lease``."""
        alive = await self.heartbeat(node_id, incarnation, running=running, assigned=assigned)
        lease: LeaseRecord | None
        if token is not None:
            lease = await self._renew(LEADER_LEASE, holder, token, lease_secs)
            if lease is None:
                lease = await self.get_lease(LEADER_LEASE)
        else:
            lease = await self._watch_leader(holder, lease_secs) if campaign else \
                await self.get_lease(LEADER_LEASE)
        live = None
        if unhealthy_secs is not None:
            _, lives = await self._nodes("heartbeat")
            live = frozenset(holder_id(n, inc) for n, inc in lives.items())
        return Beat(alive, utcnow(), lease, live)

    async def _watch_leader(self, holder: str, lease_secs: float) -> LeaseRecord | None:
        from aetcd import exceptions as ex
        from aetcd.rtypes import EventKind

        what = "watch the leader's lease"
        key = self._key("lease", LEADER_LEASE)
        kv = await self._get(key, what)
        if kv is None:
            return None
        value = json.loads(kv.value)
        started = time.monotonic()
        left = await self._remaining(kv.lease, what)
        lease = _lease(LEADER_LEASE, value, await self._base() + kv.create_revision,
                       utcnow() + timedelta(seconds=left))
        if value["holder"] == holder:
            return lease
        # never long enough for this node's own liveness lease to run low
        wait = min(lease_secs * 0.5, self.node_ttl_secs * 0.3) - (time.monotonic() - started)
        if wait <= 0:
            return lease
        try:
            await self._call(what, lambda c: c.watch_once(
                key, timeout=wait, start_revision=kv.header.revision + 1,
                kind=EventKind.DELETE))
        except ex.WatchTimeoutError:
            return lease
        except (TimeoutError, StoreError):
            return lease
        return None  # gone: free to take


def _lease(name: str, value: dict[str, Any], token: int, expires: datetime) -> LeaseRecord:
    return LeaseRecord(name=name, holder=value["holder"], token=int(token),
                       acquired_at=datetime.fromisoformat(value["acquired_at"]),
                       expires_at=expires)


def _node_json(node: NodeRecord, now: datetime, lease_id: int) -> dict[str, Any]:
    return {
        "node_id": node.node_id, "incarnation": node.incarnation, "role": node.role,
        "host": node.host, "pid": node.pid, "started_at": now.isoformat(),
        "heartbeat_at": now.isoformat(), "capacity": node.capacity,
        "running": node.running, "assigned": node.assigned, "labels": dict(node.labels),
        "actions": sorted(node.actions), "lease": lease_id,
    }


def _node(r: dict[str, Any]) -> NodeRecord:
    return NodeRecord(
        node_id=r["node_id"], incarnation=r["incarnation"], role=r["role"], host=r["host"],
        pid=int(r["pid"]), started_at=datetime.fromisoformat(r["started_at"]),
        heartbeat_at=datetime.fromisoformat(r["heartbeat_at"]), capacity=int(r["capacity"]),
        running=int(r["running"]), assigned=int(r["assigned"]), labels=dict(r["labels"]),
        actions=list(r["actions"]))
