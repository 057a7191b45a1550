"""Scale runs of phoenixkit.batch on a PostgreSQL of its own (minutes, not part of run.py):

1. bulk_insert of N rows (default 1,000,000) of which 1% violate a CHECK constraint: every
   valid row committed once, every invalid one reported by index; rows/s.
2. bulk_insert of M generated rows (default 10,000,000) from a generator: peak memory
   (tracemalloc peak of Python allocations, and the process's max RSS) stays bounded.

``python benchmarks/batch_scale.py [N] [M]``
"""

from __future__ import annotations

import resource
import sys
import time
import tracemalloc
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "src")]

import sqlalchemy as sa  # noqa: E402

from _postgres import postgres_url  # noqa: E402
from phoenixkit.batch import bulk_insert  # noqa: E402


def table(engine: sa.engine.Engine) -> sa.Table:
    meta = sa.MetaData()
    t = sa.Table(
        f"scale_{uuid.uuid4().hex[:8]}",
        meta,
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("qty", sa.Integer, sa.CheckConstraint("qty >= 0"), nullable=False),
        sa.Column("sku", sa.Text, nullable=False),
    )
    meta.create_all(engine)
    return t


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    m = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000_000
    with postgres_url() as url:
        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        t = table(engine)
        bad = {i for i in range(n) if i % 100 == 37}
        rows = ({"id": i, "qty": -1 if i in bad else i % 7, "sku": f"s{i % 997}"} for i in range(n))
        began = time.perf_counter()
        report = bulk_insert(engine, t, rows, size=1000, concurrency=2, progress=False)
        took = time.perf_counter() - began
        with engine.connect() as conn:
            count, distinct = conn.execute(
                sa.select(sa.func.count(), sa.func.count(sa.distinct(t.c.id)))
            ).one()
        assert report.failed_indexes == sorted(bad), "the failures are not the bad rows"
        assert count == distinct == n - len(bad), (count, distinct)
        print(f"1) {n:,} rows, {len(bad):,} bad: {report.summary()}")
        print(
            f"   table holds {count:,} distinct rows = {n:,} - {len(bad):,}; {n / took:,.0f} rows/s"
        )

        t2 = table(engine)
        tracemalloc.start()
        began = time.perf_counter()
        gen = ({"id": i, "qty": i % 7, "sku": f"s{i % 997}"} for i in range(m))
        report = bulk_insert(
            engine, t2, gen, size=1000, concurrency=2, progress=False, max_failures_kept=0
        )
        took = time.perf_counter() - began
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"2) {m:,} generated rows: {report.summary()}")
        print(
            f"   peak Python allocations {peak / 2**20:.1f} MiB, max RSS {rss:.0f} MiB, "
            f"{m / took:,.0f} rows/s (under tracemalloc)"
        )
        engine.dispose()


if __name__ == "__main__":
    main()
