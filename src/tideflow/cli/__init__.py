"""The ``tideflow`` command: a thin adapter over the engine's public API."""
