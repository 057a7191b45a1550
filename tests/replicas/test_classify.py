"""A ``select()`` that writes somewhere inside (a data-modifying CTE, even in a subquery of a
subquery; a nested FOR UPDATE; nextval) goes to the primary: checked on the classifier
(hypothesis builds the nestings) and end to end on the real primary and replica, where a
misrouted statement would fail ("cannot execute INSERT in a read-only transaction")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from phoenixkit.replicas import ReplicaRouter
from phoenixkit.replicas._classify import is_read
from tests.replicas.conftest import Item, where

Wrap = Callable[[Any], Any]


def _source(kind: str) -> Any:
    """A CTE with an ``id`` column: one that writes (kind) or a plain read."""
    if kind == "insert":
        dml: Any = sa.insert(Item).values(name="cte-insert").returning(Item.id)
    elif kind == "update":
        dml = sa.update(Item).where(Item.id < 0).values(name="cte-update").returning(Item.id)
    elif kind == "delete":
        dml = sa.delete(Item).where(Item.id < 0).returning(Item.id)
    else:
        dml = sa.select(Item.id).where(Item.id < 0)
    return sa.select(dml.cte(f"src_{kind}").c.id)


# Each wrapper takes a statement whose first column is ``id`` and returns another.
WRAPPERS: dict[str, Wrap] = {
    "subquery": lambda q: sa.select(q.subquery().c.id),
    "in": lambda q: sa.select(Item.id).where(Item.id.in_(q)),
    "exists": lambda q: sa.select(Item.id).where(sa.exists(q)),
    "scalar": lambda q: sa.select(Item.id, q.limit(1).scalar_subquery().label("x")),
    "join": lambda q: sa.select(Item.id).join(
        (sub := q.subquery()), sub.c.id == Item.id, isouter=True
    ),
    "union": lambda q: sa.select(sa.union_all(sa.select(Item.id), q).subquery().c.id),
    "cte": lambda q: sa.select(q.cte().c.id),
    "nested_cte": lambda q: sa.select(q.cte(nesting=True).c.id),
    "having": lambda q: (
        sa.select(Item.id).group_by(Item.id).having(sa.func.count() > q.scalar_subquery())
    ),
}


def build(kind: str, wrappers: list[str]) -> Any:
    statement = _source(kind)
    for name in wrappers:
        statement = WRAPPERS[name](statement)
    return statement


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["insert", "update", "delete", "read"]),
    st.lists(st.sampled_from(sorted(WRAPPERS)), max_size=5),
)
def test_a_writing_cte_anywhere_goes_to_the_primary(kind: str, wrappers: list[str]) -> None:
    statement = build(kind, wrappers)
    assert is_read(statement, sa) is (kind == "read")
    assert is_read(statement, sa) is (kind == "read")  # the cached answer for this shape


def test_shapes_that_differ_only_in_values_share_an_answer() -> None:
    a = sa.select(Item).where(Item.name == "a")
    b = sa.select(Item).where(Item.name == "b")
    assert is_read(a, sa)
    assert is_read(b, sa)
    moved = sa.update(Item).values(name="z").returning(Item.id).cte("moved")
    c = sa.select(Item).where(Item.name == "a", Item.id.in_(sa.select(moved.c.id)))
    assert not is_read(c, sa)  # same top-level shape as a, plus a writing CTE: not a read


@pytest.mark.parametrize(
    "statement",
    [
        sa.select(Item).where(
            Item.id == sa.select(sa.func.max(Item.id)).with_for_update().scalar_subquery()
        ),
        sa.select(sa.func.nextval("replicas_items_id_seq")),
        sa.select(sa.literal_column("nextval('replicas_items_id_seq')")),
        sa.select(sa.text("1")).where(sa.text("pg_advisory_lock(1) IS NOT NULL")),
    ],
    ids=["nested_for_update", "nextval", "literal_nextval", "text_fragment"],
)
def test_other_writes_inside_a_select_go_to_the_primary(statement: Any) -> None:
    assert not is_read(statement, sa)


@pytest.mark.parametrize(
    "wrappers",
    [[], ["in"], ["subquery", "in"], ["exists"], ["scalar", "subquery"], ["union", "join"]],
    ids=lambda w: "-".join(w) or "bare",
)
@pytest.mark.parametrize("kind", ["insert", "update", "delete"])
def test_writing_ctes_run_on_the_real_primary(
    router: ReplicaRouter, kind: str, wrappers: list[str]
) -> None:
    """Executed through the router: on the replica each would raise (read-only)."""
    statement = build(kind, wrappers)
    with router.session() as s:
        s.execute(statement).all()
        assert where(s) is False  # the transaction wrote: the primary
        s.rollback()
    with router.session() as s:  # the same shape without the write: the replica
        s.execute(build("read", wrappers)).all()
        assert where(s) is True
