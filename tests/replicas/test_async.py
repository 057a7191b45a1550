"""The router over AsyncEngines (psycopg async): the same routing through ``AsyncSession``,
read-your-writes with replay paused, and ``use_primary`` across awaits."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from phoenixkit.replicas import ReplicaRouter
from phoenixkit.testing import FakeClock
from tests.replicas.conftest import Item, unique_name
from tests.servers import PostgresServer

IN_RECOVERY = sa.text("SELECT pg_is_in_recovery()")
BACKEND_PID = sa.text("SELECT pg_backend_pid()")


@pytest_asyncio.fixture
async def arouter(
    pg_primary: PostgresServer, pg_replica: PostgresServer, items_table: None
) -> AsyncIterator[ReplicaRouter]:
    if pg_replica.replay_paused():
        pg_replica.resume_replay()
    pg_replica.wait_caught_up()
    primary = create_async_engine(pg_primary.sqlalchemy_url)
    replica = create_async_engine(pg_replica.sqlalchemy_url)
    router = ReplicaRouter(primary, {"r1": replica}, start=False, clock=FakeClock())
    yield router
    router.close()
    await primary.dispose()
    await replica.dispose()
    if pg_replica.replay_paused():
        pg_replica.resume_replay()


@pytest.mark.asyncio
async def test_async_sessions_are_routed(arouter: ReplicaRouter) -> None:
    assert arouter.status().in_rotation == ("r1",)
    name = unique_name()
    async with arouter.async_session() as s:
        assert (await s.execute(IN_RECOVERY)).scalar() is True
        s.add(Item(name=name))
        await s.commit()  # the primary (a replica would refuse it)
        found = (await s.execute(sa.select(Item.name).where(Item.name == name))).scalars()
        assert found.all() == [name]
    with arouter.use_primary():
        async with arouter.async_session() as s:
            assert (await s.execute(IN_RECOVERY)).scalar() is False
    status = arouter.status()
    assert status.node("r1").reads >= 1
    assert status.node("primary").writes >= 1


@pytest.mark.asyncio
async def test_async_read_your_writes_with_replay_paused(
    arouter: ReplicaRouter, pg_replica: PostgresServer
) -> None:
    pg_replica.pause_replay()
    name = unique_name()
    async with arouter.async_session() as s:
        s.add(Item(name=name))
        await s.commit()
        token = s.sync_session.token
        assert token is not None
    query = sa.select(Item.name).where(Item.name == name)
    async with arouter.async_session(token=token) as s:
        assert (await s.execute(query)).scalars().all() == [name]
    async with arouter.async_session() as s:  # no token: the paused replica
        assert (await s.execute(query)).scalars().all() == []
        assert (await s.execute(IN_RECOVERY)).scalar() is True


@pytest.mark.asyncio
async def test_pooled_async_connections_are_recycled_when_a_replica_changes_role(
    pg_primary: PostgresServer, items_table: None
) -> None:
    """A replica of this test's own is promoted (a real change of role): the probe sees a
    server no longer in recovery and evicts it, and the AsyncEngine's pooled connection to
    it, opened while it was a replica, is closed and replaced on its next checkout."""
    own = pg_primary.create_replica()
    primary = create_async_engine(pg_primary.sqlalchemy_url)
    replica = create_async_engine(own.sqlalchemy_url, pool_size=2)
    router = ReplicaRouter(primary, {"r": replica}, start=False, clock=FakeClock())
    try:
        assert router.status().in_rotation == ("r",)
        async with router.async_session() as s:  # a connection to the replica, now pooled
            assert (await s.execute(IN_RECOVERY)).scalar() is True
            before = (await s.execute(BACKEND_PID)).scalar()
        assert replica.sync_engine.pool.checkedin() == 1

        assert own.scalar("SELECT pg_promote()") is True
        router.health.probe_now()  # the health thread's work, done here
        status = router.status().node("r")
        assert not status.in_rotation
        assert "not in recovery" in status.reason

        async with replica.connect() as conn:  # the pool's connection, checked out again
            after = (await conn.execute(BACKEND_PID)).scalar()
            assert (await conn.execute(IN_RECOVERY)).scalar() is False
        assert after != before
        live = {row[0] for row in own.execute("SELECT pid FROM pg_stat_activity")}
        assert before not in live  # the old connection was closed, not leaked
        async with router.async_session() as s:  # reads now go to the primary
            assert (await s.execute(BACKEND_PID)).scalar() is not None
        assert router.status().spills == 1
        async with replica.connect() as conn:  # stamped with the new generation: kept
            assert (await conn.execute(BACKEND_PID)).scalar() == after
    finally:
        router.close()
        await primary.dispose()
        await replica.dispose()
        own.destroy()
