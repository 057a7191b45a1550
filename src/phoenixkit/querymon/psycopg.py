"""Hooks for psycopg 3 connections: their cursors time ``execute`` and ``executemany``.

`instrument_connection` gives the connection a cursor class of its own (a subclass of the
one it had), so ``conn.execute(...)`` and ``conn.cursor().execute(...)`` are both timed,
from the call to its return (rows fetched later are not included).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from phoenixkit._optional import require

if TYPE_CHECKING:
    from phoenixkit.querymon.monitor import QueryMonitor

__all__ = ["instrument_connection"]


def _text(query: Any, cursor: Any) -> str:
    if isinstance(query, str):
        return query
    if isinstance(query, bytes):
        return query.decode("utf-8", "replace")
    as_string = getattr(query, "as_string", None)  # psycopg.sql.Composable
    return str(as_string(cursor)) if callable(as_string) else str(query)


def instrument_connection(
    monitor: QueryMonitor, conn: Any, *, explain: Callable[[str, Any], Any] | None = None
) -> None:
    """Time every query run through ``conn`` (a psycopg ``Connection`` or
    ``AsyncConnection``); `QueryMonitor.uninstrument` puts the old cursor class back."""
    psycopg = require("psycopg", extra="postgres", feature="phoenixkit.querymon for psycopg")
    base = conn.cursor_factory
    clock, record = monitor.clock, monitor.record
    plan = explain if monitor.explainer is not None else None
    with_fetch = monitor.include_fetch

    if isinstance(conn, psycopg.AsyncConnection):

        class AsyncTimed(base):  # type: ignore[misc,valid-type]
            _phoenixkit = True

            async def execute(self, query: Any, params: Any = None, **kw: Any) -> Any:
                started = clock()
                try:
                    result = await super().execute(query, params, **kw)
                except Exception as exc:
                    record(_text(query, self), clock() - started, params=params, error=exc)
                    raise
                record(_text(query, self), clock() - started, params=params, explain=plan)
                return result

            async def executemany(self, query: Any, params_seq: Any, **kw: Any) -> None:
                started = clock()
                try:
                    await super().executemany(query, params_seq, **kw)
                except Exception as exc:
                    record(_text(query, self), clock() - started, error=exc)
                    raise
                record(_text(query, self), clock() - started)

        conn.cursor_factory = AsyncTimed
    else:

        class Timed(base):  # type: ignore[misc,valid-type]
            _phoenixkit = True

            def execute(self, query: Any, params: Any = None, **kw: Any) -> Any:
                started = clock()
                try:
                    result = super().execute(query, params, **kw)
                except Exception as exc:
                    record(_text(query, self), clock() - started, params=params, error=exc)
                    raise
                text = query if type(query) is str else _text(query, self)
                record(text, clock() - started, params=params, explain=plan)
                return result

            def executemany(self, query: Any, params_seq: Any, **kw: Any) -> None:
                started = clock()
                try:
                    super().executemany(query, params_seq, **kw)
                except Exception as exc:
                    record(_text(query, self), clock() - started, error=exc)
                    raise
                record(_text(query, self), clock() - started)

        class TimedWithFetch(Timed):
            """Records a query once its rows are read, or its cursor closed."""

            _pk_pending: tuple[Any, Any, float] | None = None

            def execute(self, query: Any, params: Any = None, **kw: Any) -> Any:
                if self._pk_pending is not None:
                    self._pk_done()
                started = clock()
                try:
                    result = base.execute(self, query, params, **kw)
                except Exception as exc:
                    record(_text(query, self), clock() - started, params=params, error=exc)
                    raise
                self._pk_pending = (query, params, started)
                return result

            def _pk_done(self) -> None:
                found, self._pk_pending = self._pk_pending, None
                if found is not None:
                    query, params, started = found
                    record(_text(query, self), clock() - started, params=params, explain=plan)

            def fetchone(self) -> Any:
                row = super().fetchone()
                if row is None and self._pk_pending is not None:
                    self._pk_done()
                return row

            def fetchmany(self, size: int = 0) -> Any:
                rows = super().fetchmany(size)
                if self._pk_pending is not None and len(rows) < (size or self.arraysize):
                    self._pk_done()
                return rows

            def fetchall(self) -> Any:
                rows = super().fetchall()
                if self._pk_pending is not None:
                    self._pk_done()
                return rows

            def close(self) -> None:
                if self._pk_pending is not None:
                    self._pk_done()
                super().close()

        conn.cursor_factory = TimedWithFetch if with_fetch else Timed

    def undo() -> None:
        conn.cursor_factory = base

    monitor.hooks.append(undo)
