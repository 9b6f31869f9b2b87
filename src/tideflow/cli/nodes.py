"""``tideflow node list``: the nodes of a deployment."""

from __future__ import annotations

import typer
from rich.console import Console

from .connect import DbOpt, JsonOpt, ServerOpt, with_client
from .render import nodes_table, print_json

node_app = typer.Typer(help="Nodes.", no_args_is_help=True)


@node_app.command("list")
def list_nodes(server: str | None = ServerOpt, db: str = DbOpt, as_json: bool = JsonOpt
               ) -> None:
    """The live nodes with role, leader flag, heartbeat, load, labels and actions."""
    nodes = with_client(server, db, lambda c: c.list_nodes())
    if as_json:
        print_json({"items": nodes})
    else:
        nodes_table(Console(), nodes)
