"""Read replicas with SQLAlchemy: writes to the primary, reads to a replica, read-your-writes.

Run it against a PostgreSQL primary and one or more streaming replicas of it:

    python examples/sqlalchemy_replicas.py \\
        --primary postgresql://app@db-primary/shop --replica postgresql://app@db-replica/shop

or set PHOENIXKIT_PRIMARY_URL and PHOENIXKIT_REPLICA_URLS (comma-separated). It creates a
small table ``example_notes`` on the primary, writes a note, reads it back through the
read-your-writes token (a replica that has replayed the write, else the primary), reads it
once more without the token (wherever the router sends a plain read) and prints the
router's status. Needs ``pip install 'phoenixkit[postgres]'``.

``--serve`` serves the same thing as a small web service on 127.0.0.1:8000 instead
(``POST /notes?body=...``, ``GET /notes/{id}``; needs the ``fastapi`` extra and uvicorn):
`ReadYourWritesMiddleware` carries the read-your-writes token in a cookie, so a client that
wrote reads its write on the next request, and everyone else reads from a replica.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from phoenixkit.replicas import ReplicaRouter
from phoenixkit.replicas.http import ReadYourWritesMiddleware


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "example_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str]


def engine_for(url: str) -> sa.Engine:
    """An Engine on psycopg 3 for a ``postgresql://`` URL (any SQLAlchemy URL works)."""
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return sa.create_engine(url, pool_size=2, connect_args={"connect_timeout": 5})


def where(session: sa.orm.Session) -> str:
    """Which kind of server serves this session's reads now."""
    return (
        "a replica"
        if session.execute(sa.text("SELECT pg_is_in_recovery()")).scalar()
        else "the primary"
    )


def build_app(router: ReplicaRouter) -> Any:
    """The web service: FastAPI behind `ReadYourWritesMiddleware`."""
    from fastapi import FastAPI, HTTPException

    app = FastAPI()

    @app.post("/notes")
    def add_note(body: str) -> dict[str, int]:
        with router.session() as s:  # a write: the primary
            note = Note(body=body)
            s.add(note)
            s.flush()
            note_id = note.id
            s.commit()  # the middleware puts the new token on the response
        return {"id": note_id}

    @app.get("/notes/{note_id}")
    def read_note(note_id: int) -> dict[str, Any]:
        with router.session() as s:  # starts from the request's token, if any
            note = s.get(Note, note_id)
            if note is None:
                raise HTTPException(404, "no such note (here, yet)")
            return {"id": note.id, "body": note.body, "served_by": where(s)}

    return ReadYourWritesMiddleware(app, router)


def wait_for_schema(primary: sa.Engine, replicas: dict[str, sa.Engine], limit: float) -> None:
    """Wait (up to ``limit`` seconds) until every replica has replayed the primary's WAL up
    to now, so that the table just created exists there: a deployment runs its migrations
    before the app starts; this script does both at once."""
    with primary.connect() as conn:
        target = conn.execute(sa.text("SELECT pg_current_wal_lsn()")).scalar()
    ask = sa.text("SELECT pg_last_wal_replay_lsn() >= CAST(:lsn AS pg_lsn)")
    deadline = time.monotonic() + limit
    for name, engine in replicas.items():
        with engine.connect() as conn:
            while not conn.execute(ask, {"lsn": target}).scalar():
                if time.monotonic() > deadline:
                    print(f"{name} has not replayed the schema yet; reads may fail there")
                    break
                time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--primary", default=os.environ.get("PHOENIXKIT_PRIMARY_URL"))
    parser.add_argument(
        "--replica",
        action="append",
        default=[u for u in os.environ.get("PHOENIXKIT_REPLICA_URLS", "").split(",") if u],
        help="a replica's URL (repeat for more)",
    )
    parser.add_argument("--serve", action="store_true", help="serve on 127.0.0.1:8000")
    parser.add_argument(
        "--max-lag-seconds", type=float, default=10.0, help="out of rotation beyond this lag"
    )
    args = parser.parse_args(argv)
    if not args.primary or not args.replica:
        parser.error("give --primary and at least one --replica (or the env variables)")

    primary = engine_for(args.primary)
    replicas = {f"replica-{i}": engine_for(url) for i, url in enumerate(args.replica)}
    Base.metadata.create_all(primary)
    wait_for_schema(primary, replicas, limit=10.0)
    try:
        with ReplicaRouter(
            primary, replicas, probe_interval=0.5, max_lag_seconds=args.max_lag_seconds
        ) as router:
            print("in rotation:", ", ".join(router.status().in_rotation) or "none")
            if args.serve:
                import uvicorn

                uvicorn.run(build_app(router), host="127.0.0.1", port=8000)
                return 0

            with router.session() as s:  # a write: the primary
                note = Note(body=f"hello from process {os.getpid()}")
                s.add(note)
                s.commit()
                note_id, token = note.id, s.token
            print(f"wrote note {note_id} on the primary; read-your-writes token {token}")

            # Another request carrying the token (a cookie or header in a web app; see
            # phoenixkit.replicas.http): it reads its write, replica or primary.
            with router.session(token=token) as s:
                found = s.get(Note, note_id)
                print(f"with the token: {'found' if found else 'MISSING'} on {where(s)}")
                if found is None:
                    return 1

            with router.session() as s:  # no token: any replica in rotation
                found = s.get(Note, note_id)
                seen = "found" if found else "not replayed there yet"
                print(f"without the token: {seen} on {where(s)}")

            print("status:")
            for node in router.status().nodes:
                state = "in" if node.in_rotation else f"out ({node.reason})"
                lag = "-" if node.lag_bytes is None else f"{node.lag_bytes} B"
                print(
                    f"  {node.name:<10} {node.role:<8} {state:<4} lag={lag} "
                    f"reads={node.reads} writes={node.writes}"
                )
    finally:
        primary.dispose()
        for engine in replicas.values():
            engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
