"""Loading a definition from a file, text (YAML or JSON) or a mapping into a valid ``DagDef``.

Whatever the input, the result is a model that is structurally valid (ids, dependencies, graph,
schedule, templates) or a :class:`~tideflow.errors.DefinitionError` listing every problem, each
naming the source and the task. No input makes these functions hang or raise anything else:
sizes, nesting and alias expansion are bounded by :class:`LoadLimits`.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn

from pydantic import ValidationError

from ..errors import DefinitionError
from ..gcpause import paused_gc
from ..limits import find_text, is_utf8
from ..templates import template_problems
from .explain import explain
from .model import DagDef
from .normalise import Normaliser, TooLarge
from .parse import Deadline, TooSlow, UnreadableText, looks_like_json, parse_json, parse_yaml
from .problems import definition_error, raise_problems
from .validate import find_problems

API_BODY = "<api body>"

# Levels of a definition around the params (document, tasks, task, preCheck, conditions...),
# on top of the params' own nesting limit.
_STRUCTURE_DEPTH = 8

_FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}


@dataclass(frozen=True)
class LoadLimits:
    """Bounds on one definition, so hostile or broken input fails fast with a clear message."""

    #: size of the text, in bytes of UTF-8
    max_bytes: int = 10 * 1024 * 1024
    #: number of tasks
    max_tasks: int = 20_000
    #: nesting levels inside a task's params (and any other value)
    max_depth: int = 64
    #: values in the whole definition, each use of a YAML alias counted
    max_nodes: int = 2_000_000
    #: seconds of reading and checking one definition (None: no time budget)
    max_seconds: float | None = 30.0


DEFAULT_LIMITS = LoadLimits()


def load_dag_file(path: str | os.PathLike[str], *, limits: LoadLimits | None = None,
                  known_actions: Collection[str] | None = None) -> DagDef:
    """Load one DAG from a ``.yaml``, ``.yml`` or ``.json`` file (other names: sniffed).

    The DAG's ``id`` defaults to the file name without its extension; ``known_actions``, when
    given, makes an action not among them one more problem listed with the others."""
    limits = limits or DEFAULT_LIMITS
    file = Path(path)
    source = str(file)
    try:
        size = file.stat().st_size
        if size > limits.max_bytes:
            _too_big(source, size, limits)
        with file.open("rb") as stream:
            data = stream.read(limits.max_bytes + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise DefinitionError(
            [f"{source}: cannot read the file: {reason}"], source=source
        ) from None
    if len(data) > limits.max_bytes:
        _too_big(source, len(data), limits)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DefinitionError(
            [f"{source}: is not UTF-8 text (bad byte at offset {exc.start}) — save it as UTF-8"],
            source=source,
        ) from None
    fmt = _FORMATS.get(file.suffix.lower())
    return load_dag_text(
        text,
        source=source,
        default_id=file.stem,
        format=fmt,  # type: ignore[arg-type]
        limits=limits,
        known_actions=known_actions,
    )


def load_dag_text(
    text: str,
    *,
    source: str | None = None,
    default_id: str | None = None,
    format: Literal["yaml", "json"] | None = None,
    limits: LoadLimits | None = None,
    known_actions: Collection[str] | None = None,
) -> DagDef:
    """Load one DAG from YAML or JSON text (``format=None``: JSON if it looks like JSON).

    ``source`` names the text in messages (default ``<api body>``); ``default_id`` is used when
    the document has no ``id``."""
    limits = limits or DEFAULT_LIMITS
    deadline = _deadline(limits)
    with paused_gc():
        data = _read(text, source, format, limits, deadline)
        return _build(
            data, source=source, default_id=default_id, limits=limits, deadline=deadline,
            known_actions=known_actions,
        )


def read_definition_text(
    text: str,
    *,
    source: str | None = None,
    format: Literal["yaml", "json"] | None = None,
    limits: LoadLimits | None = None,
) -> Any:
    """The data of YAML or JSON text, read within the limits but not yet checked: for a
    caller that looks at the document before loading it (with :func:`load_dag_dict`, which
    keeps the text written of every scalar read here), so that the text is parsed once."""
    limits = limits or DEFAULT_LIMITS
    with paused_gc():
        return _read(text, source, format, limits, _deadline(limits))


def _read(
    text: str,
    source: str | None,
    format: str | None,
    limits: LoadLimits,
    deadline: Deadline | None,
) -> Any:
    label = source or API_BODY
    if not isinstance(text, str):
        raise DefinitionError([f"{label}: a definition must be text"], source=label)
    if len(text) > limits.max_bytes:
        _too_big(label, len(text), limits)
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limits.max_bytes:
        _too_big(label, size, limits)
    text = text.removeprefix("\ufeff")
    try:
        return _parse(text, format, limits, deadline)
    except UnreadableText as exc:
        raise DefinitionError([f"{label}: {exc}"], source=label) from None


def load_dag_dict(
    data: Any,
    *,
    source: str | None = None,
    default_id: str | None = None,
    limits: LoadLimits | None = None,
) -> DagDef:
    """Load one DAG from a mapping (an API body, or the builder's document).

    The same rules as for files: text places take scalars as text (``False`` → ``"false"``,
    ``3`` → ``"3"``), params keep their types."""
    limits = limits or DEFAULT_LIMITS
    with paused_gc():
        return _build(
            data, source=source, default_id=default_id, limits=limits, deadline=_deadline(limits)
        )


def _deadline(limits: LoadLimits) -> Deadline | None:
    return None if limits.max_seconds is None else Deadline(limits.max_seconds)


def _parse(text: str, format: str | None, limits: LoadLimits, deadline: Deadline | None) -> Any:
    if format not in (None, "yaml", "json"):
        raise ValueError(f"unknown definition format {format!r}: use 'yaml' or 'json'")
    depth = limits.max_depth + _STRUCTURE_DEPTH
    if format == "json":
        return parse_json(text)
    if format is None and looks_like_json(text):
        try:
            return parse_json(text)
        except UnreadableText as json_problem:
            # a YAML flow mapping also starts with '{'; if it is not that either, the JSON
            # message is the one that helps
            try:
                return parse_yaml(
                    text,
                    max_depth=depth,
                    max_nodes=limits.max_nodes,
                    max_tasks=limits.max_tasks,
                    deadline=deadline,
                )
            except UnreadableText:
                raise json_problem from None
    return parse_yaml(
        text,
        max_depth=depth,
        max_nodes=limits.max_nodes,
        max_tasks=limits.max_tasks,
        deadline=deadline,
    )


def _build(
    data: Any,
    *,
    source: str | None,
    default_id: str | None,
    limits: LoadLimits,
    deadline: Deadline | None,
    known_actions: Collection[str] | None = None,
) -> DagDef:
    label = source or API_BODY
    normaliser = Normaliser(
        max_depth=limits.max_depth,
        max_nodes=limits.max_nodes,
        max_tasks=limits.max_tasks,
        deadline=deadline,
    )
    try:
        doc = normaliser.dag(data, default_id)
        if deadline is not None:
            deadline.check()
    except (TooLarge, TooSlow) as exc:
        raise DefinitionError([f"{label}: {exc}"], source=label) from None
    problems = [f"{label}: {p}" for p in normaliser.problems]
    at = find_text(doc, lambda t: not is_utf8(t))
    if at is not None:
        # stored, it would break every listing that reads it back
        raise DefinitionError([f"{label}: {at} holds a lone UTF-16 surrogate (such as"
                               " \\ud800), which is not text: send UTF-8 text"], source=label)
    if doc is None:
        raise definition_error(problems, source=label)
    try:
        dag = DagDef.from_document(doc)
    except ValidationError as exc:
        problems.extend(
            f"{label}: {p}" for p in explain(exc, doc) if not normaliser.already_reported(p)
        )
        raise definition_error(problems, source=label) from None
    problems.extend(f"{label}: {p}" for p in find_problems(dag, known_actions=known_actions))
    try:
        if deadline is not None:
            deadline.check()
    except TooSlow as exc:
        raise DefinitionError([f"{label}: {exc}"], source=label) from None
    problems.extend(f"{label}: {p}" for p in template_problems(dag))
    raise_problems(problems, source=label)
    return dag


def _too_big(label: str, size: int, limits: LoadLimits) -> NoReturn:
    raise DefinitionError(
        [
            f"{label}: is {size:,} bytes, more than the limit of {limits.max_bytes:,}"
            " — split it into smaller DAGs"
        ],
        source=label,
    )
