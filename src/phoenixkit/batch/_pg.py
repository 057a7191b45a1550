"""PostgreSQL fast paths for bulk inserts: one array per column, and bad rows found on the
server.

- `UnnestInsert.statement`: a chunk as ``INSERT ... SELECT * FROM unnest(CAST(:p0 AS
  type[]), ...)``: a handful of parameters whatever the chunk's size (no 32,767 ceiling),
  several times faster than a VALUES list.
- `UnnestInsert.one_by_one`: when a chunk fails on a row (a constraint, a bad value), the
  chunk goes into a temporary table in one statement and a ``DO`` block inserts it row by
  row, each row in its own subtransaction, noting the rows PostgreSQL rejects with their
  SQLSTATE and message: one round trip per failed chunk instead of one per bisection step.

Only for tables whose columns are all plain types (numbers, strings, booleans, dates and
times, UUIDs, bytes): their values need no Python-side processing by SQLAlchemy.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from phoenixkit.batch.report import RowRejected
from phoenixkit.errors import ConfigurationError

__all__ = ["UnnestInsert", "plain"]

_MODIFIERS = re.compile(r"\(\s*\d+(?:\s*,\s*\d+)?\s*\)")
_STAGE = "INSERT INTO pg_temp.phoenixkit_stage"
_ROW_ERRORS = "integrity_constraint_violation OR data_exception"  # SQLSTATE classes 23, 22


def plain(column: Any) -> bool:
    """A column whose values PostgreSQL can take as one array (no Python-side processing)."""
    import sqlalchemy as sa

    kind = column.type
    if isinstance(kind, (sa.TypeDecorator, sa.Enum, sa.ARRAY, sa.JSON, sa.PickleType)):
        return False
    plain_types = (sa.Integer, sa.Float, sa.Numeric, sa.String, sa.Boolean, sa.Date)
    return isinstance(
        kind, (*plain_types, sa.DateTime, sa.Time, sa.Uuid, sa.Interval, sa.LargeBinary)
    )


def _arrays(chunk: list[Mapping[str, Any]], cols: tuple[str, ...]) -> dict[str, Any] | None:
    """One list per column, as psycopg can send them: one Python type per list (ints
    among Decimals or floats are promoted); None when a column mixes other types."""
    params: dict[str, Any] = {}
    for i, c in enumerate(cols):
        values = [row[c] for row in chunk]
        kinds = {type(v) for v in values if v is not None}
        if len(kinds) > 1:
            promote = _PROMOTE.get(frozenset(kinds))
            if promote is None:
                return None
            values = [v if v is None else promote(v) for v in values]
        params[f"p{i}"] = values
    return params


_PROMOTE: dict[frozenset[type], Callable[[Any], Any]] = {
    frozenset({int, Decimal}): Decimal,
    frozenset({int, float}): float,
}


class UnnestInsert:
    """INSERTs of chunks of mappings into ``table`` on PostgreSQL (see the module doc).

    ``tail(columns)`` is appended to each INSERT (an ``ON CONFLICT`` clause)."""

    def __init__(
        self, dialect: Any, table: Any, tail: Callable[[list[str]], str] | None = None
    ) -> None:
        self.dialect = dialect
        self.table = table
        self.tail = tail
        self.quote = dialect.identifier_preparer
        self._sql: dict[tuple[str, ...], tuple[Any, str]] = {}

    def columns(self, chunk: list[Mapping[str, Any]]) -> tuple[str, ...] | None:
        """The chunk's columns when the fast path applies, else None."""
        cols = tuple(chunk[0])
        t = self.table
        if self.dialect.name != "postgresql" or not all(plain(t.c[c]) for c in cols):
            return None
        for offset, row in enumerate(chunk):
            if len(row) != len(cols) or any(c not in row for c in cols):
                raise ConfigurationError(
                    f"row {offset} of a chunk has columns {sorted(row)}, the chunk's first "
                    f"row {sorted(cols)}: rows written together must name the same columns"
                )
        return cols

    def _compiled(self, cols: tuple[str, ...]) -> tuple[Any, str]:
        found = self._sql.get(cols)
        if found is None:
            import sqlalchemy as sa

            t, q = self.table, self.quote
            names = ", ".join(q.format_column(t.c[c]) for c in cols)
            # No length or precision in the casts: an explicit cast to VARCHAR(5) would cut
            # a longer value silently, where the INSERT's own cast refuses it.
            types = [_MODIFIERS.sub("", t.c[c].type.compile(dialect=self.dialect)) for c in cols]
            arrays = ", ".join(f"CAST(:p{i} AS {ty}[])" for i, ty in enumerate(types))
            tail = self.tail(list(cols)) if self.tail else ""
            # Identifiers quoted by the dialect, types compiled by it, values bound.
            insert = f"INSERT INTO {q.format_table(t)} ({names}) SELECT * FROM unnest({arrays})"  # noqa: S608
            values = ", ".join(f"r.c{i}" for i in range(len(cols)))
            row = f"INSERT INTO {q.format_table(t)} ({names}) VALUES ({values}){tail}"  # noqa: S608
            block = (
                "DO $phoenixkit$ DECLARE r record; BEGIN "  # noqa: S608  (no values inside)
                "FOR r IN SELECT * FROM pg_temp.phoenixkit_stage ORDER BY ord LOOP "
                f"BEGIN {row}; EXCEPTION WHEN {_ROW_ERRORS} THEN "
                "INSERT INTO pg_temp.phoenixkit_rejected VALUES (r.ord, SQLSTATE, SQLERRM); "
                "END; END LOOP; END $phoenixkit$"
            )
            stage = ", ".join(f"c{i} {ty}" for i, ty in enumerate(types))
            found = self._sql[cols] = (sa.text(insert + tail), f"{stage}\n{block}")
        return found

    def statement(self, chunk: list[Mapping[str, Any]]) -> tuple[Any, Any] | None:
        """(statement, parameters) for the chunk, or None when the fast path does not apply."""
        cols = self.columns(chunk)
        if cols is None:
            return None
        params = _arrays(chunk, cols)
        if params is None:
            return None
        return self._compiled(cols)[0], params

    def one_by_one(
        self, conn: Any, chunk: list[Mapping[str, Any]]
    ) -> list[tuple[int, BaseException]] | None:
        """Insert ``chunk`` row by row on the server in ``conn``'s transaction; the offsets
        of the rows PostgreSQL rejected, with why. None when the fast path does not apply."""
        import sqlalchemy as sa

        cols = self.columns(chunk)
        if cols is None:
            return None
        stage, block = self._compiled(cols)[1].split("\n", 1)
        conn.exec_driver_sql(
            f"CREATE TEMP TABLE phoenixkit_stage (ord integer, {stage}) ON COMMIT DROP"
        )
        conn.exec_driver_sql(
            "CREATE TEMP TABLE phoenixkit_rejected (ord integer, state text, message text) "
            "ON COMMIT DROP"
        )
        types = stage.split(", ")
        arrays = ", ".join(f"CAST(:p{i} AS {t.split(' ', 1)[1]}[])" for i, t in enumerate(types))
        params = _arrays(chunk, cols)
        if params is None:
            return None
        params["ord"] = list(range(len(chunk)))
        conn.execute(
            sa.text(f"{_STAGE} SELECT * FROM unnest(CAST(:ord AS integer[]), {arrays})"),  # noqa: S608
            params,
        )
        conn.exec_driver_sql(block)
        rejected = conn.exec_driver_sql(
            "SELECT ord, state, message FROM pg_temp.phoenixkit_rejected ORDER BY ord"
        ).all()
        return [(int(o), RowRejected(str(s), str(m))) for o, s, m in rejected]
