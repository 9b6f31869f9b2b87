"""``create_app(engine)`` mounted in a user's service that listens on every address: without
tokens it answers only loopback clients, unless opened on purpose with ``auth=None``."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

HERE = Path(__file__).resolve().parent


def _outward_address() -> str:
    """An address of this machine other than loopback (skip when it has none)."""
    for target in ("10.255.255.255", "192.0.2.255", "8.8.8.8"):
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.connect((target, 9))  # no packet is sent: this only picks a route
            address: str = probe.getsockname()[0]
        except OSError:
            continue
        finally:
            probe.close()
        if not address.startswith("127."):
            return address
    pytest.skip("this machine has no address other than loopback")


@contextmanager
def _service(tmp_path: Path, *extra: str) -> Iterator[int]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "mounted_main.py"), "--db",
         f"sqlite:///{tmp_path / 'svc.db'}", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("LISTENING "), proc.stderr.read() if proc.stderr else line
        yield int(line.split()[1])
    finally:
        proc.terminate()
        proc.wait(20)


def _get(host: str, port: int, path: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"http://{host}:{port}{path}", headers=headers, timeout=30)


def test_without_tokens_only_loopback_clients_are_answered(tmp_path: Path) -> None:
    outward = _outward_address()
    with _service(tmp_path) as port:
        assert _get("127.0.0.1", port, "/flows/api/v1/dags").json() == {"items": []}
        refused = _get(outward, port, "/flows/api/v1/dags")
        assert refused.status_code == 403
        assert refused.json()["error"] == "forbidden"
        assert "auth=None" in refused.json()["message"]
        for path in ("/flows/readyz", "/flows/metrics", "/flows/api/v1/openapi.json"):
            assert _get(outward, port, path).status_code == 403, path
        # liveness stays observable, and the user's own routes are the user's business
        assert _get(outward, port, "/flows/healthz").status_code == 200
        assert _get(outward, port, "/hello").status_code == 200


def test_auth_none_opens_it_on_purpose(tmp_path: Path) -> None:
    outward = _outward_address()
    with _service(tmp_path, "--open") as port:
        assert _get(outward, port, "/flows/api/v1/dags").json() == {"items": []}
        assert _get(outward, port, "/flows/readyz").json() == {"status": "ready"}


def test_with_tokens_every_client_needs_one(tmp_path: Path) -> None:
    outward = _outward_address()
    with _service(tmp_path, "--token", "s3cret") as port:
        for host in ("127.0.0.1", outward):
            assert _get(host, port, "/flows/api/v1/dags").status_code == 401
            assert _get(host, port, "/flows/api/v1/dags", "s3cret").status_code == 200
