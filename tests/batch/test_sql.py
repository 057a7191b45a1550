"""Bulk SQL on a real PostgreSQL: COPY, chunked insert/upsert/update/delete, streaming
reads, failing rows bisected out, a killed connection retried without loss or duplicates."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from phoenixkit.batch import (
    bulk_delete,
    bulk_insert,
    bulk_update,
    bulk_upsert,
    copy_rows,
    stream,
)
from phoenixkit.errors import ConfigurationError
from phoenixkit.retry import RetryPolicy


@pytest.fixture
def engine(pg_primary: Any) -> Iterator[sa.engine.Engine]:
    eng = sa.create_engine(pg_primary.sqlalchemy_url, pool_pre_ping=True)
    yield eng
    eng.dispose()


@pytest.fixture
def table(engine: sa.engine.Engine) -> Iterator[sa.Table]:
    meta = sa.MetaData()
    t = sa.Table(
        f"items_{uuid.uuid4().hex[:10]}",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("qty", sa.Integer, sa.CheckConstraint("qty >= 0"), nullable=False),
        sa.Column("name", sa.Text),
    )
    meta.create_all(engine)
    yield t
    meta.drop_all(engine)


def rows_of(engine: sa.engine.Engine, t: sa.Table) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(t).order_by(t.c.id))]


# COPY -----------------------------------------------------------------------------------


@pytest.mark.parametrize("binary", [False, True])
def test_copy_rows_writes_every_row(pg_primary: Any, binary: bool) -> None:
    name = f"copy_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_primary.url) as conn:
        conn.execute(
            f"CREATE TABLE {name} (id int, note text, price numeric(10,2), at timestamptz)"
        )
        data = [
            (i, f"tab\there 'q' \\ {i}" if i % 2 else None, Decimal(i) / 4, None)
            for i in range(5000)
        ]
        assert (
            copy_rows(conn, name, ["id", "note", "price", "at"], iter(data), binary=binary) == 5000
        )
        conn.commit()
        got = conn.execute(f"SELECT id, note, price::float8 FROM {name} ORDER BY id").fetchall()
    assert got == [(i, n, float(p)) for i, n, p, _ in data]


def test_copy_rows_refuses_a_row_of_the_wrong_arity_and_writes_nothing(pg_primary: Any) -> None:
    name = f"copy_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_primary.url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {name} (a int, b int)")
        with (
            pytest.raises(ConfigurationError, match=r"row 2 has 3 values for 2 columns"),
            conn.transaction(),
        ):
            copy_rows(conn, name, ["a", "b"], [(1, 2), (3, 4), (5, 6, 7)])
        assert conn.execute(f"SELECT count(*) FROM {name}").fetchone() == (0,)
        rows = iter([(1, 2), (3, 4), (5,)])  # a generator: found as it is read
        with (
            pytest.raises(ConfigurationError, match=r"row 2 has 1 values for 2 columns"),
            conn.transaction(),
        ):
            copy_rows(conn, name, ["a", "b"], rows)
        assert conn.execute(f"SELECT count(*) FROM {name}").fetchone() == (0,)


def test_copy_rows_quotes_names_and_reaches_through_sqlalchemy(
    engine: sa.engine.Engine,
) -> None:
    schema, name = f"s_{uuid.uuid4().hex[:6]}", 'odd "name"; drop'
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        conn.execute(sa.text(f'CREATE TABLE {schema}."odd ""name""; drop" ("my col" int)'))
        assert copy_rows(conn, f"{schema}.{name}", ["my col"], [(1,), (2,)]) == 2
    with engine.connect() as conn:
        count = conn.execute(sa.text(f'SELECT count(*) FROM {schema}."odd ""name""; drop"'))
        assert count.scalar() == 2


def test_copy_rows_needs_psycopg() -> None:
    with pytest.raises(ConfigurationError, match="psycopg 3 connection"):
        copy_rows(object(), "t", ["a"], [])


# INSERT / upsert / update / delete ------------------------------------------------------


def test_bulk_insert_bisects_out_the_violating_rows(
    engine: sa.engine.Engine, table: sa.Table
) -> None:
    n = 20_000
    bad = set(range(7, n, 101))  # ~1%: qty < 0 violates the CHECK constraint
    rows = ({"id": i, "qty": -1 if i in bad else i % 50, "name": f"n{i}"} for i in range(n))
    report = bulk_insert(engine, table, rows, size=500, concurrency=2)
    assert report.failed_indexes == sorted(bad)
    assert all(
        "qty_check" in str(f.error) or "check" in str(f.error).lower() for f in report.failures
    )
    assert report.succeeded == n - len(bad)
    with engine.connect() as conn:
        ids = [r[0] for r in conn.execute(sa.select(table.c.id))]
    assert sorted(ids) == sorted(set(range(n)) - bad)  # every valid row once, no others


def test_bulk_insert_keeps_under_the_parameter_ceiling(engine: sa.engine.Engine) -> None:
    meta = sa.MetaData()
    wide = sa.Table(
        f"wide_{uuid.uuid4().hex[:8]}", meta, *(sa.Column(f"c{i}", sa.Integer) for i in range(100))
    )
    meta.create_all(engine)
    try:
        rows = [{f"c{i}": j for i in range(100)} for j in range(1000)]
        report = bulk_insert(engine, wide, rows, size=1000)
        assert report.ok
        assert max(c.size for c in report.chunks) == 327  # 327 x 100 <= 32,767
    finally:
        meta.drop_all(engine)


def test_bulk_insert_all_or_nothing(engine: sa.engine.Engine, table: sa.Table) -> None:
    rows = [{"id": i, "qty": -1 if i == 1500 else 1} for i in range(2000)]
    with pytest.raises(sa.exc.IntegrityError):
        bulk_insert(engine, table, rows, size=500, all_or_nothing=True)
    assert rows_of(engine, table) == []
    report = bulk_insert(engine, table, rows[:1000], size=500, all_or_nothing=True)
    assert report.ok
    assert len(report.chunks) == 2
    assert len(rows_of(engine, table)) == 1000


def test_bad_rows_are_refused_before_any_write(engine: sa.engine.Engine, table: sa.Table) -> None:
    rows = [{"id": 1, "qty": 1}, {"id": 2, "qty": 2, "colour": "red"}]
    with pytest.raises(ConfigurationError, match=r"row 1 names column\(s\) \['colour'\]"):
        bulk_insert(engine, table, rows)
    with pytest.raises(ConfigurationError, match="row 0 must be a mapping"):
        bulk_insert(engine, table, [(1, 2)])  # type: ignore[list-item]
    assert rows_of(engine, table) == []
    with pytest.raises(ConfigurationError, match="SQLAlchemy Table or ORM model"):
        bulk_insert(engine, "items", rows)
    with pytest.raises(ConfigurationError, match="size must be an int >= 1, got 0"):
        bulk_insert(engine, table, rows[:1], size=0)


def test_upsert_update_and_delete(engine: sa.engine.Engine, table: sa.Table) -> None:
    bulk_insert(engine, table, [{"id": i, "qty": i, "name": "a"} for i in range(10)])
    report = bulk_upsert(
        engine, table, [{"id": i, "qty": 100 + i, "name": "b"} for i in range(5, 15)]
    )
    assert report.ok
    got = {r[0]: (r[1], r[2]) for r in rows_of(engine, table)}
    assert got[4] == (4, "a")
    assert got[5] == (105, "b")
    assert got[14] == (114, "b")
    bulk_update(engine, table, [{"id": i, "name": "c"} for i in range(0, 15, 2)], size=3)
    got = {r[0]: (r[1], r[2]) for r in rows_of(engine, table)}
    assert got[0] == (0, "c")
    assert got[1] == (1, "a")
    assert got[14] == (114, "c")
    report = bulk_delete(engine, table, range(0, 15, 3), size=2)
    assert report.succeeded == 5
    assert sorted(r[0] for r in rows_of(engine, table)) == [i for i in range(15) if i % 3]


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = f"orders_{uuid.uuid4().hex[:8]}"
    id: Mapped[int] = mapped_column(primary_key=True)
    total: Mapped[int]


def test_orm_models_and_isolation_levels(engine: sa.engine.Engine) -> None:
    Base.metadata.create_all(engine)
    try:
        report = bulk_insert(
            engine,
            Order,
            [{"id": i, "total": i * 10} for i in range(100)],
            size=30,
            isolation_level="SERIALIZABLE",
        )
        assert report.ok
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.sum(Order.total))).scalar() == 49_500
        with pytest.raises(ConfigurationError, match="isolation_level must be one of"):
            bulk_insert(engine, Order, [{"id": 1000, "total": 1}], isolation_level="NONSENSE")
    finally:
        Base.metadata.drop_all(engine)


# streaming reads --------------------------------------------------------------------------


def test_stream_reads_in_chunks_through_a_server_side_cursor(
    engine: sa.engine.Engine, table: sa.Table, pg_primary: Any
) -> None:
    bulk_insert(engine, table, [{"id": i, "qty": 1} for i in range(2500)])
    parts = list(stream(engine, sa.select(table.c.id).order_by(table.c.id), size=1000))
    assert [len(p) for p in parts] == [1000, 1000, 500]
    assert [r[0] for p in parts for r in p] == list(range(2500))
    with psycopg.connect(pg_primary.url) as conn:
        parts = list(stream(conn, f"SELECT id FROM {table.name} ORDER BY id", size=700))
        assert [len(p) for p in parts] == [700, 700, 700, 400]


# a connection killed mid-run --------------------------------------------------------------


def test_a_killed_connection_is_retried_with_no_loss_and_no_duplicates(
    pg_primary: Any,
) -> None:
    app = f"pk-batch-{uuid.uuid4().hex[:6]}"
    eng = sa.create_engine(
        pg_primary.sqlalchemy_url, pool_pre_ping=True, connect_args={"application_name": app}
    )
    meta = sa.MetaData()
    t = sa.Table(
        f"kill_{uuid.uuid4().hex[:8]}", meta, sa.Column("id", sa.Integer), sa.Column("v", sa.Text)
    )
    meta.create_all(eng)
    n, killed = 400_000, 0
    done = threading.Event()

    def killer() -> None:
        nonlocal killed
        with psycopg.connect(pg_primary.url, autocommit=True) as admin:
            while not done.is_set() and killed < 3:
                time.sleep(0.05)
                found = admin.execute(  # mid-statement or mid-transaction
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = %s AND state <> 'idle'",
                    (app,),
                ).fetchone()
                killed += int(found[0]) if found else 0

    retry = RetryPolicy(
        attempts=5, wait=lambda n: 0.01, on=(sa.exc.OperationalError, sa.exc.DBAPIError)
    )
    thread = threading.Thread(target=killer)
    thread.start()
    try:
        report = bulk_insert(
            eng,
            t,
            ({"id": i, "v": "x" * 50} for i in range(n)),
            size=2000,
            concurrency=2,
            retry=retry,
        )
    finally:
        done.set()
        thread.join()
    try:
        assert killed >= 1  # the run really lost connections
        assert report.ok, report.failures[:3]
        with eng.connect() as conn:
            total, distinct = conn.execute(
                sa.select(sa.func.count(), sa.func.count(sa.distinct(t.c.id)))
            ).one()
        assert total == distinct == n
    finally:
        meta.drop_all(eng)
        eng.dispose()


# PostgreSQL's own verdict on each row ------------------------------------------------------


def test_rows_refused_for_any_reason_are_reported_never_altered(engine: sa.engine.Engine) -> None:
    from phoenixkit.batch.report import RowRejected

    meta = sa.MetaData()
    t = sa.Table(
        f"strict_{uuid.uuid4().hex[:8]}",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(5), nullable=False),
        sa.Column("price", sa.Numeric(6, 2)),
    )
    meta.create_all(engine)
    try:
        bulk_insert(engine, t, [{"id": 3, "code": "taken", "price": 1}])
        rows = [
            {"id": 1, "code": "ok", "price": Decimal("1.50")},
            {"id": 2, "code": "toolong", "price": 2},  # 22001: never cut to "toolo"
            {"id": 3, "code": "dup", "price": 3},  # 23505: the key exists
            {"id": 4, "code": None, "price": 4},  # 23502: not null
            {"id": 5, "code": "big", "price": Decimal("123456.7")},  # 22003: overflow
            {"id": 6, "code": "fine", "price": None},
        ]
        report = bulk_insert(engine, t, rows, size=100)
        assert report.failed_indexes == [1, 2, 3, 4]
        states = [getattr(f.error, "sqlstate", None) for f in report.failures]
        assert states == ["22001", "23505", "23502", "22003"]
        assert all(isinstance(f.error, RowRejected) for f in report.failures)
        assert report.chunks[0].calls == 1  # found on the server, not by bisection
        got = {r[0]: r[1] for r in rows_of(engine, t)}
        assert got == {1: "ok", 3: "taken", 6: "fine"}  # nothing truncated, nothing lost
    finally:
        meta.drop_all(engine)


def test_upsert_reports_bad_rows_and_writes_the_rest(
    engine: sa.engine.Engine, table: sa.Table
) -> None:
    bulk_insert(engine, table, [{"id": i, "qty": 1, "name": "old"} for i in range(10)])
    rows = [{"id": i, "qty": -1 if i == 4 else 5, "name": "new"} for i in range(8)]
    report = bulk_upsert(engine, table, rows)
    assert report.failed_indexes == [4]
    got = {r[0]: (r[1], r[2]) for r in rows_of(engine, table)}
    assert got[4] == (1, "old")
    assert got[3] == (5, "new")
    assert got[9] == (1, "old")


def test_mixed_python_types_in_a_column_still_insert(engine: sa.engine.Engine) -> None:
    meta = sa.MetaData()
    t = sa.Table(
        f"mixed_{uuid.uuid4().hex[:8]}",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("price", sa.Numeric(8, 2)),
        sa.Column("ratio", sa.Float),
        sa.Column("note", sa.Text),
    )
    meta.create_all(engine)
    try:
        rows = [
            {"id": 1, "price": 3, "ratio": 1, "note": "a"},
            {"id": 2, "price": Decimal("2.50"), "ratio": 0.5, "note": None},
            {"id": 3, "price": None, "ratio": 2, "note": "c"},
        ]
        report = bulk_insert(engine, t, rows)
        assert report.ok
        assert rows_of(engine, t) == [
            (1, Decimal("3.00"), 1.0, "a"),
            (2, Decimal("2.50"), 0.5, None),
            (3, None, 2.0, "c"),
        ]
    finally:
        meta.drop_all(engine)


@pytest.mark.slow
def test_a_million_rows_one_percent_bad_every_valid_row_once(
    engine: sa.engine.Engine, table: sa.Table
) -> None:
    n = 1_000_000
    bad = set(range(37, n, 100))  # 1%: every chunk of 1,000 holds ten bad rows

    def rows() -> Iterator[dict[str, object]]:
        for i in range(n):
            yield {"id": i, "qty": -1 if i in bad else i % 7, "name": f"s{i % 997}"}

    report = bulk_insert(engine, table, rows(), size=1000, concurrency=2)
    assert report.failed_indexes == sorted(bad)
    assert report.succeeded == n - len(bad)
    with engine.connect() as conn:
        total, distinct = conn.execute(
            sa.select(sa.func.count(), sa.func.count(sa.distinct(table.c.id)))
        ).one()
    assert total == distinct == n - len(bad)  # every valid row committed exactly once
    with engine.connect() as conn:
        missing = conn.execute(
            sa.select(sa.func.count()).select_from(table).where(table.c.id % 100 == 37)
        ).scalar()
    assert missing == 0
