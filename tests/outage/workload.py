"""The work the outage tests run and the checks they make afterwards.

DAGs of a few shapes (a chain, a fan-out/fan-in, a task that fails its first attempt and is
retried) whose tasks run the ``work`` action: it sleeps, then records the execution in
:class:`Executions`, so a test can count how often each task really ran. :func:`check_all`
reads every instance back from the database (not from the engine's memory) and asserts the
promise: every run succeeded, each task attempted exactly as often as its definition needs,
each attempt recorded once, no task row missing or doubled, and the action executed once per
recorded attempt.
"""

from __future__ import annotations

import asyncio
import collections
import random
import time
from dataclasses import dataclass, field
from typing import Any

from tideflow import ActionRegistry, Engine, InstanceRecord
from tideflow.errors import StoreError
from tideflow.states import InstanceStatus, TaskStatus
from tideflow.store.base import Store

#: the task that fails its first attempt (maxAttempts 3)
FLAKY = "flaky"


def _t(tid: str, deps: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": tid, "actionName": "work", "dependOn": deps or [],
            "params": {"secs": "{{secs}}"}, **extra}


def dags() -> list[dict[str, Any]]:
    """Three DAGs; each declares a ``secs`` var: how long each of its tasks sleeps."""
    var = {"secs": {"defaultValue": "0"}}
    return [
        {"id": "chain", "vars": var,
         "tasks": [_t("a"), _t("b", ["a"]), _t("c", ["b"]), _t("d", ["c"])]},
        {"id": "fan", "vars": var,
         "tasks": [_t("root"), *(_t(f"leaf{i}", ["root"]) for i in range(4)),
                   _t("join", [f"leaf{i}" for i in range(4)])]},
        {"id": "retrying", "vars": var,
         "tasks": [_t("first"),
                   _t(FLAKY, ["first"],
                      retry={"maxAttempts": 3, "backoffSecs": 0.05, "maxBackoffSecs": 0.2}),
                   _t("last", [FLAKY])]},
    ]


@dataclass
class Executions:
    """Every execution of the ``work`` action: (instance id, task id) → attempt numbers."""

    seen: dict[tuple[str, str], list[int]] = field(
        default_factory=lambda: collections.defaultdict(list))

    def registry(self) -> ActionRegistry:
        registry = ActionRegistry()

        async def work(ctx: Any, params: dict[str, Any]) -> None:
            await asyncio.sleep(float(params.get("secs") or 0))
            self.seen[(ctx.instance_id, ctx.task_id)].append(ctx.attempt)
            if ctx.task_id == FLAKY and ctx.attempt == 1:
                raise RuntimeError("fails on its first attempt, as planned")

        registry.add_function("work", work)
        return registry


async def submit(engine: Engine, count: int, rng: random.Random, *, secs: tuple[float, float],
                 timeout: float = 60.0) -> list[str]:
    """Start ``count`` runs of the DAGs in turn, each task sleeping ``secs`` (a range). A
    submission refused with StoreError (the database was unreachable before the run was
    accepted) is submitted again."""
    ids: list[str] = []
    names = [d["id"] for d in dags()]
    deadline = time.monotonic() + timeout
    for n in range(count):
        dag_id = names[n % len(names)]
        secs_value = f"{rng.uniform(*secs):.3f}"
        while True:
            try:
                # a run accepted into a write that never lands would hang here: fail instead
                async with asyncio.timeout(20):
                    ids.append((await engine.run_dag(dag_id, {"secs": secs_value})).id)
                break
            except TimeoutError:
                raise AssertionError(f"run {n} of {dag_id} not accepted within 20s") from None
            except StoreError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
    return ids


async def wait_all_final(store: Store, ids: list[str], timeout: float) -> list[InstanceRecord]:
    """Poll the database until every instance is final; the instances with their tasks."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = [await store.get_instance(i, with_tasks=True) for i in ids]
        except StoreError:
            found = []
        if found and all(i.status.is_final for i in found):
            return found
        if time.monotonic() > deadline:
            stuck = [(i.id, i.dag_id, i.status.value,
                      {t.task_id: t.status.value for t in i.tasks})
                     for i in found if not i.status.is_final]
            raise AssertionError(f"not all runs final after {timeout}s: {stuck[:5]}")
        await asyncio.sleep(0.2)


def check_all(instances: list[InstanceRecord], executions: Executions, *,
              all_instances: list[InstanceRecord] | None = None) -> None:
    """Assert the promise on instances read back from the database."""
    sizes = {d["id"]: len(d["tasks"]) for d in dags()}
    problems: list[str] = []
    for inst in instances:
        if inst.status != InstanceStatus.SUCCESS:
            problems.append(f"{inst.id} ({inst.dag_id}) ended {inst.status.value}: "
                            f"{inst.reason}")
        if len(inst.tasks) != sizes[inst.dag_id] or \
                len({t.task_id for t in inst.tasks}) != len(inst.tasks):
            problems.append(f"{inst.id}: {len(inst.tasks)} task rows, "
                            f"expected {sizes[inst.dag_id]}")
        for t in inst.tasks:
            owed = 2 if t.task_id == FLAKY else 1
            where = f"{inst.id}/{t.task_id}"
            if t.status != TaskStatus.SUCCESS:
                problems.append(f"{where} is {t.status.value}: {t.reason}")
            if t.attempts != owed:
                problems.append(f"{where} recorded {t.attempts} attempts, expected {owed}")
            if [a.attempt for a in t.attempt_history] != list(range(1, owed + 1)):
                problems.append(f"{where} attempt history "
                                f"{[(a.attempt, a.status.value) for a in t.attempt_history]}")
            elif t.attempt_history[-1].status != TaskStatus.SUCCESS:
                problems.append(f"{where} last attempt {t.attempt_history[-1].status.value}")
            ran = executions.seen.get((inst.id, t.task_id), [])
            if ran != list(range(1, owed + 1)):
                problems.append(f"{where} executed as attempts {ran}, expected "
                                f"{list(range(1, owed + 1))}")
    if all_instances is not None:
        extra = {i.id for i in all_instances} - {i.id for i in instances}
        if extra:
            problems.append(f"instances nobody submitted: {sorted(extra)[:5]}")
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems[:30])
