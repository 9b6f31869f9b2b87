"""tideflow: a lightweight, embeddable, distributed DAG workflow engine (Fastflow's successor).

Importing the package touches no file, network or environment variable."""

from .actions.base import Action, ActionContext, ActionRegistry, BlockTask, function_action
from .definition.builder import DagBuilder
from .definition.loader import load_dag_dict, load_dag_file, load_dag_text
from .definition.model import (
    Compensation,
    Condition,
    DagDef,
    PreCheck,
    RetryPolicy,
    TaskDef,
    VarDef,
)
from .engine.engine import Engine
from .engine.logreads import TaskLogLine, TaskLogPage
from .engine.settings import EngineSettings
from .engine.sync import SyncEngine
from .errors import (
    ActionError,
    ConflictError,
    DefinitionError,
    EngineClosedError,
    FencedWriteError,
    InputError,
    InvalidStateError,
    LimitError,
    LockLostError,
    MissingDependencyError,
    NonRetryableError,
    NotFoundError,
    SchemaError,
    StoreError,
    TaskTimeoutError,
    TemplateError,
    TideflowError,
    VarsError,
    WriteRefusedError,
)
from .serialize import dag_to_json, instance_to_json
from .states import DagStatus, InstanceStatus, TaskStatus, Trigger
from .store.records import DagRecord, InstanceRecord, TaskRecord

__version__ = "0.1.0"

__all__ = [
    "Action",
    "ActionContext",
    "ActionError",
    "ActionRegistry",
    "BlockTask",
    "Compensation",
    "Condition",
    "ConflictError",
    "DagBuilder",
    "DagDef",
    "DagRecord",
    "DagStatus",
    "DefinitionError",
    "Engine",
    "EngineClosedError",
    "EngineSettings",
    "FencedWriteError",
    "InputError",
    "InstanceRecord",
    "InstanceStatus",
    "InvalidStateError",
    "LimitError",
    "LockLostError",
    "MissingDependencyError",
    "NonRetryableError",
    "NotFoundError",
    "PreCheck",
    "RetryPolicy",
    "SchemaError",
    "StoreError",
    "SyncEngine",
    "TaskDef",
    "TaskLogLine",
    "TaskLogPage",
    "TaskRecord",
    "TaskStatus",
    "TaskTimeoutError",
    "TemplateError",
    "TideflowError",
    "VarsError",
    "Trigger",
    "VarDef",
    "WriteRefusedError",
    "dag_to_json",
    "function_action",
    "instance_to_json",
    "load_dag_dict",
    "load_dag_file",
    "load_dag_text",
]
