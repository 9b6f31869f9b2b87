"""Reading YAML or JSON text into plain data without losing the text of any scalar.

Definitions keep strings as written ("strings stay strings"), yet params keep their YAML/JSON
types. So a scalar that is not a string is read as a :class:`TypedScalar`: a ``str`` holding the
text written, with the typed value beside it; the normaliser picks one or the other by place.

The reader refuses hostile input instead of hanging or exhausting memory: nesting depth is
bounded while composing, and the node count is bounded with every alias use counted, which is
what defeats "billion laughs" documents (also through ``<<`` merge keys).
"""

from __future__ import annotations

import functools
import json
import time
from typing import Any

import yaml
from yaml.composer import Composer, ComposerError
from yaml.constructor import SafeConstructor
from yaml.events import StreamEndEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader, ReaderError
from yaml.scanner import Scanner

from .yaml12 import Yaml12Resolver, resolve_scalar

# libyaml reads several times faster than PyYAML's Python reader
try:
    from yaml._yaml import CParser
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    CParser = None  # type: ignore[assignment,misc]


class UnreadableText(Exception):
    """The text is not a readable document; the message says where and why."""


class TypedScalar(str):
    """A non-string scalar: ``str(self)`` is its text as written, ``value`` its typed value."""

    value: Any

    def __new__(cls, text: str, value: Any) -> TypedScalar:
        obj = super().__new__(cls, text)
        obj.value = value
        return obj


class TooSlow(UnreadableText):
    """Reading the definition took longer than its time budget."""


class Deadline:
    """The time budget of reading one definition, checked along the way (a definition is read
    off the event loop, in a thread that cannot be stopped from outside)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.at:
            raise TooSlow(
                f"took more than {self.seconds:g} s to read, the time budget of one definition"
                " — split it into smaller DAGs"
            )


class _TooDeep(Exception):
    def __init__(self, line: int | None) -> None:
        super().__init__(line)
        self.line = line


class _SecondDocument(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


def _line_of(node_or_event: Any) -> int | None:
    mark = getattr(node_or_event, "start_mark", None)
    return None if mark is None else int(mark.line) + 1


class _BoundedComposer(Composer):
    """PyYAML's composer, refusing more than one document and nesting past a limit (it is
    recursive, so unbounded nesting would end in a RecursionError deep inside PyYAML)."""

    depth_limit = 64
    _depth = 0

    def get_single_node(self) -> Node | None:
        self.get_event()  # type: ignore[attr-defined]  # stream start
        document = None
        if not self.check_event(StreamEndEvent):  # type: ignore[attr-defined]
            document = self.compose_document()
        if not self.check_event(StreamEndEvent):  # type: ignore[attr-defined]
            raise _SecondDocument(_line_of(self.get_event()) or 0)  # type: ignore[attr-defined]
        self.get_event()  # type: ignore[attr-defined]
        return document

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self._depth += 1
        try:
            if self._depth > self.depth_limit:
                raise _TooDeep(_line_of(self.peek_event()))  # type: ignore[attr-defined]
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _keep_text(constructor: Any, node: Node) -> str:
    return str(node.value)


def _typed(tag: str) -> Any:
    base = SafeConstructor.yaml_constructors[tag]

    def construct(constructor: Any, node: Node) -> TypedScalar:
        try:
            resolved, value = resolve_scalar(str(node.value))
            if resolved != node.tag:  # an explicit tag, e.g. `!!int 1_0`: PyYAML reads it
                value = base(constructor, node)
        except ValueError:
            # an integer past Python's int/str conversion limit: say where it is
            text = str(node.value)
            shown = text if len(text) <= 20 else f"{text[:20]}... ({len(text):,} characters)"
            raise UnreadableText(
                f"has a number too large to read at line {_line_of(node)}: {shown}"
            ) from None
        return TypedScalar(str(node.value), value)

    return construct


class _Constructor(SafeConstructor):
    """SafeLoader's types, with the written text kept next to every non-string scalar."""


