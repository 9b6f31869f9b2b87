"""``tideflow node list``: the nodes of a deployment."""

from __future__ import annotations

import typer

from .common import TablePrefixOpt
from .connect import DbOpt, JsonOpt, ServerOpt, with_client
from .render import nodes_table, out_console, print_json

node_app = typer.Typer(help="Nodes.", no_args_is_help=True)


@node_app.command("list")
def list_nodes(server: str | None = ServerOpt, db: str = DbOpt,
               table_prefix: str = TablePrefixOpt, as_json: bool = JsonOpt) -> None:
    """The live nodes with role, leader flag, heartbeat, load, labels and actions."""
    nodes = with_client(server, db, lambda c: c.list_nodes(), table_prefix=table_prefix)
    if as_json:
        print_json({"items": nodes})
    else:
        nodes_table(out_console(), nodes)
