"""The batch part of the tour: bulk writes that lose nothing, with the failing rows found.

Embedded: a SQLite file in a temporary directory. With ``--postgres``: the same on
PostgreSQL, plus ``copy_rows`` through COPY.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from typing import TYPE_CHECKING

from phoenixkit.batch import bulk_insert, copy_rows

if TYPE_CHECKING:
    from phoenixkit.demo.tour import TourContext

__all__ = ["run_batch_section"]

ROWS = 50_000
BAD = frozenset({123, 4_567, 31_337, 49_999})


def run_batch_section(ctx: TourContext) -> None:
    """Insert rows with a few constraint violations; report the failures by index."""
    import sqlalchemy as sa

    if ctx.postgres_url:
        url = ctx.postgres_url.replace("postgresql://", "postgresql+psycopg://", 1)
        where = "PostgreSQL"
    else:
        url = f"sqlite:///{tempfile.mkdtemp(prefix='phoenixkit-demo-')}/orders.db"
        where = "SQLite (embedded)"
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    orders = sa.Table(
        f"demo_orders_{uuid.uuid4().hex[:8]}",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("qty", sa.Integer, sa.CheckConstraint("qty > 0"), nullable=False),
        sa.Column("sku", sa.Text, nullable=False),
    )
    meta.create_all(engine)
    try:
        rows = (
            {"id": i, "qty": 0 if i in BAD else 1 + i % 5, "sku": f"sku-{i % 977}"}
            for i in range(ROWS)
        )
        ctx.line(f"bulk_insert of {ROWS:,} orders into {where}, {len(BAD)} of them with qty 0")
        report = bulk_insert(engine, orders, rows, size=1000, concurrency=2, progress=False)
        ctx.line(report.summary())
        bad_chunks = [c for c in report.chunks if not c.ok]
        ctx.line(
            f"{len(bad_chunks)} chunks held a bad row; each was searched under savepoints "
            "and its good rows committed"
        )
        for failure in report.failures:
            ctx.line(f"  row {failure.index}: {type(failure.error).__name__} (qty check)")
        with engine.connect() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(orders)).scalar()
        ctx.line(f"rows in the table: {count:,} (= {ROWS:,} - {len(BAD)}: none lost, none twice)")
        if ctx.postgres_url:
            _copy(ctx, engine, orders.name)
    finally:
        meta.drop_all(engine)
        engine.dispose()


def _copy(ctx: TourContext, engine: object, table: str) -> None:
    import psycopg

    assert ctx.postgres_url is not None
    data = [(ROWS + i, 1 + i % 5, f"sku-{i % 977}") for i in range(200_000)]
    with psycopg.connect(ctx.postgres_url) as conn:
        began = time.perf_counter()
        copy_rows(conn, table, ["id", "qty", "sku"], data)
        conn.commit()
        took = time.perf_counter() - began
    rate = len(data) / took
    ctx.line(f"copy_rows: {len(data):,} rows through COPY in {took:.2f} s ({rate:,.0f} rows/s)")
