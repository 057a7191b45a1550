"""Real PostgreSQL servers for the tests: a primary and streaming replicas of it.

Each server lives in its own temporary directory, listens on a free 127.0.0.1 port and on a
Unix socket in that directory, and runs as the ``postgres`` OS user when the tests run as
root (PostgreSQL refuses to run as root). Durability settings are relaxed for speed
(``fsync=off``), but commits are still written to the kernel before they return, so a
SIGKILL of the server loses nothing that was committed.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tests.servers.base import (
    Process,
    ServerError,
    ServerUnavailable,
    free_port,
    wait_until,
)

START_TIMEOUT = 60.0
BINDIR_ENV = "PHOENIXKIT_PG_BINDIR"
_NEEDED = ("initdb", "postgres", "pg_basebackup")


def find_pg_bindir() -> Path:
    """The directory holding initdb, postgres and pg_basebackup.

    ``$PHOENIXKIT_PG_BINDIR`` first, then the directory ``initdb`` on PATH resolves to, then
    Debian's ``/usr/lib/postgresql/<version>/bin`` (newest version first).
    """
    candidates: list[Path] = []
    if os.environ.get(BINDIR_ENV):
        candidates.append(Path(os.environ[BINDIR_ENV]))
    else:
        on_path = shutil.which("initdb")
        if on_path:
            candidates.append(Path(os.path.realpath(on_path)).parent)
        versions = sorted(
            glob.glob("/usr/lib/postgresql/*/bin"),
            key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0,
            reverse=True,
        )
        candidates.extend(Path(p) for p in versions)
    for d in candidates:
        if all((d / b).is_file() for b in _NEEDED):
            return d
    raise ServerUnavailable(
        "PostgreSQL server binaries (initdb, postgres, pg_basebackup) not found on PATH, "
        f"in ${BINDIR_ENV} or in /usr/lib/postgresql/*/bin; install them (apt-get install "
        "postgresql) or set PHOENIXKIT_TEST_POSTGRES_URL"
    )


def _server_user() -> str | None:
    """PostgreSQL will not run as root: use the ``postgres`` user when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise ServerUnavailable(
            "running as root and there is no 'postgres' OS user to run the server as"
        ) from None
    return "postgres"


