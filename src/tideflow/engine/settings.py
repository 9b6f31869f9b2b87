"""Settings of one engine (one node)."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..limits import (
    DEFAULT_MAX_SHARE_DATA_BYTES,
    DEFAULT_MAX_TRACE_BYTES,
    DEFAULT_MAX_VALUE_BYTES,
    Limits,
)

if TYPE_CHECKING:
    from ..cluster.settings import ClusterSettings


def default_node_id() -> str:
    """``POD_NAME`` (a StatefulSet's stable name), else the host name plus the process id."""
    pod = os.environ.get("POD_NAME")
    if pod:
        return pod
    return f"{socket.gethostname()}-{os.getpid()}"


def client_node_id() -> str:
    """The node id of a command-line client (``tideflow run``, ``tideflow ins ...``): its
    own, never ``POD_NAME`` — inside a worker's pod that is the worker's id, and a client
    using it would collide with the live worker or take its instances."""
    return f"cli-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass
class EngineSettings:
    #: this node's id; defaults to POD_NAME or host name + pid
    node_id: str = ""
    #: execution slots: tasks running at once (waits, blocked and approval tasks hold none)
    concurrency: int = 1000
    #: per-attempt timeout when a task sets ``timeoutSecs: 0`` (Fastflow's 30 s)
    default_timeout_secs: float = 30.0
    #: threads for sync actions and hooks
    sync_threads: int = 32
    #: module prefixes the ``python`` action may import from
    python_allowed_prefixes: tuple[str, ...] = ()
    #: pick up this node's unfinished instances at start (False: drive only what it starts)
    recover: bool = True
    #: how often to look for commands from other processes while instances run, and when idle
    command_poll_busy_secs: float = 0.05
    command_poll_idle_secs: float = 1.0
    #: on PostgreSQL, where queued commands and DAG changes are notified, how often a single
    #: node looks anyway (in case a notification was missed)
    command_catchup_secs: float = 30.0
    #: longest wait for a command's effect when asked to wait without a timeout
    command_wait_secs: float = 5.0
    #: run migrations at start
    migrate: bool = True
    #: table name prefix (several deployments in one database)
    table_prefix: str = "tf_"
    #: grace period for a canceled or timed-out action to stop before it is abandoned
    cancel_grace_secs: float = 5.0
    #: how long close() keeps retrying state writes the database fails (unreachable, disk
    #: full) before it gives up on them: their instances stay unfinished in the database,
    #: for the next engine that recovers them
    close_flush_secs: float = 30.0
    #: traces kept per task (oldest dropped first)
    max_traces_per_task: int = 1000
    #: the largest share-data value, task output, params as rendered or run var, in bytes
    #: (UTF-8; JSON text for structured values): a task that produces a larger one fails
    #: with a reason naming this limit, a run given a larger var is refused
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    #: all share-data values of one instance together
    max_share_data_bytes: int = DEFAULT_MAX_SHARE_DATA_BYTES
    #: one trace message; longer ones are cut, and a task's traces together are kept under
    #: max_value_bytes by dropping the oldest
    max_trace_bytes: int = DEFAULT_MAX_TRACE_BYTES
    #: run as a cluster node (membership, leader election, dispatch); None: a single node
    #: that runs what it submits itself
    cluster: ClusterSettings | None = None
    #: keep each attempt's log (shell output, ``ctx.log`` lines, the engine's own lines) in
    #: the database; False keeps none
    task_logs: bool = True
    #: the most one attempt's log keeps, in bytes; a marker line says where it was cut
    task_log_max_bytes: int = 10 * 1024 * 1024
    #: how often collected log lines are written (one batch for every attempt at once)
    task_log_flush_secs: float = 0.2
    #: labels of this worker, matched against a run's selector
    labels: dict[str, str] = field(default_factory=dict)
    #: OpenTelemetry traces (the ``otel`` extra): True on, False off, None as the standard
    #: ``OTEL_*`` environment variables say (on when an exporter or an OTLP endpoint is set)
    otel: bool | None = None

    def limits(self) -> Limits:
        """The size limits above, checked (an invalid one raises InputError)."""
        return Limits(self.max_value_bytes, self.max_share_data_bytes, self.max_trace_bytes)

    def resolved_node_id(self) -> str:
        return self.node_id or default_node_id()
