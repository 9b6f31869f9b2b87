"""Sortable instance ids: 48 bits of milliseconds then 80 random bits, Crockford base32 (ULID
layout). Ids made later sort later, which gives list pagination a stable cursor for free."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class IdGenerator:
    """Monotonic within one generator: two ids in the same millisecond still sort in order."""

    def __init__(self) -> None:
        self._last_ms = -1
        self._last_rand = 0

    def new(self) -> str:
        ms = time.time_ns() // 1_000_000
        if ms <= self._last_ms:
            ms = self._last_ms
            rand = self._last_rand + 1
        else:
            rand = int.from_bytes(os.urandom(10), "big") >> 1  # leave room to increment
        self._last_ms, self._last_rand = ms, rand
        value = (ms << 80) | (rand & ((1 << 80) - 1))
        out = []
        for _ in range(26):
            out.append(_ALPHABET[value & 31])
            value >>= 5
        return "".join(reversed(out))
