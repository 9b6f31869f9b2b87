"""Persistence: the Store interface and its one SQL implementation."""

from .base import Store
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
    "InstanceFilter",
    "InstanceRecord",
    "Store",
    "TaskRecord",
    "TraceEntry",
]
