"""Structural validation: ids, dependencies, roots, cycles, actions, schedule, var names."""

from __future__ import annotations

from typing import Any

import pytest

from tideflow.definition.loader import load_dag_text
from tideflow.definition.model import DagDef
from tideflow.definition.validate import find_cycle, toposort, validate_dag
from tideflow.errors import DefinitionError


def dag_of(*tasks: dict[str, Any], **extra: Any) -> DagDef:
    """A model built without the loader, so validate_dag sees the problems first-hand."""
    return DagDef.model_validate({"id": "d", "tasks": list(tasks), **extra})


def t(task_id: str, *deps: str, action: str = "shell") -> dict[str, Any]:
    return {"id": task_id, "actionName": action, "dependOn": list(deps)}


def problems(dag: DagDef, **kwargs: Any) -> list[str]:
    with pytest.raises(DefinitionError) as info:
        validate_dag(dag, source="flows/d.yaml", **kwargs)
    assert info.value.source == "flows/d.yaml"
    return info.value.problems


def test_a_valid_dag_passes() -> None:
    validate_dag(dag_of(t("a"), t("b", "a"), t("c", "a"), t("d", "b", "c")))


def test_duplicate_ids_name_both_positions() -> None:
    assert problems(dag_of(t("a"), t("b", "a"), t("a"))) == [
        "flows/d.yaml: task id 'a' is used by tasks[0] and tasks[2] — task ids must be unique"
    ]


def test_unknown_dependency_suggests_a_close_id() -> None:
    found = problems(dag_of(t("alloc"), t("wait", "aloc")))
    assert found == [
        "flows/d.yaml: task 'wait' (tasks[1]) depends on 'aloc', which is not a task of this DAG"
        " — did you mean 'alloc'?"
    ]


def test_unknown_dependency_lists_the_tasks_when_nothing_is_close() -> None:
    (found,) = problems(dag_of(t("a"), t("b", "zzz")))
    assert found.endswith("depends on 'zzz', which is not a task of this DAG (the tasks are: a, b)")


def test_self_dependency() -> None:
    (found,) = problems(dag_of(t("a"), t("b", "b")))
    assert (
        found
        == "flows/d.yaml: task 'b' (tasks[1]) depends on itself — remove 'b' from its dependOn"
    )


def test_repeated_parent() -> None:
    (found,) = problems(dag_of(t("a"), t("b", "a", "a")))
    assert "lists 'a' more than once in dependOn" in found


def test_no_root_task() -> None:
    found = problems(dag_of(t("a", "b"), t("b", "a")))
    assert (
        "flows/d.yaml: every task depends on another: at least one task must have no dependOn"
        " (a root task, where the run starts)" in found
    )


def test_cycle_is_named_in_run_order_from_the_first_task_written() -> None:
    dag = dag_of(t("start"), t("a", "start", "c"), t("b", "a"), t("c", "b"), t("end", "c"))
    assert find_cycle(dag) == ["a", "b", "c", "a"]
    (found,) = problems(dag)
    assert "tasks depend on each other in a cycle: a -> b -> c -> a" in found
    assert "remove one of these dependOn entries" in found


def test_no_cycle() -> None:
    assert find_cycle(dag_of(t("a"), t("b", "a"), t("c", "a", "b"))) is None


@pytest.mark.parametrize(
    "task_id", ["common -child", "a b", " ", "a/b", "q?x#y%z", "it's \"quoted\"", "é 日本", "[0]"]
)
def test_task_ids_are_any_text_fastflow_accepts(task_id: str) -> None:
    # Fastflow takes any non-empty string: spaces, slashes, quotes, non-ASCII
    validate_dag(dag_of(t("a"), t(task_id, "a")), source="flows/d.yaml")


@pytest.mark.parametrize("task_id", ["a\tb", "a\nb", "a\x00b", "a\x7fb"])
def test_task_ids_must_have_no_control_characters(task_id: str) -> None:
    (found,) = problems(dag_of(t("a"), t(task_id, "a")))
    assert f"tasks[1] has the id {task_id!r}, which holds a control character" in found



def test_unknown_action_lists_known_ones() -> None:
    dag = dag_of(t("a", action="shel"), t("b", "a", action="http"))
    (found,) = problems(dag, known_actions={"shell", "http", "wait"})
    assert found == (
        "flows/d.yaml: task 'a' (tasks[0]) uses action 'shel', which is not registered"
        " — did you mean 'shell'?; known actions: http, shell, wait"
    )
    validate_dag(dag_of(t("a", action="shel")))  # not checked without known_actions


