"""Persistence: the Store interface and its one SQL implementation."""

from .base import Store
from .faults import Fault, FaultPlan, FaultyStore
from .records import (
    AttemptRecord,
    CommandRecord,
    DagRecord,
    InstanceFilter,
    InstanceRecord,
    TaskRecord,
    TraceEntry,
)

__all__ = [
    "AttemptRecord",
    "CommandRecord",
    "DagRecord",
    "Fault",
    "FaultPlan",
    "FaultyStore",
    "InstanceFilter",
    "InstanceRecord",
    "Store",
    "TaskRecord",
    "TraceEntry",
]
