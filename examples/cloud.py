"""Actions for the create-cluster example: a tiny simulated cloud API, served in-process.

``tideflow run examples/create-cluster.yaml --actions examples.cloud`` imports this module
and calls :func:`register_actions`.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pydantic import BaseModel

from tideflow import ActionContext, ActionRegistry


class _CloudApi:
    """Serves GET /clusters/<id> -> {"id": ..., "status": "healthy", ...}."""

    def __init__(self) -> None:
        self.clusters: dict[str, dict[str, Any]] = {}
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                cid = self.path.rsplit("/", 1)[-1]
                cluster = api.clusters.get(cid)
                body = json.dumps(cluster or {"error": "no such cluster"}).encode()
                self.send_response(200 if cluster else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class AllocateParams(BaseModel):
    region: str
    size: int


class AllocateAction:
    """Allocates a cluster: records it in the simulated API and shares its id and API URL."""

    name = "cloud-allocate"
    params_model = AllocateParams

    def __init__(self) -> None:
        self._api: _CloudApi | None = None
        self._lock = threading.Lock()

    def run(self, ctx: ActionContext, params: AllocateParams) -> None:
        with self._lock:
            if self._api is None:
                self._api = _CloudApi()
        cid = f"c-{params.region}-{uuid.uuid4().hex[:8]}"
        self._api.clusters[cid] = {
            "id": cid, "region": params.region, "nodes": params.size, "status": "healthy",
        }
        ctx.trace(f"allocated {cid} with {params.size} nodes")
        ctx.share_data["clusterId"] = cid
        ctx.share_data["apiUrl"] = self._api.url


def register_actions(registry: ActionRegistry) -> None:
    registry.register(AllocateAction())
