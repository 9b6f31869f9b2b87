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

import copy
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, Template, Undefined, nodes, pass_context
from jinja2 import TemplateError as JinjaError
from jinja2.environment import TemplateExpression
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.meta import find_undeclared_variables
from jinja2.runtime import Context
from jinja2.sandbox import MAX_RANGE
from jinja2.utils import missing

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
from .definition.vartypes import text as value_text
from .errors import TemplateError
from .outputs import TaskOutputs
from .sandbox import BUDGET, MAX_SIZE, Budget, Sandbox, check_size
from .shellscript import ENV_PREFIX, ScriptError, ScriptValues, script_problems

MASK = "***"

# Beyond this many distinct strings, templates met outside the DAG are compiled but not kept.
_MAX_CACHED = 100_000
# the name under which a script's values are gathered during its render
_SCRIPT = "__tideflow_script"

_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")
_GO_VAR = re.compile(r"\.vars\.([A-Za-z_][A-Za-z0-9_-]*)(?:\.Value)?\Z")
_GO_SHARE = re.compile(r"\.shareData\.([A-Za-z_][A-Za-z0-9_-]*)\Z")
# `tasks.<id>.output.<path>`: an id holds no whitespace; path parts are split on '.'
_TASK_OUTPUT = re.compile(r"tasks\.(?P<id>[^\s{}]+?)\.output(?P<path>(?:\.[^\s.{}]+)*)\Z")
# The global that `tasks.<id>.output.<path>` is rewritten to call.
_OUTPUT_AT = "__tideflow_output"
# The outputs it reads, under a name of their own: a DAG may declare a var named `tasks`.
_TASKS = "__tideflow_tasks"
# A param that is one reference alone, once Fastflow's forms are rewritten: `{{size}}`,
# `{{ vars.size }}`, `{{tasks.a.output.n}}`. Such a param receives the value itself.
_REFERENCE = re.compile(
    r"\{\{-?\s*(?P<expr>vars\['[^'\\]*'\]|vars\[\"[^\"\\]*\"\]|vars\.[A-Za-z_][A-Za-z0-9_]*"
    rf"|{_OUTPUT_AT}\({_TASKS}, \"(?:[^\"\\]|\\.)*\", \"(?:[^\"\\]|\\.)*\"\))\s*-?\}}\}}\Z"
)
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


class _Namespace(Mapping[str, Any]):
    """``vars`` and ``shareData`` inside templates: a read-only mapping that knows its name,
    so a missing key is reported as ``'shareData' has no key 'x'``."""

    # underscored: the sandbox hides such attributes, so `vars.label` still reads a var
    __slots__ = ("_label", "_data")

    def __init__(self, label: str, data: Mapping[str, Any]) -> None:
        self._label = label
        self._data = data

    def __getitem__(self, key: str) -> Any:
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
        raise _OutputMissing("the outputs of tasks cannot be read here")
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
    """How a value is inserted into text: as a typed var's text (booleans as true/false,
    null as nothing, lists and mappings as compact JSON), as Go's templates did."""
    if isinstance(value, str | Undefined):
        return value
    try:
        return value_text(value)
    except (TypeError, ValueError):  # a mapping holding what JSON cannot
        return value


def _finalize(value: Any) -> Any:
    if isinstance(value, Iterator):
        return value
    return check_size(_as_text(value), "a value")


@pass_context
def _finalize_script(context: Context, value: Any) -> str:
    """In a script, a value is replaced by a marker; see :mod:`tideflow.shellscript`."""
    marks = context.get(_SCRIPT)
    if not isinstance(marks, ScriptValues):
        raise SecurityError("a script rendered without its values")
    return marks.mark(str(_finalize(value)))


def _environment(*, script: bool = False) -> Sandbox:
    """The sandbox; with ``script``, every ``{{ ... }}`` becomes a marker that
    :class:`ScriptValues` turns into a reference to the value (for ``/bin/sh -c``)."""
    # keep_trailing_newline: a param's text must come out exactly as written around the tags
    env = Sandbox(undefined=_Missing, autoescape=False, keep_trailing_newline=True,
                  finalize=_finalize_script if script else _finalize)
    env.globals[_OUTPUT_AT] = _output_at
    return env