class PostgresServer:
    """One PostgreSQL server (primary or standby) in a directory of its own."""

    def __init__(self, bindir: Path, basedir: Path, *, port: int | None = None) -> None:
        self.bindir = bindir
        self.basedir = basedir
        self.datadir = basedir / "data"
        self.port = port or free_port()
        self.user = _server_user()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        """libpq URL (psycopg)."""
        self.primary: PostgresServer | None = None
        self.slot: str | None = None
        self.process = Process(
            [
                str(bindir / "postgres"),
                "-D", str(self.datadir),
                "-c", f"port={self.port}",
                "-c", "listen_addresses=127.0.0.1",
                "-c", f"unix_socket_directories={basedir}",
            ],
            log=basedir / "server.log",
            user=self.user,
        )  # fmt: skip

    # Construction ------------------------------------------------------------------------

    @classmethod
    def create_primary(cls, basedir: Path | None = None) -> PostgresServer:
        bindir = find_pg_bindir()
        server = cls(bindir, basedir or _make_basedir("pg-primary"))
        server._run(
            "initdb",
            "-D", str(server.datadir),
            "-U", "postgres",
            "-A", "trust",
            "-E", "UTF8",
            "--locale=C",
            "--no-sync",
        )  # fmt: skip
        with open(server.datadir / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# phoenixkit test server\n"
                "fsync = off\n"
                "wal_level = replica\n"
                "max_wal_senders = 10\n"
                "max_replication_slots = 10\n"
                "hot_standby = on\n"
                "hot_standby_feedback = on\n"
                "shared_buffers = 32MB\n"
                "max_connections = 100\n"
                "shared_preload_libraries = 'pg_stat_statements'\n"
                "wal_receiver_status_interval = 1s\n"
            )
        server._chown()
        return server.start()

    def create_replica(self, basedir: Path | None = None) -> PostgresServer:
        """A streaming replica of this server: pg_basebackup -R with a replication slot."""
        replica = PostgresServer(self.bindir, basedir or _make_basedir("pg-replica"))
        replica.primary = self
        replica.slot = f"phoenixkit_replica_{replica.port}"
        replica._run(
            "pg_basebackup",
            "-h", "127.0.0.1",
            "-p", str(self.port),
            "-U", "postgres",
            "-D", str(replica.datadir),
            "-R", "-X", "stream", "-C", "-S", replica.slot,
            "--checkpoint=fast", "--no-sync",
        )  # fmt: skip
        replica.start()
        wait_until(
            lambda: replica.scalar("SELECT status FROM pg_stat_wal_receiver") == "streaming",
            timeout=START_TIMEOUT,
            what=f"replica on port {replica.port} to stream from {self.port}",
            on_timeout=replica.process.log_tail,
        )
        return replica

    def _run(self, binary: str, *args: str) -> None:
        done = subprocess.run(
            [str(self.bindir / binary), *args],
            capture_output=True,
            text=True,
            timeout=120,
            user=self.user,
            cwd=self.basedir,
        )
        if done.returncode != 0:
            raise ServerError(f"{binary} failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    def _chown(self) -> None:
        if self.user is None:
            return
        entry = pwd.getpwnam(self.user)
        for root, dirs, files in os.walk(self.basedir):
            for name in [*dirs, *files]:
                os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)

    # Lifecycle ----------------------------------------------------------------------------

    @property
    def sqlalchemy_url(self) -> str:
        return self.url.replace("postgresql://", "postgresql+psycopg://", 1)

    def start(self) -> PostgresServer:
        self.process.start()
        wait_until(
            self._ready,
            timeout=START_TIMEOUT,
            what=f"postgres on port {self.port}",
            on_timeout=self.process.log_tail,
        )
        return self

    def _ready(self) -> bool:
        if not self.process.alive:
            raise ServerError(f"postgres exited:\n{self.process.log_tail()}")
        self.scalar("SELECT 1")
        return True

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend (a crash; recovery runs on restart)."""
        self.process.kill()

    def stop(self) -> None:
        """Fast shutdown (SIGINT)."""
        self.process.stop(signal.SIGINT)

    def restart(self) -> None:
        if self.process.alive:
            self.stop()
        self.start()

    # SQL helpers --------------------------------------------------------------------------

    def connect(self, **kwargs: Any) -> Any:
        import psycopg

        kwargs.setdefault("autocommit", True)
        kwargs.setdefault("connect_timeout", 5)
        return psycopg.connect(self.url, **kwargs)

    def execute(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def scalar(self, sql: str, params: Any = None) -> Any:
        rows = self.execute(sql, params)
        return rows[0][0] if rows else None

    # Replication helpers --------------------------------------------------------------------

    def is_in_recovery(self) -> bool:
        return bool(self.scalar("SELECT pg_is_in_recovery()"))

    def current_lsn(self) -> str:
        """The primary's current WAL insert position."""
        return str(self.scalar("SELECT pg_current_wal_lsn()"))

    def replay_lsn(self) -> str | None:
        return self.scalar("SELECT pg_last_wal_replay_lsn()::text")  # type: ignore[no-any-return]

    def pause_replay(self) -> None:
        """Stop applying WAL (it is still received): creates lag on demand."""
        self.execute("SELECT pg_wal_replay_pause()")
        wait_until(
            lambda: self.scalar("SELECT pg_get_wal_replay_pause_state()") == "paused",
            timeout=10,
            what="WAL replay to pause",
        )

    def resume_replay(self) -> None:
        self.execute("SELECT pg_wal_replay_resume()")

    def replay_paused(self) -> bool:
        return self.scalar("SELECT pg_get_wal_replay_pause_state()") != "not paused"

    def has_received(self, lsn: str) -> bool:
        return bool(self.scalar("SELECT pg_last_wal_receive_lsn() >= %s::pg_lsn", (lsn,)))

    def has_replayed(self, lsn: str) -> bool:
        return bool(self.scalar("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)))

    def wait_caught_up(self, timeout: float = 30.0) -> None:
        """Wait until this replica has replayed everything its primary has written."""
        assert self.primary is not None, "not a replica"
        target = self.primary.current_lsn()
        wait_until(
            lambda: self.has_replayed(target),
            timeout=timeout,
            what=f"replica {self.port} to replay up to {target}",
        )

    def destroy(self) -> None:
        self.process.stop()
        if self.process.alive:
            self.process.kill()
        if self.primary is not None and self.slot and self.primary.process.alive:
            with contextlib.suppress(Exception):
                self.primary.execute("SELECT pg_drop_replication_slot(%s)", (self.slot,))
        shutil.rmtree(self.basedir, ignore_errors=True)


def _make_basedir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=f"phoenixkit-{prefix}-"))
    user = _server_user()
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


class ExternalPostgres(PostgresServer):
    """A server given by URL (env override): SQL helpers work; it cannot be killed here."""

    def __init__(self, url: str, primary: PostgresServer | None = None) -> None:
        self.url = url
        self.primary = primary
        self.slot = None

    def start(self) -> PostgresServer:
        self.scalar("SELECT 1")
        return self

    def kill(self) -> None:
        raise ServerUnavailable(f"cannot kill external server {self.url!r}")

    def restart(self) -> None:
        raise ServerUnavailable(f"cannot restart external server {self.url!r}")

    stop = kill

    def destroy(self) -> None:
        pass
