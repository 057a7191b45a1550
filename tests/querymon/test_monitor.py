"""QueryMonitor on a real PostgreSQL (and on its own): fingerprints, percentiles, slow
log, N+1, health thresholds, bounded memory, failures that never reach the user."""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from phoenixkit.errors import ConfigurationError
from phoenixkit.querymon import (
    QueryMonitor,
    asgi_app,
    prometheus_text,
    snapshot_dict,
    top_statements,
    wsgi_app,
)
from phoenixkit.testing import FakeClock


@pytest.fixture
def engine(pg_primary: Any) -> Iterator[sa.engine.Engine]:
    eng = sa.create_engine(pg_primary.sqlalchemy_url)
    yield eng
    eng.dispose()


def by_fingerprint(mon: QueryMonitor) -> dict[str, Any]:
    return {q.fingerprint: q for q in mon.snapshot().queries}


# On PostgreSQL ------------------------------------------------------------------------------


def test_literals_merge_tables_do_not(engine: sa.engine.Engine) -> None:
    mon = QueryMonitor().instrument(engine)
    with engine.connect() as conn:
        for i in range(5):
            conn.exec_driver_sql(f"SELECT {i} AS n, 'x{i}' AS s")
        conn.execute(sa.text("SELECT relname FROM pg_class WHERE oid = :oid"), {"oid": 1})
        conn.execute(sa.text("SELECT relname FROM pg_class WHERE oid = :oid"), {"oid": 2})
        conn.exec_driver_sql("SELECT count(*) FROM pg_namespace")
    found = by_fingerprint(mon)
    assert found["select ? as n,? as s"].count == 5
    assert (
        found["select relname from pg_class where oid=%(oid)s".replace("%(oid)s", "?")].count == 2
    )
    assert found["select count(*)from pg_namespace"].count == 1
    assert mon.snapshot().overall.count == 8
    pools = mon.snapshot().extra["pools"]
    assert pools[0]["checkouts"] >= 1
    assert "checkedout" in pools[0]
    mon.uninstrument()
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    assert mon.snapshot().overall.count == 8  # the hooks are gone


def test_percentiles_are_within_one_percent_of_the_recorded_samples(
    engine: sa.engine.Engine,
) -> None:
    mon = QueryMonitor()
    seen: list[float] = []
    record = mon.record

    def spy(sql: str, seconds: float, **kw: Any) -> None:
        seen.append(seconds)
        record(sql, seconds, **kw)

    mon.record = spy  # type: ignore[method-assign]
    mon.instrument(engine)
    with engine.connect() as conn:
        for i in range(300):
            conn.exec_driver_sql(f"SELECT pg_sleep({(i % 7) / 2000})")
    q = by_fingerprint(mon)["select pg_sleep(?)"]
    ordered = sorted(seen)
    for p, got in ((0.5, q.p50_ms), (0.9, q.p90_ms), (0.95, q.p95_ms), (0.99, q.p99_ms)):
        exact = ordered[math.floor(p * (len(ordered) - 1))] * 1000
        assert abs(got - exact) <= 0.01 * exact * (1 + 1e-9)
    assert q.count == 300


def test_slow_queries_are_logged_with_masked_parameters_and_call_site(
    engine: sa.engine.Engine,
) -> None:
    mon = QueryMonitor(slow_threshold_ms=20).instrument(engine)
    with engine.connect() as conn:
        conn.execute(
            sa.text("SELECT pg_sleep(0.03), :password AS p, :email AS e"),
            {"password": "hunter2", "email": "ada@example.com"},
        )
        conn.exec_driver_sql("SELECT 1")
    snap = mon.snapshot()
    assert len(snap.slow_queries) == 1
    slow = snap.slow_queries[0]
    assert slow.duration_ms >= 20
    assert slow.params is not None
    assert "hunter2" not in slow.params
    assert "ada@example.com" not in slow.params
    assert slow.call_site is not None
    assert "test_monitor.py" in slow.call_site
    assert snap.overall.slow == 1


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = f"authors_{uuid.uuid4().hex[:6]}"
    id: Mapped[int] = mapped_column(primary_key=True)
    books: Mapped[list[Book]] = relationship(back_populates="author", lazy="select")