for _tag in ("null", "bool", "int", "float"):
    _Constructor.add_constructor(f"tag:yaml.org,2002:{_tag}", _typed(f"tag:yaml.org,2002:{_tag}"))
# Dates, binary, and the bare "=" and "<<" scalars (which SafeLoader cannot even construct)
# are kept as the text written: they must survive a trip through JSON.
for _tag in ("timestamp", "binary", "value", "merge"):
    _Constructor.add_constructor(f"tag:yaml.org,2002:{_tag}", _keep_text)


class _Resolver(Yaml12Resolver):
    """The YAML 1.2 resolver, with a time budget checked as the parser reports each scalar
    (libyaml calls back here for every one, so even a document it composes in C is timed)."""

    deadline: Deadline | None = None
    _calls = 0

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        self._calls += 1
        if self.deadline is not None and not self._calls & 1023:
            self.deadline.check()
        return super().resolve(kind, value, implicit)


class _PyLoader(Reader, Scanner, Parser, _BoundedComposer, _Constructor, _Resolver):
    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        _Constructor.__init__(self)
        _Resolver.__init__(self)


if CParser is not None:

    class _CLoader(CParser, _Constructor, _Resolver):
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            _Constructor.__init__(self)
            _Resolver.__init__(self)


@functools.cache
def _libyaml_bounds_nesting() -> bool:
    """libyaml composes in C, recursively: use it only where its parser caps nesting (0.2.5+),
    else a hostile document could overflow the C stack."""
    if CParser is None:
        return False
    try:
        for _ in yaml.parse("[" * 1100 + "]" * 1100, Loader=yaml.CSafeLoader):
            pass
    except yaml.YAMLError:
        return True
    return False  # pragma: no cover - an old libyaml


def _make_loader(text: str, max_depth: int, deadline: Deadline | None) -> _PyLoader | _CLoader:
    loader: _PyLoader | _CLoader
    if _libyaml_bounds_nesting():
        loader = _CLoader(text)
    else:
        loader = _PyLoader(text)
        loader.depth_limit = max_depth
    loader.deadline = deadline
    return loader


def _check_expansion(
    root: Node, *, max_depth: int, max_nodes: int, deadline: Deadline | None
) -> None:
    """Walk the node graph as the tree it stands for, every alias use counted, within bounds."""
    stack: list[tuple[Node, int]] = [(root, 1)]
    seen = 0
    while stack:
        node, depth = stack.pop()
        seen += 1
        if deadline is not None and not seen & 4095:
            deadline.check()
        if seen > max_nodes:
            raise UnreadableText(
                f"has more than {max_nodes:,} values once its YAML aliases are expanded"
                " — split it into smaller DAGs or use fewer aliases"
            )
        if depth > max_depth:
            raise UnreadableText(
                f"nests deeper than {max_depth} levels at line {_line_of(node)}"
                " (a YAML alias may refer to itself)"
            )
        if isinstance(node, MappingNode):
            for key, value in node.value:
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))
        elif isinstance(node, SequenceNode):
            stack.extend((item, depth + 1) for item in node.value)
        elif not isinstance(node, ScalarNode):  # pragma: no cover - PyYAML has no other kind
            raise UnreadableText(f"has an unknown YAML node at line {_line_of(node)}")


def _describe_yaml_error(exc: yaml.YAMLError) -> str:
    if isinstance(exc, ReaderError):
        return (
            f"is not valid YAML: character #x{exc.character:04x} at position {exc.position}"
            f" is not allowed ({exc.reason})"
        )
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = exc.problem or exc.context or "not valid YAML"
        if exc.context and exc.problem and exc.context_mark is not None:
            what += f" ({exc.context} at line {exc.context_mark.line + 1})"
        return f"is not valid YAML{at}: {what}"
    return f"is not valid YAML: {exc}"


def _another_document(line: int) -> UnreadableText:
    return UnreadableText(
        f"holds more than one YAML document (another starts at line {line}) — put one DAG in a file"
    )


