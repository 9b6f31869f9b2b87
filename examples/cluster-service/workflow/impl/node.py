"""Building the tideflow node the service runs, and registering its DAG templates."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from tideflow import ActionRegistry, Engine, EngineSettings, NotFoundError, load_dag_file
from tideflow.cluster.keeper import Keeper
from tideflow.cluster.mutex import Mutex
from tideflow.cluster.node import ClusterSettings

from workflow.action import register_actions

Role = Literal["watcher", "worker"]

#: workflow/dag/<domain>/<template>.yaml
DAG_DIR = Path(__file__).resolve().parents[1] / "dag"


def build_engine(
    db_url: str,
    *,
    role: Role = "watcher",
    node_id: str | None = None,
    labels: Mapping[str, str] | None = None,
    concurrency: int = 200,
) -> Engine:
    """A cluster node on ``db_url`` (not started yet).

    A watcher submits, commands and observes; the cluster's workers execute. A worker also
    executes, and may be elected leader. Either way the node has the service's actions: a
    worker runs them, and a watcher checks the templates it registers against them even when
    no worker is up yet."""
    registry = ActionRegistry()
    register_actions(registry)
    settings = EngineSettings(
        # empty: POD_NAME in Kubernetes, else host name and process id
        node_id=node_id or "",
        concurrency=concurrency,
        labels=dict(labels or {}),
        cluster=ClusterSettings(role=role),
    )
    return Engine.from_url(db_url, actions=registry, settings=settings)


def template_files() -> list[Path]:
    return sorted(p for p in DAG_DIR.glob("*/*") if p.suffix in (".yaml", ".yml", ".json"))


async def register_templates(engine: Engine) -> list[str]:
    """Register every template whose definition changed; ``"id@version"`` of each."""
    keeper = engine.store
    if not isinstance(keeper, Keeper):  # every SQL store is one
        raise TypeError("the engine's store has no Keeper: cannot register under a mutex")
    # Replicas of the service start together: without the lock, each would find a changed
    # template new and register its own identical version of it.
    async with Mutex(keeper, "workflow-register-templates", ttl_secs=30):
        registered = []
        for path in template_files():
            dag = load_dag_file(path)
            try:
                current = await engine.get_dag(dag.id)
            except NotFoundError:
                current = None
            if current is not None and current.definition == dag:
                registered.append(f"{current.id}@{current.version}")
                continue
            record = await engine.register_dag(path)
            registered.append(f"{record.id}@{record.version}")
        return registered
