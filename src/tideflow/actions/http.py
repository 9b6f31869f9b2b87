"""The ``http`` action: one HTTP request, optionally saving (part of) the response."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, field_validator, model_validator

from ..errors import ActionError
from ..limits import show_bytes
from ..outputs import strict_json
from ..tracing import propagation_headers
from ._paramtypes import PARAMS_CONFIG, WeakStr
from .base import ActionContext

if TYPE_CHECKING:
    import httpx

_METHOD = re.compile(r"^[A-Z]+$")
#: how much of an unexpected response body goes into the reason
_BODY_PREVIEW = 300
#: the largest body kept in the task's output (larger ones are left out, and traced)
OUTPUT_BODY_LIMIT = 256 * 1024


def _with_trace(headers: dict[str, str]) -> dict[str, str]:
    """The request's headers plus the attempt's ``traceparent`` when it is traced, so the
    called service continues the trace; a trace header given in params wins."""
    extra = propagation_headers()
    if not extra:
        return headers
    given = {k.lower() for k in headers}
    return {**{k: v for k, v in extra.items() if k.lower() not in given}, **headers}


class HttpParams(BaseModel):
    """Params of :class:`HttpAction`."""

    model_config = PARAMS_CONFIG

    method: str = "GET"
    url: str = Field(min_length=1)
    headers: dict[str, WeakStr] = Field(default_factory=dict)
    query: dict[str, WeakStr | list[WeakStr]] = Field(default_factory=dict)
    #: a JSON document sent as the body (``json`` in definitions)
    json_body: Any = Field(default=None, alias="json")
    #: a text body sent as is
    body: str | None = None
    #: accepted status codes; any 2xx when not given
    expect_status: int | list[int] | None = Field(default=None, alias="expectStatus")
    #: per-request timeout; without it only the attempt's timeout applies
    timeout_secs: float | None = Field(default=None, alias="timeoutSecs", gt=0)
    follow_redirects: bool = Field(default=True, alias="followRedirects")
    save_as: str | None = Field(default=None, alias="saveAs", min_length=1)
    #: dotted path into a JSON response (``cluster.id``, ``items.0.id``); needs ``saveAs``
    save_field: str | None = Field(default=None, alias="saveField", min_length=1)

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("method")
    @classmethod
    def _check_method(cls, value: str) -> str:
        if not _METHOD.match(value):
            raise ValueError(f"method {value!r} is not an HTTP method such as GET or POST")
        return value

    @model_validator(mode="after")
    def _check(self) -> HttpParams:
        if self.json_body is not None and self.body is not None:
            raise ValueError("give either json or body, not both")
        if self.save_field is not None and self.save_as is None:
            raise ValueError("saveField needs saveAs: the share-data key to store the field in")
        return self

    def accepts(self, status: int) -> bool:
        if self.expect_status is None:
            return 200 <= status < 300
        if isinstance(self.expect_status, int):
            return status == self.expect_status
        return status in self.expect_status

    def expected(self) -> str:
        if self.expect_status is None:
            return "2xx"
        if isinstance(self.expect_status, int):
            return str(self.expect_status)
        return " or ".join(str(s) for s in self.expect_status)


class HttpAction:
    """Sends one request with httpx and checks its status (``expectStatus``, default 2xx).

    With ``saveAs``, the response body — or with ``saveField`` one field of the JSON response,
    found by a dotted path whose numeric parts index lists — is stored in share data under that
    key; a field that is not a string is stored as JSON text. The body is read up to the
    engine's ``max_value_bytes``: a larger one fails a task that saves it, and is otherwise left
    unread. The client is created on first use and kept for the action's life;
    :meth:`aclose` releases it.

    The task's output is ``{status, headers, json, text}``: ``json`` is the parsed body when
    it is JSON, else ``text`` is the body (a body over 256 KiB is left out of both).
    """

    name = "http"
    params_model = HttpParams

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None

    def _get_client(self) -> httpx.AsyncClient:
        # imported on first use: httpx is a fifth of a node's start-up CPU, which a starved
        # machine gives slowly, and most nodes never send a request
        import httpx

        if self._client is None:
            # no client-wide timeout: the attempt's deadline bounds a request unless the task
            # asks for a shorter one
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(None))
        return self._client

    async def aclose(self) -> None:
        """Close the connection pool; a later request opens a new one."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def run(self, ctx: ActionContext, params: HttpParams) -> dict[str, Any]:
        import httpx  # see _get_client

        request = f"{params.method} {params.url}"
        timeout: Any = (
            httpx.USE_CLIENT_DEFAULT if params.timeout_secs is None else params.timeout_secs
        )
        # the body is read up to the engine's value limit and no further: a response larger
        # than anything that could be stored is never held in memory whole
        cap = ctx.limits.max_value_bytes
        try:
            async with self._get_client().stream(
                params.method,
                params.url,
                headers=_with_trace(params.headers),
                params=params.query,
                json=params.json_body,
                content=params.body,
                timeout=timeout,
                follow_redirects=params.follow_redirects,
            ) as response:
                raw, over = await _read_capped(response, cap)
        except httpx.TimeoutException as exc:
            raise ActionError(
                f"{request}: no response within timeoutSecs={params.timeout_secs}"
            ) from exc
        except httpx.InvalidURL as exc:
            raise ActionError(f"{request}: invalid URL: {exc}") from exc
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise ActionError(f"{request}: request failed: {reason}") from exc
        ctx.trace(f"{request} -> {response.status_code}")
        text = raw.decode(response.encoding or "utf-8", errors="replace")
        if not params.accepts(response.status_code):
            cut = len(text) > _BODY_PREVIEW or over
            preview = text[:_BODY_PREVIEW] + ("..." if cut else "")
            # the status is matched against retry.nonRetryable (default: 4xx but 408, 429)
            raise ActionError(
                f"{request}: status {response.status_code}, expected {params.expected()}:"
                f" {preview}",
                details={"httpStatus": response.status_code},
            )
        if params.save_as is not None:
            if over:
                raise ActionError(
                    f"{request}: the response body is larger than the limit of "
                    f"{show_bytes(cap)} (max_value_bytes), too large to save in share data as "
                    f"{params.save_as!r}; the rest was not read"
                )
            if params.save_field is None:
                ctx.share_data[params.save_as] = text
            else:
                ctx.share_data[params.save_as] = extract_field(text, params.save_field)
        return _output(ctx, response, text, None if over else len(raw))


