"""What the parts of a running engine share: settings, store, group commit, executor,
actions and hooks. One per engine object; passed down, never global."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..actions.base import ActionRegistry
from ..store.base import Store
from .executor import Executor
from .group_commit import GroupCommit
from .hooks import HookEvent, Hooks
from .settings import EngineSettings

if TYPE_CHECKING:
    from .runner import InstanceRunner


@dataclass
class Runtime:
    settings: EngineSettings
    node_id: str
    store: Store
    commits: GroupCommit
    executor: Executor
    actions: ActionRegistry
    hooks: Hooks

    async def fire(self, event: HookEvent, runner: InstanceRunner) -> None:
        if self.hooks.has(event):
            await self.hooks.fire(event, runner.inst, self.executor)
