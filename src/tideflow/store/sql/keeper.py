"""The SQL Keeper: node rows and named leases, judged by the database's clock.

Every lease change is one conditional UPDATE (compare-and-set on holder, token and expiry),
so two nodes can never both believe they took the same lease; the token grows with each new
holder and fences the writes made under it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ...cluster.keeper import LEADER_LEASE, Beat, Keeper, holder_id
from ...errors import ConflictError
from ..records import LeaseRecord, NodeRecord
from .cluster import KEEPER_ROW
from .database import Database
from .rows import dumps, loads

log = logging.getLogger("tideflow.cluster")


class KeeperMethods(Database, Keeper):
    def dedicated(self) -> Keeper | None:
        if self.url.backend == "sqlite":
            return None  # one node per file: its beat has nothing to compete with
        return type(self)(self.url, table_prefix=self.tables.prefix)

    async def open_dedicated(self) -> None:
        await self.open(migrate=False)

    async def close_dedicated(self) -> None:
        await self.close()

    async def db_now(self) -> datetime:
        async with self._tx("read the database clock") as conn:
            return await self._hooks.db_now(conn)

    async def put_node(self, node: NodeRecord) -> datetime:
        n = self.tables.nodes
        async with self._tx(f"register node {node.node_id!r}", write=True) as conn:
            now = await self._hooks.db_now(conn)
            values = {
                "incarnation": node.incarnation,
                "role": node.role,
                "host": node.host,
                "pid": node.pid,
                "started_at": now,
                "heartbeat_at": now,
                "capacity": node.capacity,
                "running": node.running,
                "assigned": node.assigned,
                "labels": dumps(node.labels),
                "actions": dumps(sorted(node.actions)),
            }
            done = await conn.execute(
                n.update().where(n.c.node_id == node.node_id).values(values)
            )
            if not done.rowcount:
                await conn.execute(n.insert().values(node_id=node.node_id, **values))
        return now

    async def get_node(self, node_id: str) -> NodeRecord | None:
        n = self.tables.nodes
        async with self._tx("read a node") as conn:
            row = (await conn.execute(sa.select(n).where(n.c.node_id == node_id))).first()
        return None if row is None else _node(row)

    async def heartbeat(
        self, node_id: str, incarnation: str, *, running: int, assigned: int
    ) -> bool:
        n = self.tables.nodes
        async with self._tx("heartbeat", write=True) as conn:
            now = await self._hooks.db_now(conn)
            done = await conn.execute(
                n.update()
                .where(n.c.node_id == node_id, n.c.incarnation == incarnation)
                .values(heartbeat_at=now, running=running, assigned=assigned)
            )
        return bool(done.rowcount)

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
        if self._hooks.name == "postgresql":
            return await self._beat_one_statement({
                "node_id": node_id, "incarnation": incarnation, "running": running,
                "assigned": assigned, "holder": holder,
                "token": token if token is not None else 0,
                "renew": token is not None, "campaign": token is None and campaign,
                "ttl": float(lease_secs), "name": LEADER_LEASE,
                "want_live": unhealthy_secs is not None,
                "unhealthy": float(unhealthy_secs or 0.0),
            })
        n, le = self.tables.nodes, self.tables.leases
        async with self._tx("heartbeat", write=True) as conn:
            locked = (token is not None or campaign) and await self._lock_lease(
                conn, LEADER_LEASE)
            now = await self._hooks.db_now(conn)
            alive = (await conn.execute(
                n.update()
                .where(n.c.node_id == node_id, n.c.incarnation == incarnation)
                .values(heartbeat_at=now, running=running, assigned=assigned)
            )).rowcount
            expires = now + timedelta(seconds=lease_secs)
            if not locked:
                pass
            elif token is not None:
                # not only while unexpired: see _PG_BEAT
                await conn.execute(le.update().where(
                    le.c.name == LEADER_LEASE, le.c.holder == holder, le.c.token == token,
                ).values(expires_at=expires))
            elif campaign and not await self._on_etcd(conn):
                await conn.execute(self._take(LEADER_LEASE, holder, now, expires))
            row = (await conn.execute(
                sa.select(le).where(le.c.name == LEADER_LEASE))).first()
            live = None
            if unhealthy_secs is not None:
                fresh = now - timedelta(seconds=unhealthy_secs)
                live = frozenset(
                    holder_id(r.node_id, r.incarnation) for r in (await conn.execute(
                        sa.select(n.c.node_id, n.c.incarnation)
                        .where(n.c.heartbeat_at > fresh))).all())
        return Beat(bool(alive), now, None if row is None else _lease(row), live)

    async def _beat_one_statement(self, params: dict[str, Any]) -> Beat:
        """PostgreSQL: the whole beat is one statement (data-modifying CTEs), so an idle
        node costs the database one query per heartbeat."""
        sql = _PG_BEAT.format(nodes=self.tables.nodes.name, leases=self.tables.leases.name)
        async with self._tx("heartbeat", write=True) as conn:
            r = (await conn.execute(sa.text(sql), params)).one()
        now = r.now.replace(tzinfo=UTC)
        lease = None
        if r.token is not None:
            lease = LeaseRecord(
                name=LEADER_LEASE, holder=r.holder, token=int(r.token),
                acquired_at=None if r.acquired_at is None else r.acquired_at.replace(tzinfo=UTC),
                expires_at=None if r.expires_at is None else r.expires_at.replace(tzinfo=UTC))
        live = None
        if params["want_live"]:
            live = frozenset(r.live.split(" ")) if r.live else frozenset()
        return Beat(bool(r.alive), now, lease, live)

    async def remove_node(self, node_id: str, incarnation: str) -> None:
        n = self.tables.nodes
        async with self._tx("deregister a node", write=True) as conn:
            await conn.execute(
                n.delete().where(n.c.node_id == node_id, n.c.incarnation == incarnation)
            )

    async def prune_nodes(self, *, role: str, older_than_secs: float) -> int:
        n = self.tables.nodes
        async with self._tx("prune stopped nodes", write=True) as conn:
            now = await self._hooks.db_now(conn)
            done = await conn.execute(n.delete().where(
                n.c.role == role,
                n.c.heartbeat_at < now - timedelta(seconds=older_than_secs)))
        return int(done.rowcount or 0)

    async def list_nodes(self, *, unhealthy_secs: float) -> list[NodeRecord]:
        n, le = self.tables.nodes, self.tables.leases
        async with self._tx("list nodes") as conn:
            now = await self._hooks.db_now(conn)
            rows = (await conn.execute(sa.select(n).order_by(n.c.node_id))).all()
            lease = (
                await conn.execute(sa.select(le).where(le.c.name == LEADER_LEASE))
            ).first()
        leader = None
        if lease is not None and lease.holder and lease.expires_at and lease.expires_at > now:
            leader = lease.holder
        out = []
        for row in rows:
            node = _node(row)
            node.heartbeat_age_secs = max(0.0, (now - node.heartbeat_at).total_seconds())
            node.alive = node.heartbeat_age_secs < unhealthy_secs
            node.is_leader = leader == holder_id(node.node_id, node.incarnation)
            out.append(node)
        return out

    async def acquire_lease(self, name: str, holder: str, ttl_secs: float) -> LeaseRecord | None:
        try:
            return await self._acquire_lease(name, holder, ttl_secs)
        except ConflictError:
            return None  # another node created the lease row first: it holds it

    async def _acquire_lease(
        self, name: str, holder: str, ttl_secs: float
    ) -> LeaseRecord | None:
        le = self.tables.leases
        async with self._tx(f"acquire lease {name!r}", write=True,
                            conflict=f"lease {name!r} was created concurrently") as conn:
            if name == LEADER_LEASE and await self._on_etcd(conn):
                return None
            if not await self._lock_lease(conn, name):
                exists = (
                    await conn.execute(sa.select(le.c.name).where(le.c.name == name))
                ).first()
                if exists is not None:
                    return None  # someone is changing it this very moment: not free now
                now = await self._hooks.db_now(conn)
                await conn.execute(
                    le.insert().values(name=name, holder=holder, token=1, acquired_at=now,
                                       expires_at=now + timedelta(seconds=ttl_secs))
                )
            else:
                # the clock is read once the row is ours: a wait for the lock cannot age the
                # expiry written below
                now = await self._hooks.db_now(conn)
                expires = now + timedelta(seconds=ttl_secs)
                mine = await conn.execute(
                    self._held(name, holder, None, now).values(expires_at=expires))
                if not mine.rowcount:
                    taken = await conn.execute(self._take(name, holder, now, expires))
                    if not taken.rowcount:
                        return None
            row = (await conn.execute(sa.select(le).where(le.c.name == name))).first()
        assert row is not None
        return _lease(row)

    async def _on_etcd(self, conn: AsyncConnection) -> bool:
        """Whether the deployment recorded etcd as its Keeper: then the leader is elected
        there, and the SQL Keeper never takes the leader's row over (a node started on
        another Keeper is refused at start; this holds even against one that was not)."""
        le = self.tables.leases
        keeper = (await conn.execute(
            sa.select(le.c.holder).where(le.c.name == KEEPER_ROW))).scalar()
        if keeper is not None and str(keeper).startswith("etcd:"):
            log.error("this deployment's leader is elected in etcd (%s): the SQL Keeper does "
                      "not take the lease; give this node the deployment's --keeper", keeper)
            return True
        return False

    async def _lock_lease(self, conn: AsyncConnection, name: str) -> bool:
        """Lock the lease's row for this transaction without waiting: False when it is
        missing or another transaction holds it (then this attempt passes; the caller tries
        again later). Waiting could take as long as a frozen holder stays frozen."""
        le = self.tables.leases
        row = (await conn.execute(
            sa.select(le.c.name).where(le.c.name == name).with_for_update(skip_locked=True)
        )).first()
        return row is not None

    async def renew_lease(self, name: str, holder: str, token: int, ttl_secs: float) -> bool:
        async with self._tx(f"renew lease {name!r}", write=True) as conn:
            now = await self._hooks.db_now(conn)
            done = await conn.execute(self._held(name, holder, token, now).values(
                expires_at=now + timedelta(seconds=ttl_secs)))
        return bool(done.rowcount)

    async def release_lease(self, name: str, holder: str, token: int) -> bool:
        async with self._tx(f"release lease {name!r}", write=True) as conn:
            now = await self._hooks.db_now(conn)
            done = await conn.execute(
                self._held(name, holder, token, now).values(holder=None, expires_at=None))
        return bool(done.rowcount)

    def _held(self, name: str, holder: str, token: int | None, now: datetime) -> sa.Update:
        """An update of the lease while ``holder`` still holds it (with ``token``, when
        given) at ``now``."""
        le = self.tables.leases
        q = le.update().where(le.c.name == name, le.c.holder == holder, le.c.expires_at > now)
        return q if token is None else q.where(le.c.token == token)

    def _take(self, name: str, holder: str, now: datetime, expires: datetime) -> sa.Update:
        """Give a free or expired lease to ``holder`` under a new, larger token."""
        le = self.tables.leases
        return (le.update()
                .where(le.c.name == name, sa.or_(le.c.holder.is_(None), le.c.expires_at <= now))
                .values(holder=holder, token=le.c.token + 1, acquired_at=now,
                        expires_at=expires))

    async def get_lease(self, name: str) -> LeaseRecord | None:
        le = self.tables.leases
        async with self._tx(f"read lease {name!r}") as conn:
            row = (await conn.execute(sa.select(le).where(le.c.name == name))).first()
        return None if row is None else _lease(row)


def _node(r: Any) -> NodeRecord:
    return NodeRecord(
        node_id=r.node_id,
        incarnation=r.incarnation,
        role=r.role,
        host=r.host,
        pid=r.pid,
        started_at=r.started_at,
        heartbeat_at=r.heartbeat_at,
        capacity=r.capacity,
        running=r.running,
        assigned=r.assigned,
        labels=loads(r.labels) or {},
        actions=loads(r.actions) or [],
    )


def _lease(r: Any) -> LeaseRecord:
    return LeaseRecord(
        name=r.name,
        holder=r.holder,
        token=int(r.token),
        acquired_at=r.acquired_at,
        expires_at=r.expires_at,
    )


# Timestamps are stored as naive UTC, hence ``AT TIME ZONE 'UTC'``; the data-modifying CTEs
# all see the table as it was before the statement, which is what the live list wants. The
# lease row is taken only when no other transaction holds it (SKIP LOCKED), so the clock read
# at the start is still current when the expiry is written, and a frozen holder's open
# transaction never stalls this node's heartbeat. A renewal extends the lease even when it
# came back a little after the expiry: while the row still names this holder and token, no
# one took the lease in between (taking it raises the token), so extending it is as safe as a
# renewal in time, and a leader slowed down by a busy machine keeps its token rather than
# stepping down and taking a new one (what fenced writes check is the expiry at each write).
_PG_BEAT = """
WITH clk AS (SELECT clock_timestamp() AT TIME ZONE 'UTC' AS t),
hb AS (
  UPDATE {nodes} SET heartbeat_at = (SELECT t FROM clk), running = :running,
         assigned = :assigned
  WHERE node_id = :node_id AND incarnation = :incarnation
  RETURNING node_id
),
free AS (
  SELECT name FROM {leases} WHERE name = :name AND (:renew OR :campaign)
  FOR UPDATE SKIP LOCKED
),
ls AS (
  UPDATE {leases} SET
    holder = :holder,
    token = CASE WHEN :renew THEN token ELSE token + 1 END,
    acquired_at = CASE WHEN :renew THEN acquired_at ELSE (SELECT t FROM clk) END,
    expires_at = (SELECT t FROM clk) + make_interval(secs => :ttl)
  WHERE name = :name AND name IN (SELECT name FROM free) AND (
    (:renew AND holder = :holder AND token = :token)
    OR (:campaign AND (holder IS NULL OR expires_at <= (SELECT t FROM clk))
        AND NOT EXISTS (SELECT 1 FROM {leases} WHERE name = 'keeper'
                        AND holder LIKE 'etcd:%')))
  RETURNING holder, token, acquired_at, expires_at
),
cur AS (
  SELECT holder, token, acquired_at, expires_at FROM ls
  UNION ALL
  SELECT holder, token, acquired_at, expires_at FROM {leases}
  WHERE name = :name AND NOT EXISTS (SELECT 1 FROM ls)
)
SELECT (SELECT count(*) FROM hb) AS alive, (SELECT t FROM clk) AS now,
       cur.holder, cur.token, cur.acquired_at, cur.expires_at,
       CASE WHEN :want_live THEN (
         SELECT string_agg(node_id || '/' || incarnation, ' ') FROM {nodes}
         WHERE heartbeat_at > (SELECT t FROM clk) - make_interval(secs => :unhealthy))
       END AS live
FROM (SELECT 1) AS one LEFT JOIN cur ON true
"""
