"""The workflow interface the business code programs against.

Nothing here imports tideflow: business code depends on this interface and on ``consts``
only, and ``workflow.impl`` adapts tideflow to it. Replacing the engine, or handing a test an
in-memory fake, changes no business code."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .consts import RunStatus


@dataclass(frozen=True)
class StepRun:
    """One step of a run (a task of the DAG template)."""

    id: str
    status: str
    #: attempts started so far, automatic retries and manual ones included
    attempts: int
    reason: str | None = None


@dataclass(frozen=True)
class Run:
    """One run of a DAG template."""

    id: str
    dag_id: str
    status: RunStatus
    #: why it failed, was canceled, or still waits (for example for a worker)
    reason: str | None
    vars: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    #: what the steps returned (resource ids, endpoints, the ``op.<step>`` audit trail);
    #: empty in listings, like ``steps``
    outputs: Mapping[str, str] = field(default_factory=dict)
    #: the worker that owns the run; None until one is assigned
    worker: str | None = None
    #: the steps, in template order; empty in listings
    steps: tuple[StepRun, ...] = ()
    #: None, or running | done | failed once a failed or canceled run is being undone (its
    #: ``compensate:<step>`` steps delete what the run created); an undone run is not retried
    compensation: str | None = None

    @property
    def finished(self) -> bool:
        return self.status.is_final

    @property
    def succeeded(self) -> bool:
        return self.status == RunStatus.SUCCESS

    def step(self, step_id: str) -> StepRun:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(f"run {self.id} has no step {step_id!r} (was it read with its steps?)")


class WorkflowError(Exception):
    """Root of the workflow interface's errors.

        WorkflowError
        ├── BadRequest      an unknown template or var, a bad tag: nothing was started
        ├── RunNotFound     no run (or step) with that id
        └── CommandRefused  the run's state does not take the command (retry a success...)
    """


class BadRequest(WorkflowError):
    pass


class RunNotFound(WorkflowError):
    pass


class CommandRefused(WorkflowError):
    pass


class Workflow(Protocol):
    """Start and steer long operations (create a cluster, delete it) as workflow runs.

    ``wait`` arguments are seconds to wait for the run to finish (or to stop for a person);
    None returns at once. A wait that runs out returns the run as it is then: check
    ``run.finished``."""

    async def register_dags(self) -> Sequence[str]:
        """Register every DAG template shipped with the service (a template that did not
        change is left as it is); returns ``"id@version"`` of each."""
        ...

    async def run(
        self, dag_id: str, vars: Mapping[str, str] | None = None, *, wait: float | None = None
    ) -> Run:
        """Start a run of the template ``dag_id`` with the given vars."""
        ...

    async def run_with_tags(
        self,
        dag_id: str,
        tags: Mapping[str, str],
        vars: Mapping[str, str] | None = None,
        *,
        wait: float | None = None,
    ) -> Run:
        """Start a run filed under ``tags`` (see ``consts.TAG_*``), to find it again later."""
        ...

    async def retry(
        self, run_id: str, steps: Sequence[str] | None = None, *, wait: float | None = None
    ) -> Run:
        """Run the failed or canceled steps of a failed or canceled run again (or only
        ``steps``); each gets one more attempt."""
        ...

    async def cancel(self, run_id: str, *, wait: float | None = None) -> Run:
        """Stop an unfinished run: running steps are interrupted, the rest never start."""
        ...

    async def approve(
        self, run_id: str, step: str, inputs: Mapping[str, str], *, by: str,
        wait: float | None = None,
    ) -> Run:
        """Decide a step that waits for a person (an approval): go on with ``inputs`` (what
        the step asks for), decided ``by`` one of its approvers. A decision that does not fit
        is refused (BadRequest) and changes nothing; the decision is the step's output."""
        ...

    async def reject(
        self, run_id: str, step: str, reason: str, *, by: str, wait: float | None = None
    ) -> Run:
        """Refuse a step that waits for a person: it fails with ``reason``."""
        ...

    async def get_run(self, run_id: str) -> Run:
        """The run with its steps."""
        ...

    async def wait_run(self, run_id: str, timeout: float) -> Run:
        """Wait up to ``timeout`` seconds for the run to finish (or stop for a person)."""
        ...

    async def list_runs(
        self,
        *,
        dag_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        status: RunStatus | None = None,
        limit: int = 50,
    ) -> Sequence[Run]:
        """Runs newest first, without their steps; ``tags`` must all match."""
        ...

    async def close(self) -> None:
        """Leave the cluster cleanly. Runs carry on on the workers."""
        ...
