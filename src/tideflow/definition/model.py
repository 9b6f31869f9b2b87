"""The DAG definition model, Fastflow's keys plus tideflow's extensions.

The model is the single in-memory form of a definition, whether it came from a YAML/JSON file,
an API body or the Python builder. ``DagDef.to_dict()`` gives the camelCase document that loads
back to an equal model (preCheck as an ordered list, so JSON columns cannot reorder it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from ..gcpause import paused_gc
from ..states import DagStatus
from .vartypes import VAR_TYPES, VarType, VarValueError, check_rules, convert, text

# allow_inf_nan=False: a number too large for a float (a 5,000-digit timeoutSecs) or a
# spelled-out inf/nan is refused, never read as an endless timeout.
_CONFIG = ConfigDict(populate_by_name=True, extra="forbid", frozen=True, allow_inf_nan=False)
_CLASS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class VarDef(BaseModel):
    """A declared variable. Untyped, its values are text, as in Fastflow; with a ``type``
    they are values of that type (a default written as text, such as ``"3"`` for an integer
    or ``'["a"]'`` for a list, is converted), checked against the var's rules."""

    model_config = _CONFIG

    desc: str = ""
    #: the value when a run gives none; a typed var without one has null
    default_value: Any = Field("", alias="defaultValue")
    secret: bool = False
    type: VarType | None = None
    #: a run must give it (a non-empty value)
    required: bool = False
    enum: tuple[Any, ...] | None = Field(None, min_length=1)
    #: a regular expression the (text) value must match somewhere (anchor it with ^...$)
    pattern: str | None = None
    minimum: int | float | None = None
    maximum: int | float | None = None

    @model_validator(mode="before")
    @classmethod
    def _typed_values(cls, data: Any) -> Any:
        """The default and the enum as values of the var's type."""
        if not isinstance(data, dict):
            return data
        var_type = data.get("type")
        if var_type is not None and var_type not in VAR_TYPES:
            return data  # the Literal reports it
        out = dict(data)
        secret = bool(out.get("secret"))
        enum = out.get("enum")
        if isinstance(enum, list | tuple):
            items = []
            for i, item in enumerate(enum):
                try:
                    items.append(convert(item, var_type))
                except VarValueError as exc:
                    raise ValueError(f"enum[{i}] {exc.hidden() if secret else exc}") from None
            out["enum"] = items
        key = "defaultValue" if "defaultValue" in out else "default_value"
        default = out.get(key, "")
        if default is None or (var_type is not None and default == ""):
            # no default: untyped vars default to "", as in Fastflow; typed ones to null
            out[key] = "" if var_type is None else None
        else:
            try:
                out[key] = convert(default, var_type)
            except VarValueError as exc:
                raise ValueError(f"defaultValue {exc.hidden() if secret else exc}") from None
        return out

    @model_validator(mode="after")
    def _check_rules(self) -> VarDef:
        if self.pattern is not None:
            if self.type not in (None, "string"):
                raise ValueError(f"pattern applies to text: the var has type {self.type}")
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern {self.pattern!r} is not a regular expression: {exc}"
                                 ) from None
        for rule in ("minimum", "maximum"):
            if getattr(self, rule) is not None and self.type not in ("integer", "number"):
                raise ValueError(f"{rule} applies to numbers: give the var type integer or"
                                 " number")
        if (self.minimum is not None and self.maximum is not None
                and self.minimum > self.maximum):
            raise ValueError(f"minimum {self.minimum:g} is above maximum {self.maximum:g}")
        if self.required and self.default_value not in ("", None):
            raise ValueError("a required var has no use for a defaultValue (a run must give"
                             " it): drop one of them")
        if self.default_value not in ("", None):
            try:
                self.check(self.default_value)
            except VarValueError as exc:
                raise ValueError(f"defaultValue {exc}") from None
        return self

    def check(self, value: Any) -> None:
        """Raise :class:`VarValueError` unless ``value`` (already of the var's type) fits
        its rules; the error never shows a secret var's value."""
        try:
            check_rules(value, enum=self.enum, pattern=self.pattern, minimum=self.minimum,
                        maximum=self.maximum)
        except VarValueError as exc:
            raise exc.hidden() if self.secret else exc from None

    def accept(self, value: Any) -> Any:
        """``value`` as a value of the var's type that fits its rules, else
        :class:`VarValueError` (never showing a secret var's value)."""
        try:
            converted = convert(value, self.type)
        except VarValueError as exc:
            raise exc.hidden() if self.secret else exc from None
        self.check(converted)
        return converted

    @model_serializer(mode="wrap")
    def _leave_out_unused_rules(self, handler: SerializerFunctionWrapHandler) -> Any:
        # a Fastflow var keeps the document it had: the typed keys appear only when used
        doc = handler(self)
        if isinstance(doc, dict):
            for key in ("type", "enum", "pattern", "minimum", "maximum"):
                if doc.get(key) is None:
                    doc.pop(key, None)
            if doc.get("required") is False:
                doc.pop("required", None)
            if "defaultValue" in doc and doc["defaultValue"] is None:
                doc.pop("defaultValue")  # a typed var without a default
        return doc


