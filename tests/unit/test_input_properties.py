"""Bad input gets a clear error that says what is wrong and where, and changes nothing.

Inputs here are mostly *almost* valid: a valid definition with one to three mutations (a key
dropped, a wrong type, an unknown key, a cycle, a duplicate id, a bad cron, odd unicode, a huge
number, deep params...), given as a mapping, as JSON text and as YAML text. Whatever comes in,
the loader returns a valid model or raises a DefinitionError whose every problem names the
source; the template renderer returns text or raises TemplateError; the run-input parsers
return clean values or raise InputError. Through an engine, a refused definition or run leaves
no row behind.
"""

from __future__ import annotations

import asyncio
import copy
import json
import sqlite3
from datetime import timedelta
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tideflow import ActionContext, ActionRegistry, Engine, EngineSettings
from tideflow.definition.loader import load_dag_dict, load_dag_text
from tideflow.definition.model import DagDef
from tideflow.definition.validate import validate_dag
from tideflow.errors import DefinitionError, InputError, TemplateError, TideflowError
from tideflow.templates import TemplateRenderer, check_templates, template_problems
from tideflow.vars import (
    MAX_TAG_KEY,
    MAX_TAG_VALUE,
    MAX_TAGS,
    parse_kv_pairs,
    resolve_run_vars,
    validate_tags,
)

SOURCE = "mutant.yaml"

