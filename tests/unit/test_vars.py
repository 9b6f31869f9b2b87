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
