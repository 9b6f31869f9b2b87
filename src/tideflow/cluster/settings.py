"""A cluster node's timings and role: the one place their defaults live, for `tideflow
server` and for an application that embeds :class:`~tideflow.Engine` alike."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError

#: a node whose heartbeat is older than this is dead, and its instances move
DEFAULT_UNHEALTHY_SECS = 5.0
#: the leader's lease: a killed leader is replaced within it
DEFAULT_LEASE_SECS = 3.0
#: one heartbeat (which also renews or campaigns for the lease) per interval
DEFAULT_HEARTBEAT_SECS = 1.5
#: the longest heartbeat interval, as a share of the lease: a leader renews in time even when
#: one renewal is lost or late
MAX_HEARTBEAT_SHARE = 0.6


@dataclass
class ClusterSettings:
    """Leave a timing at 0 for its default. The defaults: dead after 5 s of silence, a lease of
    3 s (or ``unhealthy_secs`` if smaller), a heartbeat every 1.5 s (or half the lease if
    smaller). A killed leader is replaced within the lease; the instances of any killed node
    move once it has been silent ``unhealthy_secs``."""

    role: str = "worker"  # worker | watcher
    #: a node whose heartbeat is older than this is dead (Fastflow's UnhealthyTime)
    unhealthy_secs: float = 0.0
    #: the leader's lease, renewed every heartbeat; a killed leader is replaced within it
    lease_secs: float = 0.0
    #: one heartbeat (which also renews or campaigns for the lease) per interval: an idle
    #: node's only regular query on PostgreSQL; at most 0.6 x the lease
    heartbeat_secs: float = 0.0
    #: poll intervals where the database cannot push (MySQL, SQLite)
    poll_busy_secs: float = 0.05
    poll_idle_secs: float = 1.0
    #: where the database pushes (PostgreSQL), how often the loops look anyway, in case a
    #: notification was missed
    catchup_secs: float = 30.0
    dispatch_batch: int = 500

    def __post_init__(self) -> None:
        if self.role not in ("worker", "watcher"):
            raise InputError(f"unknown role {self.role!r}: use worker or watcher")
        for name in ("unhealthy_secs", "lease_secs", "heartbeat_secs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise InputError(f"{name} {value!r}: give a number of seconds above 0 "
                                 "(0 for the default)")
        self.unhealthy_secs = float(self.unhealthy_secs or DEFAULT_UNHEALTHY_SECS)
        self.lease_secs = float(self.lease_secs or min(DEFAULT_LEASE_SECS, self.unhealthy_secs))
        self.heartbeat_secs = float(self.heartbeat_secs
                                    or min(DEFAULT_HEARTBEAT_SECS, self.lease_secs / 2))
        if self.heartbeat_secs > self.lease_secs * MAX_HEARTBEAT_SHARE:
            raise InputError(
                f"heartbeat_secs {self.heartbeat_secs:g} must be at most "
                f"{MAX_HEARTBEAT_SHARE:g} x the lease ({self.lease_secs:g} s), so that the "
                "leader renews it in time")
