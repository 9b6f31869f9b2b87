"""Optional extras: a missing one fails with a message that says what to install."""

from __future__ import annotations

import importlib.util

from .errors import MissingDependencyError

SERVER_EXTRA = "pip install 'tideflow[server]'"


def require_modules(what: str, modules: tuple[str, ...], install: str) -> None:
    """Raise :class:`MissingDependencyError` naming ``install`` when any of ``modules`` is
    not importable. Checked before importing, so the message is ours and not an ImportError
    from deep inside."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(
            f"{what} needs {', '.join(missing)}, which is not installed: {install}",
            details={"missing": missing, "install": install},
        )


def require_server_extra(what: str) -> None:
    """The HTTP API and the metrics need the ``server`` extra."""
    require_modules(what, ("fastapi", "uvicorn", "prometheus_client"), SERVER_EXTRA)


OTEL_EXTRA = "pip install 'tideflow[otel]'"


def require_otel_extra(what: str) -> None:
    """Traces need the ``otel`` extra (the OpenTelemetry SDK and its OTLP/HTTP exporter)."""
    require_modules(what, ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http"),
                    OTEL_EXTRA)
