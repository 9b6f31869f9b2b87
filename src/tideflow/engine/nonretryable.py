"""Which failures are not worth another attempt (DESIGN §7): a ``NonRetryableError``, an
exception whose class ``retry.nonRetryable`` names, a ``shell`` exit code or an ``http`` status
it lists, and by default an ``http`` 4xx other than 408 (timeout) and 429 (too many requests)."""

from __future__ import annotations

from collections.abc import Iterator

from ..definition.model import RetryPolicy
from ..errors import NonRetryableError, TideflowError

#: 4xx statuses that say "try again later" rather than "this request is wrong"
_RETRYABLE_4XX = frozenset({408, 429})


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what caused it (an action may wrap the error it met)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def not_retried_because(exc: BaseException, policy: RetryPolicy | None) -> str | None:
    """Why the failure ``exc`` must not be retried, as a phrase; None when it may be."""
    listed = policy.non_retryable if policy is not None else ()
    names = {n for n in listed if isinstance(n, str)}
    codes = {c for c in listed if isinstance(c, int)}
    for err in _chain(exc):
        if isinstance(err, NonRetryableError):
            return "the action raised NonRetryableError"
        if names:
            for cls in type(err).__mro__:
                for name in (cls.__name__, f"{cls.__module__}.{cls.__qualname__}"):
                    if name in names:
                        return f"{name} is listed in retry.nonRetryable"
    details = exc.details if isinstance(exc, TideflowError) else None
    if not isinstance(details, dict):
        return None
    exit_code = details.get("exitCode")
    if isinstance(exit_code, int) and exit_code in codes:
        return f"exit code {exit_code} is listed in retry.nonRetryable"
    status = details.get("httpStatus")
    if isinstance(status, int):
        if codes:
            return f"HTTP status {status} is listed in retry.nonRetryable" \
                if status in codes else None
        if 400 <= status < 500 and status not in _RETRYABLE_4XX:
            return (f"HTTP status {status} is a client error (4xx other than 408 and 429 are not"
                    " retried unless retry.nonRetryable lists statuses)")
    return None
