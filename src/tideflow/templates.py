"""Rendering task params from an instance's vars and share data, once, when the task starts.

Templates are Jinja2 in its sandbox with strict undefined, plus Fastflow's forms:

- ``{{name}}`` for a declared var, also when the name holds ``-`` or ``.`` (``{{cluster-name}}``);
- ``{{.vars.name.Value}}`` and ``{{.shareData.key}}`` (Go template syntax);
- ``{{ vars.name }}``, ``{{ vars["cluster-name"] }}``, ``{{ shareData.key }}``, filters...
- ``{{tasks.<id>.output.<path>}}``: a field of an ancestor task's output (ids and path parts
  with ``-`` too; numeric parts index lists).

Fastflow's forms are rewritten to Jinja before compiling. A value rendered in is data: it is
never rendered a second time, whatever it contains. Output is always text (a list or a mapping
is inserted as JSON).

A :class:`TemplateRenderer` is built once per DAG version: it remembers, per task, which params
hold templates, so a task without any costs a dictionary lookup.
"""

from __future__ import annotations

import functools
import json
import math
import re
import shlex
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, Template, nodes
from jinja2 import TemplateError as JinjaError
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.meta import find_undeclared_variables
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import missing
from jinja2.visitor import NodeTransformer

from .definition.model import DagDef
from .definition.problems import (
    describe_kind,
    format_path,
    listing,
    raise_problems,
    short_repr,
    suggestion,
    task_label,
    where,
)
from .errors import TemplateError
from .outputs import TaskOutputs

MASK = "***"

# Bounds on what one template may build, so a typo such as `'x' * 10**9` fails instead of
# taking the node's memory.
_MAX_BUILT = 1_000_000
_MAX_POWER_BITS = 100_000
# A render that runs longer than this (nested loops, recursive macros) fails: it runs on the
# node's event loop, where a minute of rendering would stall every other task.
_MAX_RENDER_SECS = 1.0
# The name under which each render's time budget is reached from compiled templates.
_BUDGET = "__tideflow_budget"
# Beyond this many distinct strings, templates met outside the DAG are compiled but not kept.
_MAX_CACHED = 100_000

_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")
_GO_VAR = re.compile(r"\.vars\.([A-Za-z_][A-Za-z0-9_-]*)(?:\.Value)?\Z")
_GO_SHARE = re.compile(r"\.shareData\.([A-Za-z_][A-Za-z0-9_-]*)\Z")
# `tasks.<id>.output.<path>`: an id holds no whitespace; path parts are split on '.'
_TASK_OUTPUT = re.compile(r"tasks\.(?P<id>[^\s{}]+?)\.output(?P<path>(?:\.[^\s.{}]+)*)\Z")
# The global that `tasks.<id>.output.<path>` is rewritten to call.
_OUTPUT_AT = "__tideflow_output"
_RAW_OPEN = re.compile(r"-?\s*raw\s*-?\Z")
_RAW_CLOSE = re.compile(r"\{%-?\s*endraw\s*-?%\}")
_CLOSERS = {"{{": "}}", "{%": "%}", "{#": "#}"}
_NAMESPACES = frozenset({"vars", "shareData", "tasks"})
_MAPPING_ATTRS = frozenset(name for name in dir(Mapping) if not name.startswith("_"))


def is_template(text: str) -> bool:
    """Whether ``text`` is rendered at all: only strings holding ``{{`` or ``{%`` are."""
    return "{{" in text or "{%" in text


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty secret value replaced by ``***`` (longest first)."""
    values = sorted({s for s in secrets if s and s in text}, key=len, reverse=True)
    if not values:
        return text
    return re.sub("|".join(map(re.escape, values)), MASK, text)


class _Namespace(Mapping[str, str]):
    """``vars`` and ``shareData`` inside templates: a read-only mapping that knows its name,
    so a missing key is reported as ``'shareData' has no key 'x'``."""

    # underscored: the sandbox hides such attributes, so `vars.label` still reads a var
    __slots__ = ("_label", "_data")

    def __init__(self, label: str, data: Mapping[str, str]) -> None:
        self._label = label
        self._data = data

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"<{self._label}>"


class _Missing(StrictUndefined):
    """Strict undefined whose message names the var or share-data key that is missing."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint:
            return self._undefined_hint
        obj = self._undefined_obj
        if isinstance(obj, _Namespace):
            return f"'{obj._label}' has no key {self._undefined_name!r}"
        if isinstance(obj, TaskOutputs):
            return obj.missing(str(self._undefined_name))
        if obj is missing:
            return f"{self._undefined_name!r} is not a var of this run"
        message: str = super()._undefined_message
        return message


