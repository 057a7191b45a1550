"""The replicas part of the tour: reads spread over replicas, writes to the primary, a replica
lost and readmitted, and the router's status.

Embedded: SQLite files stand in for a primary and two replicas (no replication between
them: the routing is what is shown). With ``--postgres``: the server given is the primary;
it is also offered as a "replica", which the router refuses (not in recovery), so reads
spill to the primary, and a commit yields a real read-your-writes LSN token.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from phoenixkit.demo.tour import TourContext
    from phoenixkit.replicas import ReplicaRouter

__all__ = ["run_replicas_section"]

READS = 300


def run_replicas_section(ctx: TourContext) -> None:
    """Route a small workload and report where each statement went."""
    # The router logs its transitions; the tour prints them itself.
    logger = logging.getLogger("phoenixkit.replicas")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        if ctx.postgres_url:
            _postgres(ctx, ctx.postgres_url)
        else:
            _embedded(ctx)
    finally:
        logger.setLevel(level)


def _embedded(ctx: TourContext) -> None:
    import sqlalchemy as sa

    from phoenixkit.replicas import ReplicaRouter
    from phoenixkit.testing import FakeClock

    folder = Path(tempfile.mkdtemp(prefix="phoenixkit-demo-replicas-"))
    try:
        urls = {}
        for name in ("primary", "replica-a", "replica-b"):
            (folder / name).mkdir()
            urls[name] = f"sqlite:///{folder / name / 'shop.db'}"
            engine = sa.create_engine(urls[name])
            with engine.begin() as conn:
                conn.execute(sa.text("CREATE TABLE orders (id INTEGER PRIMARY KEY, sku TEXT)"))
                conn.execute(sa.text("CREATE TABLE whoami (name TEXT)"))
                conn.execute(sa.text("INSERT INTO whoami VALUES (:n)"), {"n": name})
            engine.dispose()
        ctx.line("SQLite files stand in for a primary and 2 replicas (routing only)")
        # No pool: each connection opens its file afresh, so a lost file shows at once.
        engines = {n: sa.create_engine(u, poolclass=sa.pool.NullPool) for n, u in urls.items()}
        with ReplicaRouter(
            engines["primary"],
            {"replica-a": engines["replica-a"], "replica-b": engines["replica-b"]},
            evict_after=2,
            readmit_after=3,
            start=False,
            clock=FakeClock(),
        ) as router:
            served = _workload(router)
            ctx.line(f"{READS} reads served by: {served}")
            with router.session() as s:
                s.execute(sa.text("INSERT INTO orders (sku) VALUES ('sku-1')"))
                after = s.execute(sa.text("SELECT name FROM whoami")).scalar()
                s.commit()
            ctx.line(f"a write, then a read in the same transaction: read from {after}")
            gone = folder / "replica-b"
            gone.rename(folder / "replica-b.lost")  # the replica's files vanish
            for _ in range(2):
                router.health.probe_now()
            ctx.line(f"replica-b lost: 2 failed probes, in rotation: {_names(router)}")
            ctx.line(f"{READS} reads served by: {_workload(router)}")
            (folder / "replica-b.lost").rename(gone)
            for i in range(1, 4):
                router.health.probe_now()
                ctx.line(f"replica-b back, healthy probe {i}: in rotation: {_names(router)}")
            _report(ctx, router)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _workload(router: ReplicaRouter) -> dict[str, int]:
    import sqlalchemy

    served: dict[str, int] = {}
    for _ in range(READS):
        with router.session() as s:
            name = str(s.execute(sqlalchemy.text("SELECT name FROM whoami")).scalar())
            served[name] = served.get(name, 0) + 1
    return dict(sorted(served.items()))


def _names(router: ReplicaRouter) -> str:
    return ", ".join(router.status().in_rotation) or "none"


def _report(ctx: TourContext, router: ReplicaRouter) -> None:
    status = router.status()
    ctx.line("status():")
    for node in status.nodes:
        state = "in" if node.in_rotation else f"out ({node.reason})"
        ctx.line(
            f"  {node.name:<10} {node.role:<8} {state:<4} reads={node.reads} "
            f"writes={node.writes} evictions={node.evictions} readmissions={node.readmissions}"
        )
    ctx.line(
        f"  spills={status.spills} consistency_reads={status.consistency_reads} "
        f"failovers={status.failovers} probe_rounds={status.probe_rounds}"
    )


def _postgres(ctx: TourContext, url: str) -> None:
    import sqlalchemy as sa

    from phoenixkit.replicas import ReplicaRouter

    ctx.line("the --postgres server is the primary, and is also offered as a 'replica'")
    with ReplicaRouter(url, {"not-a-replica": url}, start=False) as router:
        reason = router.status().node("not-a-replica").reason
        ctx.line(f"the router refuses it: {reason}")
        with router.session() as s:
            s.execute(sa.text("CREATE TEMP TABLE demo_notes (body text)"))
            s.execute(sa.text("INSERT INTO demo_notes VALUES ('hello')"))
            s.commit()
            ctx.line(f"after a commit that wrote, the read-your-writes token: {s.token}")
        with router.session() as s:
            standby = s.execute(sa.text("SELECT pg_is_in_recovery()")).scalar()
            ctx.line(f"a read with no replica in rotation spills to the primary: standby={standby}")
        _report(ctx, router)
