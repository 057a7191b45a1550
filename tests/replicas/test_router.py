"""ReplicaRouter on the real primary and streaming replica: what goes where, and
read-your-writes by LSN with replay paused on the replica.

A replica rejects writes ("cannot execute INSERT in a read-only transaction"), so any write
misrouted to it fails the test by itself.
"""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import InternalError

from phoenixkit.errors import ConfigurationError
from phoenixkit.replicas import NoReplicaAvailable, ReplicaRouter, decode_token
from phoenixkit.testing import FakeClock
from tests.replicas.conftest import Item, unique_name, where
from tests.servers import PostgresServer


def test_reads_go_to_the_replica_and_writes_to_the_primary(router: ReplicaRouter) -> None:
    name = unique_name()
    with router.session() as s:
        assert where(s) is True  # a plain read: the replica
        s.add(Item(name=name))
        s.commit()
    with router.session() as s:
        s.execute(sa.text("INSERT INTO replicas_items (name) VALUES (:n)"), {"n": name})
        s.execute(sa.update(Item).where(Item.name == name).values(name=name + "-x"))
        s.commit()
    with router.session() as s:
        row = s.execute(sa.select(Item).where(Item.name == name + "-x").with_for_update())
        assert len(row.all()) == 2  # FOR UPDATE: the primary (a standby cannot lock rows)
        s.commit()
    with router.session() as s:
        s.execute(sa.delete(Item).where(Item.name == name + "-x"))
        s.commit()
    status = router.status()
    assert status.node("r1").reads == 1
    assert status.node("primary").writes >= 4
    assert status.node("r1").in_rotation


def test_a_replica_really_rejects_writes(router: ReplicaRouter) -> None:
    engine = router._replicas["r1"].engine
    with engine.connect() as conn, pytest.raises(InternalError, match="read-only"):
        conn.execute(sa.text("INSERT INTO replicas_items (name) VALUES ('never')"))


def test_text_writes_and_locks_go_to_the_primary(router: ReplicaRouter) -> None:
    name = unique_name()
    statements = [
        "INSERT INTO replicas_items (name) VALUES (:n)",
        "WITH moved AS (UPDATE replicas_items SET name = :n WHERE false RETURNING 1) "
        "SELECT count(*) FROM moved",
        "SELECT id FROM replicas_items WHERE name = :n FOR SHARE",
        "select nextval(pg_get_serial_sequence('replicas_items', 'id'))",
    ]
    for sql in statements:
        with router.session() as s:
            s.execute(sa.text(sql), {"n": name})
            assert where(s) is False, sql
            s.commit()


def test_reads_after_a_flush_see_the_flushed_rows(router: ReplicaRouter) -> None:
    name = unique_name()
    with router.session() as s:
        assert where(s) is True
        s.add(Item(name=name))
        s.flush()
        found = s.scalars(sa.select(Item).where(Item.name == name)).one()
        assert found.name == name  # the replica's open transaction could not see it
        assert where(s) is False  # the rest of this transaction: the primary
        s.rollback()
        assert where(s) is True  # a new transaction reads from the replica again


def test_read_your_writes_with_replay_paused(
    router: ReplicaRouter, pg_replica: PostgresServer
) -> None:
    router.health.probe_now()
    pg_replica.pause_replay()
    name = unique_name()
    with router.session() as writer:
        writer.add(Item(name=name))
        writer.commit()
        token = writer.token
        assert token is not None
        assert writer.lsn is not None
        # The same session reads its own write: the replica has not replayed it.
        assert writer.scalars(sa.select(Item.name).where(Item.name == name)).all() == [name]
        assert where(writer) is False
    with router.session() as other:  # no token: the replica, which has not replayed it
        assert other.scalars(sa.select(Item.name).where(Item.name == name)).all() == []
        assert where(other) is True
    with router.session(token=token) as carried:  # the token, carried by the client
        assert carried.scalars(sa.select(Item.name).where(Item.name == name)).all() == [name]
    assert router.status().consistency_reads >= 2
    pg_replica.resume_replay()
    pg_replica.wait_caught_up()
    router.health.probe_now()
    with router.session(token=token) as carried:  # the replica has caught up: it serves
        assert carried.scalars(sa.select(Item.name).where(Item.name == name)).all() == [name]
        assert where(carried) is True
    assert decode_token(token) == writer.lsn


def test_no_stale_read_over_many_write_then_read_cycles(
    router: ReplicaRouter, pg_replica: PostgresServer
) -> None:
    router.health.probe_now()
    pg_replica.pause_replay()
    stale = 0
    token = None
    for i in range(300):
        with router.session(token=token) as s:
            item = Item(name=f"cycle-{i}")
            s.add(item)
            s.flush()
            item_id = item.id
            s.commit()
            token = s.token
        with router.session(token=token) as s:
            if s.get(Item, item_id) is None:
                stale += 1
    assert stale == 0
    assert router.status().node("r1").reads == 0  # all behind the token: the primary


