"""Templates run in Jinja2's sandbox: no way out to Python, bounded work, values never
rendered a second time. Each case runs through the real engine."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tideflow import ActionContext, Engine, InstanceStatus

ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__.os }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ self.__dict__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ lipsum.__globals__ }}",
    "{{ config }}",
    "{{ request }}",
    "{{ vars._data }}",
    "{{ vars.__class__ }}",
    "{{ shareData.__init__ }}",
    "{{ dict.mro() }}",
    "{{ range.__self__ }}",
    "{{ ().__class__.__base__.__subclasses__() }}",
    "{{ (1).__class__.__base__ }}",
    "{% import 'os' as os %}{{ os }}",
    "{% include '/etc/passwd' %}",
    "{% extends '/etc/passwd' %}",
]

HUGE = [
    "{{ range(10**9) | list | length }}",
    "{{ 'x' * 10**9 }}",
    "{{ 2 ** (10 ** 8) }}",
    "{{ 'x' | center(10**9) }}",
    "{{ 'x' | indent(10**9, true) }}",
    "{{ [1] | batch(10**9, 'x') | list }}",
    "{{ '%0999999999d' % 1 }}",
    "{{ '%0999999999d' | format(1) }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ ('a' * 999999) | replace('a', 'b' * 999999) }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}",
]


async def _run_param(engine: Engine, dag_id: str, param: str, value: str = "x"
                     ) -> tuple[Any, dict[str, Any]]:
    got: dict[str, Any] = {}

    async def keep(ctx: ActionContext, params: Any) -> None:
        got.update(params)

    engine.actions.add_function("keep", keep, replace=True)
    await engine.register_dag({"id": dag_id, "vars": {"v": {"defaultValue": "x"}},
                               "tasks": [{"id": "t", "actionName": "keep",
                                          "params": {"p": param}}]})
    inst = await engine.run_dag(dag_id, {"v": value}, wait=30)
    return inst, got


@pytest.mark.parametrize("source", ESCAPES)
async def test_no_way_out_of_the_sandbox(make_engine: Callable[..., Engine], source: str
                                         ) -> None:
    async with make_engine() as engine:
        try:
            inst, got = await _run_param(engine, "esc", source)
        except Exception as exc:  # refused at registration: also a pass, with a clear message
            assert "tasks[0]" in str(exc) or "task 't'" in str(exc), exc
            return
    assert inst.status == InstanceStatus.FAILED, got
    reason = inst.tasks[0].reason or ""
    assert "task 't': params.p" in reason
    assert got == {}  # the action never ran


@pytest.mark.parametrize("source", HUGE)
async def test_resource_abuse_fails_fast(make_engine: Callable[..., Engine], source: str
                                         ) -> None:
    async with make_engine() as engine:
        started = time.monotonic()
        inst, got = await _run_param(engine, "huge", source)
        took = time.monotonic() - started
    assert inst.status == InstanceStatus.FAILED, str(got)[:200]
    assert "task 't': params.p" in (inst.tasks[0].reason or "")
    assert took < 10


@pytest.mark.parametrize("value", [
    "{{ 7*7 }}",
    "{{ ''.__class__.__mro__ }}",
    "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
    "{{.vars.v.Value}}",
    "{% raw %}{{ 1 }}{% endraw %}",
])
async def test_a_value_holding_a_template_stays_literal(
    make_engine: Callable[..., Engine], value: str
) -> None:
    async with make_engine() as engine:
        inst, got = await _run_param(engine, "lit", "[{{v}}] [{{ vars.v }}]", value)
    assert inst.status == InstanceStatus.SUCCESS, inst.tasks[0].reason
    assert got == {"p": f"[{value}] [{value}]"}
