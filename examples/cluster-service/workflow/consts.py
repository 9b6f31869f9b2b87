"""Names the business code and the workflow package agree on: DAG template ids, their vars,
the tags runs are filed under, the outputs steps report, and the run states.

Plain strings and an enum only: nothing here knows which engine runs the workflows."""

from __future__ import annotations

from enum import StrEnum

# -- DAG templates (workflow/dag/<domain>/<id>.yaml) ------------------------------------------
DAG_CREATE_CLUSTER = "create-cluster"
DAG_DELETE_CLUSTER = "delete-cluster"

# -- vars the templates declare ---------------------------------------------------------------
VAR_CLUSTER_NAME = "clusterName"
VAR_REGION = "region"
VAR_SIZE = "size"
VAR_VERSION = "version"
#: "false" skips the final notification step
VAR_NOTIFY = "notify"
#: "true" deletes without taking a snapshot first
VAR_SKIP_SNAPSHOT = "skipSnapshot"
#: "true" makes a delete wait for a person's decision first (step STEP_CONFIRM_DELETE)
VAR_CONFIRM = "confirm"
STEP_CONFIRM_DELETE = "confirm-delete"
#: what the confirmation asks for: a change ticket; who may give it
INPUT_TICKET = "ticket"
APPROVERS = ("ops-lead", "sre-on-call")
#: seconds one simulated cloud call takes, and how long machines take to boot
VAR_API_LATENCY_SECS = "apiLatencySecs"
VAR_BOOT_SECS = "bootSecs"
#: simulation only: the first N attempts of create-control-plane fail like a flaky cloud API
VAR_FAIL_FIRST_ATTEMPTS = "failFirstAttempts"
#: seconds one simulated delete takes when a failed or canceled create is undone
VAR_UNDO_LATENCY_SECS = "undoLatencySecs"
#: the prefix of the steps that undo a half-created cluster (compensate:create-vpc, ...)
STEP_UNDO_PREFIX = "compensate:"

# -- tags: searchable metadata on a run (never used to place it) ------------------------------
TAG_CLUSTER = "cluster"
TAG_TENANT = "tenant"
TAG_REQUESTED_BY = "requestedBy"

# -- outputs: what the steps return (their task outputs), as a run shows them -----------------
OUT_VPC_ID = "vpcId"
OUT_CLUSTER_ID = "clusterId"
OUT_ENDPOINT = "endpoint"
OUT_NODE_POOL_ID = "nodePoolId"
OUT_DNS_NAME = "dnsName"
OUT_SNAPSHOT_ID = "snapshotId"
OUT_NOTIFIED = "notified"
#: every step's output says what it did under "op", shown as "op.<step id>" (an audit trail)
OUT_OP = "op"
OUT_OP_PREFIX = "op."

#: the outputs of a created cluster that its deletion needs back as vars
DELETE_INPUTS = (OUT_CLUSTER_ID, OUT_VPC_ID, OUT_NODE_POOL_ID, OUT_DNS_NAME)


class RunStatus(StrEnum):
    """Where a run is. The values are the engine's, so logs and the engine's UI agree."""

    INIT = "init"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    BLOCKED = "blocked"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_final(self) -> bool:
        return self in (RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.CANCELED)