def test_use_primary_pins_every_statement(router: ReplicaRouter) -> None:
    with router.use_primary(), router.session() as s:
        assert where(s) is False
    with router.session() as s:
        assert where(s) is True


def test_a_primary_given_as_a_replica_and_an_unreachable_url(
    pg_primary: PostgresServer, items_table: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="phoenixkit.replicas")
    dead = "postgresql+psycopg://postgres@127.0.0.1:1/postgres"
    with ReplicaRouter(
        pg_primary.sqlalchemy_url,
        {"fake": pg_primary.sqlalchemy_url, "dead": dead},
        start=False,
        clock=FakeClock(),
        max_spill_rate=1.0,
    ) as router:
        status = router.status()
        assert status.in_rotation == ()
        assert "not in recovery" in status.node("fake").reason
        assert "OperationalError" in status.node("dead").reason
        assert "starts out of rotation" in caplog.text
        with router.session() as s:  # spilled to the primary, within the cap
            assert where(s) is False
        with router.session() as s, pytest.raises(NoReplicaAvailable, match="max_spill_rate"):
            s.execute(sa.text("SELECT 1"))
        router.clock.advance(1.0)  # type: ignore[attr-defined]
        with router.session() as s:
            assert where(s) is False
        assert (router.status().spills, router.status().refused) == (2, 1)


def test_on_no_replica_raise(pg_primary: PostgresServer) -> None:
    with ReplicaRouter(
        pg_primary.sqlalchemy_url, [pg_primary.sqlalchemy_url], start=False, on_no_replica="raise"
    ) as router:
        with router.session() as s, pytest.raises(NoReplicaAvailable, match="raise"):
            s.execute(sa.text("SELECT 1"))
        with router.session() as s:  # writes still work
            s.execute(sa.text("CREATE TEMP TABLE t (x int)"))
            assert s.execute(sa.text("INSERT INTO t VALUES (1) RETURNING x")).scalar() == 1


def test_bad_arguments() -> None:
    with pytest.raises(ConfigurationError, match="max_lag_bytes"):
        ReplicaRouter("sqlite://", ["sqlite://"], max_lag_bytes=0, start=False)
    with pytest.raises(ConfigurationError, match="interval"):
        ReplicaRouter("sqlite://", ["sqlite://"], probe_interval=0, start=False)
    with pytest.raises(TypeError, match="list of URLs"):
        ReplicaRouter("sqlite://", "sqlite://", start=False)
    with pytest.raises(TypeError, match="not a URL"):
        ReplicaRouter("sqlite://", [42], start=False)


def test_engines_given_are_used_and_left_open(
    pg_primary: PostgresServer, pg_replica: PostgresServer, items_table: None
) -> None:
    primary = sa.create_engine(pg_primary.sqlalchemy_url)
    replica = sa.create_engine(pg_replica.sqlalchemy_url)
    with ReplicaRouter(primary, [replica], start=False) as router, router.session() as s:
        assert where(s) is True
        assert "postgresql+psycopg" in repr(router)
    with replica.connect() as conn:  # not disposed by the router
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    primary.dispose()
    replica.dispose()


def test_commit_lsn_is_read_on_the_committing_connection(
    pg_primary: PostgresServer, pg_replica: PostgresServer, items_table: None
) -> None:
    """A primary pool of one connection: reading the commit LSN needs no second one."""
    primary = sa.create_engine(
        pg_primary.sqlalchemy_url, pool_size=1, max_overflow=0, pool_timeout=2
    )
    with ReplicaRouter(primary, [pg_replica.sqlalchemy_url], start=False) as router:
        for _ in range(3):
            with router.session() as s:
                s.add(Item(name=unique_name()))
                s.commit()
                assert s.lsn is not None
                assert s.lsn <= int(pg_primary.scalar("SELECT pg_current_wal_insert_lsn() - '0/0'"))
        assert primary.pool.checkedout() == 0
    primary.dispose()


@pytest.mark.parametrize("check_replay", [True, False])
def test_a_replica_that_has_replayed_the_write_serves_it_between_probes(
    pg_primary: PostgresServer, pg_replica: PostgresServer, items_table: None, check_replay: bool
) -> None:
    pg_replica.wait_caught_up()
    with ReplicaRouter(
        pg_primary.sqlalchemy_url,
        [pg_replica.sqlalchemy_url],
        start=False,
        check_replay=check_replay,
    ) as router:
        name = unique_name()
        with router.session() as s:
            s.add(Item(name=name))
            s.commit()
            token = s.token
        pg_replica.wait_caught_up()  # replayed, but no probe has run since the write
        with router.session(token=token) as s:
            assert s.scalars(sa.select(Item.name).where(Item.name == name)).all() == [name]
            assert where(s) is check_replay  # asked live: the replica; else the primary
        assert router.status().replay_checks == int(check_replay)
