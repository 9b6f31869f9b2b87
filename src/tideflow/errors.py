"""The one exception tree of tideflow.

Every error the engine raises on purpose derives from :class:`TideflowError`; driver
errors are translated at the store's edge, so callers never need to import a driver.

    TideflowError
    ├── DefinitionError        a DAG definition (file, body or builder) is invalid
    ├── InputError             bad run input: vars, tags, selector, command arguments
    │   ├── LimitError         a value is larger than a size limit allows (names the limit)
    │   └── VarsError          a run's vars miss a required one or break a var's type or rule
    ├── NotFoundError          no such DAG, instance or task
    ├── ConflictError          the command does not fit the current state (HTTP 409)
    │   └── InvalidStateError  ... and it names the state it found
    ├── TemplateError          a param template failed to render (fails the task)
    ├── ActionError            an action failed; the reason becomes the task's reason
    │   ├── NonRetryableError  ... and retrying cannot help: the task fails at once
    │   └── TaskTimeoutError   an attempt ran past its deadline
    ├── LockLostError          a mutex or lease was lost before it was released
    ├── StoreError             the database failed or was unreachable
    │   ├── SchemaError        the schema is missing, older or newer than this code
    │   └── FencedWriteError   a write was refused because ownership moved on
    ├── WriteRefusedError      the database refuses the data itself (too large, bad text, a
    │                          constraint): writing it again cannot succeed, so it is not retried
    ├── MissingDependencyError an optional extra is not installed (names the extra)
    └── EngineClosedError      the engine was used after close()
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class TideflowError(Exception):
    """Root of every error tideflow raises on purpose."""

    #: short machine-readable code (used in the HTTP error body)
    code = "error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class DefinitionError(TideflowError):
    """A DAG definition is invalid. ``problems`` lists every problem found, each a full sentence
    naming the file and the task."""

    code = "invalid_definition"

    def __init__(self, problems: Sequence[str], *, source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = f"{len(self.problems)} problems:\n" + "\n".join(
                f"  - {p}" for p in self.problems
            )
        super().__init__(message, details={"problems": self.problems, "source": source})


class InputError(TideflowError):
    """Bad input to a run or a command (vars, tags, selector, ids, arguments)."""

    code = "invalid_input"


class LimitError(InputError):
    """A value (share data, an output, params, a run var) is larger than a size limit allows;
    the message names the limit and the setting that raises it."""

    code = "too_large"
class VarsError(InputError):
    """A run's vars do not fit the DAG's declarations: a required var is missing, or a value
    does not fit its var's type or rules (HTTP 422). ``details["problems"]`` lists each, as a
    sentence naming the var and the rule."""

    code = "invalid_vars"


class NotFoundError(TideflowError):
    code = "not_found"


class ConflictError(TideflowError):
    code = "conflict"


class InvalidStateError(ConflictError):
    """A command was given to an object whose state does not accept it."""

    code = "invalid_state"

    def __init__(self, message: str, *, state: str) -> None:
        super().__init__(message, details={"state": state})
        self.state = state


class TemplateError(TideflowError):
    code = "template_error"


class ActionError(TideflowError):
    code = "action_error"


class NonRetryableError(ActionError):
    """Raised by an action when another attempt cannot succeed (bad input, a quota that will
    not come back): the task fails at once, whatever its ``retry.maxAttempts``."""

    code = "non_retryable"


class TaskTimeoutError(ActionError):
    code = "timeout"


class LockLostError(TideflowError):
    code = "lock_lost"


class StoreError(TideflowError):
    code = "store_error"


class SchemaError(StoreError):
    code = "schema_error"


class FencedWriteError(StoreError):
    code = "fenced"


class WriteRefusedError(TideflowError):
    """The database refused a write for what it contains, not because it is unreachable: a
    value over its size limit, text it cannot store, a constraint. Unlike StoreError it is
    never retried: the same write would be refused again."""

    code = "write_refused"


class MissingDependencyError(TideflowError):
    code = "missing_dependency"


class EngineClosedError(TideflowError):
    code = "engine_closed"