@pytest.mark.parametrize(
    ("cron", "fragment"),
    [
        ("0 2 * *", "must have 5 fields"),
        ("0 2 * * * * *",
         "must have 5 fields (minute hour day-of-month month day-of-week), found 7"),
        ("61 * * * *", "is not a valid cron expression"),
        ("0 0 31 2 *", "never fires"),
        ("a b c d e", "is not a valid cron expression"),
    ],
)
def test_bad_cron(cron: str, fragment: str) -> None:
    (found,) = problems(dag_of(t("a"), cron=cron))
    assert f"cron {cron!r}" in found
    assert fragment in found


@pytest.mark.parametrize("cron", ["0 2 * * *", "*/5 * * * mon-fri", "0 0 L * *"])
def test_good_cron(cron: str) -> None:
    validate_dag(dag_of(t("a"), cron=cron))


@pytest.mark.parametrize("zone", ["Mars/Base", "/etc/passwd", "../x", "", "a\x00b"])
def test_bad_timezone(zone: str) -> None:
    (found,) = problems(dag_of(t("a"), timezone=zone))
    assert "is not a known IANA time zone" in found


def test_good_timezone() -> None:
    validate_dag(dag_of(t("a"), timezone="Asia/Shanghai"))


@pytest.mark.parametrize("name", ["1abc", "has space", "a/b", "é"])
def test_bad_var_names(name: str) -> None:
    (found,) = problems(dag_of(t("a"), vars={name: {}}))
    assert f"var name {name!r} is not allowed" in found


@pytest.mark.parametrize("name", ["region", "cluster-name", "a.b", "_x", "Z9"])
def test_good_var_names(name: str) -> None:
    validate_dag(dag_of(t("a"), vars={name: {}}))


def test_every_problem_is_reported_at_once() -> None:
    dag = dag_of(
        t("a", "x"),
        t("a", "a"),
        t("b", "c"),
        t("c", "b"),
        cron="nope",
        timezone="Nowhere/Land",
        vars={"bad name": {}},
    )
    found = problems(dag, known_actions={"http"})
    text = "\n".join(found)
    for fragment in (
        "task id 'a' is used by",
        "depends on 'x'",
        "depends on itself",
        "at least one task must have no dependOn",
        "cycle: b -> c -> b",
        "uses action 'shell'",
        "cron 'nope'",
        "timezone 'Nowhere/Land'",
        "var name 'bad name'",
    ):
        assert fragment in text


def test_without_source_the_dag_is_named() -> None:
    with pytest.raises(DefinitionError) as info:
        validate_dag(dag_of(t("a"), t("a")))
    assert info.value.problems[0].startswith("DAG 'd': task id 'a'")


def test_loader_validates() -> None:
    with pytest.raises(DefinitionError, match="depends on 'nope'"):
        load_dag_text(
            "id: d\ntasks: [{id: a, actionName: s}, {id: b, actionName: s, dependOn: [nope]}]"
        )


# -- scale --------------------------------------------------------------------------------------
def chain(n: int) -> DagDef:
    return DagDef.model_validate(
        {
            "id": "chain",
            "tasks": [
                {"id": f"t{i}", "actionName": "s", "dependOn": [f"t{i - 1}"] if i else []}
                for i in range(n)
            ],
        }
    )


def test_100k_task_chain_validates_without_recursion() -> None:
    dag = chain(100_000)
    validate_dag(dag)
    order = toposort(dag)
    assert order[0] == "t0" and order[-1] == "t99999"


def test_100k_task_chain_cycle_is_found() -> None:
    tasks = [{"id": "root", "actionName": "s"}] + [
        {"id": f"t{i}", "actionName": "s", "dependOn": [f"t{(i - 1) % 100_000}"]}
        for i in range(100_000)
    ]
    dag = DagDef.model_validate({"id": "ring", "tasks": tasks})
    cycle = find_cycle(dag)
    assert cycle is not None and len(cycle) == 100_001
    assert cycle[0] == cycle[-1] == "t0"


def test_10k_parent_fan_in() -> None:
    parents = [{"id": f"p{i}", "actionName": "s"} for i in range(10_000)]
    sink = {"id": "sink", "actionName": "s", "dependOn": [f"p{i}" for i in range(10_000)]}
    dag = DagDef.model_validate({"id": "fan", "tasks": [*parents, sink]})
    validate_dag(dag)
    assert toposort(dag)[-1] == "sink"


# -- toposort -----------------------------------------------------------------------------------
def test_toposort_uses_file_order_for_ties() -> None:
    dag = dag_of(t("z"), t("y", "z"), t("a"), t("m", "a", "y"), t("b", "a"))
    assert toposort(dag) == ["z", "y", "a", "m", "b"]


def test_toposort_refuses_a_cycle() -> None:
    with pytest.raises(DefinitionError, match="cycle: a -> b -> a"):
        toposort(dag_of(t("r"), t("a", "r", "b"), t("b", "a")))
