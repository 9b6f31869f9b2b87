"""Loading definitions from files, text and mappings: shapes, strings-stay-strings, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tideflow.definition import parse
from tideflow.definition.loader import LoadLimits, load_dag_dict, load_dag_file, load_dag_text
from tideflow.definition.model import DagDef
from tideflow.errors import DefinitionError

SAMPLES = Path(__file__).parent / "samples"

MINIMAL = """
id: d
tasks:
  - {id: a, actionName: shell}
"""


def problems_of(text: str, **kwargs: object) -> list[str]:
    with pytest.raises(DefinitionError) as info:
        load_dag_text(text, source="dags/x.yaml", **kwargs)  # type: ignore[arg-type]
    assert info.value.source == "dags/x.yaml"
    return info.value.problems


def one_problem(text: str, **kwargs: object) -> str:
    problems = problems_of(text, **kwargs)
    assert len(problems) == 1, problems
    return problems[0]


# -- samples ------------------------------------------------------------------------------------
def test_fastflow_yaml_sample_loads() -> None:
    dag = load_dag_file(SAMPLES / "create-cluster.yaml")
    assert dag.id == "create-cluster"  # from the file name
    assert dag.name == "Create a cluster"
    assert dag.cron == "0 2 * * *"
    assert [t.id for t in dag.tasks] == ["alloc", "wait-ready", "register"]
    alloc = dag.task("alloc")
    assert alloc.timeout_secs == 30
    assert alloc.retry is not None and alloc.retry.max_attempts == 3
    assert alloc.params["env"] == {"COUNT": 3}  # params keep their types
    assert dag.vars["size"].default_value == "3"
    assert dag.vars["dryRun"].default_value == "false"


def test_map_form_precheck_keeps_three_checks_in_file_order() -> None:
    dag = load_dag_file(SAMPLES / "create-cluster.yaml")
    checks = dag.task("wait-ready").pre_check
    assert [c.name for c in checks] == ["skip-if-dry", "block-if-frozen", "skip-if-tiny"]
    assert [c.act for c in checks] == ["skip", "block", "skip"]
    assert checks[0].conditions[0].values == ("true", "yes")
    assert checks[2].conditions[0].values == ("3", "010", "0x1F")
    # stored as an ordered list, so a JSON column cannot reorder it
    stored = dag.to_dict()["tasks"][1]["preCheck"]
    assert [c["name"] for c in stored] == ["skip-if-dry", "block-if-frozen", "skip-if-tiny"]


def test_yml_sample_with_timezone_and_shorthand_var() -> None:
    dag = load_dag_file(SAMPLES / "nightly-backup.yml")
    assert dag.id == "nightly"  # an explicit id wins over the file name
    assert dag.timezone == "Europe/Paris"
    assert dag.vars["bucket"].default_value == "s3://backups"
    assert dag.task("notify").params["json"] == {
        "text": "backup of {{ bucket }} done",
        "retries": 0,
        "ok": True,
    }


def test_json_sample_numbers_and_booleans_become_text_only_in_text_places() -> None:
    dag = load_dag_file(SAMPLES / "approval-flow.json")
    assert dag.id == "approval-flow"
    assert dag.vars["ticket"].default_value == "1234"
    assert dag.vars["force"].default_value == "false"
    assert dag.task("approve").pre_check[0].conditions[0].values == ("true",)
    assert dag.task("plan").params["threshold"] == 1.5
    assert dag.task("apply").retry is not None


def test_json_text_keeps_the_number_as_written() -> None:
    text = json.dumps({"id": "j", "tasks": [{"id": "a", "actionName": "s"}]})
    text = text.replace('"tasks"', '"vars": {"v": {"defaultValue": 1.50}}, "tasks"')
    assert load_dag_text(text).vars["v"].default_value == "1.50"


def test_format_is_sniffed_and_can_be_forced() -> None:
    as_json = '{"id": "j", "tasks": [{"id": "a", "actionName": "s"}]}'
    assert load_dag_text(as_json).id == "j"
    assert load_dag_text(as_json, format="json").id == "j"
    assert load_dag_text("{id: y, tasks: [{id: a, actionName: s}]}").id == "y"  # YAML flow
    with pytest.raises(DefinitionError, match="not valid JSON"):
        load_dag_text("id: y\ntasks: []", format="json")


def test_default_id_applies_only_without_an_id() -> None:
    no_id = "tasks: [{id: a, actionName: s}]"
    assert load_dag_text(no_id, default_id="from-name").id == "from-name"
    assert load_dag_text("id: ~\n" + no_id, default_id="from-name").id == "from-name"
    assert load_dag_text("id: mine\n" + no_id, default_id="from-name").id == "mine"
    assert "give the DAG an id" in one_problem(no_id)


def test_file_id_defaults_to_stem(tmp_path: Path) -> None:
    path = tmp_path / "my-flow.yml"
    path.write_text("tasks: [{id: a, actionName: s}]\n")
    assert load_dag_file(path).id == "my-flow"


def test_fastflow_bookkeeping_and_blank_schedule_are_ignored() -> None:
    dag = load_dag_text(
        'id: d\ncreatedAt: 1\nupdatedAt: 2\ncron: ""\ntimezone: ""\ntasks: [{id: a, actionName: s}]'
    )
    assert dag.cron is None and dag.timezone is None


# -- strings stay strings -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("false", "false"),
        ("yes", "yes"),
        ("No", "No"),
        ("010", "010"),
        ("1.0", "1.0"),
        ("0x1F", "0x1F"),
        ("1e3", "1e3"),
        ("2024-01-01", "2024-01-01"),
        ("1:20", "1:20"),
        ("'quoted'", "quoted"),
        ("~", ""),
        ("null", ""),
        ("", ""),
    ],
)
def test_yaml_scalars_in_text_places_are_the_text_written(written: str, expected: str) -> None:
    dag = load_dag_text(
        f"""
