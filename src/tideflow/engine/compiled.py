"""A DAG version prepared for running: graph indexes and compiled templates, built once per
version and shared by all its instances."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..definition.model import DagDef, TaskDef
from ..definition.validate import toposort
from ..outputs import TaskOutputs
from ..redact import LOG_REDACTOR, secret_forms
from ..store.records import DagRecord, TaskRecord
from ..templates import TemplateRenderer, ancestors_of
from . import compensation


@dataclass
class CompiledDag:
    record: DagRecord
    renderer: TemplateRenderer
    tasks: dict[str, TaskDef]
    children: dict[str, list[str]]
    parents: dict[str, tuple[str, ...]]
    secrets: frozenset[str] = field(default_factory=frozenset)
    #: task ids parents first, when some task has a runIf other than success (else empty:
    #: the parent counters alone decide)
    run_if_order: tuple[str, ...] = ()
    #: the compensation steps (``compensate:<id>``), also in ``tasks``, ``parents``, ``children``
    steps: tuple[str, ...] = ()
    #: each task's ancestors, computed the first time its templates read an output
    _ancestors: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def dag(self) -> DagDef:
        return self.record.definition

    def ancestors(self, task_id: str) -> frozenset[str]:
        """The tasks ``task_id`` depends on, directly or not."""
        found = self._ancestors.get(task_id)
        if found is None:
            if compensation.is_step(task_id):
                # a step runs once the main path is over: every output is there to read
                found = frozenset(t.id for t in self.dag.tasks)
            else:
                found = frozenset(ancestors_of(task_id, self.parents))
            self._ancestors[task_id] = found
        return found

    def outputs_for(self, task_id: str, tasks: Mapping[str, TaskRecord]) -> TaskOutputs:
        """The outputs task ``task_id`` reads in its templates: those of its ancestors."""
        return TaskOutputs(tasks, lambda tid: tid in self.ancestors(task_id), f"task {task_id!r}")

    @classmethod
    def build(cls, record: DagRecord) -> CompiledDag:
        dag = record.definition
        tasks = {t.id: t for t in dag.tasks}
        children: dict[str, list[str]] = {t.id: [] for t in dag.tasks}
        parents: dict[str, tuple[str, ...]] = {}
        steps = compensation.steps(dag)
        children.update((s.id, []) for s in steps)
        for t in (*dag.tasks, *steps):
            tasks[t.id] = t
            parents[t.id] = t.depend_on
            for p in t.depend_on:
                children[p].append(t.id)
        compiled = cls(
            record=record,
            renderer=TemplateRenderer(dag),
            tasks=tasks,
            children=children,
            parents=parents,
            secrets=dag.secret_vars(),
            run_if_order=tuple(toposort(dag))
            if any(t.run_if != "success" for t in dag.tasks) else (),
            steps=tuple(s.id for s in steps),
        )
        # cron runs and reads of this version may log its secret defaults (driver DEBUG)
        LOG_REDACTOR.track(compiled, secret_forms(dag.secret_defaults()))
        return compiled
