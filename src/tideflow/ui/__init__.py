"""The web UI: a static single-page app served by the HTTP API at ``/ui``.

It talks only to the public ``/api/v1`` routes, with the same token auth. The files live in
``static/`` and ship with the package; nothing is built at install time."""

from __future__ import annotations

from pathlib import Path

#: the directory holding ``index.html``, ``app.js`` and ``style.css``
STATIC_DIR = Path(__file__).resolve().parent / "static"

__all__ = ["STATIC_DIR"]
