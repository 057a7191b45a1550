"""Which statements may run on a replica: reads known to be read-only, nothing else.

SQLAlchemy's routing recipe sends every ``text()`` to a replica; here a ``text()`` goes to a
replica only when it starts like a read and names nothing that writes or locks.
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


@functools.lru_cache(maxsize=4096)
def is_read_text(sql: str) -> bool:
    """True when raw SQL is a single statement that reads and neither writes nor locks.

    Conservative: a word like ``update`` anywhere (even in a string) sends it to the primary.
    """
    return bool(_READ_START.match(sql)) and _WRITES.search(sql) is None


def is_read(clause: Any, sa: Any) -> bool:
    """True when a statement may run on a replica (``sa`` is the sqlalchemy module)."""
    if clause is None:
        return False
    if isinstance(clause, sa.sql.Select):
        return clause._for_update_arg is None and not _writing_ctes(clause, sa)
    if isinstance(clause, sa.sql.expression.TextClause):
        return is_read_text(clause.text)
    if isinstance(clause, sa.sql.expression.CompoundSelect):
        return all(is_read(s, sa) for s in clause.selects)
    return False


def _writing_ctes(clause: Any, sa: Any) -> bool:
    """A CTE that writes, named by the SELECT's FROM list, columns, joins or WITH.

    Shallow on purpose (``get_final_froms`` costs ~0.3 ms): a writing CTE reached only
    through a subquery in WHERE is not seen; the replica then refuses it (read-only)."""
    found = [*getattr(clause, "_independent_ctes", ()), *clause._from_obj]
    found += [getattr(c, "table", None) for c in clause._raw_columns]
    found += [join[0] for join in getattr(clause, "_setup_joins", ())]
    while found:
        node = found.pop()
        if isinstance(node, sa.sql.expression.Join):
            found += [node.left, node.right]
        elif isinstance(node, sa.sql.expression.CTE):
            if isinstance(node.element, sa.sql.dml.UpdateBase):
                return True
            found += getattr(node, "_independent_ctes", ())
    return False
