"""A real API server in a subprocess (``server_main.py``), and httpx clients for it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


class ApiServer:
    def __init__(self, db_url: str, tmp: Path, *, tokens: list[str] | None = None,
                 node_id: str = "api-test-node", max_body: int | None = None) -> None:
        self.db_url = db_url
        self.max_body = max_body
        self.tmp = tmp
        self.node_id = node_id
        self.token_file: Path | None = None
        if tokens:
            self.token_file = tmp / "tokens"
            # written as the docs show them: a comment after each token
            self.token_file.write_text(
                "# test tokens\n" + "".join(f"{t}    # token {n}\n" for n, t in enumerate(tokens))
            )
        self.log = tmp / f"server-{node_id}.log"
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self, timeout: float = 30) -> ApiServer:
        cmd = [sys.executable, str(HERE / "server_main.py"), "--db", self.db_url,
               "--node-id", self.node_id]
        if self.token_file:
            cmd += ["--token-file", str(self.token_file)]
        if self.max_body is not None:
            cmd += ["--max-body", str(self.max_body)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                         stderr=err, text=True)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("LISTENING "):
                self.url = f"http://127.0.0.1:{int(line.split()[1])}"
                return self
            if not line and self.proc.poll() is not None:
                break
        self.stop()
        raise AssertionError(f"the API server did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kwargs)
