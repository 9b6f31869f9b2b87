"""Entry point of the ``tideflow`` command."""

from __future__ import annotations

import logging
import os

import typer

from .dags import dag_app
from .db import db_app
from .instances import ins_app
from .nodes import node_app
from .run import run_command
from .server import server_command

app = typer.Typer(
    name="tideflow",
    help="tideflow: a lightweight, embeddable, distributed DAG workflow engine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("run")(run_command)
app.command("server")(server_command)
app.add_typer(db_app, name="db")
app.add_typer(dag_app, name="dag")
app.add_typer(ins_app, name="ins")
app.add_typer(node_app, name="node")


def main() -> None:
    level = os.environ.get("TIDEFLOW_LOG", "WARNING").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # Alembic's INFO lines (plugins set up, the context chosen) say nothing to someone
        # running tideflow: shown at DEBUG only
        logging.getLogger("alembic").setLevel(logging.WARNING)
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
