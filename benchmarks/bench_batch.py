"""Bulk writes on a real PostgreSQL (a server of our own, see ``_postgres.py``) beside what a
user would write instead, and the chunker beside the ``islice`` recipe.

- ``copy_rows`` beside a raw psycopg ``COPY ... FROM STDIN`` loop of ``write_row`` (the
  driver's limit): the same 20,000 narrow rows, one transaction each.
- ``bulk_insert`` (chunks of 1,000, one transaction per chunk) beside a naive row-by-row
  ``INSERT`` in autocommit, and beside SQLAlchemy's own executemany of the same rows in one
  transaction (``conn.execute(insert(t), rows)``, insertmanyvalues). One harness call
  writes one batch; ``ours/s`` is rows per second.
- ``bulk_upsert``, ``bulk_update``, ``bulk_delete`` and ``stream`` on a keyed table beside
  SQLAlchemy's own executemany / a hand-written ``DELETE ... IN`` loop / ``.all()``.
- ``chunked`` beside ``iter(lambda: list(islice(it, n)), [])`` over 100,000 integers.

Each side runs once and is checked before timing (row counts in the table).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator

from _harness import Case
from _postgres import postgres_url
from phoenixkit.batch import (
    bulk_delete,
    bulk_insert,
    bulk_update,
    bulk_upsert,
    chunked,
    copy_rows,
    stream,
)

COPY_ROWS = 20_000
INSERT_ROWS = 5_000
NAIVE_ROWS = 500


def _rows(n: int) -> list[tuple[int, str, int]]:
    return [(i, f"name-{i}", i % 97) for i in range(n)]


def _copy_case(url: str, n: int) -> Case:
    import psycopg

    data = _rows(n)
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("CREATE TABLE IF NOT EXISTS bench_copy (id int, name text, qty int)")

    def ours() -> object:
        with conn.transaction():
            conn.execute("TRUNCATE bench_copy")
            return copy_rows(conn, "bench_copy", ["id", "name", "qty"], data)

    def peer() -> object:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("TRUNCATE bench_copy")
            with cur.copy("COPY bench_copy (id, name, qty) FROM STDIN") as copy:
                for row in data:
                    copy.write_row(row)
        return n

    for side in (ours, peer):
        side()
        found = conn.execute("SELECT count(*) FROM bench_copy").fetchone()
        if found is None or found[0] != n:
            raise RuntimeError(f"COPY wrote {found} rows, not {n}")
    return Case(
        f"copy_rows: {n:,} rows (id, name, qty)",
        ours,
        "raw psycopg COPY write_row",
        peer,
        "rows",
        n,
    )


def _insert_cases(url: str, rows: int, naive_rows: int) -> list[Case]:
    import sqlalchemy as sa

    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    meta = sa.MetaData()
    table = sa.Table(
        f"bench_insert_{uuid.uuid4().hex[:6]}",
        meta,
        sa.Column("id", sa.Integer),
        sa.Column("name", sa.Text),
        sa.Column("qty", sa.Integer),
    )
    meta.create_all(engine)
    data = [{"id": i, "name": n, "qty": q} for i, n, q in _rows(rows)]
    scale = rows // naive_rows  # the naive side writes fewer rows per call: scale its time

    def ours() -> object:
        report = bulk_insert(engine, table, data, size=1000, concurrency=1)
        if not report.ok:
            raise RuntimeError(report.summary())
        return report.succeeded

    def sqlalchemy_executemany() -> object:
        with engine.begin() as conn:
            conn.execute(sa.insert(table), data)
        return rows

    def naive() -> object:
        with engine.connect() as conn:
            auto = conn.execution_options(isolation_level="AUTOCOMMIT")
            for row in data[:naive_rows]:
                auto.execute(sa.insert(table), row)
        return naive_rows

    def naive_scaled() -> object:
        for _ in range(scale):
            naive()
        return rows

    for side in (ours, sqlalchemy_executemany):
        if side() != rows:
            raise RuntimeError(f"{side.__name__} did not write {rows} rows")
    return [
        Case(
            f"bulk_insert: {rows:,} rows, chunks of 1,000",
            ours,
            "SQLAlchemy executemany, one transaction",
            sqlalchemy_executemany,
            "rows",
            rows,
        ),
        Case(
            f"bulk_insert: {rows:,} rows, chunks of 1,000",
            ours,
            "naive row-by-row INSERT in autocommit",
            naive_scaled,
            "rows",
            rows,
        ),
    ]


def _keyed_cases(url: str, rows: int) -> list[Case]:
    """Upsert, update, delete and a streaming read on a keyed table, beside SQLAlchemy."""
    import sqlalchemy as sa
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    meta = sa.MetaData()
    table = sa.Table(
        f"bench_keyed_{uuid.uuid4().hex[:6]}",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text),
        sa.Column("qty", sa.Integer),
    )
    meta.create_all(engine)
    data = [{"id": i, "name": n, "qty": q} for i, n, q in _rows(rows)]
    changes = [{"id": r["id"], "qty": r["qty"] + 1} for r in data]
    ids = [r["id"] for r in data]

    def upsert() -> object:
        return bulk_upsert(engine, table, data, size=1000, concurrency=1).succeeded

    def sa_upsert() -> object:
        stmt = pg_insert(table)
        stmt = stmt.on_conflict_do_update(
            index_elements=["id"], set_={"name": stmt.excluded.name, "qty": stmt.excluded.qty}
        )
        with engine.begin() as conn:
            conn.execute(stmt, data)
        return rows

    def update() -> object:
        return bulk_update(engine, table, changes, size=1000, concurrency=1).succeeded

    def sa_update() -> object:
        stmt = sa.update(table).where(table.c.id == sa.bindparam("b_id"))
        stmt = stmt.values(qty=sa.bindparam("qty"))
        with engine.begin() as conn:
            conn.execute(stmt, [{"b_id": c["id"], "qty": c["qty"]} for c in changes])
        return rows

    def delete_and_restore() -> object:
        done = bulk_delete(engine, table, ids, size=1000, concurrency=1).succeeded
        bulk_insert(engine, table, data, size=1000, concurrency=1)
        return done

    def sa_delete_and_restore() -> object:
        with engine.begin() as conn:
            for n in range(0, rows, 1000):
                conn.execute(sa.delete(table).where(table.c.id.in_(ids[n : n + 1000])))
        bulk_insert(engine, table, data, size=1000, concurrency=1)
        return rows

    def read() -> object:
        return sum(len(p) for p in stream(engine, sa.select(table), size=1000))

    def sa_read() -> object:
        with engine.connect() as conn:
            return len(conn.execute(sa.select(table)).all())

    for side in (upsert, sa_upsert, update, sa_update, read, sa_read):
        if side() != rows:
            raise RuntimeError(f"{side.__name__} did not handle {rows} rows")
    return [
        Case(
            f"bulk_upsert: {rows:,} rows",
            upsert,
            "SQLAlchemy ON CONFLICT executemany",
            sa_upsert,
            "rows",
            rows,
        ),
        Case(
            f"bulk_update: {rows:,} rows",
            update,
            "SQLAlchemy UPDATE executemany",
            sa_update,
            "rows",
            rows,
        ),
        Case(
            f"bulk_delete + bulk_insert back: {rows:,} rows",
            delete_and_restore,
            "DELETE ... IN per 1,000 + bulk_insert back",
            sa_delete_and_restore,
            "rows",
            rows,
        ),
        Case(
            f"stream: {rows:,} rows by 1,000",
            read,
            "SQLAlchemy .all() (holds them all)",
            sa_read,
            "rows",
            rows,
        ),
    ]


def _chunk_case() -> Case:
    data = list(range(100_000))

    def ours() -> object:
        return sum(1 for _ in chunked(data, 1000))

    def peer() -> object:
        it = iter(data)
        return sum(1 for _ in iter(lambda: list(itertools.islice(it, 1000)), []))

    if ours() != peer() != 100:
        raise RuntimeError("the chunkers disagree")
    return Case("chunked: 100,000 items by 1,000", ours, "islice recipe", peer, "items", 100_000)


def cases(quick: bool) -> Iterator[Case]:
    yield _chunk_case()
    with postgres_url() as url:
        yield _copy_case(url, COPY_ROWS // 4 if quick else COPY_ROWS)
        yield from _keyed_cases(url, INSERT_ROWS // 5 if quick else INSERT_ROWS)
        yield from _insert_cases(
            url,
            INSERT_ROWS // 5 if quick else INSERT_ROWS,
            NAIVE_ROWS // 5 if quick else NAIVE_ROWS,
        )
