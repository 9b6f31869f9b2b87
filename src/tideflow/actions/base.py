"""The action protocol, the context an action receives, and the per-engine action registry.

An action mirrors Fastflow's interface: ``run(ctx, params)`` is required; ``run_before``,
``run_after`` and ``retry_before`` are optional. Each may be a plain function or a coroutine
function; plain ones run in the engine's sized thread pool so they never stall the loop.
``params_model`` (a pydantic model or a dataclass) receives the rendered params, weakly typed
("1" becomes 1) as Fastflow decoded them.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol, runtime_checkable

from pydantic import TypeAdapter

from ..clock import Clock
from ..errors import ActionError, DefinitionError
from ..limits import Limits, text_bytes
from .tasklog import TaskLogger
from .weak import weaken


class BlockTask(Exception):
    """Raised by an action (through ``ctx.block()``) to put its task in ``blocked``.

    The task holds no execution slot while blocked; a ``continue`` command runs it again with
    ``ctx.continued`` set."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@runtime_checkable
class Action(Protocol):
    """What the engine needs of an action. Only ``name`` and ``run`` are required."""

    name: str

    def run(self, ctx: ActionContext, params: Any) -> Any: ...


class ShareData(MutableMapping[str, str]):
    """The instance's share data as seen by one task: reads see every write so far, writes are
    recorded so that they are committed with the task's result.

    A value over the engine's size limits is refused with LimitError (the write does not
    happen): uncaught, it fails the task with a reason naming the limit. :meth:`revert` undoes
    this task's writes (its result could not be stored)."""

    def __init__(self, data: dict[str, str], on_write: Callable[[str], None],
                 limits: Limits | None = None) -> None:
        self._data = data
        self._on_write = on_write
        self._closed = False
        self._limits = limits or Limits()
        #: each key's value before this task first wrote it (None: it had none)
        self._before: dict[str, str | None] = {}

    def close(self) -> None:
        """The attempt is over: later writes (from an abandoned thread) are refused."""
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise ActionError("this attempt is over: its share data can no longer change")

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._check_open()
        text = value if isinstance(value, str) else json.dumps(value)
        old = self._data.get(key)
        self._data[key] = text
        try:
            self._limits.check_share_data(key, self._data)
        except Exception:
            if old is None:
                del self._data[key]
            else:
                self._data[key] = old
            raise
        self._before.setdefault(key, old)
        self._on_write(key)

    def __delitem__(self, key: str) -> None:
        self._check_open()
        self._before.setdefault(key, self._data[key])
        del self._data[key]
        self._on_write(key)

    def written_bytes(self) -> int:
        """How much this task's writes weigh now (to find which task a refusal is about)."""
        return sum(text_bytes(self._data.get(k) or "") for k in self._before)

    def revert(self) -> bool:
        """Undo this task's writes; True when there were any."""
        for key, old in self._before.items():
            if old is None:
                self._data.pop(key, None)
            else:
                self._data[key] = old
        reverted = bool(self._before)
        self._before.clear()
        return reverted

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def set(self, key: str, value: Any) -> None:
        self[key] = value


async def _to_thread(fn: Callable[[], Any]) -> Any:
    """Outside an engine (an action called by a test): a thread of asyncio's own."""
    return await asyncio.to_thread(fn)