class Book(Base):
    __tablename__ = f"books_{uuid.uuid4().hex[:6]}"
    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(sa.ForeignKey(Author.id))
    author: Mapped[Author] = relationship(back_populates="books")


def test_n_plus_one_is_detected_for_an_orm_lazy_load_loop(engine: sa.engine.Engine) -> None:
    Base.metadata.create_all(engine)
    try:
        with Session(engine) as s:
            s.add_all(
                Author(id=i, books=[Book(id=10 * i + j) for j in range(2)]) for i in range(12)
            )
            s.commit()
        events: list[Any] = []
        mon = QueryMonitor(n_plus_one=10, on_event=events.append).instrument(engine)
        with mon.unit_of_work("GET /authors"), Session(engine) as s:
            authors = s.scalars(sa.select(Author)).all()
            titles = [len(a.books) for a in authors]  # one lazy load per author
        assert titles == [2] * 12
        assert len(events) == 1  # reported once per unit, not per query
        event = events[0]
        assert event.count == 10
        assert event.unit == "GET /authors"
        assert Book.__tablename__ in event.fingerprint
        assert "test_monitor.py" in (event.call_site or "")
        with Session(engine) as s:  # outside a unit of work: nothing is counted
            for a in s.scalars(sa.select(Author)).all():
                _ = a.books
        assert len(events) == 1
    finally:
        Base.metadata.drop_all(engine)


def test_malformed_sql_and_errors_are_recorded_and_still_raise(engine: sa.engine.Engine) -> None:
    mon = QueryMonitor().instrument(engine)
    with engine.connect() as conn, pytest.raises(sa.exc.ProgrammingError):
        conn.exec_driver_sql("SELEC 'oops")
    found = by_fingerprint(mon)
    assert found["selec ?"].errors == 1


