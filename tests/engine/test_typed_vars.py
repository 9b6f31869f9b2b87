"""Typed, required vars through the engine: refused runs store nothing, typed values reach
actions and templates as values of their types, and read back the same; on each backend."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tideflow import ActionContext, Engine, InstanceStatus, TaskStatus, VarsError

from .dags import dag, task

VARS = {
    "clusterName": {"type": "string", "required": True, "pattern": "^[a-z][a-z0-9-]{2,30}$"},
    "size": {"type": "integer", "defaultValue": "3", "minimum": 1, "maximum": 50},
    "dryRun": {"type": "boolean", "defaultValue": "false"},
    "regions": {"type": "list", "defaultValue": '["eu-west-1", "us-east-1"]'},
    "tenant": {"desc": "untyped vars stay Fastflow strings", "defaultValue": "7"},
}


@pytest.fixture
def pyfuncs() -> Iterator[None]:
    here = str(Path(__file__).parent)
    sys.path.insert(0, here)
    try:
        yield
    finally:
        sys.path.remove(here)


async def test_typed_values_reach_actions_and_templates(
    db_url: str, make_engine: Callable[..., Engine], pyfuncs: None
) -> None:
    seen: dict[str, Any] = {}

    def look(ctx: ActionContext, params: Any) -> None:
        seen["vars"] = dict(ctx.vars)
        seen["params"] = params

    async with make_engine(db_url, python_allowed_prefixes=("pyfuncs",)) as engine:
        engine.actions.add_function("look", look)
        await engine.register_dag(dag(
            "typed",
            task("look", "look", params={
                "size": "{{size}}", "dry": "{{ vars.dryRun }}", "regions": "{{regions}}",
                "tenant": "{{tenant}}", "double": "{{ size * 2 }}",
                "text": "n={{size}} dry={{dryRun}} in {{regions}}",
                "branch": "{% if dryRun %}dry{% else %}real{% endif %}",
                "count": "{{ regions | length }}",
            }),
            task("py", "python", params={"func": "pyfuncs:describe", "kwargs": {
                "size": "{{size}}", "dry": "{{dryRun}}", "regions": "{{regions}}",
                "tenant": "{{tenant}}"}}),
            task("argv", "shell", params={"cmd": ["echo", "{{size}}", "{{dryRun}}",
                                                  "{{regions}}"]}),
            task("skip-when-dry", "shell", params={"cmd": ["true"]}, preCheck={
                "dry": {"act": "skip", "conditions": [
                    {"source": "vars", "key": "dryRun", "op": "in", "values": ["true"]}]}}),
            vars=VARS,
        ))
        inst = await engine.run_dag("typed", {"clusterName": "blue", "size": "5",
                                              "dryRun": True}, wait=30)
        assert inst.status == InstanceStatus.SUCCESS, inst.reason
        by = {t.task_id: t for t in inst.tasks}
        assert seen["vars"] == {"clusterName": "blue", "size": 5, "dryRun": True,
                                "regions": ["eu-west-1", "us-east-1"], "tenant": "7"}
        assert seen["params"] == {
            "size": 5, "dry": True, "regions": ["eu-west-1", "us-east-1"], "tenant": "7",
            "double": "10", "text": 'n=5 dry=true in ["eu-west-1","us-east-1"]',
            "branch": "dry", "count": "2",
        }
        assert by["py"].output == {"size": "int", "dry": "bool", "regions": "list",
                                   "tenant": "str"}
        assert by["argv"].params["cmd"] == ["echo", 5, True, ["eu-west-1", "us-east-1"]]
        assert any('5 true ["eu-west-1","us-east-1"]' in t.message for t in by["argv"].traces)
        assert by["skip-when-dry"].status == TaskStatus.SKIPPED

    async with make_engine(db_url, node_id="again") as again:
        stored = await again.get_instance(inst.id)
        assert stored.vars == seen["vars"]


async def test_a_run_whose_vars_do_not_fit_stores_nothing(
    db_url: str, make_engine: Callable[..., Engine]
) -> None:
    async with make_engine(db_url) as engine:
        await engine.register_dag(dag("typed", task("a", "shell", params={"cmd": ["true"]}),
                                      vars=VARS))
        with pytest.raises(VarsError, match="run var 'clusterName' is required"):
            await engine.run_dag("typed", {"size": "5"})
        with pytest.raises(VarsError, match=r"run var 'size' must be at most 50 \(maximum\)"):
            await engine.run_dag("typed", {"clusterName": "blue", "size": 51})
        with pytest.raises(VarsError, match="run var 'regions' must be a list"):
            await engine.run_dag("typed", {"clusterName": "blue", "regions": "eu"})
        assert await engine.list_instances() == []
        assert await engine.store.list_instances() == []


async def test_cron_dags_must_give_their_required_vars(engine: Engine) -> None:
    from tideflow import DefinitionError

    with pytest.raises(DefinitionError) as caught:
        await engine.register_dag(dag("nightly", task("a", "shell", params={"cmd": ["true"]}),
                                      vars=VARS, cron="0 2 * * *", cronVars={"size": "99"}))
    text = str(caught.value)
    assert "cronVars 'size' must be at most 50 (maximum); got 99" in text
    assert "required vars clusterName are not set by cronVars" in text
