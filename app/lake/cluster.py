"""The embedded PostgreSQL cluster: initdb, start and stop with the installed binaries.

Used when no DATABASE_URL is given, and by the tests for their own cluster.
initdb refuses to run as root, so as root every server command runs as the
unprivileged ``postgres`` user (created by Debian's postgresql package).
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

# Settings every lake cluster runs with: logical WAL for change data capture,
# commit timestamps for the freshness views.
LAKE_SETTINGS: dict[str, str] = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "wal_level": "logical",
    "track_commit_timestamp": "on",
    "max_connections": "200",
    "shared_buffers": "256MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "15min",
    "log_min_messages": "warning",
    "timezone": "'UTC'",
}


class EmbeddedError(RuntimeError):
    """The embedded cluster could not be initialised, started or stopped."""


def find_bindir(override: Path | None = None) -> Path:
    """Directory of initdb/pg_ctl: the given one (CONTEXTLAKE_PG_BINDIR), else the newest /usr/lib/postgresql/*/bin."""
    candidates = [str(override)] if override else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    which = shutil.which("initdb")
    if which:
        candidates.append(str(Path(which).parent))
    for c in candidates:
        if c and (Path(c) / "initdb").exists() and (Path(c) / "pg_ctl").exists():
            return Path(c)
    raise EmbeddedError(
        "no PostgreSQL server binaries found (initdb, pg_ctl): install Debian's postgresql package "
        "or set CONTEXTLAKE_PG_BINDIR"
    )


def _run_as() -> list[str]:
    """Command prefix that drops root to the postgres user (initdb refuses root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise EmbeddedError("running as root needs a 'postgres' system user to own the cluster") from exc
    return ["runuser", "-u", "postgres", "--"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now (for throwaway clusters and servers)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Cluster:
    """A PostgreSQL cluster in a data directory of ours, listening on 127.0.0.1:port."""

    home: Path
    port: int = 54329
    settings: dict[str, str] = field(default_factory=lambda: dict(LAKE_SETTINGS))
    dbname: str = "contextlake"
    user: str = "postgres"
    bindir: Path | None = None

    @property
    def datadir(self) -> Path:
        return self.home / "pgdata"

    @property
    def logfile(self) -> Path:
        return self.home / "postgresql.log"

    def dsn(self, dbname: str | None = None) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname or self.dbname}"

    def _run(self, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
        cmd = _run_as() + [str(find_bindir(self.bindir) / args[0]), *args[1:]]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode not in ok:
            detail = proc.stderr.strip() or proc.stdout.strip()
            raise EmbeddedError(f"{' '.join(args[:2])} failed ({proc.returncode}): {detail}")
        return proc

    def _own(self) -> None:
        """Create the home directory and hand it to the server's user."""
        self.home.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            _run_as()  # a clear error when there is no postgres user
            pw = pwd.getpwnam("postgres")
            for root, dirs, files in os.walk(self.home):
                for name in [root, *(os.path.join(root, d) for d in dirs), *(os.path.join(root, f) for f in files)]:
                    os.chown(name, pw.pw_uid, pw.pw_gid)
            probe = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-w", str(self.home)], check=False)
            if probe.returncode != 0:
                raise EmbeddedError(
                    f"the postgres user cannot write {self.home} (a parent directory is not traversable): "
                    "set CONTEXTLAKE_HOME to a directory it can reach"
                )

    def recorded_port(self) -> int | None:
        """The port an existing cluster was created with (the last port line of its configuration)."""
        try:
            conf = (self.datadir / "postgresql.conf").read_text(encoding="utf-8")
        except OSError:
            return None
        ports = re.findall(r"^port = (\d+)$", conf, flags=re.MULTILINE)
        return int(ports[-1]) if ports else None

    def initialised(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def init(self) -> None:
        """initdb with trust auth for local connections and the lake settings."""
        self._own()
        if self.initialised():
            return
        self._run(
            "initdb",
            "-D",
            str(self.datadir),
            "-U",
            self.user,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-instructions",
        )
        conf = "\n".join(f"{k} = {v}" for k, v in self.settings.items())
        with open(self.datadir / "postgresql.conf", "a", encoding="utf-8") as fh:
            fh.write(f"\n# contextlake\nport = {self.port}\n{conf}\n")

    def running(self) -> bool:
        if not self.initialised():
            return False
        if self._run("pg_ctl", "status", "-D", str(self.datadir), ok=(0, 3, 4)).returncode != 0:
            return False
        # A postmaster killed outright (kill -9, OOM) stays a zombie until whoever adopted it reaps it,
        # and pg_ctl takes a zombie's pid for a running server; a new postmaster refuses to start until
        # the pid is gone. Wait for that (a minimal init reaps seconds later), then say it is down.
        pid = self._postmaster_pid()
        deadline = time.monotonic() + 30
        while pid is not None and _is_zombie(pid):
            if time.monotonic() > deadline:
                raise EmbeddedError(f"the dead postmaster {pid} of {self.datadir} is not reaped; it holds its pid")
            time.sleep(0.1)
        return pid is None or os.path.exists(f"/proc/{pid}") or not os.path.isdir("/proc")

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.datadir / "postmaster.pid").read_text(encoding="utf-8").split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def start(self) -> None:
        """Start the server (initialising it first) and create the lake database."""
        self.init()
        if not self.running():
            self._own()
            if not port_is_free(self.port):
                raise EmbeddedError(
                    f"port {self.port} on 127.0.0.1 is taken by another server: stop it, "
                    "or set CONTEXTLAKE_PG_PORT to a free port before the lake is first created"
                )
            try:
                self._run("pg_ctl", "start", "-D", str(self.datadir), "-l", str(self.logfile), "-w", "-t", "60")
            except EmbeddedError as exc:
                raise EmbeddedError(f"{exc}; see {self.logfile}") from None
        self._wait_ready()
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.dbname,)).fetchone():
                conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(self.dbname)))

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.dsn("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise EmbeddedError(f"server on port {self.port} not reachable, see {self.logfile}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        """Fast shutdown: rolls back open transactions, checkpoints, exits cleanly."""
        if self.running():
            self._run("pg_ctl", "stop", "-D", str(self.datadir), "-m", "fast", "-w", "-t", "60")

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


def _is_zombie(pid: int) -> bool:
    """The process has exited and waits to be reaped (Linux's /proc; elsewhere: never)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


@contextmanager
def throwaway_cluster(prefix: str, parent: str | None = None) -> Iterator[Cluster]:
    """A started cluster in a new directory under `parent` (default /tmp, reachable by the postgres user),
    on a free port; destroyed afterwards. For tests and benchmarks."""
    home = Path(tempfile.mkdtemp(prefix=prefix, dir=parent or "/tmp"))
    os.chmod(home, 0o755)
    cluster = Cluster(home=home, port=free_port(), dbname="postgres")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()
