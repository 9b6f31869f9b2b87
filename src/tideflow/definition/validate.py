"""Structural checks of a definition: ids, dependencies, the graph, schedule and names.

Every check runs and every problem is reported at once, each a sentence that names the task and
says what to change. The graph checks are iterative and linear in tasks plus edges, so a chain
of 100,000 tasks or a task with 10,000 parents is no harder than a small DAG.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Collection
from datetime import datetime
from zoneinfo import ZoneInfo

from croniter import croniter

from ..errors import DefinitionError
from .model import COMPENSATE_PREFIX, DagDef
from .problems import listing, raise_problems, suggestion, task_label, where
from .vartypes import VarValueError

#: DAG and task ids are stored in indexed columns of this size
MAX_ID_LEN = 191

VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# Ids are stored in indexed text columns; PostgreSQL refuses NUL there, and no control
# character belongs in a name a person types in a URL or on a command line.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# A fixed start keeps cron checks deterministic; an expression that never fires fails from any.
_CRON_PROBE_START = datetime(2000, 1, 1)


def validate_dag(
    dag: DagDef,
    *,
    source: str | None = None,
    known_actions: Collection[str] | None = None,
) -> None:
    """Raise :class:`DefinitionError` listing every structural problem of ``dag``.

    ``source`` (a file path, ``<api body>``...) prefixes each problem; ``known_actions``, when
    given, makes an action name that is not among them a problem too."""
    prefix = where(source, dag.id)
    problems = find_problems(dag, known_actions=known_actions)
    raise_problems([f"{prefix}: {p}" for p in problems], source=source)


def check_actions(
    dag: DagDef, known_actions: Collection[str], *, source: str | None = None
) -> None:
    """Raise :class:`DefinitionError` naming every action of ``dag`` not in ``known_actions``
    (for a definition whose structure was checked when it was loaded)."""
    problems: list[str] = []
    _check_actions(dag, known_actions, problems)
    prefix = where(source, dag.id)
    raise_problems([f"{prefix}: {p}" for p in problems], source=source)


def find_problems(dag: DagDef, *, known_actions: Collection[str] | None = None) -> list[str]:
    """Every structural problem of ``dag`` as a sentence (without the source prefix)."""
    problems: list[str] = []
    positions = _task_positions(dag, problems)
    _check_dependencies(dag, positions, problems)
    if dag.tasks and all(t.depend_on for t in dag.tasks):
        problems.append(
            "every task depends on another: at least one task must have no dependOn"
            " (a root task, where the run starts)"
        )
    cycle = find_cycle(dag)
    if cycle:
        problems.append(
            f"tasks depend on each other in a cycle: {' -> '.join(cycle)}"
            " ('a -> b' means b depends on a) — remove one of these dependOn entries"
        )
    for i, task in enumerate(dag.tasks):
        if task.run_if == "failed" and not task.depend_on:
            problems.append(
                f"{task_label(task.id, i)} has runIf: failed but no dependOn, so it could never"
                " run — list the tasks whose failure it handles in its dependOn"
            )
    if known_actions is not None:
        _check_actions(dag, known_actions, problems)
    _check_schedule(dag, problems)
    for name, value in dag.cron_vars.items():
        if name not in dag.vars:
            problems.append(
                f"cronVars sets '{name}', which the DAG does not declare — declare it under"
                " vars first"
            )
        elif value:
            try:
                dag.vars[name].accept(value)
            except VarValueError as exc:
                problems.append(f"cronVars '{name}' {exc}")
    if dag.cron:
        missing = [n for n, v in dag.vars.items() if v.required and not dag.cron_vars.get(n)]
        if missing:
            problems.append(
                f"the DAG has a cron schedule but its required vars {', '.join(missing)} are not"
                " set by cronVars — a scheduled run would be refused; set them in cronVars"
            )
    if len(dag.id) > MAX_ID_LEN:
        problems.append(f"the DAG id has {len(dag.id)} characters — the limit is {MAX_ID_LEN}")
    elif _CONTROL.search(dag.id):
        problems.append(
            f"the DAG id {dag.id!r} holds a control character — use printable characters only"
        )
    for name in dag.vars:
        if not VAR_NAME.match(name):
            problems.append(
                f"var name {name!r} is not allowed — start it with a letter or '_' and use"
                " only letters, digits, '_', '.' and '-'"
            )
    return problems


def _task_positions(dag: DagDef, problems: list[str]) -> dict[str, list[int]]:
    positions: dict[str, list[int]] = {}
    for i, task in enumerate(dag.tasks):
        if not task.id:
            problems.append(f"tasks[{i}] has an empty id — give every task a non-empty id")
        elif len(task.id) > MAX_ID_LEN:
            problems.append(
                f"tasks[{i}] has an id of {len(task.id)} characters — the limit is {MAX_ID_LEN}"
            )
        elif _CONTROL.search(task.id):
            problems.append(
                f"tasks[{i}] has the id {task.id!r}, which holds a control character"
                " — use printable characters only"
            )
        elif task.id.startswith(COMPENSATE_PREFIX):
            problems.append(
                f"tasks[{i}] has the id {task.id!r} — ids starting with"
                f" '{COMPENSATE_PREFIX}' name the compensation steps the engine adds; rename it"
            )
        positions.setdefault(task.id, []).append(i)
    for task_id, found in positions.items():
        if len(found) > 1:
            at = [f"tasks[{i}]" for i in found]
            used_by = f"{', '.join(at[:-1])} and {at[-1]}" if len(at) <= 12 else listing(at)
            problems.append(f"task id '{task_id}' is used by {used_by} — task ids must be unique")
    return positions


def _check_dependencies(dag: DagDef, positions: dict[str, list[int]], problems: list[str]) -> None:
    for i, task in enumerate(dag.tasks):
        label = task_label(task.id, i)
        seen: set[str] = set()
        for dep in task.depend_on:
            if dep == task.id:
                problems.append(f"{label} depends on itself — remove '{dep}' from its dependOn")
            elif dep in seen:
                problems.append(
                    f"{label} lists '{dep}' more than once in dependOn — list each parent once"
                )
            elif dep not in positions:
                hint = suggestion(dep, positions.keys())
                if not hint and len(positions) <= 12:
                    hint = f" (the tasks are: {listing(positions)})"
                problems.append(
                    f"{label} depends on '{dep}', which is not a task of this DAG{hint}"
                )
            seen.add(dep)


def _graph(dag: DagDef) -> tuple[dict[str, int], list[list[int]], list[list[int]]]:
    """Tasks by first position, and parent/child lists of positions (known, distinct, no self)."""
    index: dict[str, int] = {}
    for i, task in enumerate(dag.tasks):
        index.setdefault(task.id, i)
    parents: list[list[int]] = [[] for _ in dag.tasks]
    children: list[list[int]] = [[] for _ in dag.tasks]
    for task_id, i in index.items():
        for dep in dict.fromkeys(dag.tasks[i].depend_on):
            p = index.get(dep)
            if p is not None and dep != task_id:
                parents[i].append(p)
                children[p].append(i)
    return index, parents, children


def find_cycle(dag: DagDef) -> list[str] | None:
    """One dependency cycle as task ids in run order, the first repeated at the end
    (``['a', 'b', 'c', 'a']``), or None. Self-dependencies are reported on their own."""
    index, parents, children = _graph(dag)
    live = sorted(index.values())
    pending = {i: len(parents[i]) for i in live}
    ready = [i for i in live if pending[i] == 0]
    while ready:
        node = ready.pop()
        for child in children[node]:
            pending[child] -= 1
            if pending[child] == 0:
                ready.append(child)
    stuck = [i for i in live if pending[i] > 0]
    if not stuck:
        return None
    # Every stuck task has a stuck parent, so walking up parents must come back on itself.
    order: list[int] = []
    at: dict[int, int] = {}
    node = stuck[0]
    while node not in at:
        at[node] = len(order)
        order.append(node)
        node = next(p for p in parents[node] if pending[p] > 0)
    upward = order[at[node] :]
    cycle = upward[::-1]  # parents first: the order the tasks would run in
    first = cycle.index(min(cycle))  # start at the task written first, for stable messages
    cycle = cycle[first:] + cycle[:first]
    return [dag.tasks[i].id for i in cycle] + [dag.tasks[cycle[0]].id]


def toposort(dag: DagDef) -> list[str]:
    """Task ids parents first; among tasks ready together, the order written in the file.

    Raises :class:`DefinitionError` if the tasks form a cycle."""
    index, parents, children = _graph(dag)
    pending = {i: len(parents[i]) for i in index.values()}
    heap = [i for i, n in pending.items() if n == 0]
    heapq.heapify(heap)
    out: list[str] = []
    while heap:
        node = heapq.heappop(heap)
        out.append(dag.tasks[node].id)
        for child in children[node]:
            pending[child] -= 1
            if pending[child] == 0:
                heapq.heappush(heap, child)
    if len(out) != len(index):
        cycle = find_cycle(dag) or []
        raise DefinitionError(
            [f"{where(None, dag.id)}: tasks depend on each other in a cycle: {' -> '.join(cycle)}"]
        )
    return out


def _check_actions(dag: DagDef, known: Collection[str], problems: list[str]) -> None:
    names = sorted(known)
    for i, task in enumerate(dag.tasks):
        used = [("", task.action_name)]
        if task.compensate is not None:
            used.append((" in compensate", task.compensate.action_name))
        for place, action in used:
            if action not in known:
                hint = suggestion(action, names)
                problems.append(
                    f"{task_label(task.id, i)} uses action '{action}'{place}, which is not"
                    f" registered{hint}; known actions: {listing(names, limit=30)}"
                )


def _check_schedule(dag: DagDef, problems: list[str]) -> None:
    if dag.cron is not None:
        fields = dag.cron.split()
        # 5 fields as everywhere; a 6th (seconds, last) is accepted for sub-minute schedules
        if len(fields) not in (5, 6):
            problems.append(
                f"cron {dag.cron!r} must have 5 fields (minute hour day-of-month month"
                f" day-of-week), found {len(fields)} — for example '0 2 * * *' for 02:00 daily"
            )
        elif not _cron_fires(dag.cron):
            problems.append(
                f"cron {dag.cron!r} is not a valid cron expression, or never fires"
                " — for example '0 2 * * *' runs at 02:00 every day"
            )
    if dag.timezone is not None:
        try:
            ZoneInfo(dag.timezone)
        except Exception:  # not found, or a malformed key (absolute path, NUL...)
            problems.append(
                f"timezone {dag.timezone!r} is not a known IANA time zone"
                " — for example 'UTC' or 'Europe/Paris'"
            )


def _cron_fires(expression: str) -> bool:
    try:
        croniter(expression, _CRON_PROBE_START).get_next(datetime)
    except Exception:  # croniter signals bad input with many exception types
        return False
    return True
