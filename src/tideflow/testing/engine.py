"""Running DAGs in a test: an engine on an in-memory SQLite database, with chosen actions
replaced by fakes, on a clock that skips time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from ..actions.base import ActionContext, ActionRegistry, ActionSpec
from ..clock import Clock
from ..engine.dags import DagSource
from ..engine.engine import Engine
from ..engine.reads import is_settled
from ..engine.settings import EngineSettings
from ..errors import InvalidStateError
from ..store.records import InstanceRecord
from .clock import SkippingClock


@dataclass
class Call:
    """One call of a fake: the attempt it was made in and the params it was given."""

    task_id: str
    attempt: int
    params: Any
    vars: dict[str, Any]


@dataclass
class Fake:
    """An action that does what the test says and remembers how it was called.

    Attempt ``n`` raises ``raises[n-1]`` when there is such an entry and it is not None
    (``raises=[OSError("down"), None]`` fails the first attempt only); otherwise it returns
    ``returns``, or calls ``fn(ctx, params)`` when given and returns its result. ``share``
    is written to share data before returning. A sync ``fn`` runs in the engine's thread
    pool, as a sync action does (so a task's timeout ends it alike)."""

    returns: Any = None
    raises: list[BaseException | None] = field(default_factory=list)
    fn: Callable[[ActionContext, Any], Any] | None = None
    share: Mapping[str, str] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    async def __call__(self, ctx: ActionContext, params: Any) -> Any:
        self._begin(ctx, params)
        if self.fn is not None:
            result = self.fn(ctx, params)
            if asyncio.iscoroutine(result):
                result = await result
            return result
        return self.returns

    def run_sync(self, ctx: ActionContext, params: Any) -> Any:
        """The fake as a sync action, for a sync ``fn``: the engine runs it in its thread
        pool."""
        self._begin(ctx, params)
        return self.fn(ctx, params) if self.fn is not None else self.returns

    @property
    def is_sync(self) -> bool:
        """Its ``fn`` is a plain function (not a coroutine function)."""
        return self.fn is not None and not ActionSpec.is_async(self.fn)

    def _begin(self, ctx: ActionContext, params: Any) -> None:
        self.calls.append(Call(ctx.task_id, ctx.attempt, params, dict(ctx.vars)))
        index = ctx.attempt - 1
        if index < len(self.raises) and self.raises[index] is not None:
            raise self.raises[index]  # type: ignore[misc]
        for key, value in self.share.items():
            ctx.share_data[key] = value

    @property
    def attempts(self) -> list[int]:
        """The attempt numbers it was called in, in order."""
        return [c.attempt for c in self.calls]


FakeLike = Fake | Callable[[ActionContext, Any], Any]
Registrar = Callable[[ActionRegistry], None]


def _install_fakes(registry: ActionRegistry, fakes: Mapping[str, FakeLike]) -> None:
    """Put each fake in place of the action of its name. A fake of an action that has a
    params model is given params validated into that model, as the real one would be."""
    for name, fake in fakes.items():
        model = getattr(registry.get(name).action, "params_model", None) \
            if name in registry else None
        fn = fake if isinstance(fake, Fake) else Fake(fn=fake)
        # a sync fn is registered as a sync action: blocking, it must not stop the loop
        registry.add_function(name, fn.run_sync if fn.is_sync else fn, params_model=model,
                              replace=True)


@asynccontextmanager
async def memory_engine(
    *,
    actions: Registrar | Iterable[Any] | None = None,
    fakes: Mapping[str, FakeLike] | None = None,
    clock: Clock | None = None,
    settings: EngineSettings | None = None,
    dags: Iterable[DagSource] = (),
) -> AsyncIterator[Engine]:
    """A started engine on a fresh in-memory SQLite database, closed on exit.

    ``actions``: a function that registers actions on a registry (a service's
    ``register_actions``), or action objects. ``fakes``: action name → :class:`Fake` or
    ``fn(ctx, params)``, each replacing the action of that name (a built-in one too).
    ``clock``: a :class:`SkippingClock` by default, so back-off and waits take no time.
    ``dags`` are registered before the engine is handed over."""
    registry = ActionRegistry()
    if callable(actions):
        actions(registry)
    elif actions is not None:
        for action in actions:
            registry.register(action)
    settings = replace(settings or EngineSettings(), node_id=(settings.node_id if settings
                                                              else "") or "test-node")
    engine = Engine.from_url("sqlite:///:memory:", actions=registry, settings=settings,
                             clock=clock if clock is not None else SkippingClock())
    if fakes:
        _install_fakes(engine.actions, fakes)
    async with engine:
        for dag in dags:
            await engine.register_dag(dag)
        yield engine


async def run_dag(
    dag: DagSource,
    *,
    vars: Mapping[str, Any] | None = None,
    fakes: Mapping[str, FakeLike] | None = None,
    actions: Registrar | Iterable[Any] | None = None,
    clock: Clock | None = None,
    settings: EngineSettings | None = None,
    timeout: float = 30.0,
) -> InstanceRecord:
    """Register ``dag`` (a model, mapping, file path or YAML/JSON text) on a fresh
    :func:`memory_engine`, run it with ``vars`` and return the instance once it is final
    (or waits for a person). Raises InputError when it is not settled within ``timeout``
    seconds of real time."""
    async with memory_engine(actions=actions, fakes=fakes, clock=clock,
                             settings=settings) as engine:
        rec = await engine.register_dag(dag)
        inst = await engine.run_dag(rec.id, vars=vars, wait=timeout)
        if not is_settled(inst):
            raise InvalidStateError(f"instance {inst.id} of DAG '{rec.id}' is still "
                                    f"{inst.status.value} after {timeout:g}s",
                                    state=inst.status.value)
        return inst
