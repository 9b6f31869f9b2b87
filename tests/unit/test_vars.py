"""Run input: vars against the declared ones, KEY=VALUE pairs, tags."""

from __future__ import annotations

from typing import Any

import pytest

from tideflow.definition.model import DagDef
from tideflow.errors import InputError
from tideflow.vars import parse_kv_pairs, resolve_run_vars, validate_tags

DAG = DagDef.model_validate(
    {
        "id": "d",
        "vars": {
            "region": {"defaultValue": "cn-north-1"},
            "size": {"defaultValue": "3"},
            "dryRun": {},
        },
        "tasks": [{"id": "a", "actionName": "s"}],
    }
)


def test_defaults_then_overrides() -> None:
    assert resolve_run_vars(DAG, None) == {"region": "cn-north-1", "size": "3", "dryRun": ""}
    assert resolve_run_vars(DAG, {"size": "5"}) == {
        "region": "cn-north-1",
        "size": "5",
        "dryRun": "",
    }


@pytest.mark.parametrize(
    ("given", "text"),
    [(True, "true"), (False, "false"), (5, "5"), (2.5, "2.5"), ("010", "010"), ("", "")],
)
def test_scalars_become_text(given: Any, text: str) -> None:
    assert resolve_run_vars(DAG, {"dryRun": given})["dryRun"] == text


def test_an_empty_value_means_the_default_as_in_fastflow() -> None:
    resolved = resolve_run_vars(DAG, {"region": "", "size": "", "dryRun": ""})
    assert resolved == {"region": "cn-north-1", "size": "3", "dryRun": ""}
    assert resolve_run_vars(DAG, {"region": " "})["region"] == " "  # only empty is empty


def test_undeclared_var_is_an_error_naming_it_and_the_declared_ones() -> None:
    with pytest.raises(InputError) as info:
        resolve_run_vars(DAG, {"regoin": "x"})
    assert str(info.value) == (
        "run var 'regoin' (did you mean 'region'?) is not declared by DAG 'd';"
        " it declares: dryRun, region, size"
    )


def test_every_undeclared_var_is_named() -> None:
    with pytest.raises(InputError) as info:
        resolve_run_vars(DAG, {"x": "1", "y": "2", "size": "4"})
    assert "run vars 'x', 'y' are not declared by DAG 'd'" in str(info.value)
    assert info.value.details["unknown"] == ["x", "y"]


def test_dag_without_vars() -> None:
    bare = DagDef.model_validate({"id": "b", "tasks": [{"id": "a", "actionName": "s"}]})
    with pytest.raises(InputError, match="it declares none"):
        resolve_run_vars(bare, {"x": "1"})


@pytest.mark.parametrize("bad", [None, [1], {"a": 1}, object()])
def test_null_and_nested_values_are_refused(bad: Any) -> None:
    with pytest.raises(InputError, match="run var 'size'"):
        resolve_run_vars(DAG, {"size": bad})


def test_non_mapping_vars() -> None:
    with pytest.raises(InputError, match="must be a mapping"):
        resolve_run_vars(DAG, ["size=1"])  # type: ignore[arg-type]


