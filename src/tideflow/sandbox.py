"""The Jinja2 sandbox that param templates render in: no way out to Python, bounded in time
and in size.

Size is bounded by one invariant: no value a template builds — the result of a filter, a
call, an operator or a ``~`` join, each piece of output, and the output as a whole — may be
larger than :data:`MAX_SIZE` characters (or items, for lists and mappings: their size is
about the size of their text). Everything a template can do goes through one of those
points, so most are checked after the fact, on a result whose memory is proportional to what
went in. The few operations whose memory grows with a number or a product (``ljust(10**9)``,
``'x' * 10**9``, a format width, a separator joined a million times) are checked before they
allocate anything. ``tests/security/test_widening.py`` tries every filter, method, global
and operator the sandbox offers with huge arguments, so a new one cannot slip by.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
import time
import types
from collections.abc import Callable, Iterator, Mapping, Sized
from functools import update_wrapper
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import SandboxedEnvironment, SandboxedEscapeFormatter, SandboxedFormatter
from jinja2.utils import Namespace
from jinja2.visitor import NodeTransformer
from markupsafe import Markup

#: the most characters (or items) any one value built by a template may hold, and the most
#: one rendered string may hold; a share-data value saved from stdout (1 MiB) still fits
MAX_SIZE = 1024 * 1024
_MAX_POWER_BITS = 100_000
# A render that runs longer than this (nested loops, recursive macros) fails: it runs on the
# node's event loop, where a minute of rendering would stall every other task.
MAX_RENDER_SECS = 1.0
#: the name under which each render's :class:`Budget` is reached from compiled templates
BUDGET = "__tideflow_budget"


def _too_large(what: str = "the result") -> SecurityError:
    return SecurityError(f"{what} would exceed the template size limit of {MAX_SIZE:,}"
                         " characters")


# -- sizes ---------------------------------------------------------------------------------------
def size_of(value: Any, cap: int = MAX_SIZE) -> int:
    """About how many characters ``value`` takes as text; a shared item counts every time it
    appears (it is printed every time). Stops counting once past ``cap``: every item visited
    adds at least one, so this costs at most ``cap`` steps, cycles included."""
    if isinstance(value, str | bytes):
        return len(value)
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1
        elif isinstance(item, float):
            total += 24
        elif isinstance(item, range):
            total += len(item) * (_digits(item.start, item.stop) + 2)
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 + 2 * len(item)
            stack.extend(item)
        elif isinstance(item, Mapping) and not isinstance(item, dict):
            # a read-only view onto the run's data (vars, share data, outputs): nothing a
            # template built; what it takes out of one is counted where it is used
            total += 1
        elif isinstance(item, dict):
            total += 2 + 4 * len(item)
            for key, sub in item.items():
                stack.append(key)
                stack.append(sub)
                if total + len(stack) > cap:
                    break
        elif isinstance(item, Namespace):
            # a namespace hides its own attributes from getattr
            stack.append(object.__getattribute__(item, "_Namespace__attrs"))
        else:
            total += 1  # functions, loops, undefined: short reprs; iterators are streamed
        if total + len(stack) > cap:
            return cap + 1
    return total


def _digits(*bounds: int) -> int:
    return max(len(str(abs(b))) for b in bounds) + 1


def check_size(value: Any, what: str = "the result") -> Any:
    """``value`` itself; raises :class:`SecurityError` if it is larger than :data:`MAX_SIZE`.
    An iterator is returned wrapped so that what it yields is counted as it is drawn."""
    if isinstance(value, Iterator) and not isinstance(value, str | bytes):
        return _bounded_stream(value, what)
    if size_of(value) > MAX_SIZE:
        raise _too_large(what)
    return value


def _bounded_stream(items: Iterator[Any], what: str) -> Iterator[Any]:
    total = 0
    for item in items:
        total += size_of(item) + 2
        if total > MAX_SIZE:
            raise _too_large(what)
        yield item


def _check_args(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        if not isinstance(value, Context) and size_of(value) > MAX_SIZE:
            raise _too_large("an argument")


# -- the operations whose memory grows with a number or a product --------------------------------
# a printf-style conversion: its width and precision, each digits or '*'
_PRINTF = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")
_SPEC_NUMBERS = re.compile(r"\d+")


def check_format(fmt: str, args: Any = ()) -> None:
    """Refuse a ``%`` format whose widths, precisions and values add up to a huge string."""
    values = args if isinstance(args, tuple) else (args,)
    stars = iter(v for v in values if isinstance(v, int) and not isinstance(v, bool))
    total = len(fmt) + size_of(args)
    for match in _PRINTF.finditer(fmt):
        for number in match.groups():
            if number == "*":
                total += abs(next(stars, 0))
            elif number:
                if len(number) > 9:
                    raise SecurityError(f"a format width of {number} is too large")
                total += int(number)
        if total > MAX_SIZE:
            raise _too_large()


def _check_spec(spec: str) -> int:
    """The widest a ``str.format`` field with this spec can make a short value."""
    widest = 0
    for number in _SPEC_NUMBERS.findall(spec):
        if len(number) > 9 or int(number) > MAX_SIZE:
            raise SecurityError(f"a format width of {number} is too large")
        widest += int(number)
    return widest


def _width(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _count(items: Any) -> int:
    """How many items ``items`` holds; for a stream, the most a bounded stream can yield."""
    return len(items) if isinstance(items, Sized) else MAX_SIZE // 2


def _fill(value: Any) -> int:
    """How much an indent or a width given as a number or as text adds each time."""
    return len(value) if isinstance(value, str) else _width(value)


def _sized(obj: Any) -> int:
    return len(obj) if isinstance(obj, str | bytes) else 0


def _predict_method(obj: Any, name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
                    ) -> int:
    """The size of what ``obj.name(*args)`` would build, for the methods whose result grows
    with a number or a product; 0 for every other method (checked after the call)."""
    params = (*args, *kwargs.values())
    first = params[0] if params else None
    if name in ("ljust", "rjust", "center", "zfill", "to_bytes"):
        return _width(first)
    if name == "expandtabs" and isinstance(obj, str | bytes):
        tabs = obj.count("\t") if isinstance(obj, str) else obj.count(b"\t")
        return len(obj) + tabs * max(_width(first), 8 if first is None else 0)
    if name == "join" and isinstance(obj, str | bytes):
        return len(obj) * _count(first) + size_of(first)
    if name == "replace" and isinstance(obj, str | bytes) and len(args) >= 2:
        old, new = args[0], args[1]
        if isinstance(obj, str) and isinstance(old, str) and isinstance(new, str):
            times = obj.count(old) if old else len(obj) + 1
            return len(obj) + times * len(new)
        if isinstance(obj, bytes) and isinstance(old, bytes) and isinstance(new, bytes):
            times = obj.count(old) if old else len(obj) + 1
            return len(obj) + times * len(new)
    if name == "translate" and isinstance(obj, str) and isinstance(first, Mapping):
        longest = max((_sized(v) for v in first.values()), default=1)
        return len(obj) * longest
    return 0


def _bounded_call(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    """``fn`` (a filter) refusing arguments or a result larger than :data:`MAX_SIZE`."""

    @functools.wraps(fn)  # keeps Jinja's pass_* marker
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _check_args(args, kwargs)
        return check_size(fn(*args, **kwargs), f"the result of '{name}'")

    return bounded


def _filter_guards() -> dict[str, Callable[[Mapping[str, Any]], None]]:
    """Checks run before the filters whose result grows with a number or a product; each
    reads the filter's arguments by the filter's own parameter names."""

    def width(*names: str) -> Callable[[Mapping[str, Any]], None]:
        def check(a: Mapping[str, Any]) -> None:
            for value in (a.get(n) for n in names):
                if _width(value) > MAX_SIZE:
                    raise SecurityError(f"{value} is too large a width")
        return check

    def indent(a: Mapping[str, Any]) -> None:
        text = a["s"]
        lines = text.count("\n") + 1 if isinstance(text, str) else 1
        if lines * _fill(a["width"]) + _sized(text) > MAX_SIZE:
            raise _too_large()

    def tojson(a: Mapping[str, Any]) -> None:
        if _fill(a["indent"]) * size_of(a["value"]) > MAX_SIZE:
            raise _too_large()

    def replace(a: Mapping[str, Any]) -> None:
        text, old_text, new_text = str(a["s"]), str(a["old"]), str(a["new"])
        times = text.count(old_text) if old_text else len(text) + 1
        if len(text) + times * len(new_text) > MAX_SIZE:
            raise _too_large()

    def fmt(a: Mapping[str, Any]) -> None:
        check_format(str(a["value"]), a.get("args", ()))

    def join(a: Mapping[str, Any]) -> None:
        if len(str(a["d"])) * _count(a["value"]) > MAX_SIZE:
            raise _too_large()

    def sum_(a: Mapping[str, Any]) -> None:
        # adding lists one by one copies the sum so far each time
        if isinstance(a["start"], list | tuple) and _count(a["iterable"]) > 10_000:
            raise SecurityError("too many lists to add up")

    def wordwrap(a: Mapping[str, Any]) -> None:
        wrap = a["wrapstring"]
        if wrap is not None and len(str(wrap)) * len(str(a["s"])) > MAX_SIZE:
            raise _too_large()
        width_check(a)

    width_check = width("width")
    return {
        "center": width_check,
        "indent": indent,
        "wordwrap": wordwrap,
        "truncate": width("length", "leeway"),
        "batch": width("linecount"),
        "slice": width("slices"),
        "tojson": tojson,
        "replace": replace,
        "format": fmt,
        "join": join,
        "sum": sum_,
    }


def _default_guard(fn: Callable[..., Any]) -> Callable[[Mapping[str, Any]], None] | None:
    """For a filter taking a ``default`` (``groupby``, ``map``...): that value may stand in
    for every item, so its size times the number of items is bounded."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    names = [p.name for p in params]
    keywords = next((p.name for p in params if p.kind is p.VAR_KEYWORD), None)
    if "default" not in names and keywords is None:
        return None
    skip = 1 if getattr(fn, "jinja_pass_arg", None) is not None else 0

    def check(a: Mapping[str, Any]) -> None:
        default = a.get("default")
        if default is None and keywords is not None:
            default = a.get(keywords, {}).get("default")
        items = a.get(names[skip], ()) if len(names) > skip else ()
        if default is not None and size_of(default) * _count(items) > MAX_SIZE:
            raise _too_large()

    return check


