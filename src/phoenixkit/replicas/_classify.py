"""Which statements may run on a replica: reads known to be read-only, nothing else.

SQLAlchemy's routing recipe sends every ``text()`` to a replica; here a ``text()`` goes to a
replica only when it starts like a read and names nothing that writes or locks.

A ``select()`` is walked whole (public ``get_children()``, columns' ``table``): a CTE that
writes (``WITH x AS (INSERT ... RETURNING ...)``) anywhere in it, even in a subquery of a
subquery, a ``FOR UPDATE/SHARE`` on any SELECT in it, a function that writes (``nextval``)
or a text fragment that names a write sends it to the primary. The walk costs tens of
microseconds, so its answer is kept per statement *shape*: the statement's cache key, which
SQLAlchemy memoizes on the statement and needs anyway to find its compiled form.
"""

from __future__ import annotations

import functools
import re
from typing import Any

__all__ = ["is_read", "is_read_text"]

_READ_START = re.compile(r"\A\s*(?:SELECT|WITH|VALUES|TABLE|SHOW)\b", re.IGNORECASE)
_WRITES = re.compile(
    r";|\b(?:INSERT|UPDATE|DELETE|MERGE|UPSERT|INTO|FOR\s+(?:NO\s+KEY\s+)?UPDATE"
    r"|FOR\s+(?:KEY\s+)?SHARE|NEXTVAL|SETVAL|LOCK|CREATE|DROP|ALTER|TRUNCATE|COPY|CALL"
    r"|GRANT|REVOKE|NOTIFY|LISTEN|SET_CONFIG|PG_ADVISORY\w*|PG_TRY_ADVISORY\w*"
    r"|TXID_CURRENT|PG_CURRENT_XACT_ID|DBLINK\w*)\b",
    re.IGNORECASE,
)
_SHAPES: dict[Any, bool] = {}
_MAX_SHAPES = 4096


@functools.lru_cache(maxsize=4096)
def is_read_text(sql: str) -> bool:
    """True when raw SQL is a single statement that reads and neither writes nor locks.

    Conservative: a word like ``update`` anywhere (even in a string) sends it to the primary.
    """
    return bool(_READ_START.match(sql)) and _WRITES.search(sql) is None


def is_read(clause: Any, sa: Any) -> bool:
    """True when a statement may run on a replica (``sa`` is the sqlalchemy module)."""
    if isinstance(clause, sa.sql.expression.TextClause):
        return is_read_text(clause.text)
    if not isinstance(clause, (sa.sql.Select, sa.sql.expression.CompoundSelect)):
        return False  # None (Session.connection(), a flush), DML, DDL, anything else
    shape_of = getattr(clause, "_generate_cache_key", None)  # private, but SQLAlchemy
    key = None if shape_of is None else shape_of()  # memoizes it and execution reuses it
    if key is None:  # a construct that cannot be cached: walk it every time
        return not _writes(clause, sa)
    shape = key.key
    found = _SHAPES.get(shape)
    if found is None:
        found = not _writes(clause, sa)
        if len(_SHAPES) >= _MAX_SHAPES:
            _SHAPES.clear()
        _SHAPES[shape] = found
    return found


def _writes(clause: Any, sa: Any) -> bool:
    """Does anything in ``clause`` write or lock rows? Every element, once."""
    cte, dml, func = sa.sql.expression.CTE, sa.sql.dml.UpdateBase, sa.sql.functions.Function
    text, column = sa.sql.expression.TextClause, sa.sql.expression.ColumnClause
    seen: set[int] = set()
    stack = [clause]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, dml):
            return True  # a DML statement reached as a CTE's (or a subquery's) element
        if getattr(node, "_for_update_arg", None) is not None:  # no public accessor
            return True
        if isinstance(node, cte):
            stack.append(node.element)
        elif isinstance(node, func):
            if _WRITES.search(node.name) is not None:
                return True
        elif isinstance(node, text):
            if _WRITES.search(node.text) is not None:
                return True
        elif isinstance(node, column):
            if node.is_literal and _WRITES.search(node.name) is not None:
                return True
            if node.table is not None:  # the FROM a column brings along (``cte.c.id``)
                stack.append(node.table)
        stack.extend(node.get_children())
    return False
