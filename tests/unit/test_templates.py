"""Rendering params: every template form, data never rendered twice, sandbox, errors, caching."""

from __future__ import annotations

from typing import Any

import pytest

from tideflow.definition.loader import load_dag_dict
from tideflow.definition.model import DagDef
from tideflow.errors import DefinitionError, TemplateError
from tideflow.templates import (
    TemplateRenderer,
    check_templates,
    is_template,
    mask_secrets,
    rewrite_fastflow_forms,
)

VARS = {"region": "cn-north-1", "cluster-name": "blue", "a.b": "dotted", "size": "3"}
SHARE = {"clusterId": "c-42", "ready": "yes"}


def model(params: dict[str, Any], *, task_id: str = "t") -> DagDef:
    """A DAG whose single task has ``params`` (built without load-time checks)."""
    return DagDef.model_validate(
        {
            "id": "d",
            "vars": {name: {} for name in VARS},
            "tasks": [{"id": task_id, "actionName": "s", "params": params}],
        }
    )


def render_one(text: str, vars: dict[str, str] = VARS, share: dict[str, str] = SHARE) -> Any:
    dag = model({"x": text})
    return TemplateRenderer(dag).render("t", dag.tasks[0].params, vars, share)["x"]


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{region}}", "cn-north-1"),
        ("{{ region }}", "cn-north-1"),
        ("{{cluster-name}}", "blue"),
        ("{{ cluster-name }}", "blue"),
        ("{{a.b}}", "dotted"),
        ("{{ vars.region }}", "cn-north-1"),
        ('{{ vars["cluster-name"] }}', "blue"),
        ("{{ vars['a.b'] }}", "dotted"),
        ("{{ shareData.clusterId }}", "c-42"),
        ('{{ shareData["ready"] }}', "yes"),
        ("{{.vars.region.Value}}", "cn-north-1"),
        ("{{ .vars.cluster-name.Value }}", "blue"),
        ("{{.shareData.clusterId}}", "c-42"),
        ("{{- .shareData.clusterId -}}", "c-42"),
        ("{{ region | upper }}", "CN-NORTH-1"),
        ("{{ shareData.missing | default('none') }}", "none"),
        ("{% if size == '3' %}three{% endif %}", "three"),
        ("{% for k in shareData | sort %}{{ k }};{% endfor %}", "clusterId;ready;"),
        ("alloc {{region}} x{{size}} in {{cluster-name}}", "alloc cn-north-1 x3 in blue"),
        ("  {{- region -}}  ", "cn-north-1"),
        ("line\n{{ region }}\n", "line\ncn-north-1\n"),
        ("{{ size | int + 1 }}", "4"),
    ],
)
def test_forms(template: str, expected: str) -> None:
    assert render_one(template) == expected


def test_var_names_that_look_like_attributes() -> None:
    dag = DagDef.model_validate(
        {
            "id": "d",
            "vars": {"label": {}, "items": {}},
            "tasks": [
                {
                    "id": "t",
                    "actionName": "s",
                    "params": {"a": "{{ vars.label }}", "b": "{{ vars['items'] }}"},
                }
            ],
        }
    )
    out = TemplateRenderer(dag).render("t", dag.tasks[0].params, {"label": "L", "items": "I"}, {})
    assert out == {"a": "L", "b": "I"}


def test_output_stays_text() -> None:
    assert render_one("{{ 1 + 2 }}") == "3"
    # as Go's templates print them (and typed vars' text): true, nothing for null
    assert render_one("{{ true }}") == "true"
    assert render_one("{{ none }}") == ""


def test_rendered_values_are_data_never_rendered_again() -> None:
    vars = {**VARS, "region": "{{ 7*7 }}"}
    share = {**SHARE, "clusterId": "{% raw %}x"}
    assert render_one("{{ region }}", vars) == "{{ 7*7 }}"
    assert render_one("{{ shareData.clusterId }}", vars, share) == "{% raw %}x"


def test_literal_braces() -> None:
    assert render_one("{{ '{{' }}x}}") == "{{x}}"
    assert render_one("{% raw %}{{region}} {{.Names}}{% endraw %}") == "{{region}} {{.Names}}"
    assert render_one("no template { here }") == "no template { here }"


