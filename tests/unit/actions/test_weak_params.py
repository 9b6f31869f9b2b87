"""Fastflow's weak decoding into any action's params model, not only the built-in ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import BaseModel, Field, ValidationError

from tideflow.actions.base import ActionSpec


class Inner(BaseModel):
    label: str


class Params(BaseModel):
    name: str
    count: int = 0
    flag: bool = False
    ratio: float = 0.0
    tags: list[str] = []
    env: dict[str, str] = {}
    inner: Inner | None = None
    maybe: str | None = None
    either: int | str = 0
    region_name: str = Field("x", alias="regionName")


@dataclass
class DataParams:
    name: str
    times: int = 1
    words: list[str] = field(default_factory=list)


def spec(model: Any) -> ActionSpec:
    class Action:
        name = "mine"
        params_model = model

        def run(self, ctx: Any, params: Any) -> None: ...

    return ActionSpec(Action())


def test_numbers_and_bools_become_text_where_text_is_expected() -> None:
    p = spec(Params).parse_params({
        "name": 123, "tags": [1, 2.5, True], "env": {"A": 1, "B": False},
        "inner": {"label": 7}, "maybe": 0, "regionName": 8080,
    })
    assert (p.name, p.tags, p.env, p.inner, p.maybe, p.region_name) == (
        "123", ["1", "2.5", "true"], {"A": "1", "B": "false"}, Inner(label="7"), "0", "8080")


def test_text_becomes_numbers_and_bools_where_those_are_expected() -> None:
    p = spec(Params).parse_params({"name": "n", "count": "2", "flag": "true", "ratio": "1.5"})
    assert (p.count, p.flag, p.ratio) == (2, True, 1.5)
    # a union that takes a number keeps it as given
    assert spec(Params).parse_params({"name": "n", "either": 3}).either == 3


def test_keys_match_fields_without_regard_to_case() -> None:
    p = spec(Params).parse_params({"NAME": "a", "Count": 3, "REGIONNAME": "eu",
                                   "inner": {"Label": "l"}})
    assert (p.name, p.count, p.region_name, p.inner.label) == ("a", 3, "eu", "l")
    # an exact key wins over a differently cased one, which is then unknown as before
    p = spec(Params).parse_params({"name": "exact", "NAME": "other"})
    assert p.name == "exact"


def test_a_single_value_where_a_list_is_expected() -> None:
    assert spec(Params).parse_params({"name": "n", "tags": "one"}).tags == ["one"]


def test_dataclass_params_models_too() -> None:
    p = spec(DataParams).parse_params({"Name": 5, "TIMES": "3", "words": [1, "b"]})
    assert p == DataParams(name="5", times=3, words=["1", "b"])


def test_what_cannot_be_decoded_is_still_refused() -> None:
    with pytest.raises(ValidationError):
        spec(Params).parse_params({"name": {"not": "text"}})
    with pytest.raises(ValidationError):
        spec(Params).parse_params({"name": "n", "count": "many"})
