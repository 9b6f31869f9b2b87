"""The Store interface: everything the engine persists goes through these few primitives."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import datetime

from ..definition.model import DagDef
from ..errors import NotFoundError
from ..states import DagStatus
from .records import (
    CommandRecord,
    DagRecord,
    InstanceFilter,
    InstanceRecord,
    LogChunk,
    TaskRecord,
)


class Store(ABC):
    """Persistence for DAGs, instances, tasks and commands.

    All methods raise :class:`tideflow.errors.StoreError` (or a subclass) for database
    failures and :class:`tideflow.errors.NotFoundError` for missing objects; no driver
    exception escapes."""

    #: a short name of the backend: "sqlite", "mysql" or "postgresql"
    dialect: str

    @abstractmethod
    async def open(self, *, migrate: bool = True) -> None:
        """Connect; with ``migrate`` bring the schema to the newest version (under a database
        lock), else fail with SchemaError unless it is current."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def check_ready(self) -> None:
        """Raise StoreError when the database is unreachable, SchemaError when the schema is
        not current."""

    # -- DAGs --------------------------------------------------------------------------
    @abstractmethod
    async def save_dag(self, dag: DagDef) -> DagRecord:
        """Store a new version of ``dag.id`` (version 1 for a new id); status from the
        definition."""

    @abstractmethod
    async def get_dag(self, dag_id: str, version: int | None = None) -> DagRecord:
        """The newest version, or the given one (kept while instances use it)."""

    @abstractmethod
    async def list_dags(self) -> list[DagRecord]:
        """The newest version of every DAG, by id."""

    @abstractmethod
    async def set_dag_status(self, dag_id: str, status: DagStatus) -> None: ...

    @abstractmethod
    async def set_dag_paused(self, dag_id: str, paused: bool) -> bool:
        """Pause or resume the DAG's schedule without a new version; True when it changed."""

    @abstractmethod
    async def delete_dag(self, dag_id: str, *, force: bool = False) -> None:
        """Delete every version. Refused (ConflictError) while the DAG has unfinished
        instances, unless forced."""

    # -- instances and tasks -----------------------------------------------------------
    @abstractmethod
    async def create_instance(self, instance: InstanceRecord, tasks: Sequence[TaskRecord]) -> None:
        """Insert an instance with its tags and all its task rows, in one transaction."""

    @abstractmethod
    async def find_by_idempotency_key(self, dag_id: str, key: str) -> str | None:
        """The id of the instance of ``dag_id`` created with idempotency ``key``, if any."""

    @abstractmethod
    async def get_instance(self, instance_id: str, *, with_tasks: bool = True) -> InstanceRecord:
        ...

    async def get_instances(
        self, instance_ids: Sequence[str], *, with_tasks: bool = True
    ) -> list[InstanceRecord]:
        """The instances of ``instance_ids`` that exist, in no particular order. A worker
        picking up hundreds of assigned instances reads them with this; the default reads
        them one by one, a store overrides it to read a batch in a few queries."""
        out: list[InstanceRecord] = []
        for iid in instance_ids:
            try:
                out.append(await self.get_instance(iid, with_tasks=with_tasks))
            except NotFoundError:
                continue
        return out

    @abstractmethod
    async def list_instances(
        self,
        filter: InstanceFilter | None = None,
        *,
        limit: int = 100,
        before_id: str | None = None,
    ) -> list[InstanceRecord]:
        """Newest first (ids sort by creation time); ``before_id`` is the pagination cursor.
        Tasks are not loaded."""

    @abstractmethod
    async def write(
        self,
        instances: Sequence[InstanceRecord],
        tasks: Sequence[TaskRecord],
        *,
        new_instances: Sequence[InstanceRecord] = (),
        owner: str | None = None,
        epochs: Mapping[str, int] | None = None,
    ) -> set[str]:
        """The group commit, in one transaction: insert ``new_instances`` (each with its tags
        and ``tasks``), then write the given instance and task rows as they are now (they
        must exist). The rows are read before the first await, so later changes to the
        records do not leak into this write.

        With ``owner`` the writes are fenced: rows of instances that ``owner`` no longer owns
        at the epoch the records carry are not written, and their ids are returned."""

    # -- commands ------------------------------------------------------------------------
    @abstractmethod
    async def add_command(self, command: CommandRecord) -> int:
        """Queue a command for the owner of its instance; returns its id."""

    @abstractmethod
    async def claim_commands(
        self, holder: str, instance_ids: Sequence[str] | None = None, *,
        worker: str | None = None,
    ) -> list[CommandRecord]:
        """Claim the queued commands (for the given instances, or for the instances
        ``worker`` owns, or all) that nobody else holds, and return all that ``holder`` holds
        there, oldest first. The first step of taking a command; the second,
        :meth:`finish_commands`, deletes it once applied, so a lost reply loses nothing."""

    @abstractmethod
    async def finish_commands(self, holder: str, command_ids: Sequence[int]) -> None:
        """Delete applied commands ``holder`` holds."""

    @abstractmethod
    async def release_commands(self, instance_ids: Sequence[str] | None = None) -> None:
        """Unclaim the commands of these instances (or all): their claimer stopped driving
        them (it died, or the instances moved)."""

    @abstractmethod
    async def withdraw_command(self, command_id: int) -> bool:
        """Delete a command nobody has claimed; False when one had."""

    @abstractmethod
    async def command_pending(self, command_id: int) -> bool:
        """Whether the command is still queued and unclaimed."""

    @abstractmethod
    async def cancel_unstarted(
        self, instance_id: str, task_ids: Sequence[str] | None, *, worker: str | None,
        now: datetime,
    ) -> bool:
        """Cancel an instance no process has started (``init``/``scheduled`` and owned by
        ``worker``, or by nobody), or only the given tasks of it; False when it no longer is
        (a dispatch got there first). Fenced against a concurrent dispatch in the same
        statement."""

    @abstractmethod
    async def change_marker(self) -> int:
        """A number that changes when another connection or process commits (SQLite's
        ``PRAGMA data_version``; a cheap counter elsewhere). Used to poll for outside commands
        without reading tables."""

    # -- task logs -------------------------------------------------------------------------
    @abstractmethod
    async def write_task_logs(self, chunks: Sequence[LogChunk]) -> None:
        """Insert chunks of attempts' logs in one transaction; WriteRefusedError when one's
        instance does not exist."""

    @abstractmethod
    async def read_task_logs(
        self,
        instance_id: str,
        task_id: str | None = None,
        *,
        attempt: int | None = None,
        after: int | None = None,
        limit: int = 200,
        newest: bool = False,
    ) -> list[LogChunk]:
        """Up to ``limit`` chunks of an instance's log (of one task, of one attempt), oldest
        first, after the chunk id ``after``; ``newest``: the last ``limit`` chunks."""
