"""Actions of the ``delete-cluster`` template (workflow/dag/cluster/delete-cluster.yaml)."""

from workflow.action.cluster.delete_cluster.actions import register

__all__ = ["register"]
