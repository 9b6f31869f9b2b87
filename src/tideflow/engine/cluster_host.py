"""What a cluster node (:mod:`tideflow.cluster.node`) asks of the engine it belongs to."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..definition.model import DagDef
from .observer import Observers
from .runner import InstanceRunner

if TYPE_CHECKING:
    from ..cluster.node import ClusterNode
    from ..store.base import Store
    from ..store.records import InstanceRecord
    from .compiled import CompiledDag
    from .runtime import Runtime

log = logging.getLogger("tideflow.engine")


class ClusterHost:
    """The engine's side of the cluster: its identity, load, and the instances it drives."""

    if TYPE_CHECKING:
        store: Store
        node_id: str
        _incarnation: str
        _rt: Runtime | None
        _observers: Observers
        _cluster: ClusterNode | None
        _runners: dict[str, InstanceRunner]

        async def _compiled_dag(self, dag_id: str, version: int | None = None
                                ) -> CompiledDag: ...
        async def _pick_up(
            self, insts: Sequence[InstanceRecord],
            then: Callable[[list[InstanceRunner]], Awaitable[None]],
        ) -> list[InstanceRunner]: ...
        async def _apply_queued(self, scope: Sequence[str] | None, *, worker: str | None
                                ) -> bool: ...
        async def _apply_queued_soon(self, scope: Sequence[str] | None, *,
                                     worker: str | None) -> None: ...

    # -- what the cluster node asks of the engine ---------------------------------------------
    @property
    def incarnation(self) -> str:
        """This start of the node (a restart is a new incarnation)."""
        return self._incarnation

    @property
    def slot_load(self) -> int:
        """Attempts holding an execution slot or waiting for one. Waits, approvals and the
        other tasks that hold no slot are not counted: a worker running only those is free."""
        return self._rt.executor.slot_demand if self._rt is not None else 0

    def on_saturation(self, listener: Callable[[bool], None] | None) -> None:
        """Call ``listener`` when the slots become all taken (True) or one frees (False)."""
        if self._rt is not None:
            self._rt.executor.on_saturation = listener

    @property
    def owned_count(self) -> int:
        return len(self._runners)

    def emit(self, method: str, *args: Any) -> None:
        self._observers.emit(method, *args)

    @property
    def is_leader(self) -> bool:
        """True on a single node; in a cluster, whether this node holds the leader lease."""
        return self._cluster.is_leader if self._cluster is not None else True

    async def dag_def(self, dag_id: str, version: int) -> DagDef:
        return (await self._compiled_dag(dag_id, version)).dag

    async def dag_actions(self, dag_id: str, version: int) -> set[str]:
        return set((await self._compiled_dag(dag_id, version)).dag.action_names())

    async def sync_owned(self, owned: Mapping[str, int]) -> bool:
        """Drive what the leader gave this worker; drop what it moved elsewhere."""
        driving = {iid: r.inst.epoch for iid, r in self._runners.items()
                   if not r.finished and r.inst.status.is_unfinished}
        stale = {iid for iid, epoch in driving.items() if iid in owned and owned[iid] != epoch}
        missing = [iid for iid in driving if iid not in owned]
        if missing:
            # not listed: moved to another worker, or only finished in the database while
            # this node has already started it again (a retry applied a moment ago, not yet
            # written): look at the owner itself before dropping anything
            for inst in await self.store.get_instances(missing, with_tasks=False):
                if inst.worker != self.node_id or inst.epoch != driving[inst.id]:
                    stale.add(inst.id)
        if stale:
            self._abandon(stale)
        new = [iid for iid in owned if iid not in self._runners]
        if not new:
            return False
        # one read for the whole batch: a worker handed hundreds of runs at once would
        # otherwise read them one round trip after another
        loaded = await self.store.get_instances(new, with_tasks=True)
        # the commands queued for them (a cancel given before this worker got the run)
        # apply before anything of them starts
        picked = await self._pick_up(
            loaded, lambda _: self._apply_queued_soon(None, worker=self.node_id))
        return bool(picked)

    async def apply_queued_commands(self, *, worker: str) -> bool:
        return await self._apply_queued(None, worker=worker)

    def abandon_all(self) -> None:
        """This node was replaced by a newer incarnation: stop driving everything."""
        self._abandon(set(self._runners))

    def _abandon(self, ids: set[str]) -> None:
        """Stop driving instances that moved to another worker, writing nothing more."""
        for iid in ids:
            runner = self._runners.pop(iid, None)
            if runner is not None:
                log.warning("instance %s moved to another worker; dropping it here", iid)
                if self._rt is not None:
                    self._rt.spawn(runner.shutdown(), f"tideflow-abandon-{iid}")