id: d
vars:
  v: {{defaultValue: {written}}}
tasks:
  - id: a
    actionName: s
    preCheck:
      c: {{act: skip, conditions: [{{source: vars, key: v, op: in, values: [{written or '""'}]}}]}}
"""
    )
    assert dag.vars["v"].default_value == expected
    assert dag.tasks[0].pre_check[0].conditions[0].values == (expected,)


def test_numeric_ids_names_and_keys_are_text() -> None:
    dag = load_dag_text(
        """
id: 0012
name: 1.10
tasks:
  - {id: 1, actionName: s}
  - {id: 2, actionName: s, dependOn: [1]}
  - id: 3
    actionName: s
    dependOn: [2]
    preCheck: [{act: skip, conditions: [{source: vars, key: 007, op: in, values: [1]}]}]
vars:
  x: {defaultValue: 1}
"""
    )
    assert dag.id == "0012"
    assert dag.name == "1.10"
    assert [t.id for t in dag.tasks] == ["1", "2", "3"]
    assert dag.tasks[1].depend_on == ("1",)
    assert dag.tasks[2].pre_check[0].conditions[0].key == "007"
    assert dag.vars["x"].default_value == "1"


def test_params_keep_yaml_types() -> None:
    dag = load_dag_text(
        """
id: d
tasks:
  - id: a
    actionName: s
    params: {count: 3, ratio: 0.5, on: true, none: ~, text: "3", when: 2024-01-01, list: [1, "1"]}
