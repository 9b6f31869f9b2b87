"""The service's actions, and the entry point that loads them all.

A worker loads them with ``tideflow server --actions workflow.action``, which calls
:func:`register_actions`; ``workflow.impl`` calls it too when the service runs a node itself.

Layout: shared actions here (``quota``, ``notify``, and the simulated ``cloud`` they all call);
those of one template under ``cluster/<template>/``."""

from __future__ import annotations

from tideflow import ActionRegistry

from workflow.action import notify, quota
from workflow.action.cluster import create_cluster, delete_cluster


def register_actions(registry: ActionRegistry) -> None:
    """Register every action the service's DAG templates use."""
    quota.register(registry)
    notify.register(registry)
    create_cluster.register(registry)
    delete_cluster.register(registry)
