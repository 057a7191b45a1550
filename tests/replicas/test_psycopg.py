"""PsycopgRouter over psycopg pools on the real primary and replica."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from phoenixkit.replicas import NoReplicaAvailable
from phoenixkit.replicas.psycopg import PsycopgRouter
from phoenixkit.testing import FakeClock
from tests.replicas.conftest import unique_name
from tests.servers import PostgresServer

IN_RECOVERY = "SELECT pg_is_in_recovery()"
COUNT = "SELECT count(*) FROM replicas_items WHERE name = %s"


@pytest.fixture
def prouter(
    pg_primary: PostgresServer, pg_replica: PostgresServer, items_table: None
) -> Iterator[PsycopgRouter]:
    if pg_replica.replay_paused():
        pg_replica.resume_replay()
    pg_replica.wait_caught_up()
    router = PsycopgRouter(pg_primary.url, {"r1": pg_replica.url}, start=False, clock=FakeClock())
    yield router
    router.close()
    if pg_replica.replay_paused():
        pg_replica.resume_replay()


def test_reads_replica_writes_primary(prouter: PsycopgRouter) -> None:
    assert prouter.read(IN_RECOVERY) == [(True,)]
    name = unique_name()
    token = prouter.write("INSERT INTO replicas_items (name) VALUES (%s)", (name,))
    assert prouter.read(COUNT, (name,), token=token) == [(1,)]
    with prouter.connection(write=True) as conn:
        assert conn.execute(IN_RECOVERY).fetchone() == (False,)
    with prouter.connection() as conn:
        assert conn.execute(IN_RECOVERY).fetchone() == (True,)
    with prouter.use_primary(), prouter.connection() as conn:
        assert conn.execute(IN_RECOVERY).fetchone() == (False,)
    status = prouter.status()
    assert status.node("r1").reads >= 2
    assert status.node("primary").writes == 3


def test_read_your_writes_with_replay_paused(
    prouter: PsycopgRouter, pg_replica: PostgresServer
) -> None:
    pg_replica.pause_replay()
    name = unique_name()
    token = prouter.write("INSERT INTO replicas_items (name) VALUES (%s)", (name,))
    assert prouter.read(COUNT, (name,), token=token) == [(1,)]  # the primary
    assert prouter.read(COUNT, (name,)) == [(0,)]  # the paused replica
    assert prouter.status().consistency_reads == 1


def test_pools_given_are_used_and_left_open(
    pg_primary: PostgresServer, pg_replica: PostgresServer
) -> None:
    with (
        ConnectionPool(pg_primary.url, min_size=1, open=True) as primary,
        ConnectionPool(pg_replica.url, min_size=1, open=True) as replica,
    ):
        with PsycopgRouter(primary, [replica], start=False, on_no_replica="raise") as router:
            assert router.read(IN_RECOVERY) == [(True,)]
            assert "127.0.0.1" in router.status().node("replica-0").url
        assert not replica.closed
    with pytest.raises(TypeError, match="conninfo"):
        PsycopgRouter(pg_primary.url, [42], start=False)
    with pytest.raises(TypeError, match="not one"):
        PsycopgRouter(pg_primary.url, pg_replica.url, start=False)


def test_a_primary_as_replica_with_raise(pg_primary: PostgresServer) -> None:
    with PsycopgRouter(
        pg_primary.url, [pg_primary.url], start=False, on_no_replica="raise"
    ) as router:
        with pytest.raises(NoReplicaAvailable):
            router.read("SELECT 1")
        with pytest.raises(psycopg.errors.UndefinedTable):  # writes still reach the primary
            router.write("SELECT * FROM no_such_table_here")