def test_a_failing_monitor_never_breaks_the_query(
    engine: sa.engine.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    mon = QueryMonitor().instrument(engine)

    def broken(*args: Any) -> None:
        raise RuntimeError("monitor bug")

    mon._record = broken  # type: ignore[method-assign]
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT 41 + 1").scalar() == 42
        assert conn.exec_driver_sql("SELECT 2").scalar() == 2
    assert mon.snapshot().monitor_errors == 2
    assert sum("failed to record" in r.getMessage() for r in caplog.records) == 1  # once


def test_psycopg_connections_sync_and_async(pg_primary: Any) -> None:
    mon = QueryMonitor()
    with psycopg.connect(pg_primary.url) as conn:
        mon.instrument(conn)
        conn.execute("SELECT %s::int", (1,))
        with conn.cursor() as cur:
            cur.execute("SELECT %s::int", (2,))
            cur.executemany("SELECT %s::int", [(3,), (4,)])
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1/0")

    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(pg_primary.url) as aconn:
            mon.instrument(aconn)
            await aconn.execute("SELECT %s::int", (5,))

    asyncio.run(run())
    found = by_fingerprint(mon)
    assert found["select ?::int"].count == 4
    assert found["select ?/?"].errors == 1


def test_pg_stat_statements_is_read_and_matched(engine: sa.engine.Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    mon = QueryMonitor().instrument(engine)
    with engine.connect() as conn:
        for i in range(20):
            conn.exec_driver_sql(f"SELECT count(*) FROM pg_class WHERE relpages > {i}")
    top = top_statements(engine, limit=5000, monitor=mon)  # other tests wrote far more
    ours = [s for s in top if s.fingerprint == "select count(*)from pg_class where relpages>?"]
    assert ours
    assert ours[0].calls >= 20
    assert ours[0].seen_by_monitor


# Without a server ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slow", "health"),
    [(0, "healthy"), (4, "healthy"), (5, "degraded"), (10, "degraded"), (11, "unhealthy")],
)
def test_health_changes_at_the_thresholds(slow: int, health: str) -> None:
    clock = FakeClock(1000.0)
    mon = QueryMonitor(slow_threshold_ms=100, clock=clock)
    for i in range(100):
        mon.record("SELECT 1", 0.2 if i < slow else 0.001)
    assert mon.health() == health
    assert mon.snapshot().slow_share == pytest.approx(slow / 100)
    clock.advance(6 * 60)  # the window (5 minutes) moves on: nothing recent, healthy
    assert mon.health() == "healthy"


def test_fingerprints_are_bounded_and_the_rest_is_other() -> None:
    import tracemalloc

    mon = QueryMonitor(max_fingerprints=1000)
    tracemalloc.start()
    try:
        for i in range(20_000):
            mon.record(f"SELECT * FROM table_{i} WHERE id = 1", 0.001)
        mid = tracemalloc.get_traced_memory()[0]
        for i in range(20_000, 40_000):
            mon.record(f"SELECT * FROM table_{i} WHERE id = 1", 0.001)
        end = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    snap = mon.snapshot()
    assert len(snap.queries) == 1001  # 1000 kept + "other"
    other = next(q for q in snap.queries if q.fingerprint == "other")
    assert other.count == 39_000
    assert snap.dropped_fingerprints == 39_000
    assert snap.overall.count == 40_000
    assert end - mid < 2**20  # flat: 20k more distinct statements, no more memory


@settings(max_examples=50)
@given(st.lists(st.floats(min_value=1e-5, max_value=5.0), min_size=1, max_size=200))
def test_snapshot_percentiles_match_the_samples(samples: list[float]) -> None:
    mon = QueryMonitor()
    for s in samples:
        mon.record("SELECT 1", s)
    q = mon.snapshot().overall
    ordered = sorted(samples)
    exact = ordered[math.floor(0.95 * (len(ordered) - 1))] * 1000
    assert abs(q.p95_ms - exact) <= 0.01 * exact * (1 + 1e-9)


def test_exports() -> None:
    mon = QueryMonitor(slow_threshold_ms=50)
    for i in range(10):
        mon.record("SELECT * FROM t WHERE id = 1", 0.0004 * (i + 1))
    mon.record("SELECT pg_sleep(1)", 0.06)
    text = prometheus_text(mon)
    assert 'phoenixkit_querymon_query_duration_seconds_bucket{le="0.0005"} 1' in text
    assert 'phoenixkit_querymon_query_duration_seconds_bucket{le="+Inf"} 11' in text
    assert "phoenixkit_querymon_slow_queries_total 1" in text
    assert 'quantile="0.99"' in text
    data = snapshot_dict(mon.snapshot())
    assert data["overall"]["count"] == 11
    json.dumps(data)

    wsgi = wsgi_app(mon)
    statuses: list[str] = []
    body = b"".join(
        wsgi(
            {"PATH_INFO": "/metrics/queries", "REQUEST_METHOD": "GET"},
            lambda s, h: statuses.append(s),
        )
    )
    assert statuses == ["200 OK"]
    assert json.loads(body)["health"] == "degraded"  # 1 of 11 slow: 9%
    body = b"".join(
        wsgi(
            {
                "PATH_INFO": "/metrics/queries",
                "REQUEST_METHOD": "GET",
                "QUERY_STRING": "format=prometheus",
            },
            lambda s, h: None,
        )
    )
    assert body.startswith(b"# HELP phoenixkit_querymon_query_duration_seconds")

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "path": "/metrics/queries",
        "method": "GET",
        "headers": [],
        "query_string": b"",
    }
    asyncio.run(asgi_app(mon)(scope, receive, send))
    assert sent[0]["status"] == 200
    assert json.loads(sent[1]["body"])["overall"]["count"] == 11
    sent.clear()
    asyncio.run(asgi_app(mon)({**scope, "path": "/other"}, receive, send))
    assert sent[0]["status"] == 404


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="slow_threshold_ms"):
        QueryMonitor(slow_threshold_ms=0)
    with pytest.raises(ConfigurationError, match="max_fingerprints"):
        QueryMonitor(max_fingerprints=0)
    with pytest.raises(ConfigurationError, match="degraded_at"):
        QueryMonitor(degraded_at=0.2, unhealthy_at=0.1)
    with pytest.raises(ConfigurationError, match="cannot instrument"):
        QueryMonitor().instrument(object())


