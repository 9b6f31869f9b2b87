"""The base of every action's params model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Params(BaseModel):
    """Params as the DAG templates write them (camelCase), read into snake_case fields.

    Values arrive as rendered text ("3", "0.1") and are converted by type, as Fastflow did; an
    unknown key is refused so that a typo in a template fails the step with a clear reason
    instead of being ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
