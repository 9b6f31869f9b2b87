"""The Keeper interface: node membership and heartbeats, and named leases with fencing tokens
(the leader's lease and the distributed mutexes are both leases). All times are the database's
clock, never a node's."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime

from ..store.records import LeaseRecord, NodeRecord

#: the lease the leader holds
LEADER_LEASE = "leader"


class Keeper(ABC):
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