def test_slow_selects_are_explained_off_the_hot_path(engine: sa.engine.Engine) -> None:
    mon = QueryMonitor(slow_threshold_ms=5, explain=True).instrument(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_sleep(0.01), :n AS n"), {"n": 7})
        conn.exec_driver_sql("CREATE TEMP TABLE t_explain (x int)")
        conn.exec_driver_sql("INSERT INTO t_explain SELECT 1 FROM pg_sleep(0.01)")
    assert mon.explainer is not None
    assert mon.explainer.wait(10)
    extra = mon.snapshot().extra
    plans = extra["plans"]
    assert list(plans) == ["select pg_sleep(?),? as n"]  # the INSERT is never explained
    plan = plans["select pg_sleep(?),? as n"]
    assert plan[0]["Plan"]["Node Type"] == "Result"
    assert "Actual Rows" not in plan[0]["Plan"]  # no ANALYZE: the query did not run again
    assert extra["explain"]["explained"] == 1
    mon.uninstrument()


def test_opentelemetry_metrics_read_the_monitor() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from phoenixkit.querymon.otel import register_otel_metrics

    mon = QueryMonitor(slow_threshold_ms=10)
    for i in range(20):
        mon.record("SELECT * FROM t WHERE id = 1", 0.002 if i else 0.05)
    reader = InMemoryMetricReader()
    register_otel_metrics(mon, MeterProvider(metric_readers=[reader]))
    data = reader.get_metrics_data()
    points = {
        m.name: m.data.data_points
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    assert points["phoenixkit.querymon.queries"][0].value == 20
    assert points["phoenixkit.querymon.slow_queries"][0].value == 1
    assert points["phoenixkit.querymon.slow_share"][0].value == pytest.approx(0.05)
    p50 = [p for p in points["phoenixkit.querymon.latency"] if p.attributes["quantile"] == "p50"]
    assert p50[0].value == pytest.approx(0.002, rel=0.01)


@pytest.mark.parametrize("include_fetch", [False, True])
def test_fetch_time_counts_only_when_asked(pg_primary: Any, include_fetch: bool) -> None:
    clock = FakeClock(10.0)
    mon = QueryMonitor(include_fetch=include_fetch, clock=clock)
    with psycopg.connect(pg_primary.url) as conn:
        mon.instrument(conn)
        cur = conn.execute("SELECT generate_series(1, 3)")
        assert mon.snapshot().overall.count == (0 if include_fetch else 1)
        clock.advance(0.5)  # the application reads its rows slowly
        assert cur.fetchall() == [(1,), (2,), (3,)]
        cur.close()
    q = by_fingerprint(mon)["select generate_series(?,?)"]
    assert q.count == 1
    assert (q.max_ms >= 500) == include_fetch


def test_async_engines_are_watched_through_their_sync_engine(pg_primary: Any) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    async def run() -> None:
        engine = create_async_engine(pg_primary.sqlalchemy_url)
        mon = QueryMonitor().instrument(engine)
        async with engine.connect() as conn:
            for i in range(3):
                await conn.exec_driver_sql(f"SELECT {i} + 1")
        await engine.dispose()
        assert by_fingerprint(mon)["select ?+?"].count == 3

    asyncio.run(run())


def test_pool_checkout_waits_are_counted(pg_primary: Any) -> None:
    import threading
    import time

    engine = sa.create_engine(pg_primary.sqlalchemy_url, pool_size=1, max_overflow=0)
    mon = QueryMonitor().instrument(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    held = threading.Event()

    def hold() -> None:
        with engine.connect():
            held.set()
            time.sleep(0.2)  # the only connection, busy

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(5)
    with engine.connect() as conn:  # must wait for it
        conn.exec_driver_sql("SELECT 1")
    thread.join()
    pool = mon.snapshot().extra["pools"][0]
    assert pool["checkout_waits"] >= 1
    assert pool["checkout_wait_seconds"] >= 0.1  # it waited out the holder's sleep
    assert pool["size"] == 1
    engine.dispose()
