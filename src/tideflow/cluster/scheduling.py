"""What the leader's Dispatcher and WatchDog and the worker's claim loop need from the store.
Every leader write is fenced by the leader's lease token in the same statement."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ..errors import SchemaError, StoreError
from ..store.records import InstanceRecord


@dataclass
class Pending:
    """An instance waiting for a worker (or one to move)."""

    id: str
    dag_id: str
    dag_version: int
    priority: int
    selector: dict[str, str] = field(default_factory=dict)
    worker: str | None = None
    epoch: int = 0
    reason: str | None = None


@dataclass(frozen=True)
class LeaderFence:
    """The lease the leader acts under: its writes land only while the lease is still its."""

    holder: str
    token: int


class SchedulingStore(ABC):
    @abstractmethod
    async def pending_instances(self, limit: int) -> list[Pending]:
        """Instances in ``init`` with no worker, highest priority first, then oldest."""

    @abstractmethod
    async def assign(
        self, assignments: Sequence[tuple[str, str]], fence: LeaderFence
    ) -> list[str]:
        """Give each (instance id, worker) pair to its worker (status ``scheduled``, a new
        epoch) if the instance is still unassigned; returns the ids assigned."""

    @abstractmethod
    async def set_waiting_reason(
        self, reasons: Sequence[tuple[str, str]], fence: LeaderFence
    ) -> None:
        """Record why instances still wait for a worker."""

    @abstractmethod
    async def owner_load(self) -> dict[str, int]:
        """Unfinished instances per worker."""

    @abstractmethod
    async def orphans(self, live_workers: Sequence[str], limit: int) -> list[Pending]:
        """Unfinished instances (or instances with queued commands) whose worker is not
        among ``live_workers``."""

    @abstractmethod
    async def move(
        self, moves: Sequence[tuple[Pending, str]], fence: LeaderFence
    ) -> list[str]:
        """Give each orphan to a new worker (a new epoch) if it is still where it was seen;
        returns the ids moved."""

    @abstractmethod
    async def last_cron_tick(self, dag_id: str) -> datetime | None:
        """The newest tick of ``dag_id`` that fired (or was skipped)."""

    @abstractmethod
    async def fire_cron_tick(
        self, dag_id: str, tick: datetime, instance: InstanceRecord | None
    ) -> bool:
        """Record the tick and create its instance in one transaction; False when the tick
        fired already (anywhere in the cluster)."""

    @abstractmethod
    async def active_counts(self, dag_ids: Sequence[str]) -> dict[str, int]:
        """Instances per DAG that count against maxActiveRuns (assigned, not final)."""

    @abstractmethod
    async def bump_epochs(self, worker: str) -> int:
        """A new incarnation of ``worker`` takes its instances over: a new epoch for each
        unfinished one, so the writes of the previous incarnation are refused."""

    async def fence_leader(self, fence: LeaderFence, ttl_secs: float) -> bool:
        """Record that ``fence`` holds the leader's lease granted by a Keeper outside this
        store (etcd), until ``ttl_secs`` from now by the store's clock; 0 gives it up. Taken
        when the recorded holder is the same, or has a smaller token, or has let it expire;
        False otherwise (a larger token is recorded: this leader was deposed)."""
        raise NotImplementedError(f"{type(self).__name__} cannot record a leader's token")

    async def leader_token(self) -> int:
        """The largest leader's token recorded (0 when none): an outside Keeper's new tokens
        start above it."""
        raise NotImplementedError(f"{type(self).__name__} cannot record a leader's token")

    async def deployment_keeper(self, keeper: str, *, record: bool) -> int | None:
        """Check that this deployment keeps its membership in ``keeper`` (``sql``, or
        ``etcd:<path>``) and return the deployment's id. The first node to ask with
        ``record`` writes both (the id is random); a node naming another Keeper than the one
        recorded gets an InputError naming both, as two Keepers on one database would each
        elect a leader. None when nothing is recorded and ``record`` is False."""
        raise NotImplementedError(f"{type(self).__name__} cannot record its Keeper")

    @abstractmethod
    async def owned(self, worker: str) -> dict[str, int]:
        """Unfinished instances (and instances with queued commands) of ``worker``, with
        their epochs."""


async def deployment_of(store: SchedulingStore, keeper: str, *, record: bool) -> int | None:
    """:meth:`SchedulingStore.deployment_keeper`, waiting while the database cannot be reached
    (a node that starts meanwhile waits, as it does to join; a client bounds its start)."""
    delay = 0.2
    while True:
        try:
            return await store.deployment_keeper(keeper, record=record)
        except SchemaError:
            raise
        except StoreError as exc:
            logging.getLogger("tideflow.cluster").warning(
                "cannot read the deployment's Keeper yet (%s); retrying in %.1fs",
                exc.message, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
