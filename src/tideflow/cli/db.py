"""``tideflow db upgrade``: bring the schema to this version of tideflow."""

from __future__ import annotations

import typer

from ..store.url import make_store
from .common import DbOpt, TablePrefixOpt, cli_errors
from .connect import run_to_end

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


@db_app.command("upgrade")
def upgrade(
    db: str = DbOpt,
    table_prefix: str = TablePrefixOpt,
) -> None:
    """Apply every pending migration (under a database lock)."""

    async def _go() -> None:
        store = make_store(db, table_prefix=table_prefix)
        try:
            await store.open(migrate=True)
        finally:
            await store.close()

    with cli_errors():
        run_to_end(_go())
    typer.echo("schema is current")
