"""Actions of the ``create-cluster`` template (workflow/dag/cluster/create-cluster.yaml)."""

from workflow.action.cluster.create_cluster.actions import register

__all__ = ["register"]
