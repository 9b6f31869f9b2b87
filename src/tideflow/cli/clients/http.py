"""The client of a tideflow server's HTTP API (httpx); errors come back as tideflow's own."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from ...definition.loader import load_dag_file
from ...errors import (
    ConflictError,
    DefinitionError,
    InputError,
    InvalidStateError,
    NotFoundError,
    TideflowError,
    VarsError,
)
from .base import Client, InstanceQuery, Json, UnavailableError

API = "/api/v1"
#: on top of a command's own wait, for the server to answer
_SLACK_SECS = 30.0


def _error_from(resp: httpx.Response) -> TideflowError:
    """The response's error body as the exception the engine would have raised."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "message" in body:
        message = str(body.get("message"))
        details = body.get("details")
    else:
        message = f"the server answered {resp.status_code}: {resp.text[:200]}"
        details = None
    status = resp.status_code
    if status == 404:
        return NotFoundError(message, details=details)
    if status == 409:
        state = details.get("state") if isinstance(details, dict) else None
        if state:
            return InvalidStateError(message, state=str(state))
        return ConflictError(message, details=details)
    if status == 422 and isinstance(body, dict) and body.get("error") == VarsError.code:
        return VarsError(message, details=details)
    if status == 422:
        problems = details.get("problems") if isinstance(details, dict) else None
        return DefinitionError(problems or [message])
    if status in (400, 413, 415):
        return InputError(message, details=details)
    if status in (401, 403):
        return UnavailableError(f"{message} (set TIDEFLOW_TOKEN)", details=details)
    if status in (502, 503, 504):
        return UnavailableError(message, details=details)
    return TideflowError(message, details=details)


