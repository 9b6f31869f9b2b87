"""The Python builder, and writing definitions back as YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from tideflow.definition.builder import DagBuilder, Retry, dump_dag_yaml
from tideflow.definition.loader import load_dag_file, load_dag_text
from tideflow.definition.model import Condition, PreCheck
from tideflow.errors import DefinitionError

SAMPLES = Path(__file__).parent / "samples"

EQUIVALENT_YAML = """
id: create-cluster
name: Create a cluster
cron: "0 2 * * *"
vars:
  region: {desc: target region, defaultValue: cn-north-1}
  token: {defaultValue: "", secret: true}
tasks:
  - id: alloc
    actionName: shell
    params: {cmd: [echo, "{{region}}"]}
    timeoutSecs: 30
    retry: {maxAttempts: 3, backoffSecs: 1}
  - id: wait
    actionName: wait
    dependOn: [alloc]
    params: {waitingTime: 1s}
    preCheck:
      dry:
        act: skip
        conditions: [{source: vars, key: region, op: in, values: [none]}]
"""


def build_equivalent() -> DagBuilder:
    return (
        DagBuilder("create-cluster", name="Create a cluster", cron="0 2 * * *")
        .var("region", default="cn-north-1", desc="target region")
        .var("token", secret=True)
        .task(
            "alloc",
            "shell",
            params={"cmd": ["echo", "{{region}}"]},
            timeout_secs=30,
            retry=Retry(max_attempts=3, backoff_secs=1),
        )
        .task(
            "wait",
            "wait",
            params={"waitingTime": "1s"},
            depend_on=["alloc"],
            pre_check=[
                PreCheck(
                    name="dry",
                    act="skip",
                    conditions=(Condition(source="vars", key="region", op="in", values=("none",)),),
                )
            ],
        )
    )


def test_builder_equals_loader() -> None:
    assert build_equivalent().build() == load_dag_text(EQUIVALENT_YAML)


def test_builder_accepts_mappings_and_fastflow_precheck_map() -> None:
    dag = (
        DagBuilder("create-cluster", name="Create a cluster", cron="0 2 * * *")
        .var("region", "cn-north-1", desc="target region")
        .var("token", secret=True)
        .task(
            "alloc",
            "shell",
            params={"cmd": ["echo", "{{region}}"]},
            timeout_secs=30,
            retry={"maxAttempts": 3, "backoffSecs": 1},
        )
        .task(
            "wait",
            "wait",
            params={"waitingTime": "1s"},
            depend_on="alloc",
            pre_check={
                "dry": {
                    "act": "skip",
                    "conditions": [
                        {"source": "vars", "key": "region", "op": "in", "values": ["none"]}
                    ],
                }
            },
        )
        .build()
    )
    assert dag == load_dag_text(EQUIVALENT_YAML)


def test_builder_validates_like_the_loader() -> None:
    with pytest.raises(DefinitionError) as info:
        DagBuilder("d").task("a", "shell").task("b", "shell", depend_on=["nope"]).build()
    assert info.value.problems == [
        "DagBuilder('d'): task 'b' (tasks[1]) depends on 'nope', which is not a task of this DAG"
        " (the tasks are: a, b)"
    ]


def test_builder_text_places_follow_strings_stay_strings() -> None:
    dag = DagBuilder("d").var("n", 3).task("a", "shell", params={"n": 3}).build()  # type: ignore[arg-type]
    assert dag.vars["n"].default_value == "3"
    assert dag.tasks[0].params == {"n": 3}


def test_builder_without_tasks() -> None:
    with pytest.raises(DefinitionError, match="tasks: must list at least one task"):
        DagBuilder("d").build()


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES.iterdir()))
def test_yaml_round_trip(sample: str) -> None:
    dag = load_dag_file(SAMPLES / sample)
    text = dump_dag_yaml(dag)
    again = load_dag_text(text)
    assert again == dag
    assert dump_dag_yaml(again) == text


def test_round_trip_keeps_tricky_strings() -> None:
    dag = (
        DagBuilder("d")
        .var("a", "010")
        .var("b", "yes")
        .var("c", "multi\nline")
        .task("t", "shell", params={"x": "0x1F", "y": "1:20", "z": "", "n": None, "f": 1.5})
        .build()
    )
    text = dump_dag_yaml(dag)
    assert load_dag_text(text) == dag


def test_dump_leaves_defaults_out() -> None:
    text = dump_dag_yaml(DagBuilder("d").task("a", "shell").build())
    assert text == "id: d\ntasks:\n- id: a\n  actionName: shell\n"


def test_builder_run_if_and_compensate_equal_yaml() -> None:
    from tideflow import Compensation

    built = (
        DagBuilder("saga")
        .task("alloc", "shell", params={"cmd": ["true"]},
              compensate=Compensation(actionName="shell", params={"cmd": ["echo", "undo"]},
                                      retry=Retry(max_attempts=2)))
        .task("notify", "shell", depend_on="alloc", run_if="failed", params={"cmd": ["true"]})
        .build()
    )
    loaded = load_dag_text("""
id: saga
tasks:
  - id: alloc
    actionName: shell
    params: {cmd: ["true"]}
    compensate: {actionName: shell, params: {cmd: [echo, undo]}, retry: {maxAttempts: 2}}
  - id: notify
    actionName: shell
    dependOn: [alloc]
    runIf: failed
    params: {cmd: ["true"]}
""")
    assert built == loaded
    assert load_dag_text(dump_dag_yaml(built)) == built
    assert built.task("notify").run_if == "failed"


def test_builder_non_retryable_equals_yaml() -> None:
    built = (DagBuilder("nr")
             .task("a", "shell", params={"cmd": ["true"]},
                   retry=Retry(max_attempts=5, non_retryable=["QuotaError", 3]))
             .build())
    loaded = load_dag_text(
        "id: nr\ntasks:\n  - id: a\n    actionName: shell\n    params: {cmd: ['true']}\n"
        "    retry: {maxAttempts: 5, nonRetryable: [QuotaError, 3]}\n")
    assert built == loaded
    assert built.tasks[0].retry is not None
    assert built.tasks[0].retry.non_retryable == ("QuotaError", 3)


def test_builder_typed_vars_equal_yaml() -> None:
    built = (DagBuilder("tv")
             .var("size", 3, type="integer", minimum=1, maximum=50)
             .var("regions", ["a"], type="list")
             .var("name", type="string", required=True, pattern="^[a-z]+$")
             .var("tier", "gold", enum=["gold", "silver"])
             .task("a", "shell", params={"cmd": ["echo", "{{size}}"]})
             .build())
    loaded = load_dag_text(
        "id: tv\nvars:\n  size: {type: integer, defaultValue: '3', minimum: 1, maximum: 50}\n"
        "  regions: {type: list, defaultValue: '[\"a\"]'}\n"
        "  name: {type: string, required: true, pattern: '^[a-z]+$'}\n"
        "  tier: {defaultValue: gold, enum: [gold, silver]}\n"
        "tasks:\n  - {id: a, actionName: shell, params: {cmd: [echo, '{{size}}']}}\n")
    assert built == loaded
    assert built.vars["size"].default_value == 3
    assert load_dag_text(dump_dag_yaml(built)) == built
    # a Fastflow var's document is unchanged: no typed keys appear
    assert loaded.to_dict()["vars"]["tier"] == {"desc": "", "defaultValue": "gold",
                                                "secret": False, "enum": ["gold", "silver"]}
