"""The SQL implementation of the store (SQLite, MySQL/MariaDB, PostgreSQL)."""

from .schema import Tables, build_tables
from .store import SqlStore

__all__ = ["SqlStore", "Tables", "build_tables"]