class _OutputMissing(UndefinedError):
    """``tasks.<id>.output.<path>`` leads nowhere; the message says where it stopped."""


def _output_at(tasks: Any, task_id: str, path: str) -> Any:
    """What ``{{tasks.<id>.output.<path>}}`` reads: the value at the dotted ``path`` (numeric
    parts index lists) in the output of task ``task_id``."""
    if not isinstance(tasks, TaskOutputs):
        raise _OutputMissing("'tasks' was redefined in the template: it no longer reads outputs")
    try:
        value = tasks[task_id]["output"]
    except KeyError:
        raise _OutputMissing(tasks.missing(task_id)) from None
    walked = f"tasks.{task_id}.output"
    for part in path.split(".") if path else ():
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise _OutputMissing(f"{walked} has no {part!r}: {_shape(value)}")
        walked = f"{walked}.{part}"
    return value


def _shape(value: Any) -> str:
    """What a value in an output is, for a message that says why a path does not fit it."""
    if isinstance(value, dict):
        return f"its keys are {listing(sorted(map(str, value)))}"
    if isinstance(value, list):
        return f"it is a list of {len(value)} items"
    return f"it is {describe_kind(value)}"


def _as_text(value: Any) -> Any:
    """How a value is inserted into text: lists and mappings (outputs, typed vars) as JSON,
    everything else as Jinja would."""
    if isinstance(value, dict | list):
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError):
            return value
    return value


class _Budget:
    """How long one render may still run; checked at every loop step and every call."""

    __slots__ = ("deadline",)

    def __init__(self) -> None:
        self.deadline = time.monotonic() + _MAX_RENDER_SECS

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise SecurityError(f"the template ran longer than {_MAX_RENDER_SECS:g}s")

    def steps(self, iterable: Any) -> Iterator[Any]:
        for item in iterable:
            self.check()
            yield item


