"""Private database servers for tests that restart or kill a database.

The shared servers on 3306/5432 are used by every other test at the same time, so a test that
takes its database away starts its own server on a free port and a data directory of its own
(DESIGN.md §7). The API is small:

    with PrivatePostgres(tmp_path) as pg:          # initdb + start; stop + delete on exit
        url = pg.create_database("tf")             # postgresql://postgres@127.0.0.1:PORT/tf
        pg.restart(mode="fast")                    # or "immediate"; or pg.kill(); pg.start()

    with PrivateMariaDB(tmp_path) as db:           # mariadb-install-db + start
        url = db.create_database("tf")             # mysql://root@127.0.0.1:PORT/tf
        db.restart()                               # SIGKILL, then start on the same port

Both classes offer ``start()``, ``stop(mode="fast"|"immediate")``, ``restart(mode=...)``,
``kill()`` (SIGKILL, as in a crash), ``url`` (the server's default database), ``port``,
``create_database(name) -> url``, ``log_text()`` and ``close()`` (stop and delete the data
directory; the context manager always calls it, and so does interpreter exit as a last resort).
``missing_binaries()`` says why a server cannot be started here, or ``None``.

``tmpdir`` receives the server's log. The data directory and the socket live in a new
directory under the system temporary directory instead: PostgreSQL refuses to run as root, so as
root it runs as the ``postgres`` OS user, which must be able to reach its files (pytest's own
temporary directories are private to root), and a Unix socket path must stay short.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

StopMode = Literal["fast", "immediate"]

_READY_TIMEOUT = 60.0
_live: weakref.WeakSet[_Server] = weakref.WeakSet()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerError(RuntimeError):
    """A private server did not install, start or stop as asked."""


class _Server:
    """What both servers share: one process in its own session, its log, and cleanup."""

    name = "server"

    def __init__(self, tmpdir: Path | str) -> None:
        self.tmpdir = Path(tmpdir)
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.home = Path(tempfile.mkdtemp(prefix=f"tf-{self.name}-"))
        self.log_path = self.tmpdir / f"{self.name}-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._installed = False
        _live.add(self)

    # -- what each server defines ---------------------------------------------------------
    def _install(self) -> None:
        raise NotImplementedError

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _popen_user(self) -> str | None:
        return None

    def _is_ready(self) -> bool:
        raise NotImplementedError

    def _stop_signal(self, mode: StopMode) -> int:
        raise NotImplementedError

    def create_database(self, name: str) -> str:
        raise NotImplementedError

    @property
    def url(self) -> str:
        raise NotImplementedError

    # -- life cycle ------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start the server (installing it the first time) and wait until it answers."""
        if not self._installed:
            self._install()
            self._installed = True
        if self.running:
            return
        with open(self.log_path, "ab") as log:
            # A session of its own: a kill reaches every process of the server and none of
            # the test's.
            self.proc = subprocess.Popen(
                self._command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, user=self._popen_user(), cwd=self.home,
            )
        deadline = time.monotonic() + _READY_TIMEOUT
        while not self._is_ready():
            if self.proc.poll() is not None:
                raise ServerError(f"{self.name} exited with {self.proc.returncode} at start:\n"
                                  f"{self.log_text()[-3000:]}")
            if time.monotonic() > deadline:
                self.kill()
                raise ServerError(f"{self.name} not ready after {_READY_TIMEOUT}s:\n"
                                  f"{self.log_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self, mode: StopMode = "fast") -> None:
        """Stop the server: ``fast`` is a clean shutdown, ``immediate`` skips the clean-up (a
        crash for the clients, though the server itself recovers cleanly on the next start)."""
        if not self.running:
            return
        assert self.proc is not None
        self.proc.send_signal(self._stop_signal(mode))
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()
        self._reap_group()

    def kill(self) -> None:
        """SIGKILL the server and every process it started, as a machine crash would."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self._reap_group()

    def restart(self, mode: StopMode = "fast") -> None:
        self.stop(mode)
        self.start()

    def _reap_group(self) -> None:
        """Orphaned children (PostgreSQL backends outliving their postmaster) would keep the
        shared memory and the port busy; the next start must find neither."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.05)

    def close(self) -> None:
        """Stop the server at once and delete its files."""
        self.kill()
        shutil.rmtree(self.home, ignore_errors=True)
        _live.discard(self)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


@atexit.register
def _close_all() -> None:
    for server in list(_live):
        server.close()


# -- PostgreSQL --------------------------------------------------------------------------------
def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("postgres")
    return Path(on_path).parent if on_path else None


class PrivatePostgres(_Server):
    """A PostgreSQL server of its own: trust auth, ``fsync=off``, 127.0.0.1 only."""

    name = "postgres"

    @staticmethod
    def missing_binaries() -> str | None:
        bindir = _pg_bin()
        if bindir is None:
            return "PostgreSQL server binaries (initdb, postgres) not found"
        if not (bindir / "initdb").exists() or not (bindir / "psql").exists() and \
                shutil.which("psql") is None:
            return f"initdb or psql missing beside {bindir}"
        if os.geteuid() == 0 and _os_user_missing("postgres"):
            return "running as root but there is no 'postgres' OS user to run PostgreSQL as"
        return None

    def __init__(self, tmpdir: Path | str) -> None:
        super().__init__(tmpdir)
        bindir = _pg_bin()
        if bindir is None:
            raise ServerError("PostgreSQL server binaries not found")
        self.bindir = bindir
        self.datadir = self.home / "data"
        self.sockdir = self.home / "sock"

    def _popen_user(self) -> str | None:
        return "postgres" if os.geteuid() == 0 else None

    def _install(self) -> None:
        user = self._popen_user()
        self.sockdir.mkdir()
        if user is not None:
            os.chmod(self.home, 0o755)
            shutil.chown(self.home, user)
            shutil.chown(self.sockdir, user)
        out = subprocess.run(
            [str(self.bindir / "initdb"), "-D", str(self.datadir), "-A", "trust", "-U",
             "postgres", "-E", "UTF8", "--no-sync", "--locale=C"],
            user=user, cwd=self.home, capture_output=True, check=False, timeout=120,
        )
        if out.returncode != 0:
            raise ServerError(f"initdb failed: {out.stdout.decode()}{out.stderr.decode()}")

    def _command(self) -> list[str]:
        return [str(self.bindir / "postgres"), "-D", str(self.datadir), "-p", str(self.port),
                "-k", str(self.sockdir), "-c", "listen_addresses=127.0.0.1",
                # fsync=off loses data only when the machine crashes, never when the server
                # process dies; synchronous_commit stays on, or a kill would lose acknowledged
                # commits and the tests would blame the engine for it
                "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=200",
                "-c", "shared_buffers=32MB"]

    def _stop_signal(self, mode: StopMode) -> int:
        # PostgreSQL's shutdown modes are signals to the postmaster.
        return signal.SIGINT if mode == "fast" else signal.SIGQUIT

    def _psql(self, sql: str, database: str = "postgres") -> subprocess.CompletedProcess[bytes]:
        psql = self.bindir / "psql"
        exe = str(psql) if psql.exists() else "psql"
        return subprocess.run(
            [exe, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database,
             "-v", "ON_ERROR_STOP=1", "-Atc", sql],
            capture_output=True, check=False, timeout=30,
        )

    def _is_ready(self) -> bool:
        return self._psql("SELECT 1").returncode == 0

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement through psql and return its output (rows as ``a|b`` lines)."""
        out = self._psql(statement, database)
        if out.returncode != 0:
            raise ServerError(f"psql failed: {out.stderr.decode()}")
        return out.stdout.decode()

    def create_database(self, name: str) -> str:
        self.sql(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


# -- MariaDB -----------------------------------------------------------------------------------
def _which(*names: str) -> str | None:
    for name in names:
        for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
            if candidate and os.access(candidate, os.X_OK):
                return candidate
    return None


class PrivateMariaDB(_Server):
    """A MariaDB server of its own: root with an empty password over TCP on 127.0.0.1.
    ``restart()`` kills it with SIGKILL and starts it again (crash recovery included), whatever
    the mode; ``stop("fast")`` is a clean shutdown."""

    name = "mariadb"

    @staticmethod
    def missing_binaries() -> str | None:
        missing = [n for n, found in (
            ("mariadbd", _which("mariadbd", "mysqld")),
            ("mariadb-install-db", _which("mariadb-install-db", "mysql_install_db")),
            ("mariadb client", _which("mariadb", "mysql")),
        ) if found is None]
        return f"MariaDB binaries missing: {', '.join(missing)}" if missing else None

    def __init__(self, tmpdir: Path | str) -> None:
        super().__init__(tmpdir)
        server = _which("mariadbd", "mysqld")
        install = _which("mariadb-install-db", "mysql_install_db")
        client = _which("mariadb", "mysql")
        if server is None or install is None or client is None:
            raise ServerError(self.missing_binaries() or "MariaDB binaries missing")
        self.server_bin, self.install_bin, self.client_bin = server, install, client
        self.datadir = self.home / "data"
        self.socket_path = self.home / "mysqld.sock"

    def _user_args(self) -> list[str]:
        return ["--user=root"] if os.geteuid() == 0 else []

    def _install(self) -> None:
        out = subprocess.run(
            [self.install_bin, "--no-defaults", f"--datadir={self.datadir}",
             "--auth-root-authentication-method=normal", "--skip-test-db",
             "--skip-name-resolve", *self._user_args()],
            cwd=self.home, capture_output=True, check=False, timeout=120,
        )
        if out.returncode != 0:
            raise ServerError(f"mariadb-install-db failed: {out.stdout.decode()}"
                              f"{out.stderr.decode()}")

    def _command(self) -> list[str]:
        return [self.server_bin, "--no-defaults", f"--datadir={self.datadir}",
                f"--port={self.port}", f"--socket={self.socket_path}",
                "--bind-address=127.0.0.1", "--skip-name-resolve", *self._user_args(),
                f"--pid-file={self.home / 'mariadbd.pid'}",
                # 2, not 0: each commit reaches the OS at once, so a SIGKILL of the server
                # loses no acknowledged commit (0 loses up to a second of them)
                "--innodb-flush-log-at-trx-commit=2", "--innodb-buffer-pool-size=32M",
                "--innodb-log-file-size=8M", "--max-connections=300",
                "--character-set-server=utf8mb4"]

    def _stop_signal(self, mode: StopMode) -> int:
        return signal.SIGTERM if mode == "fast" else signal.SIGKILL

    def restart(self, mode: StopMode = "immediate") -> None:
        """Kill the server (SIGKILL) and start it again on the same port."""
        self.kill()
        self.start()

    def _client(self, sql: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [self.client_bin, "--no-defaults", "-h", "127.0.0.1", f"-P{self.port}", "-uroot",
             "--connect-timeout=2", "-N", "-B", "-e", sql],
            capture_output=True, check=False, timeout=30,
        )

    def _is_ready(self) -> bool:
        return self._client("SELECT 1").returncode == 0

    def sql(self, statement: str) -> str:
        """Run statements through the client and return its output (tab-separated rows)."""
        out = self._client(statement)
        if out.returncode != 0:
            raise ServerError(f"mariadb client failed: {out.stderr.decode()}")
        return out.stdout.decode()

    def create_database(self, name: str) -> str:
        self.sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        return f"mysql://root@127.0.0.1:{self.port}/{name}"

    @property
    def url(self) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/mysql"


def _os_user_missing(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return True
    return False


class PrivateEtcd(_Server):
    """A one-member etcd (Debian's ``etcd-server``) on free ports and a data directory of its
    own. Its election timeout is short (250 ms), so the leases it grants may be as short as
    one second (etcd's minimum lease is 1.5 election timeouts); ``restart()`` keeps its
    data, as a real restart would."""

    name = "etcd"

    @staticmethod
    def missing_binaries() -> str | None:
        if _which("etcd") is None:
            return "etcd is not installed (apt-get install etcd-server)"
        return None

    def __init__(self, tmpdir: Path | str) -> None:
        super().__init__(tmpdir)
        self.peer_port = _free_port()

    def _install(self) -> None:
        (self.home / "data").mkdir(exist_ok=True)

    def _command(self) -> list[str]:
        client = f"http://127.0.0.1:{self.port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        etcd = _which("etcd")
        assert etcd is not None
        return [etcd, "--name", "tf", "--data-dir", str(self.home / "data"),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"tf={peer}", "--heartbeat-interval", "50",
                "--election-timeout", "250", "--log-level", "warn"]

    def _stop_signal(self, mode: StopMode) -> int:
        return signal.SIGTERM if mode == "fast" else signal.SIGKILL

    def _is_ready(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1) as r:
                return b'"true"' in r.read()
        except OSError:
            return False

    @property
    def url(self) -> str:
        return f"etcd://127.0.0.1:{self.port}"