def _output(ctx: ActionContext, response: httpx.Response, text: str,
            size: int | None) -> dict[str, Any]:
    """The task's output: status, headers (lower-case names, repeated ones joined by ', '),
    and the body parsed as JSON when it is JSON, else as text (``size`` None: the body was
    larger than what was read)."""
    headers: dict[str, str] = {}
    for name, value in response.headers.multi_items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    out: dict[str, Any] = {"status": response.status_code, "headers": headers,
                           "json": None, "text": None}
    if size is None or size > OUTPUT_BODY_LIMIT:
        shown = "its limit" if size is None else f"{size:,} bytes"
        ctx.trace(f"the body ({shown}) is larger than {OUTPUT_BODY_LIMIT:,} bytes: it is"
                  " not kept in the task's output")
        return out
    try:
        out["json"] = strict_json(text) if text.strip() else None
    except ValueError:
        out["text"] = text
    else:
        if out["json"] is None:
            out["text"] = text  # an empty body (or a JSON null) is text
    return out


async def _read_capped(response: httpx.Response, cap: int) -> tuple[bytes, bool]:
    """Up to ``cap`` bytes of the body, and whether there was more (left unread)."""
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > cap:
        return b"", True
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > cap:
            return bytes(body[:cap]), True
    return bytes(body), False


def extract_field(text: str, path: str) -> Any:
    """The value at dotted ``path`` in the JSON document ``text``; numeric parts index lists."""
    try:
        value: Any = json.loads(text)
    except ValueError as exc:
        preview = text[:100]
        raise ActionError(
            f"saveField {path!r} needs a JSON response, but the body is not JSON: {preview!r}"
        ) from exc
    walked: list[str] = []
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            where = ".".join(walked) or "the top level"
            raise ActionError(
                f"saveField path {path!r} not found in the response: no {part!r} at {where}"
            )
        walked.append(part)
    return value