def _check_task_count(root: Node, max_tasks: int | None) -> None:
    """Refuse too many tasks before constructing them: building Python values is the slow
    half of reading a large document, and a refused one should fail fast."""
    if max_tasks is None or not isinstance(root, MappingNode):
        return
    for key, value in root.value:
        if (
            isinstance(key, ScalarNode)
            and key.value == "tasks"
            and isinstance(value, SequenceNode)
            and len(value.value) > max_tasks
        ):
            count = len(value.value)
            # freed a task at a time: the whole tree at once is one long stretch of C
            # holding the interpreter lock (a second for 100,000 tasks)
            while value.value:
                value.value.pop()
            raise UnreadableText(too_many_tasks(count, max_tasks))


def too_many_tasks(count: int, max_tasks: int) -> str:
    """The problem of a definition with more tasks than allowed (one wording for all inputs)."""
    return (
        f"has {count:,} tasks, more than the limit of {max_tasks:,} — split it into smaller DAGs"
    )


def parse_yaml(
    text: str,
    *,
    max_depth: int,
    max_nodes: int,
    max_tasks: int | None = None,
    deadline: Deadline | None = None,
) -> Any:
    """One YAML document as data (non-string scalars as :class:`TypedScalar`).

    Raises :class:`UnreadableText` for anything else: syntax errors, several documents, an empty
    document, nesting or alias expansion past the bounds, more than ``max_tasks`` tasks, more
    time than ``deadline`` allows."""
    loader: _PyLoader | _CLoader | None = None
    try:
        loader = _make_loader(text, max_depth, deadline)
        root = loader.get_single_node()
        if root is None:
            raise UnreadableText("is empty: it holds no YAML document")
        _check_task_count(root, max_tasks)
        _check_expansion(root, max_depth=max_depth, max_nodes=max_nodes, deadline=deadline)
        return loader.construct_document(root)
    except _TooDeep as exc:
        raise UnreadableText(f"nests deeper than {max_depth} levels at line {exc.line}") from None
    except _SecondDocument as exc:
        raise _another_document(exc.line) from None
    except yaml.YAMLError as exc:
        if isinstance(exc, ComposerError) and exc.problem == "but found another document":
            line = exc.problem_mark.line + 1 if exc.problem_mark else 0
            raise _another_document(line) from None
        raise UnreadableText(_describe_yaml_error(exc)) from None
    except UnreadableText:
        raise
    except Exception as exc:
        # PyYAML's constructors let plain errors escape (an impossible date, a 5,000-digit
        # integer, text that cannot be encoded); any of them means the text is unreadable.
        raise UnreadableText(f"is not valid YAML: {exc}") from None
    finally:
        if loader is not None:
            loader.dispose()


def _json_number(text: str, convert: Any) -> TypedScalar:
    try:
        return TypedScalar(text, convert(text))
    except ValueError:  # past Python's int/str conversion limit
        raise UnreadableText(
            f"has a number too large to read: {text[:20]}... ({len(text):,} digits)"
        ) from None


def parse_json(text: str) -> Any:
    """One JSON document as data (numbers as :class:`TypedScalar`, keeping their text)."""
    if not text.strip():
        raise UnreadableText("is empty: it holds no JSON document")
    try:
        return json.loads(
            text,
            parse_int=lambda s: _json_number(s, int),
            parse_float=lambda s: _json_number(s, float),
            parse_constant=lambda s: _json_number(s, float),
        )
    except json.JSONDecodeError as exc:
        raise UnreadableText(
            f"is not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except UnreadableText:
        raise
    except RecursionError:
        raise UnreadableText("nests too deeply to be read as JSON") from None
    except Exception as exc:  # e.g. an integer past Python's digit limit
        raise UnreadableText(f"is not valid JSON: {exc}") from None


def looks_like_json(text: str) -> bool:
    """JSON documents start with ``{`` or ``[``; YAML ones almost never do."""
    stripped = text.lstrip()
    return stripped[:1] in ("{", "[")
