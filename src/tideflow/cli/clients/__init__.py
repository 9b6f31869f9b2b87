"""The one small interface the client verbs use, and its two implementations: over HTTP to a
server, and straight to a database through an engine."""

from __future__ import annotations

from .base import Client, InstanceQuery, UnavailableError, open_client

__all__ = ["Client", "InstanceQuery", "UnavailableError", "open_client"]
