"""The DAG verbs of :class:`~tideflow.engine.engine.Engine`: registering, reading, deleting
and stopping DAGs, and the compiled DAG versions the engine runs from (one read shared by runs
submitted together, one compilation per version)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..definition.loader import load_dag_dict, load_dag_file, load_dag_text
from ..definition.model import DagDef
from ..definition.validate import check_actions, validate_dag
from ..errors import InputError
from ..redact import LOG_REDACTOR, secret_forms
from ..states import DagStatus
from ..store.records import DagRecord, NodeRecord
from ..templates import check_templates
from .compiled import CompiledDag
from .offload import DefinitionWork, is_large

if TYPE_CHECKING:
    from ..actions.base import ActionRegistry
    from ..cluster.node import ClusterNode
    from ..cluster.waker import Waker
    from ..store.base import Store
    from .runtime import Runtime

log = logging.getLogger("tideflow.engine")

DagSource = DagDef | Mapping[str, Any] | str | os.PathLike[str]


class DagVerbs:
    """The DAG verbs of :class:`~tideflow.engine.engine.Engine`."""

    if TYPE_CHECKING:
        store: Store
        actions: ActionRegistry
        definitions: DefinitionWork
        _cluster: ClusterNode | None
        _waker: Waker | None
        _compiled: dict[tuple[str, int], CompiledDag]
        _dag_reads: dict[str, asyncio.Future[DagRecord]]

        def _require_rt(self) -> Runtime: ...
        async def list_nodes(self) -> list[NodeRecord]: ...

    async def register_dag(self, dag: DagSource) -> DagRecord:
        """Validate and store a DAG (a new version of its id). Accepts a model, a mapping, a
        file path, or YAML/JSON text; it is read and checked off the event loop.

        When the newest version already holds this very definition, nothing is stored: that
        version comes back, with ``unchanged`` set."""
        self._require_rt()
        source = _source_of(dag)
        model = await self.definitions.run(self._prepare, dag, source)
        return await self._save_checked(model, source)

    async def register_loaded(self, read: Callable[[], DagDef]) -> DagRecord:
        """Register the definition that ``read`` returns, calling it off the event loop.
        ``read`` returns a definition checked as the loaders of
        :mod:`tideflow.definition.loader` check them (only the actions are checked here)."""
        self._require_rt()
        model = await self.definitions.run(read)
        return await self._save_checked(model, None)

    async def load_dag(self, dag: DagSource) -> DagDef:
        """Read and check a definition (off the event loop) without storing it."""
        return await self.definitions.run(self._prepare, dag, _source_of(dag))

    def _prepare(self, dag: DagSource, source: str | None) -> DagDef:
        if isinstance(dag, DagDef):
            # built in Python: the loaders' checks were never made
            validate_dag(dag, source=source)
            check_templates(dag, source=source)
            return dag
        return self._load(dag)

    async def _save_checked(self, model: DagDef, source: str | None) -> DagRecord:
        known = await self._known_actions(model)
        if known is not None:
            check_actions(model, known, source=source)
        # a driver may log the write's parameters (aiosqlite at DEBUG): the secret defaults
        # are masked in every log record while this definition is in use here
        LOG_REDACTOR.track(model, secret_forms(model.secret_defaults()))
        record = await self.store.save_dag(model)
        if not record.unchanged:
            self._dag_reads.pop(record.id, None)
            self._dags_changed()
        return record

    async def _known_actions(self, dag: DagDef) -> frozenset[str] | None:
        """The actions a definition may use: this node's, plus in a cluster those live
        workers advertise. A watcher that sees no live worker cannot tell: it accepts the
        definition and warns (None: no check)."""
        own = self.actions.names()
        cluster = self._cluster
        if cluster is None or dag.action_names() <= own:
            return own
        workers = [n for n in await self.list_nodes() if n.alive and n.role == "worker"]
        if not workers and not cluster.is_worker:
            log.warning("no live worker to check the actions of DAG %s against; accepted",
                        dag.id)
            return None
        return own | frozenset(a for n in workers for a in n.actions)

    @staticmethod
    def _load(dag: DagSource) -> DagDef:
        if isinstance(dag, DagDef):
            return dag
        if isinstance(dag, Mapping):
            return load_dag_dict(dict(dag))
        if isinstance(dag, os.PathLike):
            return load_dag_file(Path(dag))
        text = str(dag)
        if "\n" not in text and text.endswith((".yaml", ".yml", ".json")):
            return load_dag_file(Path(text))
        return load_dag_text(text)

    async def get_dag(self, dag_id: str, version: int | None = None) -> DagRecord:
        self._require_rt()
        return await self.store.get_dag(dag_id, version)

    async def list_dags(self) -> list[DagRecord]:
        self._require_rt()
        return await self.store.list_dags()

    def _dags_changed(self) -> None:
        """Wake this node's cron trigger (other nodes learn it from the database)."""
        if self._waker is not None:
            self._waker.poke()

    async def delete_dag(self, dag_id: str, *, force: bool = False) -> None:
        self._require_rt()
        await self.store.delete_dag(dag_id, force=force)
        self._dag_reads.pop(dag_id, None)
        self._dags_changed()

    async def set_dag_status(self, dag_id: str, status: DagStatus | str) -> None:
        self._require_rt()
        try:
            st = DagStatus(status)
        except ValueError:
            raise InputError(f"unknown DAG status '{status}': use normal or stopped") from None
        await self.store.set_dag_status(dag_id, st)
        self._dag_reads.pop(dag_id, None)
        self._dags_changed()

    async def pause_dag(self, dag_id: str) -> DagRecord:
        """Pause the DAG's schedule: its cron fires no more, until :meth:`resume_dag`. No new
        version; manual runs and running instances are not affected; pausing a paused DAG
        changes nothing."""
        return await self._set_paused(dag_id, True)

    async def resume_dag(self, dag_id: str) -> DagRecord:
        """Resume the DAG's schedule. The ticks missed while it was paused are not fired (no
        catch-up): the next tick after now is the first; resuming a running schedule changes
        nothing."""
        return await self._set_paused(dag_id, False)

    async def _set_paused(self, dag_id: str, paused: bool) -> DagRecord:
        self._require_rt()
        if await self.store.set_dag_paused(dag_id, paused):
            self._dag_reads.pop(dag_id, None)
            self._dags_changed()
        return await self.store.get_dag(dag_id)

    async def _newest_dag(self, dag_id: str) -> DagRecord:
        """The newest version of a DAG. Runs submitted together share one read (a read that
        started before this node registered a new version is not joined)."""
        pending = self._dag_reads.get(dag_id)
        if pending is None:
            pending = asyncio.ensure_future(self.store.get_dag(dag_id))
            self._dag_reads[dag_id] = pending
            pending.add_done_callback(
                lambda f: self._dag_reads.pop(dag_id, None)
                if self._dag_reads.get(dag_id) is f else None
            )
        return await asyncio.shield(pending)

    async def _compiled_dag(self, dag_id: str, version: int | None = None) -> CompiledDag:
        if version is not None:
            hit = self._compiled.get((dag_id, version))
            if hit is not None:
                return hit
        if version is None:
            record = await self._newest_dag(dag_id)
        else:
            record = await self.store.get_dag(dag_id, version)
        return await self._compile(record)

    async def _compile(self, record: DagRecord) -> CompiledDag:
        """The compiled form of a DAG version read already (built once per version; a large
        one off the event loop)."""
        key = (record.id, record.version)
        hit = self._compiled.get(key)
        if hit is None:
            built = await self.definitions.run_if(
                is_large(record.definition), CompiledDag.build, record
            )
            hit = self._compiled.setdefault(key, built)
        return hit


def _source_of(dag: DagSource) -> str | None:
    """The file a definition came from, for error messages."""
    if isinstance(dag, os.PathLike):
        return os.fspath(dag)
    if isinstance(dag, str) and "\n" not in dag and dag.endswith((".yaml", ".yml", ".json")):
        return dag
    return None

