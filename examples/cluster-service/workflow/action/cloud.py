"""A simulated cloud provider, shared by every cluster action.

Each call waits as long as a remote call would and then records what it did, as a trace line
and as the ``op`` of the step's output: the run itself becomes the audit trail of which worker
did what, on which attempt. Nothing leaves the process."""

from __future__ import annotations

import os
import socket
import uuid

from tideflow import ActionContext

from workflow.consts import OUT_OP


class CloudError(Exception):
    """The provider refused a call. The step fails with this message as its reason."""


def new_id(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:10]}"


def performer() -> str:
    """The worker doing the work: its pod name in Kubernetes, else host and process id."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}/{os.getpid()}"


async def call(ctx: ActionContext, what: str, latency_secs: float) -> dict[str, str]:
    """Make one simulated API call that does ``what``; the step's output so far."""
    # An async wait, like a real request's: a cancel or a timeout interrupts the step here.
    # On the engine's clock, so that the service's tests skip it (tideflow.testing).
    await ctx.sleep(latency_secs)
    return record(ctx, what)


def record(ctx: ActionContext, what: str) -> dict[str, str]:
    """Trace ``what``; the output that says who did it: ``{"op": ...}``."""
    ctx.trace(what)
    return {OUT_OP: f"{what} (attempt {ctx.attempt} on {performer()})"}
