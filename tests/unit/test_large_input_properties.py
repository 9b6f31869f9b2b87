"""Very large or hostile definitions are refused within bounds, with a message naming the limit.

Each case is timed only loosely (a guard against a hang, not a benchmark)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tideflow.definition.loader import DEFAULT_LIMITS, LoadLimits, load_dag_dict, load_dag_text
from tideflow.errors import DefinitionError

TASKS = 100_000
GUARD_SECS = 30.0


@contextmanager
def within(secs: float = GUARD_SECS) -> Iterator[None]:
    start = time.monotonic()
    yield
    assert time.monotonic() - start < secs


def refused(load: Callable[[], Any]) -> str:
    with within(), pytest.raises(DefinitionError) as info:
        load()
    return info.value.message


def chain(n: int) -> dict[str, Any]:
    return {"id": "big", "tasks": [
        {"id": f"t{i}", "actionName": "shell", "dependOn": [f"t{i - 1}"] if i else [],
         "params": {"cmd": ["true"]}}
        for i in range(n)
    ]}  # fmt: skip


def chain_yaml(n: int) -> str:
    lines = ["id: big", "tasks:"]
    lines += [f"  - {{id: t{i}, actionName: shell, dependOn: [t{i - 1}]}}" for i in range(1, n)]
    lines.insert(2, "  - {id: t0, actionName: shell}")
    return "\n".join(lines) + "\n"


def test_a_100k_task_dag_is_refused_by_default_naming_the_limit() -> None:
    doc = chain(TASKS)
    expected = (
        f"<api body>: has {TASKS:,} tasks, more than the limit of {DEFAULT_LIMITS.max_tasks:,}"
        " — split it into smaller DAGs"
    )
    assert refused(lambda: load_dag_dict(doc)) == expected
    assert refused(lambda: load_dag_text(json.dumps(doc))) == expected


def test_too_many_tasks_in_yaml_are_refused_before_being_built() -> None:
    n = DEFAULT_LIMITS.max_tasks + 1
    message = refused(lambda: load_dag_text(chain_yaml(n), source="big.yaml"))
    assert message == (
        f"big.yaml: has {n:,} tasks, more than the limit of {DEFAULT_LIMITS.max_tasks:,}"
        " — split it into smaller DAGs"
    )


def test_a_100k_task_chain_loads_within_a_raised_limit() -> None:
    limits = LoadLimits(max_tasks=TASKS)
    with within():
        dag = load_dag_dict(chain(TASKS), limits=limits)
    assert len(dag.tasks) == TASKS
    assert dag.tasks[-1].depend_on == (f"t{TASKS - 2}",)
    with within():
        again = load_dag_text(json.dumps(chain(TASKS)), limits=limits)
    assert again == dag


def test_a_100k_task_chain_with_a_cycle_names_it() -> None:
    doc = chain(TASKS)
    doc["tasks"][0]["dependOn"] = [f"t{TASKS - 1}"]
    message = refused(lambda: load_dag_dict(doc, limits=LoadLimits(max_tasks=TASKS)))
    assert "tasks depend on each other in a cycle: t0 -> t1 -> t2" in message
    assert len(message) < 2_000_000  # the whole cycle is named, once


def test_many_broken_tasks_report_at_most_50_problems() -> None:
    doc = {"id": "x", "tasks": [{"id": f"t{i}", "actionName": "s", "dependOn": [f"ghost{i}"]}
                                for i in range(10_000)]}
    with within(), pytest.raises(DefinitionError) as info:
        load_dag_dict(doc)
    assert len(info.value.problems) == 51
    assert info.value.problems[-1].startswith("... and ")
    assert "task 't0' (tasks[0]) depends on 'ghost0'" in info.value.problems[0]


DEPTH = 10_000


@pytest.mark.parametrize("text", [
    pytest.param("id: x\ntasks: [{id: a, actionName: s, params: {n: " + "[" * DEPTH
                 + "]" * DEPTH + "}}]\n", id="yaml-flow-lists"),
    pytest.param("id: x\ntasks: [{id: a, actionName: s, params: " + "{a: " * DEPTH + "1"
                 + "}" * DEPTH + "}]\n", id="yaml-flow-maps"),
    # block style needs an indent per level: 3,000 levels already take 4.5 MB
    pytest.param("id: x\ntasks:\n  - id: a\n    actionName: s\n    params:\n"
                 + "".join(" " * (i + 6) + f"k{i}:\n" for i in range(3000)), id="yaml-block"),
    pytest.param('{"id":"x","tasks":[{"id":"a","actionName":"s","params":{"n":' + "[" * DEPTH
                 + "]" * DEPTH + "}}]}", id="json-lists"),
    pytest.param('{"id":"x","tasks":[{"id":"a","actionName":"s","params":' + '{"a":' * DEPTH
                 + "1" + "}" * DEPTH + "}]}", id="json-maps"),
])  # fmt: skip
def test_deep_nesting_is_refused_without_recursion_errors(text: str) -> None:
    message = refused(lambda: load_dag_text(text, source="deep"))
    assert message.startswith("deep: ")
    assert "nest" in message  # "nests deeper than 72 levels", "exceeded maximum nesting depth"


def test_deep_nesting_in_a_mapping_names_the_param() -> None:
    value: Any = "leaf"
    for _ in range(DEPTH):
        value = {"a": [value]}
    doc = {"id": "x", "tasks": [{"id": "a", "actionName": "s", "params": {"deep": value}}]}
    message = refused(lambda: load_dag_dict(doc))
    assert message == (
        "<api body>: task 'a' (tasks[0]): params.deep.a[0].a[0].a[0].a[0].a[0]... nests deeper"
        f" than {DEFAULT_LIMITS.max_depth} levels"
    )


def billion_laughs(levels: int = 9) -> str:
    """The classic: each level ten uses of the one below, inside a task's params."""
    lines = ["id: x", "tasks:", "  - id: a", "    actionName: s", "    params:",
             "      a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels + 1):
        lines.append(f"      a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    lines.append(f"      x: *a{levels}")
    return "\n".join(lines) + "\n"


def merge_bomb(levels: int = 40) -> str:
    lines = ["m0: &m0 {k: v, j: w}"]
    for i in range(1, levels + 1):
        lines.append(f"m{i}: &m{i} {{<<: [*m{i - 1}], l{i}: [*m{i - 1}, *m{i - 1}]}}")
    return "\n".join(lines) + "\nid: x\ntasks: [{id: a, actionName: s}]\n"


@pytest.mark.parametrize("text", [
    pytest.param(billion_laughs(), id="billion-laughs"),
    pytest.param(billion_laughs(30), id="wide-laughs"),
    pytest.param(merge_bomb(), id="merge-keys"),
    pytest.param("a: &a [*a]\nid: x\ntasks: [{id: a, actionName: s}]\n", id="self-alias"),
])  # fmt: skip
def test_alias_bombs_are_refused_quickly(text: str) -> None:
    message = refused(lambda: load_dag_text(text, source="bomb.yaml"))
    assert message.startswith("bomb.yaml: ")
    assert ("once its YAML aliases are expanded" in message
            or "a YAML alias may refer to itself" in message), message


def test_a_few_aliases_are_still_fine() -> None:
    dag = load_dag_text(billion_laughs(3))
    assert len(dag.tasks[0].params["x"]) == 10
    assert dag.tasks[0].params["x"][9][9][9][9] == "lol"


def test_long_strings() -> None:
    # within the size limit a long param is data like any other
    body = "x" * (DEFAULT_LIMITS.max_bytes - 1000)
    text = "id: x\ntasks: [{id: a, actionName: s, params: {x: '" + body + "'}}]\n"
    with within():
        assert load_dag_text(text).tasks[0].params["x"] == body
    # past it, the text is refused before it is read
    message = refused(lambda: load_dag_text(text + "#" * 2000, source="long.yaml"))
    assert message.startswith("long.yaml: is 10,4")
    assert "more than the limit of 10,485,760" in message
    # multi-byte characters count as the bytes they take
    wide = "id: x\ntasks: [{id: a, actionName: s, params: {x: '" + "é" * 5_300_000 + "'}}]\n"
    assert "more than the limit of 10,485,760" in refused(lambda: load_dag_text(wide))
    # an id has to fit its column
    message = refused(lambda: load_dag_dict({"id": "i" * 1_000_000,
                                             "tasks": [{"id": "a", "actionName": "s"}]}))
    assert message == "<api body>: the DAG id has 1000000 characters — the limit is 191"


def test_very_many_vars_load() -> None:
    doc = {"id": "x", "vars": {f"v{i}": str(i) for i in range(100_000)},
           "tasks": [{"id": "a", "actionName": "s", "params": {"x": "{{v99999}}"}}]}
    with within():
        dag = load_dag_dict(doc)
    assert dag.default_vars()["v99999"] == "99999"


def test_values_past_the_node_limit_are_refused() -> None:
    doc = {"id": "x", "tasks": [{"id": "a", "actionName": "s", "params": {"x": [0] * 300}}]}
    message = refused(lambda: load_dag_dict(doc, limits=LoadLimits(max_nodes=100)))
    assert message == "<api body>: has more than 100 values — split it into smaller DAGs"


def test_numbers_too_large_to_read() -> None:
    text = '{"id":"x","tasks":[{"id":"a","actionName":"s","params":{"n":' + "9" * 5000 + "}}]}"
    message = refused(lambda: load_dag_text(text, source="n", format="json"))
    assert message.startswith("n: has a number too large to read")
    assert "99999999999999999999..." in message and "5,000" in message


def test_yaml_digits_past_a_float_are_text_as_in_yaml_v3() -> None:
    # yaml.v3 reads digits past 64 bits as a float, and past a float's range as text
    n, m = "9" * 5000, "1" + "0" * 20
    text = f"id: x\ntasks: [{{id: a, actionName: s, params: {{n: {n}, m: {m}}}}}]\n"
    with within():
        params = load_dag_text(text, source="n").tasks[0].params
    assert params == {"n": "9" * 5000, "m": 1e20}


def test_numbers_too_large_to_store_in_a_mapping() -> None:
    doc = {"id": "x", "tasks": [{"id": "a", "actionName": "s", "timeoutSecs": 10**5000,
                                 "params": {"n": [10**5000]}}]}
    with pytest.raises(DefinitionError) as info:
        load_dag_dict(doc)
    assert info.value.problems == [
        "<api body>: task 'a' (tasks[0]): timeoutSecs is a number of more than 4,000 digits,"
        " too large to store",
        "<api body>: task 'a' (tasks[0]): params.n[0] is a number of more than 4,000 digits,"
        " too large to store",
    ]


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("id", "a\x00b", "the DAG id 'a\\x00b' holds a control character"),
    ("task", "a\x00b", "tasks[0] has the id 'a\\x00b', which holds a control character"),
])  # fmt: skip
def test_ids_with_control_characters_are_refused(field: str, value: str, expected: str) -> None:
    doc: dict[str, Any] = {"id": "x", "tasks": [{"id": "a", "actionName": "s"}]}
    if field == "id":
        doc["id"] = value
    else:
        doc["tasks"][0]["id"] = value
    assert expected in refused(lambda: load_dag_dict(doc))


def test_a_definition_past_its_time_budget_is_refused() -> None:
    tasks = ", ".join(f"{{id: t{i}, actionName: s}}" for i in range(3000))
    text = f"id: x\ntasks: [{tasks}]\n"
    message = refused(lambda: load_dag_text(text, limits=LoadLimits(max_seconds=0.001)))
    assert message == (
        "<api body>: took more than 0.001 s to read, the time budget of one definition"
        " — split it into smaller DAGs"
    )
    assert len(load_dag_text(text, limits=LoadLimits(max_seconds=None)).tasks) == 3000


def test_the_garbage_collector_is_back_after_a_load() -> None:
    import gc

    assert gc.isenabled()
    refused(lambda: load_dag_text("id: x\ntasks: [{id: a}]\n"))
    load_dag_text("id: x\ntasks: [{id: a, actionName: s}]\n")
    assert gc.isenabled()