@dataclass
class ActionContext:
    """What an action is given besides its params."""

    dag_id: str
    instance_id: str
    task_id: str
    attempt: int
    #: the instance's vars: text for untyped vars, values of their types for typed ones
    vars: Mapping[str, Any]
    share_data: ShareData
    #: set when the task or its instance is canceled, or its attempt timed out
    cancelled: asyncio.Event
    #: ``time.monotonic()`` value of this attempt's deadline, None without a timeout
    deadline: float | None
    #: True when this run follows a ``continue`` command on a blocked task
    continued: bool = False
    #: the engine's size limits: what a share-data value or an output may weigh
    limits: Limits = field(default_factory=Limits)
    #: an approval's decision given with the continue (inputs, by, at), else None
    decision: Mapping[str, Any] | None = None
    #: the engine's clock: what :meth:`sleep` sleeps on
    clock: Clock = field(default_factory=Clock, repr=False)
    #: the attempt's log, a ``logging.Logger``-compatible object (see docs/logs.md)
    log: TaskLogger = field(default_factory=TaskLogger)
    _trace: Callable[[str, bool], None] = field(default=lambda m, f: None, repr=False)
    _call_sync: Callable[..., Awaitable[Any]] = field(default=_to_thread, repr=False)

    def trace(self, message: str, flush: bool = False) -> None:
        """Append a timestamped line to the task's traces; ``flush=True`` persists it at once."""
        self._trace(str(message), flush)

    def block(self, reason: str = "waiting for continue") -> NoReturn:
        """Put the task in ``blocked`` until a ``continue`` command."""
        raise BlockTask(reason)

    @property
    def is_cancelled(self) -> bool:
        return self.cancelled.is_set()

    async def sleep(self, secs: float) -> None:
        """Wait ``secs`` on the engine's clock: a sensor's pause between two looks, say.
        Under a test's skipping clock the wait takes no real time."""
        await self.clock.sleep(secs)

    async def run_sync(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call the sync ``fn`` in the engine's sized thread pool, as the engine calls sync
        actions: if the attempt ends first (timeout, cancel), its thread cannot be stopped,
        so it is abandoned, its result dropped, and the abandonment counted."""
        return await self._call_sync(functools.partial(fn, *args, **kwargs))


Hook = Callable[..., Any]


class ActionSpec:
    """An action as the engine holds it: its callables resolved once, with sync/async known."""

    def __init__(self, action: Any, name: str | None = None) -> None:
        self.action = action
        self.name: str = name or getattr(action, "name", "") or ""
        if not self.name:
            raise DefinitionError([f"action {action!r} has no name"])
        run = getattr(action, "run", None)
        if run is None or not callable(run):
            raise DefinitionError([f"action '{self.name}' has no run(ctx, params) method"])
        self.run: Hook = run
        self.run_before: Hook | None = getattr(action, "run_before", None)
        self.run_after: Hook | None = getattr(action, "run_after", None)
        self.retry_before: Hook | None = getattr(action, "retry_before", None)
        model = getattr(action, "params_model", None)
        self._model: Any = model
        self._adapter: TypeAdapter[Any] | None = TypeAdapter(model) if model is not None else None
        #: whether an attempt occupies one of the executor's slots (waits and approvals do not)
        self.holds_slot: bool = bool(getattr(action, "holds_slot", True))
        #: attempts of this action running at once across the whole cluster (None: no limit),
        #: for actions that call a fragile API
        limit = getattr(action, "max_concurrency", None)
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise DefinitionError([f"action '{self.name}': max_concurrency must be a positive"
                                   " integer"])
        self.max_concurrency: int | None = limit

    @staticmethod
    def is_async(fn: Hook) -> bool:
        return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - callable objects with async __call__
        )

    def parse_params(self, rendered: Any) -> Any:
        if self._adapter is None:
            return rendered
        return self._adapter.validate_python(weaken(self._model, rendered), strict=False)

    def default_timeout(self, params: Any) -> float | None:
        """The action's own timeout for an attempt when the task sets none; None means none at
        all (approval); ``-1`` means the engine's default."""
        fn = getattr(self.action, "default_timeout", None)
        if fn is None:
            return -1.0
        value: float | None = fn(params)
        return value


class _FunctionAction:
    def __init__(
        self,
        name: str,
        fn: Callable[..., Any],
        params_model: Any = None,
        holds_slot: bool = True,
        max_concurrency: int | None = None,
    ) -> None:
        self.name = name
        self.params_model = params_model
        self.holds_slot = holds_slot
        self.max_concurrency = max_concurrency
        self._fn = fn
        # keep the coroutine-ness of the wrapped function visible to ActionSpec
        self.run: Callable[..., Any] = fn

    def __repr__(self) -> str:
        return f"<action {self.name} {self._fn!r}>"


def function_action(
    name: str,
    fn: Callable[[ActionContext, Any], Any | Awaitable[Any]],
    params_model: Any = None,
    *,
    max_concurrency: int | None = None,
) -> Any:
    """Make an action from one ``fn(ctx, params)`` function (sync or async)."""
    return _FunctionAction(name, fn, params_model, max_concurrency=max_concurrency)


class ActionRegistry:
    """The actions one engine has. There is no process-global registry."""

    def __init__(self) -> None:
        self._specs: dict[str, ActionSpec] = {}

    def register(self, action: Any, *, name: str | None = None, replace: bool = False) -> None:
        """Register an action object (anything with ``name`` and ``run``)."""
        spec = ActionSpec(action, name)
        if spec.name in self._specs and not replace:
            raise DefinitionError(
                [f"an action named '{spec.name}' is already registered; pass replace=True"]
            )
        self._specs[spec.name] = spec

    def add_function(
        self,
        name: str,
        fn: Callable[[ActionContext, Any], Any],
        *,
        params_model: Any = None,
        replace: bool = False,
        max_concurrency: int | None = None,
    ) -> None:
        self.register(function_action(name, fn, params_model, max_concurrency=max_concurrency),
                      replace=replace)

    def action(
        self, name: str, *, params_model: Any = None
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator form of :meth:`add_function`."""

        def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.add_function(name, fn, params_model=params_model)
            return fn

        return deco

    def get(self, name: str) -> ActionSpec:
        return self._specs[name]

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def names(self) -> frozenset[str]:
        return frozenset(self._specs)
