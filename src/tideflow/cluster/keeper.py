"""The Keeper interface: node membership and heartbeats, and named leases with fencing tokens
(the leader's lease and the distributed mutexes are both leases). The SQL store is one (all
times are the database's clock, never a node's); :mod:`tideflow.cluster.etcd` is another, on
etcd, an :class:`ExternalKeeper` next to the store."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime

from ..store.records import LeaseRecord, NodeRecord

#: the lease the leader holds
LEADER_LEASE = "leader"


def holder_id(node_id: str, incarnation: str) -> str:
    """How a node names itself as a lease holder: a restarted node is a new holder."""
    return f"{node_id}/{incarnation}"


@dataclass(frozen=True)
class Beat:
    """What one heartbeat learned."""

    #: False: this node id was taken over by a newer incarnation
    alive: bool
    #: the database's clock at the beat
    now: datetime
    #: the leader's lease after the beat (None: it was never taken)
    lease: LeaseRecord | None
    #: holder ids of the nodes whose heartbeat is fresh (only when asked for)
    live: frozenset[str] | None = None


class Keeper(ABC):
    def dedicated(self) -> Keeper | None:
        """Another Keeper on the same database, with connections of its own, to be opened
        (:meth:`open_dedicated`) and used on another thread's event loop; None when this one
        cannot have such a twin (then the node beats on its main loop)."""
        return None

    async def open_dedicated(self) -> None:
        """Open a Keeper that :meth:`dedicated` returned, on the loop that will use it."""
        return None

    async def close_dedicated(self) -> None:
        """Close a Keeper that :meth:`dedicated` returned."""
        return None

    @abstractmethod
    async def db_now(self) -> datetime:
        """The database's current time (UTC)."""

    @abstractmethod
    async def put_node(self, node: NodeRecord) -> datetime:
        """Insert or replace the row of ``node.node_id`` (a new incarnation takes the row);
        returns the database time written as its heartbeat."""

    @abstractmethod
    async def get_node(self, node_id: str) -> NodeRecord | None: ...

    @abstractmethod
    async def heartbeat(
        self, node_id: str, incarnation: str, *, running: int, assigned: int
    ) -> bool:
        """Refresh this incarnation's heartbeat; False when its row was taken over (another
        incarnation with the same node id started)."""

    @abstractmethod
    async def remove_node(self, node_id: str, incarnation: str) -> None: ...

    @abstractmethod
    async def prune_nodes(self, *, role: str, older_than_secs: float) -> int:
        """Remove the rows of ``role`` nodes whose heartbeat is older than
        ``older_than_secs`` (watchers and clients that stopped without leaving: they held
        no work); returns how many."""

    @abstractmethod
    async def list_nodes(self, *, unhealthy_secs: float) -> list[NodeRecord]:
        """Every registered node, with ``alive`` (heartbeat younger than ``unhealthy_secs``),
        ``heartbeat_age_secs`` and ``is_leader`` filled in."""

    @abstractmethod
    async def acquire_lease(self, name: str, holder: str, ttl_secs: float) -> LeaseRecord | None:
        """Take the lease if it is free or expired (a new, larger token), or extend it if
        ``holder`` holds it already (same token); None when someone else holds it."""

    @abstractmethod
    async def renew_lease(self, name: str, holder: str, token: int, ttl_secs: float) -> bool:
        """Extend a lease still held with ``token``; False when it was lost."""

    @abstractmethod
    async def release_lease(self, name: str, holder: str, token: int) -> bool:
        """Give the lease up; False when it had been lost already (expired and taken)."""

    @abstractmethod
    async def get_lease(self, name: str) -> LeaseRecord | None: ...

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
        """A node's periodic round trip: refresh its heartbeat and, with ``token``, renew the
        leader's lease held with it, or else with ``campaign``, take the lease if it is free
        or expired (it does not create a missing lease row: ``acquire_lease`` does). With
        ``unhealthy_secs``, also list the live nodes.

        This default makes one call per part; a store overrides it to make the whole beat
        one transaction (or one statement) — an idle node's load on the database is mostly
        this beat."""
        alive = await self.heartbeat(node_id, incarnation, running=running, assigned=assigned)
        if token is not None:
            await self.renew_lease(LEADER_LEASE, holder, token, lease_secs)
        elif campaign:
            lease = await self.get_lease(LEADER_LEASE)
            if lease is not None:
                await self.acquire_lease(LEADER_LEASE, holder, lease_secs)
        live = None
        if unhealthy_secs is not None:
            live = frozenset(holder_id(n.node_id, n.incarnation)
                             for n in await self.list_nodes(unhealthy_secs=unhealthy_secs)
                             if n.alive)
        return Beat(alive, await self.db_now(), await self.get_lease(LEADER_LEASE), live)


class ExternalKeeper(Keeper):
    """A Keeper outside the store (on etcd): it has connections of its own, which the engine
    opens and closes with itself, and it records the leader's fencing token in the store so
    that the store can refuse a deposed leader's writes."""

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    def configure(self, *, unhealthy_secs: float, lease_secs: float | None = None) -> None:
        """The cluster's timings, before the node starts: a node silent ``unhealthy_secs``
        is dead; the leader's lease lasts ``lease_secs``."""
        return None
