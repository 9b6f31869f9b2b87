"""The ``python`` action: call a function, only under module prefixes the node allows."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import re
import reprlib
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, Field, field_validator

from ..errors import ActionError
from ._paramtypes import PARAMS_CONFIG
from .base import ActionContext, BlockTask

_MODULE = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_FUNC = re.compile(rf"^(?P<module>{_MODULE})[:.](?P<name>[A-Za-z_][A-Za-z0-9_]*)$")
_PREFIX = re.compile(rf"^{_MODULE}$")


class PythonParams(BaseModel):
    """Params of :class:`PythonAction`."""

    model_config = PARAMS_CONFIG

    #: ``package.module:function`` (``package.module.function`` is read the same way)
    func: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    #: share-data key that receives the return value (non-strings as JSON text)
    save_as: str | None = Field(default=None, alias="saveAs", min_length=1)

    @field_validator("func")
    @classmethod
    def _check_func(cls, value: str) -> str:
        value = value.strip()
        match = _FUNC.match(value)
        if not match:
            raise ValueError(f"func {value!r} is not of the form package.module:function")
        # dunder names reach Python's machinery (__class__, __globals__, __builtins__...),
        # never a task function
        parts = [*match.group("module").split("."), match.group("name")]
        if any(p.startswith("__") for p in parts):
            raise ValueError(f"func {value!r}: names starting with '__' cannot be called")
        return value

    def target(self) -> tuple[str, str]:
        """The module path and the function name."""
        match = _FUNC.match(self.func)
        assert match is not None  # checked at validation
        return match.group("module"), match.group("name")


class PythonAction:
    """Calls ``func(**kwargs)``: awaited if it is a coroutine function, otherwise run in a
    worker thread. A function with a parameter named ``ctx`` receives the
    :class:`~tideflow.actions.base.ActionContext` there.

    Only functions of modules under ``allowed_prefixes`` can be called: a prefix ``mypkg``
    allows ``mypkg`` and ``mypkg.sub``, not ``mypkgevil``. The function found must itself be
    defined under an allowed prefix, so an allowed module cannot be used to reach one it
    merely imports. With no prefix, every call is refused.

    The function's return value is the task's output (it must be JSON-serialisable); one
    other than None is also traced and, with ``saveAs``, stored in share data.
    """

    name = "python"
    params_model = PythonParams

    def __init__(self, allowed_prefixes: Sequence[str] = ()) -> None:
        prefixes = tuple(p.strip() for p in allowed_prefixes if p.strip())
        for prefix in prefixes:
            if not _PREFIX.match(prefix):
                raise ValueError(f"{prefix!r} is not a module path such as 'mypkg.tasks'")
        self.allowed_prefixes = prefixes

    def allows(self, module: str) -> bool:
        return any(module == p or module.startswith(p + ".") for p in self.allowed_prefixes)

    async def run(self, ctx: ActionContext, params: PythonParams) -> Any:
        fn = await self._resolve(params)
        kwargs = dict(params.kwargs)
        signature = _signature(fn)
        if signature is not None and "ctx" in signature.parameters:
            if "ctx" in kwargs:
                raise ActionError(f"{params.func} takes ctx itself: remove 'ctx' from kwargs")
            kwargs["ctx"] = ctx
        if signature is not None:
            try:
                signature.bind(**kwargs)
            except TypeError as exc:
                raise ActionError(f"{params.func}: kwargs do not fit: {exc}") from exc
        result = await _call(ctx, params.func, fn, kwargs)
        if result is None:
            return None
        ctx.trace(f"returned {reprlib.repr(result)}")
        if params.save_as:
            try:
                ctx.share_data[params.save_as] = result
            except (TypeError, ValueError) as exc:
                raise ActionError(
                    f"cannot store the result of {params.func} as JSON in share data: {exc}"
                ) from exc
        return result

    async def _resolve(self, params: PythonParams) -> Callable[..., Any]:
        module_name, name = params.target()
        self._check_allowed(params.func, module_name)
        try:
            # importing runs module code, which may be slow: keep it off the loop
            module = await asyncio.to_thread(importlib.import_module, module_name)
        except Exception as exc:
            raise ActionError(
                f"cannot import module {module_name!r} for {params.func}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        fn = getattr(module, name, None)
        if fn is None or not callable(fn):
            raise ActionError(f"module {module_name!r} has no function {name!r}")
        defined_in = getattr(fn, "__module__", None)
        if not isinstance(defined_in, str) or not self.allows(defined_in):
            raise ActionError(
                f"{params.func} is defined in module {defined_in!r}, which is not under an "
                f"allowed prefix ({self._allowed_text()}); call it where it is defined, "
                "under an allowed prefix"
            )
        return fn  # type: ignore[no-any-return]

    def _check_allowed(self, func: str, module: str) -> None:
        if self.allows(module):
            return
        raise ActionError(
            f"{func} is not allowed: module {module!r} is not under an allowed prefix "
            f"({self._allowed_text()}); add its package to the node's python_allowed_prefixes "
            "to allow it"
        )

    def _allowed_text(self) -> str:
        if not self.allowed_prefixes:
            return "none are allowed on this node"
        return "allowed: " + ", ".join(self.allowed_prefixes)


def _signature(fn: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        # some builtins have no introspectable signature: call them as they are
        return None


async def _call(ctx: ActionContext, func: str, fn: Callable[..., Any], kwargs: dict[str, Any]
                ) -> Any:
    try:
        if inspect.iscoroutinefunction(fn):
            result = await fn(**kwargs)
        else:
            # in the engine's sized pool; a sync function cannot be interrupted: on
            # cancellation its thread is left to finish on its own (counted as abandoned)
            # and its result is dropped
            result = await ctx.run_sync(fn, **kwargs)
            if inspect.isawaitable(result):
                result = await result
    except (ActionError, BlockTask):
        raise
    except Exception as exc:
        raise ActionError(f"{func} raised {type(exc).__name__}: {exc}") from exc
    return result
