"""The routers of the API, each built over one engine (no module-level app or state)."""

from __future__ import annotations

from typing import Any

from ..schemas import ErrorBody

_WHY = {
    400: "Bad request: parameters, body or run input",
    401: "No token, or an unknown one",
    403: "A read-only token on a route that changes something",
    404: "No such DAG, instance or task",
    409: "The command does not fit the current state (named in `details.state`)",
    413: "The request body is too large",
    415: "The body is in a format this route does not read",
    422: "The definition is invalid (`details.problems` lists every problem)",
    503: "Not ready: the database is unreachable or its schema is not current",
}


def errors_for(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error statuses a route answers with."""
    return {s: {"model": ErrorBody, "description": _WHY[s]} for s in statuses}
