"""The client interface: what ``tideflow dag|ins|node`` need, in the API's JSON shape.

Each verb is written once against :class:`Client`; :func:`open_client` picks the HTTP client
(``--server``) or the direct one (``--db``)."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from ...errors import TideflowError

Json = dict[str, Any]


class UnavailableError(TideflowError):
    """The server or database could not be reached, or refused the credentials."""

    code = "unavailable"


@dataclass(frozen=True)
class InstanceQuery:
    dag_id: str | None = None
    statuses: Sequence[str] = ()
    tags: Mapping[str, str] | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    limit: int = 50
    cursor: str | None = None


class Client(abc.ABC):
    """Every method returns (or takes) the JSON shape of :mod:`tideflow.serialize`."""

    #: where the client points, for messages ("http://...", "sqlite:///...")
    target: str = ""

    async def __aenter__(self) -> Client:
        await self.open()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect (or get ready to)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def apply_dag(self, path: Path) -> Json:
        """Register the definition in ``path`` (a new version); the DAG's JSON."""

    @abc.abstractmethod
    async def list_dags(self) -> list[Json]: ...

    @abc.abstractmethod
    async def get_dag(self, dag_id: str, *, fire_times: int = 5) -> Json:
        """The DAG, its ``nextFireTimes`` listing ``fire_times`` ticks."""

    @abc.abstractmethod
    async def delete_dag(self, dag_id: str, *, force: bool) -> None: ...

    @abc.abstractmethod
    async def set_dag_paused(self, dag_id: str, paused: bool) -> Json:
        """Pause or resume the DAG's schedule; the DAG after."""

    @abc.abstractmethod
    async def run_dag(
        self,
        dag_id: str,
        *,
        vars: Mapping[str, str],
        tags: Mapping[str, str],
        selector: Mapping[str, str],
        priority: int,
        idempotency_key: str | None,
        wait: float | None,
    ) -> Json: ...

    @abc.abstractmethod
    async def list_instances(self, query: InstanceQuery) -> tuple[list[Json], str | None]:
        """A page of instances (newest first, without tasks) and the next page's cursor."""

    @abc.abstractmethod
    async def get_instance(self, instance_id: str) -> Json: ...

    @abc.abstractmethod
    async def command(
        self, kind: str, instance_id: str, task_ids: Sequence[str] | None, wait: float | None,
        decision: Mapping[str, Any] | None = None,
    ) -> Json:
        """retry, cancel, continue, reject (instance or tasks), pause, resume; the instance
        after. ``decision`` holds what a continue or reject carries, keyed as in the HTTP
        body: ``inputs``, ``by``, ``reason``."""

    @abc.abstractmethod
    async def list_nodes(self) -> list[Json]: ...

    @abc.abstractmethod
    async def task_logs(self, instance_id: str, task_id: str | None, *, attempt: int | None,
                        after: int | None, tail: int | None) -> Json:
        """A page of the log: ``{lines: [...], cursor, more}`` (see docs/logs.md)."""

    @abc.abstractmethod
    def follow_task_logs(self, instance_id: str, task_id: str | None, *,
                         attempt: int | None, after: int | None) -> AsyncIterator[Json]:
        """The log's lines as they are written, until the task (or instance) is over."""


def open_client(
    *,
    server: str | None,
    db: str,
    token: str | None = None,
    actions: Sequence[str] = (),
    table_prefix: str = "tf_",
) -> Client:
    """The HTTP client when ``server`` is given, else the direct one on ``db`` (its tables
    named with ``table_prefix``)."""
    if server:
        from .http import HttpClient

        return HttpClient(server, token=token)
    from .direct import DirectClient

    return DirectClient(db, actions=actions, table_prefix=table_prefix)