# -- KEY=VALUE ----------------------------------------------------------------------------------
def test_kv_pairs_split_at_the_first_equals() -> None:
    assert parse_kv_pairs(["a=1", "b=x=y", "c="], what="--var") == {"a": "1", "b": "x=y", "c": ""}
    assert parse_kv_pairs([], what="--var") == {}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("foo", "--tag 'foo' is not KEY=VALUE"),
        ("=x", "--tag '=x' has an empty KEY"),
    ],
)
def test_kv_pair_errors(item: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        parse_kv_pairs([item], what="--tag")
    assert str(info.value).startswith(message)


def test_kv_pair_given_twice() -> None:
    with pytest.raises(InputError, match="--var 'a' is given twice"):
        parse_kv_pairs(["a=1", "a=2"], what="--var")


# -- tags ---------------------------------------------------------------------------------------
def test_valid_tags() -> None:
    assert validate_tags({"team": "infra", "k" * 128: "v" * 191}) == {
        "team": "infra",
        "k" * 128: "v" * 191,
    }
    assert validate_tags(None) == {}
    assert validate_tags({}) == {}


@pytest.mark.parametrize(
    ("tags", "fragment"),
    [
        ({"k" * 129: "v"}, "is 129 characters long; the limit is 128"),
        ({"k": "v" * 192}, "tag 'k' has a value of 192 characters; the limit is 191"),
        ({"": "v"}, "must be non-empty text"),
        ({1: "v"}, "tag key 1 must be non-empty text"),
        ({"k": 1}, "tag 'k' must have a text value, not 1"),
        ({f"k{i}": "v" for i in range(65)}, "at most 64 tags are allowed, 65 were given"),
    ],
)
def test_invalid_tags(tags: dict[Any, Any], fragment: str) -> None:
    with pytest.raises(InputError) as info:
        validate_tags(tags)
    assert fragment in str(info.value)


def test_selector_wording() -> None:
    with pytest.raises(InputError, match="selector label 'zone' must have a text value"):
        validate_tags({"zone": None}, what="selector label")


# -- typed vars --------------------------------------------------------------------------------
TYPED = DagDef.model_validate(
    {
        "id": "typed",
        "vars": {
            "clusterName": {"type": "string", "required": True,
                            "pattern": "^[a-z][a-z0-9-]{2,30}$"},
            "size": {"type": "integer", "defaultValue": "3", "minimum": 1, "maximum": 50},
            "ratio": {"type": "number", "defaultValue": 0.5},
            "dryRun": {"type": "boolean", "defaultValue": "false"},
            "regions": {"type": "list", "defaultValue": '["eu-west-1", "us-east-1"]'},
            "labels": {"type": "object"},
            "tier": {"type": "string", "enum": ["gold", "silver"], "defaultValue": "silver"},
            "tenant": {"desc": "untyped vars stay Fastflow strings"},
        },
        "tasks": [{"id": "a", "actionName": "s"}],
    }
)


def test_typed_defaults_are_converted() -> None:
    assert resolve_run_vars(TYPED, {"clusterName": "blue"}) == {
        "clusterName": "blue", "size": 3, "ratio": 0.5, "dryRun": False,
        "regions": ["eu-west-1", "us-east-1"], "labels": None, "tier": "silver", "tenant": "",
    }


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        # text, as a command line gives it, is converted by type
        ({"size": "5", "dryRun": "true", "regions": '["a"]', "labels": '{"k": "v"}',
          "ratio": "2"},
         {"size": 5, "dryRun": True, "regions": ["a"], "labels": {"k": "v"}, "ratio": 2}),
        # native JSON values, as the API or Python gives them, are taken as they are
        ({"size": 7, "dryRun": True, "regions": ["x", "y"], "labels": {"a": [1]}, "ratio": 1.5},
         {"size": 7, "dryRun": True, "regions": ["x", "y"], "labels": {"a": [1]}, "ratio": 1.5}),
        ({"size": 7.0, "dryRun": "No", "tenant": 3},
         {"size": 7, "dryRun": False, "tenant": "3"}),
        # an empty value means the default, as in Fastflow
        ({"size": "", "regions": ""}, {"size": 3, "regions": ["eu-west-1", "us-east-1"]}),
    ],
)
def test_typed_run_values(given: dict[str, Any], expected: dict[str, Any]) -> None:
    resolved = resolve_run_vars(TYPED, {"clusterName": "blue", **given})
    assert {k: resolved[k] for k in expected} == expected
    for name, value in expected.items():
        assert type(resolved[name]) is type(value)


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, "run var 'clusterName' is required (required: true) and was not given"),
        ({"clusterName": ""}, "run var 'clusterName' is required"),
        ({"clusterName": "Blue!"}, "run var 'clusterName' must match the pattern"
                                   " ^[a-z][a-z0-9-]{2,30}$ (pattern); got 'Blue!'"),
        ({"clusterName": "blue", "size": "abc"},
         "run var 'size' must be a whole number (type: integer); got the text 'abc'"),
        ({"clusterName": "blue", "size": "99"},
         "run var 'size' must be at most 50 (maximum); got 99"),
        ({"clusterName": "blue", "size": 0}, "run var 'size' must be at least 1 (minimum); got 0"),
        ({"clusterName": "blue", "size": True}, "run var 'size' must be a whole number"),
        ({"clusterName": "blue", "size": 2.5}, "run var 'size' must be a whole number"),
        ({"clusterName": "blue", "dryRun": "maybe"},
         "run var 'dryRun' must be true or false (type: boolean); got the text 'maybe'"),
        ({"clusterName": "blue", "regions": "eu-west-1"},
         "run var 'regions' must be a list (type: list), written as JSON such as"),
        ({"clusterName": "blue", "regions": {"a": 1}},
         "run var 'regions' must be a list (type: list); got a mapping"),
        ({"clusterName": "blue", "labels": "[1]"},
         "run var 'labels' must be a mapping (type: object); got the text '[1]'"),
        ({"clusterName": "blue", "ratio": "NaN"}, "run var 'ratio' must be a number"),
        ({"clusterName": "blue", "tier": "bronze"},
         "run var 'tier' must be one of gold, silver (enum); got 'bronze'"),
        ({"clusterName": 5}, "run var 'clusterName' must be text (type: string); got the number 5"),
        ({"clusterName": "blue", "regions": _nested(70)},
         "run var 'regions' nests deeper than 64 levels"),
    ],
)
def test_typed_values_that_do_not_fit_name_the_var_and_the_rule(given: dict[str, Any],
                                                                message: str) -> None:
    from tideflow.errors import VarsError

    with pytest.raises(VarsError) as caught:
        resolve_run_vars(TYPED, given)
    assert message in str(caught.value)


def test_every_problem_is_reported_at_once() -> None:
    from tideflow.errors import VarsError

    with pytest.raises(VarsError) as caught:
        resolve_run_vars(TYPED, {"size": "x", "tier": "bronze"})
    assert caught.value.details["problems"] == [
        "run var 'clusterName' is required (required: true) and was not given",
        "run var 'size' must be a whole number (type: integer); got the text 'x'",
        "run var 'tier' must be one of gold, silver (enum); got 'bronze'",
    ]


def test_untyped_vars_are_unchanged_by_typed_neighbours() -> None:
    resolved = resolve_run_vars(TYPED, {"clusterName": "blue", "tenant": True})
    assert resolved["tenant"] == "true"