def _render_bounded(template: Template, context: Mapping[str, Any]) -> str:
    """The template's output, refused as soon as it grows past the size limit."""
    parts: list[str] = []
    total = 0
    for chunk in template.generate(context):
        total += len(chunk)
        if total > MAX_SIZE:
            raise SecurityError(f"the output would exceed the template size limit of"
                                f" {MAX_SIZE:,} characters")
        parts.append(chunk)
    return "".join(parts)


def shell_script_tasks(dag: DagDef) -> frozenset[str]:
    """The tasks whose ``cmd`` is a shell script: ``shell`` tasks with a string ``cmd`` (a
    string is only accepted with ``shell: true``; a ``shell`` that is itself a template is
    covered too). Values rendered into such a script reach it as environment variables."""
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
            args = f"{_TASKS}, {json.dumps(out.group('id'))}, {json.dumps(out.group('path')[1:])}"
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
    #: the ``cmd`` of a ``shell: true`` task: values go to the environment, not the text
    script: bool = False
    #: for a param that is one reference alone (``{{size}}``, ``{{tasks.a.output.n}}``): the
    #: reference as an expression, so that a typed value reaches the action as it is
    reference: TemplateExpression | None = None


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
        self._script_env = _environment(script=True)
        self._scripts = shell_script_tasks(dag)
        self._compiled: dict[str, Template] = {}
        self._compiled_scripts: dict[str, Template] = {}
        self._plans: dict[str, tuple[Any, _Plan | None]] = {}

    def compile(self, source: str, *, script: bool = False) -> Template:
        """The compiled template for ``source`` (cached); raises :class:`TemplateError`.
        ``script``: for the ``cmd`` of a ``shell: true`` task (see :mod:`tideflow.shellscript`)."""
        cache = self._compiled_scripts if script else self._compiled
        env = self._script_env if script else self._env
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
        vars: Mapping[str, Any],
        share_data: Mapping[str, str],
        tasks: TaskOutputs | None = None,
    ) -> Any:
        """``params`` with every template string rendered; other values are returned as they
        are (containers holding no template are shared with ``params``: treat the result as
        read-only). ``tasks`` are the outputs the task may read (``tasks.<id>.output``). For a
        ``shell: true`` script, the values rendered into ``cmd`` are added to ``env`` and the
        script reads them from there. Raises :class:`TemplateError` naming the task, the param
        and the cause."""
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
        outputs = tasks if tasks is not None else TaskOutputs.none(task_id)
        context[_TASKS] = outputs
        if "tasks" not in vars:  # a declared var of that name keeps it, as in Fastflow
            context["tasks"] = outputs
        context[BUDGET] = Budget()
        script_env: dict[str, str] = {}
        out = self._apply(task_id, params, plan, context, script_env)
        if script_env:
            out["env"] = _with_script_env(task_id, out.get("env"), script_env)
        return out

    def _plan(self, task_id: str, params: Any) -> _Plan | None:
        root: dict[str | int, Any] = {}
        found = False
        scripts = task_id in self._scripts
        for path, source in _template_strings(params):
            script = scripts and path == ("cmd",)
            try:
                template = self.compile(source, script=script)
            except TemplateError as exc:
                raise TemplateError(
                    f"task '{task_id}': {format_path(path)} ({short_repr(source)}): {exc}"
                ) from None
            leaf = _Leaf(template, source, path, script,
                         None if script else self._reference(source))
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
        script_env: dict[str, str],
    ) -> Any:
        if isinstance(plan, _Leaf):
            return self._render_leaf(task_id, plan, context, script_env)
        out: Any = dict(value) if isinstance(value, dict) else list(value)
        for key, sub in plan.children:
            out[key] = self._apply(task_id, value[key], sub, context, script_env)
        return out

    def _reference(self, source: str) -> TemplateExpression | None:
        """The expression of ``source`` when it is one reference to a var or an output."""
        found = _REFERENCE.match(rewrite_fastflow_forms(source, self.var_names))
        if found is None:
            return None
        try:
            return self._env.compile_expression(found.group("expr"), undefined_to_none=False)
        except Exception:  # noqa: BLE001 - rendered as text instead, which reports the error
            return None

    def _render_leaf(
        self,
        task_id: str,
        leaf: _Leaf,
        context: dict[str, Any],
        script_env: dict[str, str],
    ) -> Any:
        try:
            if leaf.reference is not None:
                value = leaf.reference(context)
                # text (every Fastflow value) renders as before; a typed value stays typed
                if not isinstance(value, str | Undefined):
                    return copy.deepcopy(value)
            if not leaf.script:
                return _render_bounded(leaf.template, context)
            marks = ScriptValues()
            text = _render_bounded(leaf.template, {**context, _SCRIPT: marks})
            script, env = marks.script(text)
            script_env.update(env)
            return script
        except SecurityError as exc:
            cause = f"the template sandbox refused it: {exc}"
        except ScriptError as exc:
            cause = f"{exc} (see 'Values in a script' in docs/actions.md)"
        except _OutputMissing as exc:
            cause = str(exc.message)
        except UndefinedError as exc:
            vars, share = context["vars"], context["shareData"]
            cause = (
                f"{exc.message}; vars: {listing(sorted(vars))};"
                f" share data keys: {listing(sorted(share))}"
            )
        except JinjaError as exc:
            cause = f"{type(exc).__name__}: {exc}"
        except MemoryError:
            cause = "the template sandbox refused it: it ran out of memory"
        except RecursionError:
            cause = ("the template sandbox refused it: it nests or recurses too deeply (a macro"
                     " or a recursive loop that calls itself without end?)")
        except OverflowError as exc:
            # Jinja's own range() guard says "Range too big ... MAX_RANGE"
            cause = (f"the template sandbox refused it: a range of more than {MAX_RANGE:,} items"
                     if "range" in str(exc).lower() else
                     f"the template sandbox refused it: a number too large ({exc})")
        except Exception as exc:  # a filter or an operator failed: the task fails, not the node
            cause = f"{type(exc).__name__}: {exc}"
        raise TemplateError(
            f"task '{task_id}': {format_path(leaf.path)} ({short_repr(leaf.source)}): {cause}"
        )


