"""The service's workflows: the interface and constants business code uses.

    from workflow import Workflow, consts

    run = await wf.run_with_tags(consts.DAG_CREATE_CLUSTER, {consts.TAG_CLUSTER: "demo"},
                                 {consts.VAR_REGION: "eu-west-1"}, wait=120)

Only ``api`` and ``consts`` live at this level; ``workflow.impl`` builds a :class:`Workflow`
on tideflow, ``workflow.dag`` holds the DAG templates and ``workflow.action`` their actions."""

from . import consts
from .api import (
    BadRequest,
    CommandRefused,
    Run,
    RunNotFound,
    StepRun,
    Workflow,
    WorkflowError,
)
from .consts import RunStatus

__all__ = [
    "BadRequest",
    "CommandRefused",
    "Run",
    "RunNotFound",
    "RunStatus",
    "StepRun",
    "Workflow",
    "WorkflowError",
    "consts",
]
