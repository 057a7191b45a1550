"""The read-replica router on real PostgreSQL servers of our own: a primary and two
streaming replicas (the tests' helpers), destroyed when done.

- ``SELECT 1`` through ``router.session()`` (routed to a replica) beside a plain SQLAlchemy
  ``Session`` bound to that same replica: the router's overhead per session and statement.
- A read load (4 threads, each a session per query, a query that costs the server ~1 ms of
  CPU) through the router over 2 replicas, beside the same load on the primary alone.
  ``ours/s`` is queries per second; on one machine the replicas share its cores with the
  primary, so this shows the spread, not what separate hosts would give.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _harness import Case, SkipModule

_ROOT = Path(__file__).resolve().parent.parent
HEAVY = "SELECT count(*) FROM generate_series(1, 20000)"
THREADS = 4
PER_CALL = 40


@contextlib.contextmanager
def _servers() -> Iterator[tuple[str, list[str]]]:
    if os.environ.get("PHOENIXKIT_BENCH_POSTGRES_URL"):
        raise SkipModule("needs replicas of its own: unset PHOENIXKIT_BENCH_POSTGRES_URL")
    if str(_ROOT) not in sys.path:
        sys.path.append(str(_ROOT))
    from tests.servers import PostgresServer, ServerUnavailable

    try:
        primary = PostgresServer.create_primary()
    except ServerUnavailable as exc:
        raise SkipModule(f"no PostgreSQL here ({exc})") from exc
    replicas = []
    try:
        replicas = [primary.create_replica() for _ in range(2)]
        yield primary.sqlalchemy_url, [r.sqlalchemy_url for r in replicas]
    finally:
        for replica in replicas:
            replica.destroy()
        primary.destroy()


def cases(quick: bool) -> Iterator[Case]:
    import sqlalchemy as sa
    from sqlalchemy.orm import Session

    from phoenixkit.replicas import ReplicaRouter

    with _servers() as (primary_url, replica_urls):
        one = ReplicaRouter(primary_url, replica_urls[:1], start=False)
        replica = sa.create_engine(replica_urls[0])
        two = ReplicaRouter(primary_url, replica_urls, start=False)
        alone = sa.create_engine(primary_url, pool_size=THREADS)
        pool = ThreadPoolExecutor(THREADS)
        try:
            select1 = sa.text("SELECT 1")

            def routed() -> object:
                with one.session() as s:
                    return s.execute(select1).scalar()

            def plain() -> object:
                with Session(replica) as s:
                    return s.execute(select1).scalar()

            if routed() != 1 or plain() != 1 or one.status().node("replica-0").reads != 1:
                raise RuntimeError("SELECT 1 was not routed to the replica")
            yield Case(
                "SELECT 1 in a session (routed to a replica)", routed, "plain Session", plain
            )

            heavy = sa.text(HEAVY)

            def read_routed(_: int) -> object:
                with two.session() as s:
                    return s.execute(heavy).scalar()

            def read_primary(_: int) -> object:
                with Session(alone) as s:
                    return s.execute(heavy).scalar()

            def load_routed() -> object:
                return sum(pool.map(read_routed, range(PER_CALL)))

            def load_primary() -> object:
                return sum(pool.map(read_primary, range(PER_CALL)))

            if load_routed() != load_primary():
                raise RuntimeError("the two read loads disagree")
            yield Case(
                f"read load, {THREADS} threads: router over 2 replicas",
                load_routed,
                "the primary alone",
                load_primary,
                "queries",
                PER_CALL,
            )
        finally:
            pool.shutdown()
            for router in (one, two):
                router.close()
            replica.dispose()
            alone.dispose()