class HttpClient(Client):
    def __init__(self, server: str, *, token: str | None = None, timeout: float = 30.0) -> None:
        self.target = server.rstrip("/")
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.AsyncClient(base_url=self.target, headers=headers, timeout=timeout)

    async def open(self) -> None:
        return None  # httpx connects on the first request

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, *, wait: float | None = None,
                    **kwargs: Any) -> httpx.Response:
        timeout = None if wait is None else httpx.Timeout(wait + _SLACK_SECS)
        try:
            if timeout is not None:
                kwargs["timeout"] = timeout
            resp = await self._http.request(method, API + path, **kwargs)
        except httpx.HTTPError as exc:
            raise UnavailableError(
                f"cannot reach the tideflow server at {self.target}: {exc}"
            ) from None
        if resp.is_error:
            raise _error_from(resp)
        return resp

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return (await self._call(method, path, **kwargs)).json()

    async def apply_dag(self, path: Path) -> Json:
        # loaded here first, so problems in the file name the file and its line
        dag = load_dag_file(path)
        result: Json = await self._json("POST", "/dags", json=dag.to_dict())
        return result

    async def list_dags(self) -> list[Json]:
        items: list[Json] = (await self._json("GET", "/dags"))["items"]
        return items

    async def get_dag(self, dag_id: str, *, fire_times: int = 5) -> Json:
        result: Json = await self._json("GET", f"/dags/{_seg(dag_id)}",
                                        params={"next": str(fire_times)})
        return result

    async def set_dag_paused(self, dag_id: str, paused: bool) -> Json:
        verb = "pause" if paused else "resume"
        result: Json = await self._json("POST", f"/dags/{_seg(dag_id)}/{verb}")
        return result

    async def delete_dag(self, dag_id: str, *, force: bool) -> None:
        await self._call("DELETE", f"/dags/{_seg(dag_id)}",
                         params={"force": "true"} if force else None)

    async def run_dag(
        self,
        dag_id: str,
        *,
        vars: Mapping[str, str],
        tags: Mapping[str, str],
        selector: Mapping[str, str],
        priority: int,
        idempotency_key: str | None,
        wait: float | None,
    ) -> Json:
        body: dict[str, Any] = {"vars": dict(vars), "tags": dict(tags),
                                "selector": dict(selector), "priority": priority}
        if idempotency_key is not None:
            body["idempotencyKey"] = idempotency_key
        if wait:
            body["wait"] = wait
        result: Json = await self._json("POST", f"/dags/{_seg(dag_id)}/run", json=body,
                                        wait=wait)
        return result

    async def list_instances(self, query: InstanceQuery) -> tuple[list[Json], str | None]:
        params: list[tuple[str, str]] = [("limit", str(query.limit))]
        if query.dag_id:
            params.append(("dagId", query.dag_id))
        params += [("status", s) for s in query.statuses]
        params += [("tag", f"{k}={v}") for k, v in (query.tags or {}).items()]
        if query.created_after:
            params.append(("createdAfter", query.created_after.isoformat()))
        if query.created_before:
            params.append(("createdBefore", query.created_before.isoformat()))
        if query.cursor:
            params.append(("cursor", query.cursor))
        page = await self._json("GET", "/dag-instances", params=params)
        return page["items"], page["nextCursor"]

    async def get_instance(self, instance_id: str) -> Json:
        result: Json = await self._json("GET", f"/dag-instances/{_seg(instance_id)}")
        return result

    async def command(
        self, kind: str, instance_id: str, task_ids: Sequence[str] | None, wait: float | None,
        decision: Mapping[str, Any] | None = None,
    ) -> Json:
        body: dict[str, Any] = {k: v for k, v in (decision or {}).items() if v is not None}
        if task_ids:
            body["taskIds"] = list(task_ids)
        if wait:
            body["wait"] = wait
        result: Json = await self._json(
            "POST", f"/dag-instances/{_seg(instance_id)}/{kind}", json=body, wait=wait
        )
        return result

    async def list_nodes(self) -> list[Json]:
        items: list[Json] = (await self._json("GET", "/nodes"))["items"]
        return items

    def _logs_path(self, instance_id: str, task_id: str | None) -> str:
        if task_id is None:
            return f"/dag-instances/{_seg(instance_id)}/logs"
        return f"/dag-instances/{_seg(instance_id)}/tasks/{_seg(task_id)}/logs"

    async def task_logs(self, instance_id: str, task_id: str | None, *, attempt: int | None,
                        after: int | None, tail: int | None) -> Json:
        params = {k: str(v) for k, v in (("attempt", attempt), ("after", after),
                                         ("tail", tail)) if v is not None}
        result: Json = await self._json("GET", self._logs_path(instance_id, task_id),
                                        params=params)
        return result

    async def follow_task_logs(self, instance_id: str, task_id: str | None, *,
                               attempt: int | None, after: int | None) -> AsyncIterator[Json]:
        params = {k: str(v) for k, v in (("attempt", attempt), ("after", after))
                  if v is not None}
        params["follow"] = "true"
        path = API + self._logs_path(instance_id, task_id)
        try:
            async with self._http.stream("GET", path, params=params, timeout=httpx.Timeout(
                    30.0, read=None), headers={"Accept": "text/event-stream"}) as resp:
                if resp.is_error:
                    await resp.aread()
                    raise _error_from(resp)
                # Server-Sent Events: a line per "data:" line, an "end" event once the task
                # is over; comments (":") keep the stream alive
                kind = ""
                async for text in resp.aiter_lines():
                    if text.startswith("event:"):
                        kind = text[6:].strip()
                    elif text.startswith("data:"):
                        if kind == "end":
                            return
                        yield json.loads(text[5:])
                    elif not text:
                        kind = ""
        except httpx.HTTPError as exc:
            raise UnavailableError(
                f"lost the log stream of the tideflow server at {self.target}: {exc}"
            ) from None


def _seg(value: str) -> str:
    """One path segment, escaped. A segment of dots only (``.``, ``..``) is escaped as
    ``%2E``: written plain, URL normalisation would take it as "this" or "the parent"
    segment, and the request would reach another route."""
    if value and value.strip(".") == "":
        return "%2E" * len(value)
    return quote(value, safe="")