def _with_script_env(task_id: str, env: Any, script_env: dict[str, str]) -> Any:
    """The task's ``env`` with the script's values added; a name of the script's own is
    refused (it would replace a value)."""
    if env is None:
        return script_env
    if not isinstance(env, dict):
        return env  # the params check reports it
    taken = _reserved_env_names(env)
    if taken:
        raise TemplateError(f"task '{task_id}': params.env: {_reserved_message(taken)}")
    return {**env, **script_env}


def _reserved_env_names(env: Any) -> list[str]:
    return sorted(str(k) for k in env if str(k).startswith(ENV_PREFIX)) if isinstance(
        env, dict) else []


def _reserved_message(taken: list[str]) -> str:
    return (f"{listing(taken)}: names starting with {ENV_PREFIX!r} carry the values of the"
            " script's templates; choose another name")


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
    data, outputs of tasks that are not ancestors, and values a ``shell: true`` script would
    read as code (without the source prefix)."""
    env = _environment()
    var_names = frozenset(dag.vars)
    known = var_names | _NAMESPACES | frozenset(env.globals) | {_TASKS}
    problems: list[str] = []
    scripts = shell_script_tasks(dag)
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
            if task.id in scripts and path == ("cmd",) and not found[0]:
                problems.extend(f"{where_}: {p}"
                                for p in _script_source_problems(env, source, var_names))
            if found[1] and ancestors is None:
                ancestors = ancestors_of(task.id, parents)
            for ref in sorted(found[1] - (ancestors or set())):
                problems.append(f"{where_}: {output_ref_problem(ref, parents)}")
        taken = _reserved_env_names(task.params.get("env")) if task.id in scripts else []
        if taken and is_template(str(task.params.get("cmd"))):
            problems.append(f"{label}: params.env: {_reserved_message(taken)}")
        if task.compensate is not None:
            # a compensation step runs after the main path ended, so it may read the output
            # of any task of the instance (null for one that did not run) — but it must exist
            for path, source in _template_strings(task.compensate.params):
                found = checked.get(source)
                if found is None:
                    found = checked[source] = _source_problems(env, source, var_names, known)
                where_ = f"{label}: compensate.{format_path(path)}"
                problems.extend(f"{where_}: {p}" for p in found[0])
                problems.extend(f"{where_}: {output_ref_problem(ref, parents)}"
                                for ref in sorted(found[1] - parents.keys()))
    return problems


def _script_source_problems(env: Sandbox, source: str, var_names: frozenset[str]) -> list[str]:
    tree = env.parse(rewrite_fastflow_forms(source, var_names))
    return [f"{p} (see 'Values in a script' in docs/actions.md)" for p in script_problems(tree)]


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
    env: Sandbox, source: str, var_names: frozenset[str], known: frozenset[str]
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
