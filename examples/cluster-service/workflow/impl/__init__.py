"""The workflow interface on tideflow: where the service wires the engine in.

    wf = await connect(os.environ["TIDEFLOW_DB"])          # a watcher: the workers execute
    try:
        ...                                                  # use it as a workflow.Workflow
    finally:
        await wf.close()

Only the service's start-up code imports this package; the business code gets the
:class:`workflow.Workflow` it returns."""

from __future__ import annotations

from collections.abc import Mapping

from workflow.api import Workflow
from workflow.impl.node import Role, build_engine, register_templates, template_files
from workflow.impl.tideflow_workflow import TideflowWorkflow


async def connect(
    db_url: str,
    *,
    role: Role = "watcher",
    node_id: str | None = None,
    labels: Mapping[str, str] | None = None,
    register: bool = True,
) -> Workflow:
    """Join the cluster on ``db_url`` as a watcher (default) or a worker, and register the
    DAG templates unless ``register`` is False."""
    engine = build_engine(db_url, role=role, node_id=node_id, labels=labels)
    await engine.start()
    wf = TideflowWorkflow(engine)
    try:
        if register:
            await wf.register_dags()
    except BaseException:
        await wf.close()
        raise
    return wf


__all__ = [
    "Role",
    "TideflowWorkflow",
    "build_engine",
    "connect",
    "register_templates",
    "template_files",
]
