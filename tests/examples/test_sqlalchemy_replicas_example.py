"""examples/sqlalchemy_replicas.py run as a script (its own process) against the real
primary and streaming replica: once as it is, once with replay paused on the replica, where
the read-your-writes read must still find the write (on the primary) and a plain read on
the replica must not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.servers import PostgresServer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "sqlalchemy_replicas.py"


def run(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    print(done.stdout)
    return done.stdout


def test_example_routes_and_reads_its_writes(
    pg_primary: PostgresServer, pg_replica: PostgresServer
) -> None:
    if pg_replica.replay_paused():
        pg_replica.resume_replay()
    pg_replica.wait_caught_up()
    out = run(
        env={"PHOENIXKIT_PRIMARY_URL": pg_primary.url, "PHOENIXKIT_REPLICA_URLS": pg_replica.url}
    )
    assert "in rotation: replica-0" in out
    assert "on the primary; read-your-writes token " in out
    assert "with the token: found on " in out
    assert "  primary    primary  in " in out
    assert "  replica-0  replica  in " in out

    pg_replica.wait_caught_up()  # the table and the first note are on the replica
    pg_replica.pause_replay()
    try:
        out = run(
            "--primary", pg_primary.url, "--replica", pg_replica.url, "--max-lag-seconds", "3600"
        )
    finally:
        pg_replica.resume_replay()
    assert "with the token: found on the primary" in out  # the replica has not replayed it
    assert "without the token: not replayed there yet on a replica" in out


def test_example_needs_its_urls() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("PHOENIXKIT_")},
        cwd=ROOT,
    )
    assert done.returncode == 2
    assert "give --primary and at least one --replica" in done.stderr
