"""The API is an optional extra: the core never imports it, and without it the error says
what to install."""

from __future__ import annotations

import subprocess
import sys


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)


def test_core_does_not_import_the_server_extra() -> None:
    proc = _python("import sys, tideflow, tideflow.cli.main\n"
                   "print(sorted(m for m in ('fastapi', 'uvicorn', 'prometheus_client')"
                   " if m in sys.modules))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_missing_extra_names_it() -> None:
    proc = _python("import sys; sys.modules['fastapi'] = None\n"
                   "from tideflow import MissingDependencyError\n"
                   "try:\n    import tideflow.api\n"
                   "except MissingDependencyError as exc:\n    print(exc.message)\n")
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'tideflow[server]'" in proc.stdout and "fastapi" in proc.stdout