class Condition(BaseModel):
    """One preCheck condition: true when ``key`` of ``source`` is (not) among ``values``.

    A missing key makes the condition false, for ``not-in`` as well (Fastflow's rule)."""

    model_config = _CONFIG

    source: Literal["vars", "share-data"]
    key: str
    op: Literal["in", "not-in"]
    values: tuple[str, ...] = ()

    def holds(self, vars: Mapping[str, Any], share_data: Mapping[str, str]) -> bool:
        values = vars if self.source == "vars" else share_data
        if self.key not in values:
            return False
        # a typed var compares by its text: true, 3, ["a"]
        found = text(values[self.key]) in self.values
        return found if self.op == "in" else not found


class PreCheck(BaseModel):
    """A named check: when all its conditions hold, the task is skipped or blocked."""

    model_config = _CONFIG

    name: str = ""
    act: Literal["skip", "block"]
    conditions: tuple[Condition, ...] = ()

    def fires(self, vars: Mapping[str, Any], share_data: Mapping[str, str]) -> bool:
        return all(c.holds(vars, share_data) for c in self.conditions)


class RetryPolicy(BaseModel):
    """Automatic retry: ``max_attempts`` counts every attempt, the first included."""

    model_config = _CONFIG

    max_attempts: int = Field(1, alias="maxAttempts", ge=1, le=1000)
    backoff_secs: float = Field(1.0, alias="backoffSecs", ge=0)
    max_backoff_secs: float = Field(300.0, alias="maxBackoffSecs", ge=0)
    #: failures not worth another attempt: exception class names (``QuotaError`` or
    #: ``mypkg.errors.QuotaError``, base classes match too), exit codes of ``shell``, HTTP
    #: statuses of ``http`` (listed statuses replace its default: 4xx but 408 and 429)
    non_retryable: tuple[str | int, ...] = Field((), alias="nonRetryable", max_length=1000)

    @field_validator("non_retryable", mode="before")
    @classmethod
    def _names_or_codes(cls, v: Any) -> Any:
        if v is None:
            return ()
        if isinstance(v, str | int) and not isinstance(v, bool):
            v = [v]  # one name or code alone
        if not isinstance(v, list | tuple):
            return v  # pydantic reports it
        out: list[Any] = []
        for item in v:
            if isinstance(item, str) and item.strip().isdigit():
                item = int(item.strip())  # "404" is a status, not a class name
            if isinstance(item, bool) or not isinstance(item, str | int):
                raise ValueError(f"{item!r} is neither an exception class name nor a code")
            if isinstance(item, int) and not 0 <= item <= 999:
                raise ValueError(f"{item} is neither an exit code (0-255) nor an HTTP status")
            if isinstance(item, str) and not _CLASS_NAME.match(item):
                raise ValueError(f"{item!r} is not an exception class name such as QuotaError"
                                 " or mypkg.errors.QuotaError")
            out.append(item)
        return tuple(out)

    def delay(self, attempt: int, jitter: float) -> float:
        """Back-off before the attempt after ``attempt`` (1-based); ``jitter`` in [0, 1)."""
        base = self.backoff_secs * float(2 ** max(0, attempt - 1))
        capped = min(base, self.max_backoff_secs) if self.max_backoff_secs else base
        # full jitter over the upper quarter keeps retries of many tasks from lining up
        return capped * (0.75 + 0.25 * jitter)


#: which outcome of its parents a task runs after (DESIGN §7)
RunIf = Literal["success", "failed", "always"]

#: the id prefix of the tasks that compensate a task (``compensate:alloc``): reserved
COMPENSATE_PREFIX = "compensate:"