# Generous: the machine is shared, and a hang is minutes, not seconds.
PROPERTY = settings(
    max_examples=150,
    deadline=timedelta(seconds=10),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

VALID: dict[str, Any] = {
    "id": "mutant",
    "name": "A valid DAG to break",
    "vars": {
        "region": {"desc": "where", "defaultValue": "eu"},
        "size": "3",
        "token": {"secret": True},
    },
    "cron": "0 2 * * *",
    "timezone": "Europe/Paris",
    "tasks": [
        {
            "id": "alloc",
            "actionName": "shell",
            "params": {"cmd": ["echo", "{{region}}", "{{ vars.size }}"]},
            "timeoutSecs": 30,
            "retry": {"maxAttempts": 3, "backoffSecs": 0.5},
        },
        {
            "id": "configure",
            "actionName": "shell",
            "dependOn": ["alloc"],
            "params": {"env": {"ID": "{{ shareData.clusterId }}"}, "n": [1, 2.5, True, None]},
            "preCheck": {
                "dry": {
                    "act": "skip",
                    "conditions": [{"source": "vars", "key": "size", "op": "in", "values": ["0"]}],
                }
            },
        },
        {"id": "notify", "actionName": "wait", "dependOn": ["alloc", "configure"]},
    ],
}

# Values that do not belong where they are put, and values that stress what holds them.
ODD_TEXT = [
    "", " ", "a b", "\x00", "nul\x00inside", "\ud800", "\u202eevil", "zero\u200bwidth",
    "e\u0301", "\U0001f600", "\n", "{{", "{% if %}", "{{ nope }}", "x" * 300, "0x1F", "010",
    "yes", "~", "null", "*/0 * * * *", "..", "/etc/passwd", "\t", "\ufeff",
]  # fmt: skip
odd_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([10**5000, -(10**4500), 2**63, -(2**63) - 1, 0, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(ODD_TEXT),
    st.text(max_size=20),
)


def nested(depth: int, leaf: Any = "x") -> Any:
    """A list/map alternation ``depth`` levels deep (iteratively built)."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


odd_values = st.one_of(
    odd_scalars,
    st.lists(odd_scalars, max_size=3),
    st.dictionaries(st.text(max_size=5), odd_scalars, max_size=3),
    st.integers(min_value=1, max_value=300).map(nested),
)

TASK_KEYS = ["id", "actionName", "dependOn", "params", "timeoutSecs", "preCheck", "retry", "name"]
DAG_KEYS = ["id", "name", "vars", "cron", "timezone", "tasks", "status", "cronVars",
            "maxActiveRuns", "catchup", "maxCatchup", "cronOverlap"]  # fmt: skip
NEAR_MISSES = ["dependsOn", "action_name", "actionname", "timeout", "param", "retries", "ID",
               "Tasks", "precheck", "colour", "createdAt"]  # fmt: skip
BAD_CRONS = ["0 2 * *", "* * * * * * *", "61 * * * *", "0 2 31 2 *", "*/0 * * * *",
             "0-99999999999 * * * *", "@never", "", "L W # ?", "0 2 * * MON-XYZ"]  # fmt: skip


@st.composite
def mutation(draw: st.DrawFn, doc: dict[str, Any]) -> None:
    """Apply one mutation to ``doc`` in place."""
    tasks = doc.get("tasks")
    task = draw(st.sampled_from(tasks)) if isinstance(tasks, list) and tasks else None
    kind = draw(st.sampled_from(
        ["drop", "retype", "unknown", "cycle", "duplicate", "cron", "deep", "unicode",
         "huge", "tasks", "precheck", "retry", "vars"]
    ))  # fmt: skip
    holder: Any = task if isinstance(task, dict) and draw(st.booleans()) else doc
    keys = TASK_KEYS if holder is task else DAG_KEYS
    if kind == "drop" and isinstance(holder, dict):
        holder.pop(draw(st.sampled_from(keys)), None)
    elif kind == "retype" and isinstance(holder, dict):
        holder[draw(st.sampled_from(keys))] = draw(odd_values)
    elif kind == "unknown" and isinstance(holder, dict):
        holder[draw(st.sampled_from(NEAR_MISSES) | st.text(max_size=8))] = draw(odd_values)
    elif kind == "cycle" and isinstance(tasks, list) and len(tasks) > 1:
        first, last = tasks[0], tasks[-1]
        if isinstance(first, dict) and isinstance(last, dict):
            first["dependOn"] = [last.get("id")]
    elif kind == "duplicate" and isinstance(tasks, list) and len(tasks) > 1:
        a, b = draw(st.permutations(range(len(tasks))))[:2]
        if isinstance(tasks[a], dict) and isinstance(tasks[b], dict):
            tasks[a]["id"] = tasks[b].get("id")
    elif kind == "cron":
        doc["cron"] = draw(st.sampled_from(BAD_CRONS) | st.text(max_size=30))
    elif kind == "deep" and isinstance(task, dict):
        task["params"] = {"deep": nested(draw(st.integers(min_value=1, max_value=400)))}
    elif kind == "unicode" and isinstance(holder, dict):
        holder[draw(st.sampled_from(["id", "name", "actionName", "timezone", "cron"]))] = draw(
            st.sampled_from(ODD_TEXT) | st.text(max_size=10)
        )
    elif kind == "huge" and isinstance(holder, dict):
        holder[draw(st.sampled_from(keys))] = draw(st.sampled_from([10**5000, 2**64, 1e308]))
    elif kind == "tasks":
        doc["tasks"] = draw(st.sampled_from([[], {}, "tasks", [None], [[]], [{}], None]))
    elif kind == "precheck" and isinstance(task, dict):
        task["preCheck"] = draw(st.sampled_from([
            {"p": {"act": "skipp"}}, [{"act": "skip", "conditions": [{"source": "var"}]}],
            {"p": "skip"}, [None], {"p": {"act": "block", "conditions": {"k": "v"}}},
        ]))  # fmt: skip
    elif kind == "retry" and isinstance(task, dict):
        task["retry"] = draw(st.sampled_from([
            {"maxAttempts": 0}, {"maxAttempts": 10**6}, {"backoffSecs": -1}, {"backof": 1},
            "3", [3], {"maxAttempts": "many"},
        ]))  # fmt: skip
    elif kind == "vars":
        doc["vars"] = draw(st.sampled_from([
            [], "region", {"bad name": "x"}, {"region": {"defaultValue": {"a": 1}}},
            {"region": {"secret": "maybe"}}, {"": "x"}, {"1x": "y"},
        ]))  # fmt: skip


@st.composite
def mutants(draw: st.DrawFn) -> dict[str, Any]:
    doc = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        draw(mutation(doc))
    return doc


def assert_valid_or_clear(load: Any, label: str = SOURCE) -> DagDef | None:
    """Call ``load``: a fully valid model, or a DefinitionError whose problems name ``label``."""
    try:
        dag = load()
    except DefinitionError as exc:
        assert exc.problems, "a DefinitionError must list its problems"
        assert len(exc.problems) <= 51  # 50 and a "... and N more" line
        for problem in exc.problems:
            assert isinstance(problem, str)
            assert problem.startswith(f"{label}: ") or problem.startswith("... and "), problem
            assert len(problem) < 2000, "a problem is a sentence, not a dump"
        assert exc.source == label
        assert exc.message
        return None
    assert isinstance(dag, DagDef)
    validate_dag(dag)  # structurally valid
    check_templates(dag)  # every template compiles and names declared vars
    json.dumps(dag.to_dict())  # storable as it is
    return dag


def as_json(doc: Any) -> str | None:
    try:
        return json.dumps(doc)
    except ValueError:  # an integer past Python's conversion limit cannot be written
        return None


def as_yaml(doc: Any) -> str | None:
    try:
        return yaml.safe_dump(doc, allow_unicode=True)
    except (ValueError, yaml.YAMLError):
        return None


def test_the_unmutated_definition_is_valid() -> None:
    # otherwise every mutant would fail for the wrong reason
    dag = load_dag_dict(copy.deepcopy(VALID), source=SOURCE)
    assert [t.id for t in dag.tasks] == ["alloc", "configure", "notify"]
    assert load_dag_text(json.dumps(VALID), source=SOURCE) == dag


@PROPERTY
@given(mutants())
def test_mutated_definitions_as_mappings(doc: dict[str, Any]) -> None:
    assert_valid_or_clear(lambda: load_dag_dict(doc, source=SOURCE))


@PROPERTY
@given(mutants())
def test_mutated_definitions_as_json_and_yaml_text(doc: dict[str, Any]) -> None:
    text = as_json(doc)
    if text is not None:
        assert_valid_or_clear(lambda: load_dag_text(text, source=SOURCE))
    text = as_yaml(doc)
    if text is not None:
        assert_valid_or_clear(lambda: load_dag_text(text, source=SOURCE, format="yaml"))


@PROPERTY
@given(mutants(), st.data())
def test_mutated_yaml_text_cut_or_spliced(doc: dict[str, Any], data: st.DataObject) -> None:
    """Text broken mid-way (a truncated upload, a bad merge) is refused, never a crash."""
    text = as_yaml(doc)
    if text is None:
        return
    cut = data.draw(st.integers(min_value=0, max_value=len(text)))
    insert = data.draw(st.sampled_from(["", "\n", ": ", "- ", "{", "]", "&a ", "*a", "\t",
                                        "'", "---\n", "!!python/object:os.system ", "%"]))
    assert_valid_or_clear(lambda: load_dag_text(text[:cut] + insert + text[cut:], source=SOURCE))


@PROPERTY
@given(st.integers(min_value=0, max_value=2), st.sampled_from(["id", "actionName"]))
def test_a_missing_task_key_names_the_task_and_the_key(index: int, key: str) -> None:
    doc = copy.deepcopy(VALID)
    del doc["tasks"][index][key]
    with pytest.raises(DefinitionError) as info:
        load_dag_dict(doc, source=SOURCE)
    assert any(f"tasks[{index}]" in p and key in p and "field required" in p
               for p in info.value.problems), info.value.problems


@PROPERTY
@given(
    st.integers(min_value=0, max_value=2),
    st.sampled_from(["timeoutSecs", "retry", "preCheck", "params", "dependOn"]),
    st.one_of(st.sampled_from(["soon", "many", "x"]), st.just({"a": {"b": "c"}}),
              st.just(10**5000)),
)
def test_a_wrong_type_names_the_task_and_the_key(index: int, key: str, value: Any) -> None:
    doc = copy.deepcopy(VALID)
    doc["tasks"][index][key] = value
    dag = assert_valid_or_clear(lambda: load_dag_dict(doc, source=SOURCE))
    if dag is not None:  # some keys take a text or mapping: then it must have been kept
        return
    with pytest.raises(DefinitionError) as info:
        load_dag_dict(doc, source=SOURCE)
    assert any(f"tasks[{index}]" in p and key in p for p in info.value.problems), (
        info.value.problems
    )


@PROPERTY
@given(st.sampled_from(NEAR_MISSES[:-1]), st.integers(min_value=0, max_value=2))
def test_an_unknown_key_is_named_with_its_place(key: str, index: int) -> None:
    doc = copy.deepcopy(VALID)
    doc["tasks"][index][key] = 1
    with pytest.raises(DefinitionError) as info:
        load_dag_dict(doc, source=SOURCE)
    assert any(f"unknown key '{key}'" in p and f"tasks[{index}]" in p
               for p in info.value.problems), info.value.problems


@PROPERTY
@given(st.permutations(["alloc", "configure", "notify"]))
def test_a_cycle_is_named_task_by_task(order: list[str]) -> None:
    doc = copy.deepcopy(VALID)
    by_id = {t["id"]: t for t in doc["tasks"]}
    for parent, child in zip(order, order[1:] + order[:1], strict=True):
        by_id[child]["dependOn"] = [parent]
    with pytest.raises(DefinitionError) as info:
        load_dag_dict(doc, source=SOURCE)
    cycle = [p for p in info.value.problems if "cycle" in p]
    assert cycle and all(task_id in cycle[0] for task_id in order)


@PROPERTY
@given(st.sampled_from(BAD_CRONS), st.sampled_from(["json", "yaml"]))
def test_a_bad_cron_is_quoted_back(cron: str, fmt: str) -> None:
    doc = {**copy.deepcopy(VALID), "cron": cron}
    text = json.dumps(doc) if fmt == "json" else yaml.safe_dump(doc)
    try:
        dag = load_dag_text(text, source=SOURCE)
    except DefinitionError as exc:
        assert any("cron" in p and repr(cron) in p for p in exc.problems), exc.problems
    else:
        assert dag.cron is None and not cron.strip()  # "" is Fastflow's "no schedule"


# -- templates ----------------------------------------------------------------------------------
TEMPLATE_PIECES = [
    "{{", "}}", "{%", "%}", "{#", "#}", " ", "x", "region", "cluster-name", "vars.", "vars[",
    "shareData.", "clusterId", ".vars.region.Value", ".shareData.clusterId", "|upper",
    "|join(',')", "|int", "|default('d')", "(", ")", "[", "]", "'", '"', " if ", " else ",
    "for v in vars", " in ", "endfor", "endif", "raw", "endraw", " * ", " ** ", " 3 ", " 9 ",
    " range( 3 ) ", "include 'x'", "-", "~", ".__class__", "loop.index", "self", ".", "=",
    "set y = ", "\n", "\u00e9", "\x00", "0x1F",
]  # fmt: skip
template_sources = st.one_of(
    st.lists(st.sampled_from(TEMPLATE_PIECES), max_size=25).map("".join),
    st.text(max_size=60).map(lambda t: "{{" + t),
)
TEMPLATE_VARS = {"region": "eu", "cluster-name": "blue", "size": "3"}


def template_dag(source: str) -> DagDef:
    return DagDef.model_validate({
        "id": "t",
        "vars": {name: {} for name in TEMPLATE_VARS},
        "tasks": [{"id": "a", "actionName": "s", "params": {"x": [source]}}],
    })  # fmt: skip


@PROPERTY
@given(template_sources, st.dictionaries(st.sampled_from(["clusterId", "k"]), st.text(max_size=8)))
def test_any_template_renders_to_text_or_a_template_error(
    source: str, share: dict[str, str]
) -> None:
    dag = template_dag(source)
    problems = template_problems(dag)
    assert all(isinstance(p, str) and p.startswith("task 'a' (tasks[0]): params.x[0]")
               for p in problems)
    try:
        out = TemplateRenderer(dag).render("a", dag.tasks[0].params, TEMPLATE_VARS, share)
    except TemplateError as exc:
        # the message names the task and the param, then says why
        assert exc.message.startswith("task 'a': params.x[0] ("), exc.message
    else:
        assert isinstance(out["x"][0], str)
        assert len(out["x"][0]) < 2_000_000


@PROPERTY
@given(template_sources)
def test_a_template_that_fails_at_registration_fails_the_load(source: str) -> None:
    doc = {"id": "t", "vars": {name: {} for name in TEMPLATE_VARS},
           "tasks": [{"id": "a", "actionName": "s", "params": {"x": source}}]}
    dag = assert_valid_or_clear(lambda: load_dag_dict(doc, source=SOURCE))
    assert (dag is None) == bool(template_problems(template_dag(source)))


# -- run input: KEY=VALUE, tags, selector labels, vars -------------------------------------------
kv_text = st.text(
    alphabet=st.sampled_from(["a", "b", "=", " ", "\x00", "é", "-", ".", "\ud800"]),
    max_size=12,
)


@PROPERTY
@given(st.lists(kv_text, max_size=8))
def test_kv_pairs_parse_or_say_which_item(items: list[str]) -> None:
    try:
        pairs = parse_kv_pairs(items, what="--tag")
    except InputError as exc:
        assert exc.message.startswith("--tag ")
        assert any(repr(i) in exc.message or repr(i.partition("=")[0]) in exc.message
                   for i in items), exc.message
    else:
        # every item is there, split at its first '='
        assert len(pairs) == len(items)
        for item in items:
            key, _, value = item.partition("=")
            assert key and pairs[key] == value


tag_keys = st.one_of(st.text(max_size=10), st.just(""), st.just("k" * (MAX_TAG_KEY + 1)),
                     st.integers(), st.none())
tag_values = st.one_of(st.text(max_size=10), st.just("v" * (MAX_TAG_VALUE + 1)), st.integers(),
                       st.none(), st.lists(st.text(max_size=3), max_size=2))


@PROPERTY
@given(
    st.one_of(
        st.dictionaries(tag_keys, tag_values, max_size=6),  # type: ignore[arg-type]
        st.dictionaries(st.text(min_size=1, max_size=4), st.text(max_size=4),
                        min_size=MAX_TAGS + 1, max_size=MAX_TAGS + 3),
        st.sampled_from([["a=b"], "a=b", 3]),
    ),
    st.sampled_from(["tag", "selector label"]),
)
def test_tags_are_clean_text_or_refused_by_name(tags: Any, what: str) -> None:
    try:
        out = validate_tags(tags, what=what)
    except InputError as exc:
        assert what in exc.message
    else:
        assert len(out) <= MAX_TAGS
        for key, value in out.items():
            assert isinstance(key, str) and 0 < len(key) <= MAX_TAG_KEY
            assert isinstance(value, str) and len(value) <= MAX_TAG_VALUE
            # storable in an indexed text column on every backend
            key.encode("utf-8")
            value.encode("utf-8")
            assert "\x00" not in key + value


RUN_DAG = load_dag_dict({"id": "r", "vars": {"region": "eu", "size": "3"},
                         "tasks": [{"id": "a", "actionName": "s"}]})
var_values = st.one_of(odd_scalars, st.lists(st.integers(), max_size=2),
                       st.dictionaries(st.text(max_size=2), st.integers(), max_size=2))


@PROPERTY
@given(st.one_of(
    st.dictionaries(st.sampled_from(["region", "size", "regoin", "", "x" * 200]) | st.integers(),
                    var_values, max_size=4),
    st.sampled_from([["region"], "region=eu", 7]),
))  # fmt: skip
def test_run_vars_are_text_or_refused_by_name(given_vars: Any) -> None:
    try:
        out = resolve_run_vars(RUN_DAG, given_vars)
    except InputError as exc:
        assert "var" in exc.message
        assert len(exc.message) < 2000
    else:
        assert set(out) == {"region", "size"}
        assert all(isinstance(v, str) for v in out.values())


def test_very_many_unknown_vars_give_a_short_message() -> None:
    given_vars = {f"v{i}": "x" for i in range(100_000)}
    with pytest.raises(InputError) as info:
        resolve_run_vars(RUN_DAG, given_vars)
    message = info.value.message
    assert "'v0'" in message and "99,980 more" in message
    assert "not declared by DAG 'r'" in message
    assert len(message) < 2000


# -- through an engine: a refusal writes nothing ------------------------------------------------
def _noop(ctx: ActionContext, params: Any) -> None:
    return None


def _rows(db_file: str) -> dict[str, int]:
    with sqlite3.connect(db_file) as conn:
        return {table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in ("tf_dags", "tf_dag_versions", "tf_dag_instances",
                              "tf_task_instances", "tf_dag_instance_tags")}  # fmt: skip


def test_refused_definitions_and_runs_write_nothing(sqlite_url: str) -> None:
    """One engine on SQLite for all examples; after each refusal every table has the rows it
    had before (counted through sqlite3, not through the engine)."""
    db_file = sqlite_url.removeprefix("sqlite:///")
    registry = ActionRegistry()
    registry.add_function("noop", _noop)
    engine = Engine.from_url(sqlite_url, actions=registry,
                             settings=EngineSettings(node_id="props"))
    base = copy.deepcopy(VALID)
    for task in base["tasks"]:
        task["actionName"] = "noop"
    refused = {"definitions": 0, "runs": 0}

    with asyncio.Runner() as runner:
        runner.run(engine.start())
        try:
            runner.run(engine.register_dag(copy.deepcopy(base)))

            @PROPERTY
            @given(mutants())
            def register(doc: dict[str, Any]) -> None:
                tasks = doc.get("tasks")
                for task in tasks if isinstance(tasks, list) else []:
                    if isinstance(task, dict) and task.get("actionName") in ("shell", "wait"):
                        task["actionName"] = "noop"
                before = _rows(db_file)
                try:
                    runner.run(engine.register_dag(doc))
                except DefinitionError:
                    refused["definitions"] += 1
                    assert _rows(db_file) == before
                except TideflowError as exc:  # pragma: no cover - a failure to explain
                    raise AssertionError(f"not a definition error: {exc!r}") from exc

            register()

            @PROPERTY
            @given(
                st.dictionaries(st.sampled_from(["region", "size", "regoin"]) | st.text(max_size=4),
                                var_values, max_size=3),
                st.dictionaries(tag_keys, tag_values, max_size=3),  # type: ignore[arg-type]
                st.dictionaries(tag_keys, tag_values, max_size=2),  # type: ignore[arg-type]
            )
            def run(vars: Any, tags: Any, selector: Any) -> None:
                before = _rows(db_file)
                try:
                    runner.run(engine.run_dag("mutant", vars, tags, selector=selector))
                except InputError:
                    refused["runs"] += 1
                    assert _rows(db_file) == before

            run()
        finally:
            runner.run(engine.close())
    # the properties above are only worth something if refusals happened
    assert refused["definitions"] > 20 and refused["runs"] > 20, refused
