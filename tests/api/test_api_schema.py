"""schemathesis against the running server's OpenAPI document: generated requests never get a
5xx, and the answers match the documented statuses, content types and shapes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from .harness import ApiServer

TOKEN = "schema-token-0123456789"


def test_no_server_errors_on_generated_input(tmp_path: Path) -> None:
    cli = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    srv = ApiServer(f"sqlite:///{tmp_path / 's.db'}", tmp_path, tokens=[TOKEN]).start()
    try:
        proc = subprocess.run(
            [
                cli, "run", f"{srv.url}/api/v1/openapi.json",
                "--checks", "not_a_server_error,status_code_conformance,"
                "content_type_conformance,response_schema_conformance",
                "--phases", "fuzzing,stateful",
                "--max-examples", "25",
                "--seed", "7",
                "--no-shrink",
                "--workers", "2",
                "--request-timeout", "20",
                "--warnings", "off",
                "--header", f"Authorization: Bearer {TOKEN}",
            ],
            capture_output=True, text=True, timeout=180, cwd=tmp_path,
        )
    finally:
        srv.stop()
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "Traceback" not in srv.log.read_text()
