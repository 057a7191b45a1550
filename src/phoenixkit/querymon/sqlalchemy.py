"""Hooks for SQLAlchemy engines (sync; an AsyncEngine through its ``sync_engine``).

Times each cursor execution from ``before_cursor_execute`` to ``after_cursor_execute``
(fetching rows afterwards is not included), records failures from ``handle_error``, and
counts pool checkouts, checkins, connects and invalidations, and checkouts that waited
(1 ms or more to get a connection: none free, or a new one opened) with their total time;
the pool's gauges (checked out, overflow, size) are read when a snapshot is taken.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from phoenixkit._optional import require

if TYPE_CHECKING:
    from phoenixkit.querymon.monitor import QueryMonitor

__all__ = ["instrument_engine"]

_ATTR = "_phoenixkit_started"
_WAIT = 0.001  # seconds: a checkout slower than this counts as a wait


def _plain_cursor(driver: Any) -> Any:
    module = type(driver).__module__
    if module.startswith("psycopg"):
        import psycopg

        return psycopg.Cursor(driver)  # not the connection's (watched) cursor class
    return driver.cursor()


def instrument_engine(monitor: QueryMonitor, engine: Any) -> Callable[[], dict[str, Any]]:
    """Attach ``monitor`` to ``engine``; returns a function reading the pool's statistics.

    `QueryMonitor.uninstrument` removes every hook."""
    sa = require("sqlalchemy", extra="postgres", feature="phoenixkit.querymon for SQLAlchemy")
    sync = getattr(engine, "sync_engine", engine)
    if not isinstance(sync, sa.engine.Engine):
        raise TypeError(f"not a SQLAlchemy Engine: {engine!r}")
    clock = monitor.clock
    record = monitor.record
    counts = {"checkouts": 0, "checkins": 0, "connects": 0, "invalidations": 0}

    def before(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        if context is not None:
            setattr(context, _ATTR, clock())

    def explain(sql: str, params: Any) -> Any:  # on the EXPLAIN thread, never the caller's
        raw = sync.raw_connection()  # a pooled DBAPI connection, unwatched cursor:
        try:  # the EXPLAIN itself is never recorded
            driver = raw.driver_connection
            cursor = _plain_cursor(driver) if driver is not None else raw.cursor()
            cursor.execute(sql, params)
            row = cursor.fetchone()
            raw.rollback()
            return None if row is None else row[0]
        finally:
            raw.close()

    def after(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        started = getattr(context, _ATTR, None)
        if started is not None:
            plan = explain if monitor.explainer is not None and not many else None
            record(statement, clock() - started, params=params, explain=plan)

    def failed(ctx: Any) -> None:
        started = getattr(ctx.execution_context, _ATTR, None)
        if started is not None and ctx.statement is not None:
            record(
                ctx.statement,
                clock() - started,
                params=ctx.parameters,
                error=ctx.original_exception,
            )

    def counter(name: str) -> Callable[..., None]:
        def count(*args: Any) -> None:
            counts[name] += 1

        return count

    hooks: list[tuple[Any, str, Callable[..., Any]]]
    if sync.dialect.driver == "psycopg" and not sync.dialect.is_async:
        # Time at the driver: the connection's own cursor class, no SQLAlchemy cursor
        # events (their dispatch costs more than the timing itself).
        from phoenixkit.querymon.psycopg import instrument_connection

        def watch(dbapi_conn: Any, record_: Any, proxy: Any) -> None:
            counts["checkouts"] += 1
            if not getattr(dbapi_conn.cursor_factory, "_phoenixkit", False):
                instrument_connection(monitor, dbapi_conn, explain=explain)

        hooks = [(sync.pool, "checkout", watch)]
    else:
        hooks = [
            (sync, "before_cursor_execute", before),
            (sync, "after_cursor_execute", after),
            (sync, "handle_error", failed),
            (sync.pool, "checkout", counter("checkouts")),
        ]
    hooks += [
        (sync.pool, "checkin", counter("checkins")),
        (sync.pool, "connect", counter("connects")),
        (sync.pool, "invalidate", counter("invalidations")),
    ]
    for target, name, fn in hooks:
        sa.event.listen(target, name, fn)

    def undo() -> None:
        for target, name, fn in hooks:
            if sa.event.contains(target, name, fn):
                sa.event.remove(target, name, fn)

    # Checkout waits: the time spent getting a connection from the pool (waiting for a free
    # one, or opening one), measured around the pool's own connect().
    pool = sync.pool
    waits = {"checkout_waits": 0, "checkout_wait_seconds": 0.0}
    original = pool.connect

    def timed_connect(*args: Any, **kwargs: Any) -> Any:
        started = clock()
        try:
            return original(*args, **kwargs)
        finally:
            took = clock() - started
            if took >= _WAIT:
                waits["checkout_waits"] += 1
                waits["checkout_wait_seconds"] += took

    pool.connect = timed_connect

    def unwrap() -> None:
        if pool.__dict__.get("connect") is timed_connect:
            del pool.connect

    monitor.hooks.append(undo)
    monitor.hooks.append(unwrap)

    def pool_stats() -> dict[str, Any]:
        pool = sync.pool
        found: dict[str, Any] = {"engine": repr(sync.url.render_as_string(hide_password=True))}
        found.update(counts)
        found.update(waits)
        for gauge in ("checkedout", "overflow", "size"):
            method = getattr(pool, gauge, None)
            if callable(method):
                found[gauge] = method()
        return found

    return pool_stats