def test_non_templates_are_returned_as_is() -> None:
    dag = model({"cmd": ["echo", "hi"], "n": 3, "nested": {"k": [1, {"x": "y"}]}})
    params = dag.tasks[0].params
    assert TemplateRenderer(dag).render("t", params, VARS, SHARE) is params


def test_only_the_paths_to_templates_are_copied() -> None:
    dag = model({"cmd": ["echo", "{{ region }}"], "keep": {"k": [1, 2]}, "n": 3})
    params = dag.tasks[0].params
    out = TemplateRenderer(dag).render("t", params, VARS, SHARE)
    assert out == {"cmd": ["echo", "cn-north-1"], "keep": {"k": [1, 2]}, "n": 3}
    assert out["keep"] is params["keep"]
    assert params["cmd"] == ["echo", "{{ region }}"]  # the definition is untouched


def test_a_whole_params_string_and_foreign_params() -> None:
    dag = model({})
    renderer = TemplateRenderer(dag)
    assert renderer.render("t", "{{ region }}", VARS, SHARE) == "cn-north-1"
    assert renderer.render("t", ["{{ size }}", 1], VARS, SHARE) == ["3", 1]
    assert renderer.render("t", 5, VARS, SHARE) == 5


def test_compiled_templates_are_cached_and_shared() -> None:
    dag = DagDef.model_validate(
        {
            "id": "d",
            "vars": {"region": {}},
            "tasks": [
                {"id": "a", "actionName": "s", "params": {"x": "{{ region }}"}},
                {"id": "b", "actionName": "s", "params": {"y": "{{ region }}"}},
            ],
        }
    )
    renderer = TemplateRenderer(dag)
    first = renderer.compile("{{ region }}")
    assert renderer.compile("{{ region }}") is first
    for task in dag.tasks:
        renderer.render(task.id, task.params, {"region": "r"}, {})
    assert len(renderer._compiled) == 1
    plan = renderer._plans["a"]
    renderer.render("a", dag.tasks[0].params, {"region": "s"}, {})
    assert renderer._plans["a"] is plan  # per-task plan kept between renders


def test_missing_share_key_names_task_path_and_what_exists() -> None:
    dag = model({"cmd": ["echo", "{{ shareData.clusterID }}"]}, task_id="register")
    with pytest.raises(TemplateError) as info:
        TemplateRenderer(dag).render("register", dag.tasks[0].params, VARS, SHARE)
    message = str(info.value)
    assert message.startswith("task 'register': params.cmd[1] ('{{ shareData.clusterID }}'):")
    assert "'shareData' has no key 'clusterID'" in message
    assert "share data keys: clusterId, ready" in message


def test_missing_var_forms() -> None:
    for template, fragment in [
        ("{{ vars.nope }}", "'vars' has no key 'nope'"),
        ("{{ vars['nope'] }}", "'vars' has no key 'nope'"),
        ("{{ nope }}", "'nope' is not a var of this run"),
        ("{{.vars.nope.Value}}", "'vars' has no key 'nope'"),
        ("{{.shareData.nope}}", "'shareData' has no key 'nope'"),
    ]:
        with pytest.raises(TemplateError, match="params.x") as info:
            render_one(template)
        assert fragment in str(info.value), template
        assert "vars: a.b, cluster-name, region, size" in str(info.value)


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ vars.__class__.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ self.__init__ }}",
        "{{ region.__class__ }}",
        "{{ 'x' * 100000000 }}",
        "{{ 10 ** 10000000 }}",
        "{{ ''.format.__globals__ }}",
    ],
)
def test_sandbox_escapes_fail_as_template_errors(template: str) -> None:
    with pytest.raises(TemplateError):
        render_one(template)


def test_no_file_access() -> None:
    with pytest.raises(TemplateError):
        render_one("{% include '/etc/passwd' %}")
    with pytest.raises(TemplateError):
        render_one("{% import 'os' as os %}")


def test_runtime_errors_are_template_errors() -> None:
    with pytest.raises(TemplateError, match="ZeroDivisionError"):
        render_one("{{ 1 / 0 }}")
    with pytest.raises(TemplateError, match="template syntax error"):
        render_one("{{ .Names }}")


