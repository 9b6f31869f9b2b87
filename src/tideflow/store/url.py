"""Database URLs as users write them, and the store factory.

``sqlite:///relative.db``, ``sqlite:////abs/path.db``, ``mysql://user:pass@host:3306/db``,
``mariadb://...``, ``postgresql://user@host:5432/db`` and ``postgres://...`` map to the async
drivers (aiosqlite, asyncmy, asyncpg); an explicit ``+driver`` is accepted when it is async.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from ..errors import InputError, MissingDependencyError
from .base import Store

_BACKENDS = {
    "sqlite": "sqlite",
    "mysql": "mysql",
    "mariadb": "mysql",
    "postgresql": "postgresql",
    "postgres": "postgresql",
}
_DEFAULT_DRIVER = {"sqlite": "aiosqlite", "mysql": "asyncmy", "postgresql": "asyncpg"}
#: the async drivers accepted per backend, with what to install when one is missing
_ASYNC_DRIVERS: dict[str, dict[str, str]] = {
    "sqlite": {"aiosqlite": "pip install aiosqlite"},
    "mysql": {"asyncmy": "pip install 'tideflow[mysql]'", "aiomysql": "pip install aiomysql"},
    "postgresql": {
        "asyncpg": "pip install 'tideflow[postgres]'",
        "psycopg": "pip install 'psycopg[binary]'",
    },
}
_EXAMPLES = (
    "sqlite:///tideflow.db, mysql://user:pass@host:3306/db or postgresql://user@host:5432/db"
)
_PASSWORD_RE = re.compile(r"(://[^:/@]*:)[^@/]*@")


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed database URL, pointing at its async driver."""

    #: "sqlite", "mysql" or "postgresql"
    backend: str
    #: the SQLAlchemy URL with the async driver
    url: URL

    @property
    def is_memory(self) -> bool:
        """An in-memory SQLite database (tests only: it lives as long as the store)."""
        return self.backend == "sqlite" and self.url.database in (None, "", ":memory:")

    @property
    def sqlite_path(self) -> Path | None:
        """The database file of a SQLite URL (None for other backends or in memory)."""
        if self.backend != "sqlite" or self.is_memory or self.url.database is None:
            return None
        return Path(self.url.database)

    def display(self) -> str:
        """The URL with its password hidden, for messages and logs."""
        return self.url.render_as_string(hide_password=True)


def _redact(text: str) -> str:
    return _PASSWORD_RE.sub(r"\1***@", text)


def parse_url(url: str) -> DatabaseURL:
    """Parse a user's database URL; raise InputError saying what is wrong with it and
    MissingDependencyError when its driver is not installed."""
    if not isinstance(url, str) or not url.strip():
        raise InputError(f"the database URL is empty; expected for example {_EXAMPLES}")
    text = url.strip()
    try:
        parsed = make_url(text)
    except (ArgumentError, ValueError) as exc:
        raise InputError(
            f"database URL {_redact(text)!r} cannot be parsed ({exc}); expected for example "
            f"{_EXAMPLES}"
        ) from exc

    scheme, _, driver = parsed.drivername.partition("+")
    backend = _BACKENDS.get(scheme.lower())
    if backend is None:
        raise InputError(
            f"database URL {_redact(text)!r} names an unsupported database {scheme!r}; "
            "use sqlite, mysql, mariadb or postgresql"
        )
    drivers = _ASYNC_DRIVERS[backend]
    driver = driver.lower() or _DEFAULT_DRIVER[backend]
    if driver not in drivers:
        raise InputError(
            f"database URL {_redact(text)!r} names the driver {driver!r}, which is not an "
            f"async driver tideflow supports for {backend}; use one of: {', '.join(drivers)} "
            f"(or leave it out: {scheme}://...)"
        )

    if backend == "sqlite":
        if parsed.host or parsed.port or parsed.username:
            raise InputError(
                f"database URL {_redact(text)!r}: a SQLite URL has no host or user; write "
                "sqlite:///relative/path.db or sqlite:////absolute/path.db"
            )
    else:
        if not parsed.database:
            raise InputError(
                f"database URL {_redact(text)!r} names no database; add it after the host, "
                f"as in {scheme}://user@host:port/DBNAME"
            )
        port = parsed.port
        if port is not None and not 0 < port < 65536:
            raise InputError(
                f"database URL {_redact(text)!r} has port {port}; a port is 1 to 65535"
            )
        if backend == "mysql" and "charset" not in parsed.query:
            # the tables are utf8mb4; so must the connection be, or 4-byte characters break
            parsed = parsed.update_query_dict({"charset": "utf8mb4"})

    module = "psycopg" if driver == "psycopg" else driver
    if importlib.util.find_spec(module) is None:
        raise MissingDependencyError(
            f"the {backend} database needs the {driver} driver, which is not installed: "
            f"{drivers[driver]}"
        )
    # mariadb:// is MySQL's dialect too; it detects MariaDB itself when connecting
    canonical = {"sqlite": "sqlite", "mysql": "mysql", "postgresql": "postgresql"}[backend]
    return DatabaseURL(backend, parsed.set(drivername=f"{canonical}+{driver}"))


def make_store(url: str, *, table_prefix: str = "tf_") -> Store:
    """The store for a database URL (not yet open: call ``await store.open()``).

    ``table_prefix`` starts every table name, so several deployments can share a database."""
    from .sql.store import SqlStore  # the SQL store imports this module for parse_url

    return SqlStore(parse_url(url), table_prefix=table_prefix)
