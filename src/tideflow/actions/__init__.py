"""Actions: the named units of work that tasks run."""

from .approval import ApprovalAction, ApprovalParams
from .base import Action, ActionContext, ActionRegistry, BlockTask, function_action
from .builtin import BUILTIN_NAMES, register_builtins
from .http import HttpAction, HttpParams
from .python import PythonAction, PythonParams
from .shell import ShellAction, ShellParams
from .wait import WaitAction, WaitParams, parse_duration

__all__ = [
    "BUILTIN_NAMES",
    "Action",
    "ActionContext",
    "ActionRegistry",
    "ApprovalAction",
    "ApprovalParams",
    "BlockTask",
    "HttpAction",
    "HttpParams",
    "PythonAction",
    "PythonParams",
    "ShellAction",
    "ShellParams",
    "WaitAction",
    "WaitParams",
    "function_action",
    "parse_duration",
    "register_builtins",
]