# -- rewriting ----------------------------------------------------------------------------------
def test_rewrite_leaves_everything_else_alone() -> None:
    names = frozenset({"region", "cluster-name", "x-"})
    assert rewrite_fastflow_forms("{{cluster-name}}", names) == "{{ vars['cluster-name'] }}"
    assert rewrite_fastflow_forms("{{x-}}", names) == "{{ vars['x-'] }}"
    assert rewrite_fastflow_forms("{{- region -}}", names) == "{{- vars['region'] -}}"
    for untouched in [
        "{% raw %}{{region}}{% endraw %}",
        "{# {{region}} #}",
        "{{ region | upper }}",
        "{{ other-name }}",
        "{{ '{{region}}' }}",
        "{% if x %}{{",
        "{{ unclosed",
        "{",
    ]:
        assert rewrite_fastflow_forms(untouched, names) == untouched


def test_rewrite_is_linear_on_hostile_text() -> None:
    text = "{{ '" * 50_000 + "{#" * 50_000 + "{% raw %}" * 10_000
    assert rewrite_fastflow_forms(text, frozenset()) == text


def test_is_template() -> None:
    assert is_template("a {{ b }}")
    assert is_template("{% if %}")
    assert not is_template("{# comment #} { x }")


# -- checks at registration ---------------------------------------------------------------------
def template_problems_of(params: dict[str, Any]) -> list[str]:
    with pytest.raises(DefinitionError) as info:
        check_templates(model(params), source="flows/d.yaml")
    return info.value.problems


def test_check_templates_reports_syntax_with_the_escape_hint() -> None:
    (problem,) = template_problems_of({"cmd": ["docker", "ps", "--format", "{{.Names}}"]})
    assert problem.startswith("flows/d.yaml: task 't' (tasks[0]): params.cmd[3]: template syntax")
    assert "{% raw %}" in problem


def test_check_templates_reports_undeclared_names() -> None:
    problems = template_problems_of(
        {
            "a": "{{ regoin }}",
            "b": "{{ vars.sise }}",
            "c": "{{ cluster-nmae }}",
            "d": "{{.vars.zone.Value}}",
            "e": "{% include 'x' %}",
        }
    )
    assert problems[0].endswith(
        "params.a: uses 'regoin', which is not a declared var — did you mean 'region'?"
        " (share data is read as shareData.key)"
    )
    assert (
        "params.b: uses 'sise', which is not a declared var — did you mean 'size'?" in problems[1]
    )
    assert "params.c: uses 'cluster-nmae'" in problems[2]
    assert "params.d: uses 'zone'" in problems[3]
    assert "params.e: templates cannot include, import or extend" in problems[4]
    assert len(problems) == 5


def test_check_templates_accepts_valid_ones() -> None:
    check_templates(
        model(
            {
                "a": "{{ region }} {{ shareData.anything }} {{ vars.items() | list | length }}",
                "b": "{% for x in range(3) %}{{ loop.index }}{{ x }}{% endfor %}",
                "c": "{% set y = 1 %}{{ y }}",
                "d": ["{{.vars.size.Value}}", "{{.shareData.k}}"],
            }
        )
    )


def test_loader_checks_templates() -> None:
    with pytest.raises(DefinitionError, match="params.x: template syntax error"):
        load_dag_dict({"id": "d", "tasks": [{"id": "a", "actionName": "s", "params": {"x": "{{"}}]})


# -- secrets ------------------------------------------------------------------------------------
def test_mask_secrets() -> None:
    assert mask_secrets("token abc and abcdef", ["abc", "abcdef", ""]) == "token *** and ***"
    assert mask_secrets("nothing here", ["zzz"]) == "nothing here"
    assert mask_secrets("a.b*c", ["a.b*c"]) == "***"
    assert mask_secrets("x", []) == "x"


# -- task outputs ------------------------------------------------------------------------------
def _outputs(outputs: dict[str, Any], readable: set[str]) -> Any:
    from tideflow.outputs import TaskOutputs
    from tideflow.states import TaskStatus
    from tideflow.store.records import TaskRecord

    records = {tid: TaskRecord("i", tid, tid, "s", status=TaskStatus.SUCCESS, output=out)
               for tid, out in outputs.items()}
    return TaskOutputs(records, readable.__contains__, "task 't'")


