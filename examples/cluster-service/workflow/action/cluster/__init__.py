"""Actions of the cluster domain, one package per DAG template (shared ones live one level
up, in ``workflow.action``)."""
