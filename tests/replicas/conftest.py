"""Fixtures for the router tests: a routed table on the real primary, replicated."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from phoenixkit.replicas import ReplicaRouter
from phoenixkit.testing import FakeClock
from tests.servers import PostgresServer


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "replicas_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


@pytest.fixture(scope="session")
def items_table(pg_primary: PostgresServer, pg_replica: PostgresServer) -> None:
    engine = sa.create_engine(pg_primary.sqlalchemy_url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    engine.dispose()
    pg_replica.wait_caught_up()


@pytest.fixture
def router(
    pg_primary: PostgresServer, pg_replica: PostgresServer, items_table: None
) -> Iterator[ReplicaRouter]:
    """A router over the session's primary and replica; probes only when told to."""
    if pg_replica.replay_paused():
        pg_replica.resume_replay()
    pg_replica.wait_caught_up()
    routed = ReplicaRouter(
        pg_primary.sqlalchemy_url,
        {"r1": pg_replica.sqlalchemy_url},
        clock=FakeClock(),
        start=False,
    )
    yield routed
    routed.close()
    if pg_replica.replay_paused():
        pg_replica.resume_replay()


def unique_name() -> str:
    return uuid.uuid4().hex


def where(session: Any) -> bool:
    """True when the session's reads are served by a server in recovery (a replica)."""
    return bool(session.execute(sa.text("SELECT pg_is_in_recovery()")).scalar())