"""
    )
    assert dag.tasks[0].params == {
        "count": 3,
        "ratio": 0.5,
        "on": True,
        "none": None,
        "text": "3",
        "when": "2024-01-01",  # dates stay text: definitions are stored as JSON
        "list": [1, "1"],
    }


# What yaml.v3 (Fastflow's reader) makes of each plain scalar when decoding into params.
@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("yes", "yes"), ("Yes", "Yes"), ("no", "no"), ("NO", "NO"), ("on", "on"), ("On", "On"),
        ("off", "off"), ("Off", "Off"), ("y", "y"), ("n", "n"),
        ("true", True), ("True", True), ("TRUE", True), ("false", False), ("FALSE", False),
        ("tRUE", "tRUE"),
        ("~", None), ("null", None), ("NULL", None), ("", None),
        ("3", 3), ("-3", -3), ("+3", 3), ("1_000", 1000), ("010", 8), ("0x1F", 31),
        ("0o17", 15), ("0b101", 5), ("-0x10", -16), ("9223372036854775807", 2**63 - 1),
        ("18446744073709551615", 2**64 - 1), ("18446744073709551616", 1.8446744073709552e19),
        ("08", 8.0), ("1.50", 1.5), ("1e3", 1000.0), ("-.5", -0.5), (".5", 0.5), ("1.", 1.0),
        ("1:30", "1:30"), ("2024-01-01", "2024-01-01"), ("0x", "0x"), ("-a", "-a"), ("=", "="),
        ("1e999", "1e999"), ("0o9", "0o9"), ("+.inf", float("inf")), ("'yes'", "yes"),
        ("!!bool yes", True), ("!!str 3", "3"),
    ],
)  # fmt: skip
def test_params_read_plain_scalars_as_yaml_v3_does(written: str, expected: object) -> None:
    text = f"id: d\ntasks:\n  - id: a\n    actionName: s\n    params:\n      v: {written}\n"
    if expected == float("inf"):
        # JSON cannot store it: refused with the place named, as before
        assert "params.v inf is not a finite number" in one_problem(text)
        return
    value = load_dag_text(text).tasks[0].params["v"]
    assert value == expected and type(value) is type(expected)


def test_params_keys_are_the_text_written() -> None:
    dag = load_dag_text("id: d\ntasks: [{id: a, actionName: s, params: {yes: 1, on: 2, 010: 3}}]")
    assert dag.tasks[0].params == {"yes": 1, "on": 2, "010": 3}


def test_dict_input_follows_the_same_rules() -> None:
    dag = load_dag_dict(
        {
            "id": 7,
            "vars": {"flag": {"defaultValue": False}, "n": {"defaultValue": 3}, "f": 2.5},
            "tasks": [
                {
                    "id": "a",
                    "actionName": "s",
                    "params": {"body": {"count": 3}, 1: "int key"},
                    "preCheck": {
                        "c": {
                            "act": "skip",
                            "conditions": [
                                {"source": "vars", "key": "flag", "op": "in", "values": [True]}
                            ],
                        }
                    },
                }
            ],
        }
    )
    assert dag.id == "7"
    assert dag.default_vars() == {"flag": "false", "n": "3", "f": "2.5"}
    assert dag.tasks[0].params == {"body": {"count": 3}, "1": "int key"}
    assert dag.tasks[0].pre_check[0].conditions[0].values == ("true",)


def test_yaml_merge_keys_inside_tasks() -> None:
    dag = load_dag_text(
        """
id: d
tasks:
  - id: a
    actionName: s
    retry: &retry {maxAttempts: 3, backoffSecs: 2}
  - {id: b, actionName: s, dependOn: [a], retry: {<<: *retry, maxAttempts: 5}}
"""
    )
    assert dag.tasks[1].retry is not None
    assert dag.tasks[1].retry.max_attempts == 5
    assert dag.tasks[1].retry.backoff_secs == 2


# -- errors -------------------------------------------------------------------------------------
def test_missing_action_names_task_and_what_to_do() -> None:
    text = """
id: d
tasks:
  - {id: a, actionName: s}
  - {id: b, actionName: s, dependOn: [a]}
  - {id: deploy, dependOn: [b]}
"""
    assert one_problem(text) == (
        "dags/x.yaml: task 'deploy' (tasks[2]): actionName: field required"
        " — every task needs the name of the action it runs"
    )


def test_task_without_id_is_named_by_index() -> None:
    problem = one_problem("id: d\ntasks: [{actionName: s}]")
    assert problem.startswith("dags/x.yaml: tasks[0]: id: field required")


def test_unknown_keys_suggest_the_close_one() -> None:
    problems = problems_of(
        """
id: d
taks: []
vars: {v: {default: 1}}
tasks:
  - {id: a, actionName: s}
  - {id: b, actionName: s, dependsOn: [a]}
  - {id: c, actionName: s, dependOn: [a], zzz: 1}
"""
    )
    assert (
        "dags/x.yaml: unknown key 'taks' in the top level of the DAG — did you mean 'tasks'?"
        in (problems)
    )
    assert (
        "dags/x.yaml: unknown key 'default' in var 'v' — did you mean 'defaultValue'?" in problems
    )
    assert (
        "dags/x.yaml: unknown key 'dependsOn' in task 'b' (tasks[1]) — did you mean 'dependOn'?"
        in problems
    )
    zzz = next(p for p in problems if "'zzz'" in p)
    assert "known keys: id, name, dependOn, actionName" in zzz


def test_all_problems_are_collected() -> None:
    problems = problems_of(
        """
id: d
status: paused
tasks:
  - id: a
    actionName: s
    timeoutSecs: -1
    retry: {maxAttempts: 0}
    preCheck:
      chk: {act: skp, conditions: [{source: env, key: k, op: eq, values: "x"}]}
  - {id: b, actionName: [s], dependOn: a}
