"""Every filter, method, global and operator of the template sandbox is tried with huge
arguments (``widening_probe.py``, in a process with an address-space limit): none may build
a value past the size bound. The lists are read from the sandbox itself, so a filter or a
method added later (a Jinja upgrade) is tried too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tideflow.templates import _environment

PROBE = Path(__file__).with_name("widening_probe.py")


def test_no_builtin_widens_past_the_bound() -> None:
    done = subprocess.run([sys.executable, str(PROBE)], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["violations"] == []
    env = _environment()
    tried = report["tried"]
    assert tried["filter"] == sorted(env.filters)
    assert tried["global"] == sorted(n for n, g in env.globals.items() if callable(g))
    assert set(tried["operator"]) >= {"+", "-", "*", "/", "//", "%", "**", "~"}
    methods = {m.split(".", 1)[0] for m in tried["method"]}
    assert methods >= {"str", "bytes", "int", "float", "list", "tuple", "dict", "range"}
    assert {"str.ljust", "str.expandtabs", "str.format", "int.to_bytes"} <= set(tried["method"])
    assert report["cases"] > 2000
