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


def test_the_served_example_reads_its_writes_through_the_cookie(
    pg_primary: PostgresServer, pg_replica: PostgresServer
) -> None:
    import importlib.util

    import httpx

    from phoenixkit.replicas import ReplicaRouter
    from tests.integrations.servers import serve_asgi

    spec = importlib.util.spec_from_file_location("phoenixkit_example_replicas", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = example
    spec.loader.exec_module(example)

    if pg_replica.replay_paused():
        pg_replica.resume_replay()
    primary = example.engine_for(pg_primary.url)
    replica = example.engine_for(pg_replica.url)
    example.Base.metadata.create_all(primary)
    pg_replica.wait_caught_up()  # the table is on the replica
    router = ReplicaRouter(primary, {"replica-0": replica}, probe_interval=0.2)
    pg_replica.pause_replay()
    try:
        with (
            serve_asgi(example.build_app(router)) as url,
            httpx.Client(base_url=url) as writer,
            httpx.Client(base_url=url) as stranger,
        ):
            made = writer.post("/notes", params={"body": "hello"})
            assert made.status_code == 200, made.text
            assert "phoenixkit_lsn" in writer.cookies  # the token, set after the commit
            note = f"/notes/{made.json()['id']}"
            mine = writer.get(note)  # carries the cookie: reads its write (on the primary)
            assert mine.status_code == 200, mine.text
            assert mine.json()["body"] == "hello"
            assert mine.json()["served_by"] == "the primary"
            theirs = stranger.get(note)  # no token: the paused replica, not replayed yet
            assert theirs.status_code == 404, theirs.text
        assert router.status().node("replica-0").reads >= 1
    finally:
        pg_replica.resume_replay()
        router.close()
        primary.dispose()
        replica.dispose()
