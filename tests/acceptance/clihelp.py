"""Running the real ``tideflow`` command in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


class Cli:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.db = f"sqlite:///{tmp / 'cli.db'}"
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "TIDEFLOW_DB": self.db}

    def cmd(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "tideflow.cli.main", *args]

    def run(self, *args: str, timeout: float = 60, env_extra: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        env = {**self.env, **(env_extra or {})}
        return subprocess.run(self.cmd(*args), cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=timeout)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.cmd(*args), cwd=REPO, env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def write(self, name: str, text: str) -> Path:
        path = self.tmp / name
        path.write_text(text)
        return path

    @staticmethod
    def as_json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(proc.stdout)
        except json.JSONDecodeError:
            raise AssertionError(f"no JSON on stdout; stderr:\n{proc.stderr}") from None
        return data
