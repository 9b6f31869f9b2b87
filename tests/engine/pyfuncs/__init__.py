"""Functions the python action calls in the engine tests."""

from __future__ import annotations


def add(a: str, b: int) -> int:
    # rendered template values arrive as text; literal YAML numbers keep their type
    return int(a) + b


class QuotaError(Exception):
    """A failure that another attempt cannot fix."""


class RegionQuotaError(QuotaError):
    pass


CALLS: dict[str, int] = {}


def over_quota(key: str) -> None:
    CALLS[key] = CALLS.get(key, 0) + 1
    raise RegionQuotaError(f"no quota left in {key}")


def give_up(key: str) -> None:
    from tideflow import NonRetryableError

    CALLS[key] = CALLS.get(key, 0) + 1
    raise NonRetryableError(f"{key}: the input is wrong, retrying cannot help")


def describe(**kwargs: object) -> dict[str, str]:
    """The Python type of each argument: how typed vars arrive."""
    return {k: type(v).__name__ for k, v in kwargs.items()}
