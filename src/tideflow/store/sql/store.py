"""The SQL store: one implementation of :class:`~tideflow.store.base.Store` for SQLite,
MySQL/MariaDB and PostgreSQL, on SQLAlchemy Core's async engine.

Its parts live beside it: the connection and schema handling in :mod:`.database`, the
queries by role in :mod:`.dags`, :mod:`.instances` and :mod:`.commands`.
"""

from __future__ import annotations

from ..base import Store
from .cluster import ClusterMethods
from .commands import CommandMethods
from .dags import DagMethods
from .instances import InstanceMethods
from .keeper import KeeperMethods
from .logs import LogMethods
from .schedules import ScheduleMethods


class SqlStore(
    DagMethods,
    InstanceMethods,
    CommandMethods,
    KeeperMethods,
    ClusterMethods,
    ScheduleMethods,
    LogMethods,
    Store,
):
    """The store on a SQL database; build it with :func:`tideflow.store.url.make_store`
    (or ``SqlStore(url, table_prefix=...)``).

    Besides the :class:`Store` primitives it offers :meth:`upgrade`,
    :meth:`current_revision`, :meth:`head_revision`, the :attr:`engine` and the
    :attr:`tables` it works on."""
