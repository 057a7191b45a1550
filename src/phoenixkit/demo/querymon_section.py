"""The query monitor's part of the tour: a small workload, its top queries, N+1, health.

Embedded: SQLite in memory. With ``--postgres``: the same on PostgreSQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from phoenixkit.querymon import QueryMonitor

if TYPE_CHECKING:
    from phoenixkit.demo.tour import TourContext

__all__ = ["run_querymon_section"]


def run_querymon_section(ctx: TourContext) -> None:
    """Run lookups, a report query and an N+1 loop through a monitored engine."""
    import sqlalchemy as sa

    if ctx.postgres_url:
        engine = sa.create_engine(
            ctx.postgres_url.replace("postgresql://", "postgresql+psycopg://", 1)
        )
        where = "PostgreSQL"
    else:
        engine = sa.create_engine("sqlite://", poolclass=sa.pool.StaticPool)
        where = "SQLite (embedded)"
    events: list[Any] = []
    mon = QueryMonitor(slow_threshold_ms=20, n_plus_one=10, on_event=events.append)
    mon.instrument(engine)
    heavy = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40000) "
        "SELECT count(*) FROM n"
    )
    try:
        with engine.connect() as conn:
            for user_id in range(200):
                conn.execute(sa.text("SELECT :id AS id, 'user' AS kind"), {"id": user_id})
            for _ in range(3):
                conn.exec_driver_sql(heavy)
            with mon.unit_of_work("GET /orders"):
                for order_id in range(15):  # a lazy-loading loop: one query per order
                    conn.execute(sa.text("SELECT :o AS order_id, 2 AS lines"), {"o": order_id})
        snap = mon.snapshot()
        ctx.line(f"{snap.overall.count} queries on {where}, {len(snap.queries)} fingerprints")
        for q in snap.queries[:3]:
            ctx.line(
                f"  {q.count:>4} x {q.fingerprint[:60]!r}: p50 {q.p50_ms:.2f} ms, "
                f"p95 {q.p95_ms:.2f} ms, p99 {q.p99_ms:.2f} ms"
            )
        example = f", e.g. {snap.slow_queries[0].fingerprint[:50]!r}" if snap.slow_queries else ""
        ctx.line(f"slow queries (>= 20 ms): {snap.overall.slow}{example}")
        for event in events:
            ctx.line(f"N+1: {event.fingerprint!r} ran {event.count} times in {event.unit}")
        ctx.line(f"health: {snap.health} ({snap.slow_share:.1%} of recent queries slow)")
    finally:
        mon.uninstrument()
        engine.dispose()
