"""Bulk SQL that loses nothing: COPY through psycopg, chunked INSERT / upsert / UPDATE /
DELETE through SQLAlchemy Core (tables or ORM models), streaming reads.

Writes go one transaction per chunk (at the isolation level you choose) through
`run_batches`, so a failing row is bisected out and reported with its index while every
other row is committed once; or in one transaction for all-or-nothing. Chunks stay under
PostgreSQL's 32,767 bind parameters. Needs the ``postgres`` extra (psycopg, SQLAlchemy).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from phoenixkit._optional import require
from phoenixkit.batch._pg import UnnestInsert
from phoenixkit.batch.chunking import chunk_limit, chunked
from phoenixkit.batch.report import BatchReport, Bisection, ChunkResult, ItemsFailed, Recorder
from phoenixkit.batch.runner import run_batches
from phoenixkit.errors import ConfigurationError

__all__ = ["bulk_delete", "bulk_insert", "bulk_update", "bulk_upsert", "copy_rows", "stream"]

_FEATURE = "phoenixkit.batch SQL helpers"


def _sa() -> Any:
    return require("sqlalchemy", extra="postgres", feature=_FEATURE)


# COPY -----------------------------------------------------------------------------------


def _psycopg_connection(conn: Any) -> Any:
    """A psycopg 3 connection, also from inside a SQLAlchemy Connection on psycopg."""
    raw = getattr(getattr(conn, "connection", None), "driver_connection", None)
    found = raw if raw is not None else conn
    if not callable(getattr(found, "cursor", None)) or "psycopg" not in type(found).__module__:
        raise ConfigurationError(f"copy_rows needs a psycopg 3 connection, got {conn!r}")
    return found


def _identifier(name: str) -> Any:
    sql = require("psycopg.sql", extra="postgres", feature=_FEATURE)
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"a table or column name must be a non-empty str, got {name!r}")
    return sql.Identifier(*name.split("."))


def copy_rows(
    conn: Any,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    binary: bool = False,
) -> int:
    """Write ``rows`` (sequences in ``columns`` order) into ``table`` with one ``COPY``.

    psycopg's ``write_row`` adapts the values (no hand formatting); ``binary=True`` uses
    the binary format, with the column types read from the table. The COPY runs in the
    connection's transaction: commit is yours. A row of the wrong arity stops it with a
    `ConfigurationError` naming the row, and PostgreSQL discards the whole COPY. ``table``
    may be ``schema.table``. Returns the number of rows written.
    """
    pg = _psycopg_connection(conn)
    sql = require("psycopg.sql", extra="postgres", feature=_FEATURE)
    cols = list(columns)
    if not cols:
        raise ConfigurationError("copy_rows needs at least one column")
    target = _identifier(table)
    names = sql.SQL(", ").join(_identifier(c) for c in cols)
    fmt = sql.SQL(" (FORMAT BINARY)") if binary else sql.SQL("")
    statement = sql.SQL("COPY {} ({}) FROM STDIN{}").format(target, names, fmt)
    width = len(cols)
    written = 0
    # A list is checked whole, in C, before anything is sent.
    if isinstance(rows, (list, tuple)) and any(n != width for n in set(map(len, rows))):
        index = next(i for i, row in enumerate(rows) if len(row) != width)
        raise _arity(index, rows[index], cols)
    with pg.cursor() as cur:
        types = _column_types(cur, table, cols) if binary else None
        with cur.copy(statement) as copy:
            if types is not None:
                copy.set_types(types)
            write = copy.write_row
            if isinstance(rows, (list, tuple)):
                for row in rows:
                    write(row)
                return len(rows)
            for row in rows:
                if len(row) != width:
                    raise _arity(written, row, cols)
                write(row)
                written += 1
    return written


def _arity(index: int, row: Any, cols: list[str]) -> ConfigurationError:
    return ConfigurationError(
        f"row {index} has {len(row)} values for {len(cols)} columns {cols}: {_short(row)}"
    )


def _short(row: Any) -> str:
    text = repr(row)
    return text if len(text) <= 200 else text[:200] + "..."


def _column_types(cur: Any, table: str, cols: list[str]) -> list[int]:
    cur.execute(
        "SELECT attname, atttypid FROM pg_attribute WHERE attrelid = %s::regclass "
        "AND attnum > 0 AND NOT attisdropped",
        (table,),
    )
    found = dict(cur.fetchall())
    missing = [c for c in cols if c not in found]
    if missing:
        raise ConfigurationError(f"table {table!r} has no column(s) {missing}")
    return [int(found[c]) for c in cols]


# SQLAlchemy ------------------------------------------------------------------------------


def _table(target: Any) -> Any:
    sa = _sa()
    table = getattr(target, "__table__", target)  # an ORM model, or a Core Table
    if not isinstance(table, sa.Table):
        raise ConfigurationError(f"expected a SQLAlchemy Table or ORM model, got {target!r}")
    return table


_LEVELS = ("SERIALIZABLE", "REPEATABLE READ", "READ COMMITTED", "READ UNCOMMITTED", "AUTOCOMMIT")


def _engine(engine: Any, isolation_level: str | None) -> Any:
    sa = _sa()
    if not isinstance(engine, sa.engine.Engine):
        raise ConfigurationError(f"expected a SQLAlchemy Engine, got {engine!r}")
    if isolation_level is not None and isolation_level not in _LEVELS:
        raise ConfigurationError(
            f"isolation_level must be one of {', '.join(_LEVELS)}, got {isolation_level!r}"
        )
    return engine.execution_options(isolation_level=isolation_level) if isolation_level else engine


def _checked_rows(table: Any, rows: Iterable[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    """Rows with known column names only; a list is checked whole before any write."""
    known = set(table.columns.keys())

    def check(index: int, row: Any) -> Mapping[str, Any]:
        if not isinstance(row, Mapping):
            raise ConfigurationError(f"row {index} must be a mapping of column -> value: {row!r}")
        unknown = [k for k in row if k not in known]
        if unknown:
            raise ConfigurationError(
                f"row {index} names column(s) {unknown} that {table.name!r} does not have"
            )
        return row

    if isinstance(rows, (list, tuple)):
        for i, row in enumerate(rows):
            check(i, row)
        return rows
    return (check(i, row) for i, row in enumerate(rows))


def _run(
    engine: Any,
    rows: Iterable[Any],
    statement: Callable[[list[Any]], tuple[Any, Any]],
    *,
    fast: UnnestInsert | None = None,
    columns: int,
    size: int,
    isolation_level: str | None,
    all_or_nothing: bool,
    **batch: Any,
) -> BatchReport:
    eng = _engine(engine, isolation_level)
    limit = chunk_limit(size, columns)
    if all_or_nothing:
        return _all_or_nothing(eng, rows, statement, limit)

    # Bisect for what a row can cause (constraints, bad values), not for a lost connection.
    row_errors = (_sa_exc().IntegrityError, _sa_exc().DataError)
    bisect = batch.pop("bisect", True)

    def is_row_error(exc: BaseException) -> bool:
        return isinstance(exc, row_errors)

    def write(chunk: list[Any]) -> None:
        try:
            with eng.begin() as conn:
                conn.execute(*statement(chunk))
            return
        except row_errors as exc:
            if not bisect:
                raise
            first: BaseException = exc
        if fast is not None:  # PostgreSQL: the rows one by one on the server, one round trip
            try:
                with eng.begin() as conn:
                    rejected = fast.one_by_one(conn, chunk)
            except row_errors:
                rejected = None  # a value no array of its type can hold: bisect instead
            if rejected is not None:
                if rejected:
                    raise ItemsFailed(rejected)
                return
        # Some row is bad: find it in one transaction, each part under a savepoint, and
        # commit the rest (far cheaper than a transaction per part).
        bisection = Bisection(len(chunk), is_row_error)
        if len(chunk) == 1:
            bisection.done(0, 1, first)
        else:
            with eng.begin() as conn:
                while (part := bisection.next()) is not None:
                    lo, hi = part
                    try:
                        with conn.begin_nested():
                            conn.execute(*statement(chunk[lo:hi]))
                    except row_errors as exc:
                        bisection.done(lo, hi, exc)
                    else:
                        bisection.done(lo, hi, None)
        if bisection.failures:
            raise ItemsFailed(bisection.failures)

    return run_batches(rows, write, size=limit, bisect=False, **batch)


def _sa_exc() -> Any:
    return require("sqlalchemy.exc", extra="postgres", feature=_FEATURE)


def _all_or_nothing(
    eng: Any,
    rows: Iterable[Any],
    statement: Callable[[list[Any]], tuple[Any, Any]],
    limit: int,
) -> BatchReport:
    """Every chunk in one transaction: all committed, or nothing and the error raised."""
    from phoenixkit._clock import monotonic_clock

    rec = Recorder(monotonic_clock, None, None, 0)
    start = 0
    with eng.begin() as conn:
        for number, chunk in enumerate(chunked(rows, limit)):
            began = monotonic_clock()
            stmt, params = statement(chunk)
            conn.execute(stmt, params)
            took = monotonic_clock() - began
            rec.add(ChunkResult(number, start, len(chunk), len(chunk), 0, 1, took), [])
            start += len(chunk)
    return rec.report()


def bulk_insert(
    engine: Any,
    table: Any,
    rows: Iterable[Mapping[str, Any]],
    *,
    size: int = 1000,
    isolation_level: str | None = None,
    all_or_nothing: bool = False,
    **batch: Any,
) -> BatchReport:
    """Insert ``rows`` (mappings of column -> value) into ``table`` (a Core Table or ORM
    model) in multi-row chunks, one transaction per chunk; failing rows are bisected out
    and reported by index. ``batch`` takes `run_batches`'s options (``concurrency``,
    ``retry``, ``rate_limit``, ``stop_on_error``, ``on_progress``...). ``all_or_nothing``
    runs every chunk in one transaction and raises the first error (nothing committed).
    """
    t = _table(table)
    sa = _sa()
    fast = UnnestInsert(_engine(engine, None).dialect, t)

    def statement(chunk: list[Any]) -> tuple[Any, Any]:
        return fast.statement(chunk) or (sa.insert(t), chunk)

    return _run(
        engine,
        _checked_rows(t, rows),
        statement,
        fast=fast,
        columns=len(t.columns),
        size=size,
        isolation_level=isolation_level,
        all_or_nothing=all_or_nothing,
        **batch,
    )


def bulk_upsert(
    engine: Any,
    table: Any,
    rows: Iterable[Mapping[str, Any]],
    *,
    conflict: Sequence[str] | None = None,
    update: Sequence[str] | None = None,
    size: int = 1000,
    isolation_level: str | None = None,
    all_or_nothing: bool = False,
    **batch: Any,
) -> BatchReport:
    """`bulk_insert` with ``ON CONFLICT (conflict) DO UPDATE`` of ``update`` (default: the
    primary key, and every other column of the row). PostgreSQL and SQLite."""
    t = _table(table)
    keys = list(conflict or [c.name for c in t.primary_key.columns])
    if not keys:
        raise ConfigurationError(f"table {t.name!r} has no primary key: pass conflict=")
    dialect = _engine(engine, None).dialect.name
    if dialect not in ("postgresql", "sqlite"):
        raise ConfigurationError(f"bulk_upsert supports postgresql and sqlite, not {dialect!r}")
    insert = require(f"sqlalchemy.dialects.{dialect}", extra="postgres", feature=_FEATURE).insert

    def updated(cols: list[str]) -> list[str]:
        return list(update) if update is not None else [c for c in cols if c not in keys]

    def on_conflict(cols: list[str]) -> str:
        quote = _engine(engine, None).dialect.identifier_preparer
        target = ", ".join(quote.format_column(t.c[k]) for k in keys)
        sets = ", ".join(
            f"{quote.format_column(t.c[c])} = EXCLUDED.{quote.format_column(t.c[c])}"
            for c in updated(cols)
        )
        return f" ON CONFLICT ({target}) " + (f"DO UPDATE SET {sets}" if sets else "DO NOTHING")

    fast = UnnestInsert(_engine(engine, None).dialect, t, on_conflict)

    def statement(chunk: list[Any]) -> tuple[Any, Any]:
        found = fast.statement(chunk)
        if found is not None:
            return found
        cols = updated(list(chunk[0]))
        stmt = insert(t)
        if not cols:
            return stmt.on_conflict_do_nothing(index_elements=keys), chunk
        return stmt.on_conflict_do_update(
            index_elements=keys, set_={c: stmt.excluded[c] for c in cols}
        ), chunk

    return _run(
        engine,
        _checked_rows(t, rows),
        statement,
        columns=len(t.columns),
        size=size,
        isolation_level=isolation_level,
        all_or_nothing=all_or_nothing,
        **batch,
    )


def _keys(t: Any, key: Sequence[str] | str | None) -> list[str]:
    keys = [key] if isinstance(key, str) else list(key or [c.name for c in t.primary_key.columns])
    if not keys:
        raise ConfigurationError(f"table {t.name!r} has no primary key: pass key=")
    unknown = [k for k in keys if k not in t.columns]
    if unknown:
        raise ConfigurationError(f"table {t.name!r} has no key column(s) {unknown}")
    return keys


def bulk_update(
    engine: Any,
    table: Any,
    rows: Iterable[Mapping[str, Any]],
    *,
    key: Sequence[str] | str | None = None,
    size: int = 1000,
    isolation_level: str | None = None,
    all_or_nothing: bool = False,
    **batch: Any,
) -> BatchReport:
    """``UPDATE table SET ... WHERE key = ...`` for each row (its key columns and the
    columns to set), executemany per chunk. ``key`` defaults to the primary key."""
    t = _table(table)
    sa = _sa()
    keys = _keys(t, key)

    def statement(chunk: list[Any]) -> tuple[Any, list[Any]]:
        cols = [c for c in chunk[0] if c not in keys]
        where = sa.and_(*(t.c[k] == sa.bindparam(f"pk_{k}") for k in keys))
        stmt = sa.update(t).where(where).values({c: sa.bindparam(c) for c in cols})
        params = [{**{c: r[c] for c in cols}, **{f"pk_{k}": r[k] for k in keys}} for r in chunk]
        return stmt, params

    return _run(
        engine,
        _checked_rows(t, rows),
        statement,
        columns=len(t.columns) + len(keys),
        size=size,
        isolation_level=isolation_level,
        all_or_nothing=all_or_nothing,
        **batch,
    )


def bulk_delete(
    engine: Any,
    table: Any,
    keys: Iterable[Any],
    *,
    key: Sequence[str] | str | None = None,
    size: int = 1000,
    isolation_level: str | None = None,
    all_or_nothing: bool = False,
    **batch: Any,
) -> BatchReport:
    """``DELETE FROM table WHERE key IN (...)`` per chunk of ``keys`` (values, or tuples
    for a composite key)."""
    t = _table(table)
    sa = _sa()
    names = _keys(t, key)
    column = t.c[names[0]] if len(names) == 1 else sa.tuple_(*(t.c[k] for k in names))

    def statement(chunk: list[Any]) -> tuple[Any, Any]:
        return sa.delete(t).where(column.in_(chunk)), None

    return _run(
        engine,
        keys,
        statement,
        columns=len(names),
        size=size,
        isolation_level=isolation_level,
        all_or_nothing=all_or_nothing,
        **batch,
    )


def stream(target: Any, query: Any, *, size: int = 1000, params: Any = None) -> Iterator[list[Any]]:
    """Read a large result in chunks of ``size`` rows through a server-side cursor.

    ``target``: a SQLAlchemy Engine (``query`` a select or ``text``) or a psycopg connection
    (``query`` a SQL string, run in a named cursor inside the connection's transaction).
    Memory holds one chunk at a time."""
    limit = chunk_limit(size)
    sa = _sa()
    if isinstance(target, sa.engine.Engine):
        with target.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=limit).execute(
                query, params
            )
            for part in result.partitions():
                yield list(part)
        return
    pg = _psycopg_connection(target)
    with pg.cursor(name=f"phoenixkit_stream_{id(query):x}") as cur:
        cur.itersize = limit
        cur.execute(query, params)
        while part := cur.fetchmany(limit):
            yield part
