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
    "{{ v|map(attribute='__class__')|list }}",
    "{{ [v]|selectattr('__class__')|list }}",
    "{{ [v]|sort(attribute='__class__') }}",
    "{{ [v]|groupby('__class__')|list }}",
    "{{ [v]|sum(attribute='__class__') }}",
    "{{ v|attr('__class__') }}",
    "{{ '{0.__class__}'.format(v) }}",
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
    # each of these allocated gigabytes, or hung the run, before they were bounded
    "{{ 'x'.ljust(10**9) }}",
    "{{ 'x'.rjust(10**9) }}",
    "{{ 'x'.center(10**9) }}",
    "{{ 'x'.zfill(10**9) }}",
    "{{ ('\t' * 1000).expandtabs(10**6) }}",
    "{{ '{:>{}}'.format('x', 10**9) }}",
    "{{ '{:.999999999f}'.format(1.0) }}",
    "{{ '{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}'.format('x' * 99999) }}",
    "{{ (1).to_bytes(10**9, 'big') }}",
    "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}{{ ns.s|length }}",
    "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}"
    "{% endfor %}{{ ns.s|length }}",
    "{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}"
    "{% endfor %}{{ ns.l|length }}",
    "{{ ([[1] * 999999] * 999999)|string|length }}",
    "{{ [[1] * 999999] * 999999 }}",
    "{{ range(100000)|join('x' * 999) }}",
    "{{ ('x' * 999999).join(range(1000)|map('string')) }}",
    "{% set l = [] %}{% for i in range(100000) %}{{ l.append('x' * 99999) or '' }}{% endfor %}",
    "{{ {'a': [1] * 300000}|tojson(10**6) }}",
    "{{ ('\n' * 999999)|indent(999999, true) }}",
    "{% for i in range(100000) %}{{ 'x' * 999 }}{% endfor %}",
    "{{ '%s' * 1000 % (('x' * 999999,) * 1000) }}",
    "{{ ('ab' * 400000).replace('a', 'x' * 1000) }}",
    "{{ ('a' * 1000).translate({97: 'x' * 1000000}) }}",
    "{{ range(99999)|map('center', 999999)|join|length }}",
    "{{ [1]|batch(999999, 'x' * 99999)|list|length }}",
    "{{ ('x' * 999999)|wordwrap(1, true, 'y' * 1000) }}",
    "{{ dict.fromkeys(range(100000), 'x' * 99999)|string }}",
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
    reason = inst.tasks[0].reason or ""
    assert "task 't': params.p" in reason
    assert "MemoryError" not in reason and "out of memory" not in reason, reason
    assert took < 10


@pytest.mark.parametrize("source", [
    "{{ v|map(attribute='__class__')|list }}",
    "{{ [v]|selectattr('__class__')|list }}",
    "{{ '{0.__class__}'.format(v) }}",
])
async def test_dunder_access_is_refused_with_one_message(
    make_engine: Callable[..., Engine], source: str
) -> None:
    async with make_engine() as engine:
        inst, _ = await _run_param(engine, "dunder", source)
        direct, _ = await _run_param(engine, "dunder2", "{{ v.__class__ }}")
    message = "access to attribute '__class__' of 'str' object is unsafe"
    assert message in (inst.tasks[0].reason or ""), inst.tasks[0].reason
    assert message in (direct.tasks[0].reason or ""), direct.tasks[0].reason


async def test_a_rendered_param_is_bounded_as_a_whole(
    make_engine: Callable[..., Engine]
) -> None:
    async with make_engine() as engine:
        inst, got = await _run_param(engine, "whole", "{{ v }}" * 2000, "x" * 1000)
    assert inst.status == InstanceStatus.FAILED
    assert "template size limit of 1,048,576 characters" in (inst.tasks[0].reason or "")
    assert got == {}


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


_SAMPLE: dict[str, tuple[Any, tuple[Any, ...]]] = {  # a value and the required arguments
    "batch": ([1, 2, 3], (2,)), "slice": ([1, 2, 3], (2,)), "join": (["a", "b"], ()),
    "sum": ([1, 2], ()), "tojson": ({"a": 1}, ()), "replace": ("ab cd", ("a", "b")),
}


def test_guarded_filters_accept_every_parameter_of_the_filter() -> None:
    """A size guard reads a filter's arguments by the filter's own signature: each
    parameter of every guarded filter may be given by name (wordwrap(break_long_words=...))."""
    import inspect

    import jinja2.filters

    from tideflow.sandbox import Sandbox, _filter_guards

    env = Sandbox()
    for name in _filter_guards():
        original = jinja2.filters.FILTERS[name]
        params = list(inspect.signature(original).parameters.values())
        if getattr(original, "jinja_pass_arg", None) is not None:
            params = params[1:]
        value, required = _SAMPLE.get(name, ("ab cd", ()))
        named = {p.name: p.default for p in params[1:]
                 if p.default is not p.empty and p.kind is p.POSITIONAL_OR_KEYWORD}
        template = env.from_string(f"{{{{ v|{name}(*req, **kw) }}}}")
        template.render(v=value, req=required, kw=named)  # no TypeError
        for key, default in named.items():  # and one at a time
            env.from_string(f"{{{{ v|{name}(*req, {key}=d) }}}}").render(
                v=value, req=required, d=default)
    assert env.from_string("{{ 'abcdefgh'|wordwrap(5, break_long_words=false) }}").render() \
        == "abcdefgh"


@pytest.mark.parametrize("source,says", [
    ("{{ range(10**9)|list|length }}", "a range of more than 100,000 items"),
    ("{% macro m(n) %}{{ m(n+1) }}{% endmacro %}{{ m(0) }}", "recurses too deeply"),
    ("{% for i in [[1]] recursive %}{{ loop([[1]]) }}{% endfor %}", "recurses too deeply"),
])
async def test_endless_ranges_and_recursion_get_a_clear_reason(
        make_engine: Callable[..., Engine], source: str, says: str) -> None:
    async with make_engine() as engine:
        inst, _ = await _run_param(engine, "deep", source)
    reason = inst.tasks[0].reason or ""
    assert inst.status == InstanceStatus.FAILED and says in reason, reason
    assert "Error:" not in reason, reason
