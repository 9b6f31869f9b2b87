"""Pausing Python's cyclic garbage collector over a burst of allocation.

Reading a large definition allocates millions of objects, none of them garbage yet. The
collector, triggered by the allocation count, then walks them all again and again — each full
pass holding the interpreter lock for seconds, in whichever thread allocates. That stalls
every other thread, the event loop (heartbeats, lease renewal) among them, and triples the
time of the read. Reference counting still frees everything freed meanwhile; only the search
for cycles waits until the burst is over.

The collector is one per process, so the pause is too: counted, so that overlapping pauses
(several threads) end when the last one does, and never turning on a collector that was off.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextmanager
def paused_gc() -> Iterator[None]:
    """The cyclic collector paused for the duration of the block."""
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