"""
    )
    text = "\n".join(problems)
    assert "status: 'paused' is not allowed — use 'normal' or 'stopped'" in text
    assert "task 'a' (tasks[0]): timeoutSecs: input should be greater than or equal to 0" in text
    assert "task 'a' (tasks[0]): retry.maxAttempts:" in text
    assert "preCheck 'chk'.act: 'skp' is not allowed — use 'skip' or 'block'" in text
    assert "(did you mean 'skip'?)" in text
    assert "preCheck 'chk'.conditions[0].source: 'env' is not allowed" in text
    assert "preCheck 'chk'.conditions[0].op: 'eq' is not allowed — use 'in' or 'not-in'" in text
    assert "conditions[0].values: must be a list, found the text 'x'" in text
    assert "task 'b' (tasks[1]): actionName: must be text, found a list" in text
    assert "task 'b' (tasks[1]): dependOn: must be a list, found the text 'a'" in text
    assert len(problems) == 9


def test_structural_and_template_problems_come_together() -> None:
    problems = problems_of(
        """
id: d
tasks:
  - {id: a, actionName: s, params: {x: "{{ regoin }}"}}
  - {id: b, actionName: s, dependOn: [zz]}
"""
    )
    assert len(problems) == 2
    assert "depends on 'zz'" in problems[0]
    assert "params.x: uses 'regoin'" in problems[1]


def test_empty_tasks_and_wrong_shapes() -> None:
    assert "tasks: must list at least one task" in one_problem("id: d\ntasks: []")
    assert "tasks: must be a list, found a mapping" in one_problem("id: d\ntasks: {a: 1}")
    assert "var 'v': must be a mapping of keys, found a list" in one_problem(
        "id: d\nvars: {v: [1]}\ntasks: [{id: a, actionName: s}]"
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "is empty"),
        ("# only a comment\n", "is empty"),
        ("- a\n- b\n", "the top level must be a mapping of DAG keys"),
        ("just text", "found the text 'just text'"),
        ("a: 1\n---\nb: 2\n", "more than one YAML document (another starts at line 2)"),
        ("id: d\ntasks: [\n", "is not valid YAML at line"),
        ("id: d\n  bad: indent\n", "is not valid YAML at line 2"),
        ("a: !python/object:os.system x", "is not valid YAML at line 1"),
        ("a: \x00", "is not valid YAML"),
        ("a: *nowhere", "found undefined alias"),
        ('{"id": "d", "tasks": [}', "is not valid JSON at line 1"),
    ],
)
def test_unreadable_text(text: str, fragment: str) -> None:
    problem = one_problem(text)
    assert problem.startswith("dags/x.yaml: ")
    assert fragment in problem


def test_yaml_syntax_error_names_line_and_column() -> None:
    problem = one_problem("id: d\ntasks:\n  - id: a\n    actionName: [s\n")
    assert problem.startswith("dags/x.yaml: is not valid YAML at line 5, column 1")


def test_api_body_is_the_default_source() -> None:
    with pytest.raises(DefinitionError) as info:
        load_dag_dict({"id": "d", "tasks": [{"id": "a"}]})
    assert info.value.problems[0].startswith("<api body>: task 'a' (tasks[0]): actionName")


def test_file_problems(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="cannot read the file"):
        load_dag_file(tmp_path / "missing.yaml")
    bad = tmp_path / "latin.yaml"
    bad.write_bytes(b"id: caf\xe9\ntasks: []\n")
    with pytest.raises(DefinitionError, match="is not UTF-8 text"):
        load_dag_file(bad)
    bom = tmp_path / "bom.json"
    bom.write_bytes(b'\xef\xbb\xbf{"tasks": [{"id": "a", "actionName": "s"}]}')
    assert load_dag_file(bom).id == "bom"


# -- bounds -------------------------------------------------------------------------------------
def test_text_size_limit() -> None:
    limits = LoadLimits(max_bytes=100)
    problem = one_problem(MINIMAL + "#" * 200, limits=limits)
    assert "more than the limit of 100" in problem
    assert load_dag_text(MINIMAL, limits=limits).id == "d"


def test_file_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(MINIMAL + "#" * 200)
    with pytest.raises(DefinitionError, match="more than the limit of 100"):
        load_dag_file(path, limits=LoadLimits(max_bytes=100))


def test_task_count_limit() -> None:
    tasks = [{"id": f"t{i}", "actionName": "s"} for i in range(11)]
    with pytest.raises(DefinitionError, match="has 11 tasks, more than the limit of 10"):
        load_dag_dict({"id": "d", "tasks": tasks}, limits=LoadLimits(max_tasks=10))


def test_params_nesting_limit_names_the_task() -> None:
    deep: object = "leaf"
    for _ in range(70):
        deep = {"x": deep}
    with pytest.raises(DefinitionError) as info:
        load_dag_dict({"id": "d", "tasks": [{"id": "a", "actionName": "s", "params": deep}]})
    assert "task 'a' (tasks[0]): params.x.x" in info.value.problems[0]
    assert "nests deeper than 64 levels" in info.value.problems[0]


def test_deep_yaml_is_refused_not_crashed() -> None:
    assert "nests deeper than" in one_problem("a: " + "[" * 500 + "]" * 500)
    problem = one_problem("- " * 5000 + "x")
    assert "not valid YAML" in problem or "nests deeper" in problem


def test_deep_yaml_with_python_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parse, "_libyaml_bounds_nesting", lambda: False)
    assert "nests deeper than" in one_problem("- " * 5000 + "x")
    assert "more than one YAML document" in one_problem("a: 1\n---\nb: 2\n")
    assert load_dag_text(MINIMAL).id == "d"


def test_deep_json_is_refused() -> None:
    assert "nest" in one_problem('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")


def test_billion_laughs_is_refused_quickly() -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        refs = ",".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    problem = one_problem("\n".join(lines))
    assert "values once its YAML aliases are expanded" in problem


def test_merge_key_doubling_is_refused() -> None:
    lines = ["m0: &m0 {k: v}"]
    for i in range(1, 25):
        lines.append(f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: v}}")
    problem = one_problem("\n".join(lines), limits=LoadLimits(max_nodes=100_000))
    assert "more than 100,000 values once its YAML aliases are expanded" in problem


def test_self_referencing_alias_is_refused() -> None:
    assert "nests deeper" in one_problem("a: &a [*a]")


def test_self_referencing_dict_is_refused() -> None:
    loop: dict[str, object] = {"id": "a", "actionName": "s"}
    loop["params"] = {"me": loop}
    with pytest.raises(DefinitionError, match="nests deeper"):
        load_dag_dict({"id": "d", "tasks": [loop]})


def test_non_json_values_in_dicts_are_refused() -> None:
    with pytest.raises(DefinitionError) as info:
        load_dag_dict(
            {
                "id": "d",
                "tasks": [
                    {"id": "a", "actionName": "s", "params": {"s": {1, 2}, "n": float("nan")}}
                ],
            }
        )
    text = "\n".join(info.value.problems)
    assert "params.s holds a set value, which is not JSON data" in text
    assert "params.n nan is not a finite number" in text


def test_many_problems_are_capped() -> None:
    tasks = [{"id": "a", "actionName": "s"}] + [
        {"id": f"t{i}", "actionName": "s", "dependOn": [f"missing{i}"]} for i in range(200)
    ]
    with pytest.raises(DefinitionError) as info:
        load_dag_dict({"id": "d", "tasks": tasks})
    assert len(info.value.problems) == 51
    assert info.value.problems[-1] == "... and 150 more problems"


def test_loaded_model_equals_model_validate() -> None:
    dag = load_dag_text(MINIMAL)
    assert dag == DagDef.model_validate({"id": "d", "tasks": [{"id": "a", "actionName": "shell"}]})


@pytest.mark.parametrize(
    "field",
    [
        "timeoutSecs: " + "9" * 400,
        "timeoutSecs: .inf",
        "timeoutSecs: .nan",
        "retry: {maxAttempts: 2, backoffSecs: 1e999}",
        "retry: {maxAttempts: 2, maxBackoffSecs: .inf}",
    ],
)
def test_numbers_that_are_not_finite_are_refused(field: str) -> None:
    """A number too large for a float, or inf/nan spelled out, never becomes an endless
    timeout or back-off: the definition is refused, naming the task."""
    text = f"tasks:\n  - {{id: a, actionName: shell, params: {{cmd: [x]}}, {field}}}\n"
    with pytest.raises(DefinitionError, match=r"task 'a'.*finite"):
        load_dag_text(text, source="n.yaml", default_id="n")
