"""Functions the python action calls in the engine tests."""

from __future__ import annotations


def add(a: str, b: int) -> int:
    # rendered template values arrive as text; literal YAML numbers keep their type
    return int(a) + b
