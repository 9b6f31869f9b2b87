"""The cluster timings: one set of defaults for `tideflow server` and an embedded Engine, and
clear errors for timings that cannot work."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tideflow.cli.main import app
from tideflow.cluster.settings import ClusterSettings
from tideflow.errors import InputError


def test_defaults_and_what_follows_from_a_shorter_unhealthy_time() -> None:
    s = ClusterSettings()
    assert (s.unhealthy_secs, s.lease_secs, s.heartbeat_secs) == (5.0, 3.0, 1.5)
    s = ClusterSettings(unhealthy_secs=2)
    assert (s.unhealthy_secs, s.lease_secs, s.heartbeat_secs) == (2.0, 2.0, 1.0)
    s = ClusterSettings(lease_secs=10)
    assert (s.unhealthy_secs, s.lease_secs, s.heartbeat_secs) == (5.0, 10.0, 1.5)


@pytest.mark.parametrize("kwargs, match", [
    ({"heartbeat_secs": 2.0}, "heartbeat_secs 2 must be at most 0.6 x the lease"),
    ({"lease_secs": -1}, "lease_secs -1"),
    ({"unhealthy_secs": "5"}, "unhealthy_secs '5'"),
    ({"role": "boss"}, "unknown role 'boss'"),
])
def test_timings_that_cannot_work_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InputError, match=match):
        ClusterSettings(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("args, match", [
    (["--heartbeat-secs", "2"], "--heartbeat-secs 2 must be at most 0.6 x the lease (3 s)"),
    (["--unhealthy-secs", "2", "--heartbeat-secs", "1.5"], "the lease (2 s)"),
    (["--lease-secs", "0"], "--lease-secs 0: give a number of seconds above 0"),
])
def test_the_server_refuses_them_naming_its_option(args: list[str], match: str) -> None:
    done = CliRunner().invoke(app, ["server", "--db", "sqlite:///unused.db", *args])
    assert done.exit_code == 2, done.output
    assert match in done.output.replace("\n", " ")