class _LimitLoops(NodeTransformer):
    """Makes every ``{% for %}`` iterate through the render's :class:`_Budget`."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        budget = nodes.Getattr(nodes.Name(_BUDGET, "load"), "steps", "load")
        node.iter = nodes.Call(budget, [node.iter], [], None, None)
        return node


_DIGITS = re.compile(r"\d+")


def _check_format(fmt: str, args: Any = ()) -> None:
    """Refuse a format string whose width or precision would build a huge string."""
    for number in _DIGITS.findall(fmt):
        if len(number) > 7 or int(number) > _MAX_BUILT:
            raise SecurityError(f"a format width of {number} is too large")
    if "*" in fmt:
        values = args if isinstance(args, tuple) else (args,)
        if any(isinstance(v, int) and abs(v) > _MAX_BUILT for v in values):
            raise SecurityError("a format width is too large")


def _bounded(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    """A filter whose number arguments (widths, counts) may not exceed what a param can
    hold: ``'x'|center(10**9)`` fails instead of building a gigabyte."""

    @functools.wraps(fn)  # keeps Jinja's pass_* marker
    def bounded(*args: Any, **kwargs: Any) -> Any:
        for value in (*args, *kwargs.values()):
            if isinstance(value, int) and not isinstance(value, bool) and value > _MAX_BUILT:
                raise SecurityError(f"{value} is too large an argument for '{name}'")
        return fn(*args, **kwargs)

    return bounded


def _bounded_replace(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def replace(eval_ctx: Any, s: Any, old: Any, new: Any, count: Any = None) -> Any:
        text, old_text, new_text = str(s), str(old), str(new)
        times = text.count(old_text) if old_text else len(text) + 1
        if len(text) + times * len(new_text) > _MAX_BUILT:
            raise SecurityError(f"the result would exceed {_MAX_BUILT:,} characters")
        return fn(eval_ctx, s, old, new, count)

    return replace


def _bounded_format(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def format_(value: Any, *args: Any, **kwargs: Any) -> Any:
        _check_format(str(value), args)
        return fn(value, *args, **kwargs)

    return format_


class _Sandbox(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%"})

    def _generate(
        self, source: nodes.Template, name: str | None, filename: str | None,
        defer_init: bool = False,
    ) -> str:
        # only templates compiled for rendering get the budget; registration checks parse
        tree = _LimitLoops().visit(source)
        return super()._generate(tree, name, filename, defer_init)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        # a macro calling itself twice per level never loops, yet runs forever
        budget = __context.get(_BUDGET)
        if isinstance(budget, _Budget):
            budget.check()
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_format(str(value.__self__))
        return wrapped

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "%" and isinstance(left, str):
            _check_format(left, right)
        elif operator == "*":
            for seq, times in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(times, int)
                    and len(seq) * times > _MAX_BUILT
                ):
                    raise SecurityError(f"the result would exceed {_MAX_BUILT:,} items")
        elif operator == "**" and isinstance(left, int) and isinstance(right, int):
            if abs(left) > 1 and right * math.log2(abs(left)) > _MAX_POWER_BITS:
                raise SecurityError("the power is too large")
        return super().call_binop(context, operator, left, right)


def _shell_quoted(value: Any) -> str:
    return shlex.quote(str(_as_text(value)))


def _environment(*, shell_quoted: bool = False) -> _Sandbox:
    """The sandbox; with ``shell_quoted``, every ``{{ ... }}`` is inserted shell-quoted (for a
    script given to ``/bin/sh -c``, where an unquoted value would be code)."""
    # keep_trailing_newline: a param's text must come out exactly as written around the tags
    env = _Sandbox(undefined=_Missing, autoescape=False, keep_trailing_newline=True,
                   finalize=_shell_quoted if shell_quoted else _as_text)
    env.globals[_OUTPUT_AT] = _output_at
    # lorem ipsum has no use in a param and builds as much text as asked
    env.globals.pop("lipsum", None)
    for name in ("center", "indent", "wordwrap", "truncate", "batch", "slice"):
        env.filters[name] = _bounded(env.filters[name], name)
    env.filters["replace"] = _bounded_replace(env.filters["replace"])
    env.filters["format"] = _bounded_format(env.filters["format"])
    return env


def shell_script_tasks(dag: DagDef) -> frozenset[str]:
    """The tasks whose ``cmd`` is a shell script: ``shell`` tasks with a string ``cmd`` (a
    string is only accepted with ``shell: true``; a ``shell`` that is itself a template is
    covered too). Values rendered into such a script are shell-quoted."""
    return frozenset(
        t.id for t in dag.tasks
        if t.action_name == "shell" and isinstance(t.params, dict)
        and isinstance(t.params.get("cmd"), str)
    )


# -- Fastflow forms -----------------------------------------------------------------------------
def _bare_form(body: str, var_names: frozenset[str]) -> str | None:
    """The Jinja replacement for a ``{{ ... }}`` body that is a Fastflow form, else None."""
    text = body.strip()
    # a leading or trailing '-' may be Jinja's whitespace control, or part of a var name
    tries = [(text, "", "")]
    if text.startswith("-"):
        tries.append((text[1:].strip(), "-", ""))
    if text.endswith("-"):
        tries.append((text[:-1].strip(), "", "-"))
        if text.startswith("-") and len(text) > 1:
            tries.append((text[1:-1].strip(), "-", "-"))
    for name, lead, trail in tries:
        if name in var_names and _VAR_NAME.match(name):
            return f"{{{{{lead} vars['{name}'] {trail}}}}}"
        go = _GO_VAR.match(name)
        if go:
            return f"{{{{{lead} vars['{go.group(1)}'] {trail}}}}}"
        go = _GO_SHARE.match(name)
        if go:
            return f"{{{{{lead} shareData['{go.group(1)}'] {trail}}}}}"
        out = _TASK_OUTPUT.match(name)
        if out:
            # JSON strings are valid Jinja string literals, whatever the id holds
            args = f"tasks, {json.dumps(out.group('id'))}, {json.dumps(out.group('path')[1:])}"
            return f"{{{{{lead} {_OUTPUT_AT}({args}) {trail}}}}}"
    return None


def rewrite_fastflow_forms(source: str, var_names: frozenset[str]) -> str:
    """``source`` with Fastflow's forms turned into Jinja; raw blocks, comments and statement
    tags are left alone. One linear scan: an unclosed tag ends it (Jinja then reports it)."""

    def replace(body: str) -> str | None:
        return _bare_form(body, var_names)

    return _scan(source, replace)


def _scan(source: str, replace: Callable[[str], str | None]) -> str:
    out: list[str] = []
    copied = 0  # source[:copied] is in out
    search = 0
    while True:
        start = source.find("{", search)
        if start < 0:
            break
        opener = source[start : start + 2]
        closer = _CLOSERS.get(opener)
        if closer is None:
            search = start + 1
            continue
        end = source.find(closer, start + 2)
        if end < 0:
            break
        body = source[start + 2 : end]
        after = end + 2
        if opener == "{{":
            replacement = replace(body)
            if replacement is not None:
                out.append(source[copied:start])
                out.append(replacement)
                copied = after
        elif opener == "{%" and _RAW_OPEN.match(body):
            closing = _RAW_CLOSE.search(source, after)
            if closing is None:
                break
            after = closing.end()
        search = after
    out.append(source[copied:])
    return "".join(out)


def _dashed_names(source: str, var_names: frozenset[str]) -> list[str]:
    """Bodies such as ``{{cluster-nmae}}`` that look like a var name but name no var."""
    found: list[str] = []

    def note(body: str) -> None:
        name = body.strip().strip("-").strip()
        if "-" in name and _VAR_NAME.match(name) and name not in var_names:
            found.append(name)

    def visit(body: str) -> str | None:
        if _bare_form(body, var_names) is None:
            note(body)
        return None

    _scan(source, visit)
    return found


# -- plans: which params of a task hold templates -----------------------------------------------
@dataclass(frozen=True, slots=True)
class _Leaf:
    template: Template
    source: str
    path: tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class _Branch:
    children: tuple[tuple[str | int, _Leaf | _Branch], ...]


_Plan = _Leaf | _Branch


def _template_strings(params: Any) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every template string in ``params`` with its path; iterative, any depth."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), params)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if is_template(value):
                yield path, value
        elif isinstance(value, dict):
            stack.extend(((*path, k), v) for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend(((*path, i), v) for i, v in reversed(list(enumerate(value))))


class TemplateRenderer:
    """Renders params for one DAG version; compiled templates and per-task plans are cached."""

    def __init__(self, dag: DagDef) -> None:
        self.dag = dag
        self.var_names = frozenset(dag.vars)
        self._env = _environment()
        self._quoting_env = _environment(shell_quoted=True)
        self._scripts = shell_script_tasks(dag)
        self._compiled: dict[str, Template] = {}
        self._compiled_quoted: dict[str, Template] = {}
        self._plans: dict[str, tuple[Any, _Plan | None]] = {}

    def compile(self, source: str, *, shell_quoted: bool = False) -> Template:
        """The compiled template for ``source`` (cached); raises :class:`TemplateError`.
        ``shell_quoted``: every value is inserted through ``shlex.quote``."""
        cache = self._compiled_quoted if shell_quoted else self._compiled
        env = self._quoting_env if shell_quoted else self._env
        template = cache.get(source)
        if template is None:
            try:
                template = env.from_string(rewrite_fastflow_forms(source, self.var_names))
            except TemplateSyntaxError as exc:
                raise TemplateError(_syntax_message(exc)) from None
            except Exception as exc:  # Jinja's parser can also run out of recursion
                raise TemplateError(f"cannot compile the template: {exc}") from None
            if len(cache) < _MAX_CACHED:
                cache[source] = template
        return template

    def render(
        self,
        task_id: str,
        params: Any,
        vars: Mapping[str, str],
        share_data: Mapping[str, str],
        tasks: TaskOutputs | None = None,
    ) -> Any:
        """``params`` with every template string rendered; other values are returned as they
        are (containers holding no template are shared with ``params``: treat the result as
        read-only). ``tasks`` are the outputs the task may read (``tasks.<id>.output``).
        Raises :class:`TemplateError` naming the task, the param and the cause."""
        cached = self._plans.get(task_id)
        if cached is not None and cached[0] is params:
            plan = cached[1]
        else:
            plan = self._plan(task_id, params)
            self._plans[task_id] = (params, plan)
        if plan is None:
            return params
        context: dict[str, Any] = dict(vars)
        context["vars"] = _Namespace("vars", vars)
        context["shareData"] = _Namespace("shareData", share_data)
        context["tasks"] = tasks if tasks is not None else TaskOutputs.none(task_id)
        context[_BUDGET] = _Budget()
        return self._apply(task_id, params, plan, context, vars, share_data)

    def _plan(self, task_id: str, params: Any) -> _Plan | None:
        root: dict[str | int, Any] = {}
        found = False
        script = task_id in self._scripts
        for path, source in _template_strings(params):
            try:
                template = self.compile(source, shell_quoted=script and path == ("cmd",))
            except TemplateError as exc:
                raise TemplateError(
                    f"task '{task_id}': {format_path(path)} ({short_repr(source)}): {exc}"
                ) from None
            leaf = _Leaf(template, source, path)
            if not path:
                return leaf
            found = True
            node = root
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = leaf
        return _freeze(root) if found else None

    def _apply(
        self,
        task_id: str,
        value: Any,
        plan: _Plan,
        context: dict[str, Any],
        vars: Mapping[str, str],
        share_data: Mapping[str, str],
    ) -> Any:
        if isinstance(plan, _Leaf):
            return self._render_leaf(task_id, plan, context, vars, share_data)
        out: Any = dict(value) if isinstance(value, dict) else list(value)
        for key, sub in plan.children:
            out[key] = self._apply(task_id, value[key], sub, context, vars, share_data)
        return out

    def _render_leaf(
        self,
        task_id: str,
        leaf: _Leaf,
        context: dict[str, Any],
        vars: Mapping[str, str],
        share_data: Mapping[str, str],
    ) -> str:
        try:
            return leaf.template.render(context)
        except SecurityError as exc:
            cause = f"the template sandbox refused it: {exc}"
        except _OutputMissing as exc:
            cause = str(exc.message)
        except UndefinedError as exc:
            cause = (
                f"{exc.message}; vars: {listing(sorted(vars))};"
                f" share data keys: {listing(sorted(share_data))}"
            )
        except JinjaError as exc:
            cause = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a filter or an operator failed: the task fails, not the node
            cause = f"{type(exc).__name__}: {exc}"
        raise TemplateError(
            f"task '{task_id}': {format_path(leaf.path)} ({short_repr(leaf.source)}): {cause}"
        )


def _freeze(tree: dict[str | int, Any]) -> _Branch:
    return _Branch(tuple((k, v if isinstance(v, _Leaf) else _freeze(v)) for k, v in tree.items()))


def _syntax_message(exc: TemplateSyntaxError) -> str:
    return (
        f"template syntax error at line {exc.lineno}: {exc.message} — to keep '{{{{' as text,"
        " write {{ '{{' }} or wrap the text in {% raw %}...{% endraw %}"
    )


# -- checks at registration ---------------------------------------------------------------------
def template_problems(dag: DagDef) -> list[str]:
    """Every param template of ``dag`` that cannot work, as sentences naming task and param:
    syntax errors, includes or imports, names that are neither declared vars nor share
    data, and outputs of tasks that are not ancestors (without the source prefix)."""
    env = _environment()
    var_names = frozenset(dag.vars)
    known = var_names | _NAMESPACES | frozenset(env.globals)
    problems: list[str] = []
    parents = {t.id: t.depend_on for t in dag.tasks}
    # DAGs repeat the same template across many tasks: check each text once
    checked: dict[str, tuple[list[str], set[str]]] = {}
    for i, task in enumerate(dag.tasks):
        label = task_label(task.id, i)
        ancestors: set[str] | None = None
        for path, source in _template_strings(task.params):
            found = checked.get(source)
            if found is None:
                found = checked[source] = _source_problems(env, source, var_names, known)
            where_ = f"{label}: {format_path(path)}"
            problems.extend(f"{where_}: {p}" for p in found[0])
            if found[1] and ancestors is None:
                ancestors = ancestors_of(task.id, parents)
            for ref in sorted(found[1] - (ancestors or set())):
                problems.append(f"{where_}: {output_ref_problem(ref, parents)}")
    return problems


def ancestors_of(task_id: str, parents: Mapping[str, Iterable[str]]) -> set[str]:
    """The tasks ``task_id`` depends on, directly or not (cycles and unknown ids tolerated:
    other checks report them)."""
    seen: set[str] = set()
    stack = list(parents.get(task_id, ()))
    while stack:
        tid = stack.pop()
        if tid not in seen:
            seen.add(tid)
            stack.extend(parents.get(tid, ()))
    return seen


def output_ref_problem(ref: str, parents: Mapping[str, object]) -> str:
    """Why reading the output of task ``ref`` does not work, as a sentence."""
    if ref not in parents:
        hint = suggestion(ref, [str(t) for t in parents]) or ""
        return f"reads the output of task {ref!r}, which does not exist{hint}"
    return (f"reads the output of task {ref!r}, which it does not depend on (directly or"
            " not): add it to dependOn, or to the dependOn of one of its ancestors")


def _source_problems(
    env: _Sandbox, source: str, var_names: frozenset[str], known: frozenset[str]
) -> tuple[list[str], set[str]]:
    """The problems of one template text, and the tasks whose outputs it reads."""
    try:
        tree = env.parse(rewrite_fastflow_forms(source, var_names))
    except TemplateSyntaxError as exc:
        return [_syntax_message(exc)], set()
    except Exception as exc:  # Jinja's parser can also run out of recursion
        return [f"cannot compile the template: {exc}"], set()
    return _tree_problems(tree, source, var_names, known), _task_refs(tree)


def _tree_problems(
    tree: nodes.Template, source: str, var_names: frozenset[str], known: frozenset[str]
) -> list[str]:
    problems: list[str] = []
    loaders = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)
    if next(tree.find_all(loaders), None) is not None:
        problems.append("templates cannot include, import or extend other templates")
    dashed = _dashed_names(source, var_names)
    # `{{cluster-nmae}}` parses as a subtraction: report the whole name, not its pieces
    pieces = {p for name in dashed for p in re.split(r"[-.]", name)}
    names = list(dashed)
    names += sorted(n for n in find_undeclared_variables(tree) if n not in known | pieces)
    names += sorted(_namespace_keys(tree) - var_names)
    for name in dict.fromkeys(names):
        hint = suggestion(name, var_names) or f" — declared vars: {listing(sorted(var_names))}"
        problems.append(
            f"uses {name!r}, which is not a declared var{hint}"
            " (share data is read as shareData.key)"
        )
    return problems


def _namespace_keys(tree: nodes.Template, namespace: str = "vars") -> set[str]:
    """Keys read from ``namespace`` by attribute or constant subscript."""
    keys: set[str] = set()
    for attr in tree.find_all(nodes.Getattr):
        if _is_name(attr.node, namespace) and attr.attr not in _MAPPING_ATTRS:
            keys.add(attr.attr)
    for item in tree.find_all(nodes.Getitem):
        if _is_name(item.node, namespace) and isinstance(item.arg, nodes.Const):
            if isinstance(item.arg.value, str):
                keys.add(item.arg.value)
    return keys


def _task_refs(tree: nodes.Template) -> set[str]:
    """The ids of the tasks whose outputs a template reads, where they are written out."""
    refs = _namespace_keys(tree, "tasks")
    for call in tree.find_all(nodes.Call):
        if _is_name(call.node, _OUTPUT_AT) and len(call.args) > 1:
            arg = call.args[1]
            if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
                refs.add(arg.value)
    return refs


def _is_name(node: nodes.Node, name: str) -> bool:
    return isinstance(node, nodes.Name) and node.name == name


def check_templates(dag: DagDef, *, source: str | None = None) -> None:
    """Raise :class:`~tideflow.errors.DefinitionError` listing every param template of ``dag``
    that cannot work (see :func:`template_problems`)."""
    prefix = where(source, dag.id)
    raise_problems([f"{prefix}: {p}" for p in template_problems(dag)], source=source)