class Compensation(BaseModel):
    """What undoes a succeeded task when its instance ends failed or canceled (a saga step).

    Its params render like the task's own (vars, share data, task outputs); ``retry`` and
    ``timeoutSecs`` default to the compensated task's."""

    model_config = _CONFIG

    action_name: str = Field(alias="actionName", min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    timeout_secs: float | None = Field(None, alias="timeoutSecs", ge=0)
    retry: RetryPolicy | None = None

    @field_validator("params", mode="before")
    @classmethod
    def _none_params(cls, v: Any) -> Any:
        return {} if v is None else v


# Up to this many tasks are validated in one call (see DagDef.from_document).
_TASKS_AT_ONCE = 64


class TaskDef(BaseModel):
    model_config = _CONFIG

    id: str = Field(min_length=1)
    name: str = ""
    depend_on: tuple[str, ...] = Field((), alias="dependOn")
    action_name: str = Field(alias="actionName", min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    timeout_secs: float = Field(0, alias="timeoutSecs", ge=0)
    pre_check: tuple[PreCheck, ...] = Field((), alias="preCheck")
    retry: RetryPolicy | None = None
    #: success: every parent success or skipped; failed: every parent final, one failed;
    #: always: every parent final (also after a cancel)
    run_if: RunIf = Field("success", alias="runIf")
    compensate: Compensation | None = None

    @field_validator("depend_on", mode="before")
    @classmethod
    def _none_is_empty(cls, v: Any) -> Any:
        return () if v is None else v

    @field_validator("params", mode="before")
    @classmethod
    def _none_params(cls, v: Any) -> Any:
        return {} if v is None else v

    @field_validator("pre_check", mode="before")
    @classmethod
    def _precheck_map_or_list(cls, v: Any) -> Any:
        # Fastflow writes preCheck as a map of named checks; keep the order written.
        if v is None:
            return ()
        if isinstance(v, dict):
            out = []
            for name, check in v.items():
                if isinstance(check, dict):
                    out.append({"name": str(name), **check})
                else:
                    out.append(check)
            return out
        return v

    @property
    def display_name(self) -> str:
        return self.name or self.id


class DagDef(BaseModel):
    model_config = _CONFIG

    id: str = Field(min_length=1)
    name: str = ""
    desc: str = ""
    vars: dict[str, VarDef] = Field(default_factory=dict)
    cron: str | None = None
    timezone: str | None = None
    #: vars of the runs the cron trigger starts (over the declared defaults)
    cron_vars: dict[str, str] = Field(default_factory=dict, alias="cronVars")
    #: after the scheduler was down: run only the latest missed tick, or each (capped)
    catchup: Literal["latest", "all"] = "latest"
    max_catchup: int = Field(10, alias="maxCatchup", ge=1, le=10_000)
    #: at most this many unfinished instances; more wait in `init`, in submission order
    max_active_runs: int | None = Field(None, alias="maxActiveRuns", ge=1)
    #: a cron tick when maxActiveRuns is reached: queue it, or skip it
    cron_overlap: Literal["queue", "skip"] = Field("queue", alias="cronOverlap")
    status: DagStatus = DagStatus.NORMAL
    tasks: tuple[TaskDef, ...] = Field(min_length=1)

    @field_validator("vars", "cron_vars", mode="before")
    @classmethod
    def _none_vars(cls, v: Any) -> Any:
        return {} if v is None else v

    @model_validator(mode="before")
    @classmethod
    def _drop_fastflow_bookkeeping(cls, data: Any) -> Any:
        # Fastflow's exported documents carry its own timestamps; they mean nothing here.
        if isinstance(data, dict) and ("createdAt" in data or "updatedAt" in data):
            data = {k: v for k, v in data.items() if k not in ("createdAt", "updatedAt")}
        return data

    def task(self, task_id: str) -> TaskDef:
        for t in self.tasks:
            if t.id == task_id:
                return t
        raise KeyError(task_id)

    def default_vars(self) -> dict[str, Any]:
        return {name: v.default_value for name, v in self.vars.items()}

    def secret_vars(self) -> frozenset[str]:
        return frozenset(name for name, v in self.vars.items() if v.secret)

    def secret_defaults(self) -> list[str]:
        """The values secret vars take without a run's own: ``defaultValue`` and ``cronVars``."""
        secret = self.secret_vars()
        values = [self.vars[name].default_value for name in secret]
        values += [v for name, v in self.cron_vars.items() if name in secret]
        return [v for v in values if v]

    def action_names(self) -> frozenset[str]:
        names = {t.action_name for t in self.tasks}
        names.update(t.compensate.action_name for t in self.tasks if t.compensate is not None)
        return frozenset(names)

    def to_dict(self) -> dict[str, Any]:
        """The camelCase document (JSON-safe) that loads back to an equal model.

        Dumped a task at a time: one dump of thousands of tasks holds the interpreter lock
        for a second or more, stalling every other thread (the event loop among them)."""
        top = self.model_dump(mode="json", by_alias=True, exclude={"tasks"})
        with paused_gc():
            tasks = [t.model_dump(mode="json", by_alias=True) for t in self.tasks]
        fields = type(self).model_fields.items()
        keys = [f.alias or name for name, f in fields]
        return {k: tasks if k == "tasks" else top[k] for k in keys}

    @classmethod
    def from_document(cls, doc: Any) -> DagDef:
        """``model_validate``, a task at a time for the same reason as :meth:`to_dict`. A
        document with a bad task is validated whole, so that the error locates it."""
        tasks = doc.get("tasks") if isinstance(doc, dict) else None
        if isinstance(tasks, list | tuple) and len(tasks) > _TASKS_AT_ONCE:
            try:
                with paused_gc():
                    checked = tuple(TaskDef.model_validate(t) for t in tasks)
            except ValidationError:
                pass
            else:
                return cls.model_validate({**doc, "tasks": checked})
        return cls.model_validate(doc)
