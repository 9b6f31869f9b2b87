"""Whatever the input, loading either returns a valid model or raises DefinitionError."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tideflow.definition.loader import load_dag_dict, load_dag_text
from tideflow.definition.model import DagDef
from tideflow.definition.validate import validate_dag
from tideflow.errors import DefinitionError

KEYS = [
    "id", "name", "desc", "vars", "cron", "timezone", "status", "tasks", "actionName",
    "dependOn", "params", "timeoutSecs", "preCheck", "retry", "act", "conditions", "source",
    "key", "op", "values", "defaultValue", "maxAttempts", "backoffSecs", "secret", "a", "b",
]  # fmt: skip

YAML_PIECES = [
    "id: ", "tasks:", "\n", "  - ", "{", "}", "[", "]", ": ", ", ", "&a ", "*a", "<<: ", "---",
    "~", "yes", "010", "'", '"', "actionName: s", "dependOn: [", "{{ x }}", "{%", "!!str ",
    "!!binary ", "? ", "#", "\t", "0x1F", "-", "a", "b", ".inf", "2024-01-01", "=",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["{{ x }}", "{{", "{% if %}", "{{ vars.a }}", "shell", "a", "b"]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=30,
)
task = st.fixed_dictionaries(
    {"id": st.sampled_from(["a", "b", "c"]), "actionName": st.sampled_from(["s", "t"])},
    optional={
        "dependOn": st.lists(st.sampled_from(["a", "b", "c", "z"]), max_size=3) | values,
        "params": values,
        "preCheck": values,
        "retry": values,
        "timeoutSecs": scalars,
    },
)
documents = st.fixed_dictionaries(
    {"tasks": st.lists(task, max_size=4) | values},
    optional={"id": scalars, "vars": values, "cron": scalars, "timezone": scalars},
)


def check(load: Any, *args: Any) -> None:
    try:
        dag = load(*args)
    except DefinitionError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
    else:
        assert isinstance(dag, DagDef)
        validate_dag(dag)  # a loaded model is always structurally valid


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_random_text(text: str) -> None:
    check(load_dag_text, text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(YAML_PIECES), max_size=40).map("".join))
def test_yaml_like_text(text: str) -> None:
    check(load_dag_text, text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_random_data(data: Any) -> None:
    check(load_dag_dict, data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_dag_shaped_data(data: Any) -> None:
    check(load_dag_dict, data)
