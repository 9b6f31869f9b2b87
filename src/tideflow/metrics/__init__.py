"""Prometheus metrics of an engine, in their own registry.

    from tideflow.metrics import MetricsObserver, serve_metrics

    metrics = MetricsObserver(engine)          # registers itself with engine.add_observer
    await serve_metrics(metrics, "0.0.0.0", 9100, stop=stop_event)

The HTTP API serves the same at ``/metrics``. Needs the ``server`` extra
(``pip install 'tideflow[server]'``).
"""

from __future__ import annotations

from ..extras import require_server_extra

require_server_extra("tideflow's metrics")

from .observer import NAME_SETS, PREFIX, MetricsObserver  # noqa: E402
from .server import MetricsApp, serve_metrics  # noqa: E402

__all__ = ["NAME_SETS", "PREFIX", "MetricsApp", "MetricsObserver", "serve_metrics"]