OUTPUTS = {"alloc": {"clusterId": "c-9", "nodes": [{"ip": "10.0.0.1"}], "items": [1, 2],
                     "cluster-name": "x", "0": "zero"},
           "a.b-c": {"k": "dotted id"}, "hidden": {"k": "no"}}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{tasks.alloc.output.clusterId}}", "c-9"),
        ("{{ tasks.alloc.output.nodes.0.ip }}", "10.0.0.1"),
        ("{{tasks.alloc.output.items}}", [1, 2]),
        ("items: {{tasks.alloc.output.items}}", "items: [1,2]"),
        ("{{tasks.alloc.output.cluster-name}}", "x"),
        ("{{tasks.alloc.output.0}}", "zero"),
        ("{{tasks.a.b-c.output.k}}", "dotted id"),
        ("{{tasks.alloc.output.nodes}}", [{"ip": "10.0.0.1"}]),
        (" {{tasks.alloc.output.nodes}}", ' [{"ip":"10.0.0.1"}]'),
        ("{{ tasks.alloc.output.clusterId | upper }}", "C-9"),
        ("{{ tasks['alloc']['output']['items'] | length }}", "2"),
        ("{{ tasks.alloc.status }}", "success"),
        ("id={{tasks.alloc.output.clusterId}}!", "id=c-9!"),
    ],
)
def test_task_outputs_in_templates(template: str, expected: Any) -> None:
    dag = model({"x": template})
    tasks = _outputs(OUTPUTS, {"alloc", "a.b-c"})
    assert TemplateRenderer(dag).render("t", dag.tasks[0].params, VARS, SHARE, tasks)["x"] \
        == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{tasks.alloc.output.nope}}", "tasks.alloc.output has no 'nope': its keys are"),
        ("{{tasks.alloc.output.nodes.5}}", "has no '5': it is a list of 1 items"),
        ("{{tasks.hidden.output.k}}", "task 't' cannot read the output of task 'hidden'"),
        ("{{tasks.ghost.output}}", "there is no task 'ghost'"),
        ("{{ tasks.hidden.output }}", "task 't' cannot read the output of task 'hidden'"),
    ],
)
def test_task_output_errors_say_where_the_path_stopped(template: str, message: str) -> None:
    dag = model({"x": template})
    tasks = _outputs(OUTPUTS, {"alloc"})
    with pytest.raises(TemplateError, match=message):
        TemplateRenderer(dag).render("t", dag.tasks[0].params, VARS, SHARE, tasks)


def test_rendered_outputs_are_data_never_rendered_again() -> None:
    dag = model({"x": "{{tasks.alloc.output.v}}"})
    tasks = _outputs({"alloc": {"v": "{{ 7*7 }}"}}, {"alloc"})
    assert TemplateRenderer(dag).render("t", dag.tasks[0].params, VARS, SHARE, tasks)["x"] \
        == "{{ 7*7 }}"


def test_outputs_reach_scripts_as_environment_variables() -> None:
    dag = DagDef.model_validate({"id": "d", "tasks": [
        {"id": "t", "actionName": "shell", "params": {"cmd": "echo {{tasks.a.output.v}}",
                                                       "shell": True}}]})
    tasks = _outputs({"a": {"v": "x; rm -rf /"}}, {"a"})
    out = TemplateRenderer(dag).render("t", dag.tasks[0].params, {}, {}, tasks)
    assert out["cmd"] == 'echo "${TIDEFLOW_V1}"'
    assert out["env"] == {"TIDEFLOW_V1": "x; rm -rf /"}


def test_a_var_named_tasks_keeps_its_name_and_outputs_still_read() -> None:
    dag = DagDef.model_validate({"id": "d", "vars": {"tasks": {}}, "tasks": [
        {"id": "alloc", "actionName": "s"},
        {"id": "t", "actionName": "s", "dependOn": ["alloc"], "params": {
            "var": "{{ tasks | upper }}", "bare": "{{tasks}}",
            "out": "{{tasks.alloc.output.clusterId}}"}}]})
    check_templates(dag)
    outs = _outputs(OUTPUTS, {"alloc"})
    got = TemplateRenderer(dag).render("t", dag.tasks[1].params, {"tasks": "mine"}, {}, outs)
    assert got == {"var": "MINE", "bare": "mine", "out": "c-9"}
