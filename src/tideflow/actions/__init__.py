"""Actions: the named units of work that tasks run."""

from .base import Action, ActionContext, ActionRegistry, BlockTask, function_action

__all__ = ["Action", "ActionContext", "ActionRegistry", "BlockTask", "function_action"]
