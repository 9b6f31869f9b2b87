"""An etcd that cannot be reached never leaves a process hanging: a server that cannot join
stops on SIGTERM, and a client command gives up with exit code 5 naming etcd."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.postgres]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_server_and_clients_do_not_hang(postgres_url: str, tmp_path: Path) -> None:
    keeper = f"etcd://127.0.0.1:{_closed_port()}"
    env = {**os.environ, "TIDEFLOW_DB": postgres_url}
    env.pop("TIDEFLOW_SERVER", None)
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "tideflow.cli.main", "server", "--node-id", "w1",
             "--keeper", keeper], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while b"joining the cluster failed" not in log.read_bytes():
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        time.sleep(1.0)  # past the first retry
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=5) == 0, log.read_text()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()

    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "tideflow.cli.main", "node", "list"],
        env={**env, "TIDEFLOW_KEEPER": keeper}, capture_output=True, timeout=20)
    assert done.returncode == 5, done
    assert time.monotonic() - started < 10
    assert f"etcd at {keeper} (TIDEFLOW_KEEPER) cannot be reached" in done.stderr.decode()