def _guarded(fn: Callable[..., Any], guard: Callable[[Mapping[str, Any]], None]
             ) -> Callable[..., Any]:
    """``fn`` with ``guard`` run first on its arguments, bound to ``fn``'s own signature
    (so every parameter the filter takes is accepted, by position or by name)."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            return fn(*args, **kwargs)  # the filter says what is wrong with its arguments
        bound.apply_defaults()
        guard(bound.arguments)
        return fn(*args, **kwargs)

    return guarded


class _BoundedFormatterMixin:
    """``str.format``'s fields are checked once their spec is known (nested ``{:{}}``
    included), before anything is formatted."""

    _built = 0

    def vformat(self, format_string: str, args: Any, kwargs: Any) -> str:
        self._built = len(format_string)
        text: str = super().vformat(format_string, args, kwargs)  # type: ignore[misc]
        return text

    def format_field(self, value: Any, format_spec: str) -> Any:
        _check_spec(format_spec)
        out = super().format_field(value, format_spec)  # type: ignore[misc]
        self._built += len(out)
        if self._built > MAX_SIZE:
            raise _too_large("the formatted text")
        return out


class _BoundedFormatter(_BoundedFormatterMixin, SandboxedFormatter):
    pass


class _BoundedEscapeFormatter(_BoundedFormatterMixin, SandboxedEscapeFormatter):
    pass


# -- time ----------------------------------------------------------------------------------------
class Budget:
    """What one render may still spend; checked at every loop step and every call."""

    __slots__ = ("deadline", "_grown")

    def __init__(self) -> None:
        self.deadline = time.monotonic() + MAX_RENDER_SECS
        # containers a template changed in place (l.append(x)), with their size so far;
        # the container is kept so that its id is not reused during the render
        self._grown: dict[int, tuple[Any, int]] = {}

    def grew(self, container: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        """Count what a method that changes ``container`` in place added to it; measured
        whole the first time, then by what each call adds, so a loop of appends stays
        linear."""
        known = self._grown.get(id(container))
        if known is None:
            size = size_of(container)
        else:
            size = known[1] + sum(size_of(a) + 4 for a in (*args, *kwargs.values()))
        if size > MAX_SIZE:
            raise _too_large(f"a {type(container).__name__} changed in place")
        self._grown[id(container)] = (container, size)

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise SecurityError(f"the template ran longer than {MAX_RENDER_SECS:g}s")

    def steps(self, iterable: Any) -> Iterator[Any]:
        for item in iterable:
            self.check()
            yield item

    def concat(self, *parts: Any) -> str:
        """``a ~ b``: sized before it is built."""
        if sum(size_of(p) for p in parts) > MAX_SIZE:
            raise _too_large("a '~' join")
        return "".join(map(str, parts))


class _Instrument(NodeTransformer):
    """Makes every ``{% for %}`` iterate through the render's :class:`Budget`, and every
    ``~`` join go through :meth:`Budget.concat`."""

    def _budget(self, method: str) -> nodes.Expr:
        return nodes.Getattr(nodes.Name(BUDGET, "load"), method, "load")

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Call(self._budget("steps"), [node.iter], [], None, None)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Call(self._budget("concat"), list(node.nodes), [], None, None)


_MUTABLE = (list, dict, set, bytearray)
_MUTATORS = frozenset({"append", "extend", "insert", "update", "setdefault", "add", "__setitem__",
                       "__iadd__", "__imul__"})


# -- the environment -----------------------------------------------------------------------------
class Sandbox(SandboxedEnvironment):
    """Jinja's sandbox with the bounds above; dunder (and other unsafe) attributes are refused
    with an error wherever they are read — ``map(attribute=...)`` and ``str.format`` fields
    included — instead of becoming an undefined value that could be printed."""

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        # lorem ipsum has no use in a param and builds as much text as asked
        self.globals.pop("lipsum", None)
        guards = _filter_guards()
        for name, fn in list(self.filters.items()):
            for guard in (guards.get(name), _default_guard(fn)):
                if guard is not None:
                    fn = _guarded(fn, guard)
            self.filters[name] = _bounded_call(fn, name)

    def _generate(
        self, source: nodes.Template, name: str | None, filename: str | None,
        defer_init: bool = False,
    ) -> str:
        # only templates compiled for rendering are instrumented; registration checks parse
        tree = _Instrument().visit(source)
        return super()._generate(tree, name, filename, defer_init)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        raise SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe."
        )

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        # a macro calling itself twice per level never loops, yet runs forever
        budget = __context.get(BUDGET)
        if isinstance(budget, Budget):
            budget.check()
        _check_args(args, kwargs)
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if owner is not None and not isinstance(owner, types.ModuleType):
            if _predict_method(owner, name, args, kwargs) > MAX_SIZE:
                raise _too_large(f"the result of '{name}'")
        result = super().call(__context, __obj, *args, **kwargs)
        if owner is budget and budget is not None:
            return result  # a loop's steps, or a '~' join already sized
        if isinstance(budget, Budget) and isinstance(owner, _MUTABLE) and name in _MUTATORS:
            budget.grew(owner, args, kwargs)
        return check_size(result, f"the result of '{name or 'a call'}'")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        if not isinstance(value, types.MethodType | types.BuiltinMethodType) or (
            value.__name__ not in ("format", "format_map")
        ):
            return None
        f_self = value.__self__
        if not isinstance(f_self, str):
            return None
        formatter: SandboxedFormatter
        if isinstance(f_self, Markup):
            formatter = _BoundedEscapeFormatter(self, escape=f_self.escape)
        else:
            formatter = _BoundedFormatter(self)
        is_format_map = value.__name__ == "format_map"
        str_type = type(f_self)

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                kwargs, args = args[0], ()
            return str_type(formatter.vformat(f_self, args, kwargs))

        return update_wrapper(wrapper, value)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "%" and isinstance(left, str):
            check_format(left, right)
        elif operator == "%" and isinstance(left, bytes):
            check_format(left.decode(errors="replace"), right)
        elif operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | bytes | list | tuple) and isinstance(times, int):
                    if size_of(seq) * times > MAX_SIZE:
                        raise _too_large()
        elif operator == "**" and isinstance(left, int) and isinstance(right, int):
            if abs(left) > 1 and right * math.log2(abs(left)) > _MAX_POWER_BITS:
                raise SecurityError("the power is too large")
        result = super().call_binop(context, operator, left, right)
        return check_size(result, f"the result of '{operator}'")
