"""The fixtures are real servers: replication, replay pause, read-only standby, cluster slots,
and kill/restart of each."""

from __future__ import annotations

import psycopg
import pytest
import redis
from redis.cluster import RedisCluster as ClusterClient

from tests.servers import (
    PostgresServer,
    RedisCluster,
    RedisServer,
    resp,
    wait_until,
)


@pytest.fixture
def table(pg_primary: PostgresServer, request: pytest.FixtureRequest) -> str:
    name = f"t_{request.node.name.replace('[', '_').replace(']', '').replace('-', '_')}"
    pg_primary.execute(f"DROP TABLE IF EXISTS {name}")
    pg_primary.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, note text)")
    return name


def test_replica_is_a_streaming_standby(pg_primary: PostgresServer, pg_replica: PostgresServer):
    assert not pg_primary.is_in_recovery()
    assert pg_replica.is_in_recovery()
    assert pg_replica.scalar("SELECT status FROM pg_stat_wal_receiver") == "streaming"
    senders = pg_primary.execute("SELECT state FROM pg_stat_replication")
    assert ("streaming",) in senders


def test_row_written_on_primary_becomes_visible_on_replica(
    pg_primary: PostgresServer, pg_replica: PostgresServer, table: str
):
    pg_primary.execute(f"INSERT INTO {table} VALUES (1, 'hello')")
    wait_until(
        lambda: pg_replica.execute(f"SELECT note FROM {table} WHERE id = 1") == [("hello",)],
        timeout=30,
        what="the row to reach the replica",
    )


def test_paused_replay_hides_new_rows_until_resumed(
    pg_primary: PostgresServer, pg_replica: PostgresServer, table: str
):
    pg_replica.wait_caught_up()
    pg_replica.pause_replay()
    try:
        assert pg_replica.replay_paused()
        pg_primary.execute(f"INSERT INTO {table} VALUES (2, 'lagging')")
        lsn = pg_primary.current_lsn()
        # The WAL has reached the replica, but it is not applied while replay is paused.
        wait_until(lambda: pg_replica.has_received(lsn), timeout=30, what="WAL receipt")
        assert not pg_replica.has_replayed(lsn)
        assert pg_replica.execute(f"SELECT note FROM {table} WHERE id = 2") == []
    finally:
        pg_replica.resume_replay()
    pg_replica.wait_caught_up()
    assert pg_replica.execute(f"SELECT note FROM {table} WHERE id = 2") == [("lagging",)]


def test_replica_rejects_writes(pg_replica: PostgresServer, table: str):
    pg_replica.wait_caught_up()
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        pg_replica.execute(f"INSERT INTO {table} VALUES (3, 'nope')")


@pytest.mark.slow
def test_primary_survives_sigkill_and_restart(pg_primary: PostgresServer, table: str):
    pg_primary.execute(f"INSERT INTO {table} VALUES (4, 'durable')")
    pg_primary.kill()
    with pytest.raises(psycopg.OperationalError):
        pg_primary.connect()
    pg_primary.restart()
    assert pg_primary.execute(f"SELECT note FROM {table} WHERE id = 4") == [("durable",)]


@pytest.mark.slow
def test_replica_reconnects_after_kill_and_restart(
    pg_primary: PostgresServer, pg_replica: PostgresServer, table: str
):
    pg_replica.kill()
    pg_primary.execute(f"INSERT INTO {table} VALUES (5, 'while down')")
    pg_replica.restart()
    pg_replica.wait_caught_up()
    assert pg_replica.execute(f"SELECT note FROM {table} WHERE id = 5") == [("while down",)]


def test_redis_server_is_real(redis_server: RedisServer):
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.set("phoenixkit:test:key", "value", ex=60)
        assert client.get("phoenixkit:test:key") == b"value"
        assert client.info("server")["redis_version"].split(".")[0] >= "6"
    finally:
        client.close()


@pytest.mark.slow
def test_redis_server_kill_and_restart(redis_server: RedisServer):
    client = redis.Redis.from_url(redis_server.url, socket_timeout=2)
    try:
        assert client.ping()
        redis_server.kill()
        assert not redis_server.ping()
        with pytest.raises(redis.ConnectionError):
            client.ping()
        redis_server.restart()
        assert client.ping()  # redis-py reconnects on the next command
    finally:
        client.close()


def test_cluster_slots_cover_the_keyspace(redis_cluster: RedisCluster):
    port = int(redis_cluster.url.split("//")[1].split(",")[0].rsplit(":", 1)[1])
    slots = resp(port, "CLUSTER", "SLOTS")
    ranges = sorted((int(s[0]), int(s[1])) for s in slots)
    assert len(ranges) >= 3
    covered = set()
    for start, end in ranges:
        covered.update(range(start, end + 1))
    assert covered == set(range(16384))
    masters = {tuple(s[2][:2]) for s in slots}
    assert len(masters) == 3


def test_cluster_client_reads_back_what_it_wrote(redis_cluster: RedisCluster):
    host, port = redis_cluster.url.split("//")[1].split(",")[0].rsplit(":", 1)
    client = ClusterClient(host=host, port=int(port))
    try:
        keys = [f"phoenixkit:test:{i}" for i in range(50)]
        for k in keys:
            client.set(k, k.upper(), ex=60)
        assert [client.get(k) for k in keys] == [k.upper().encode() for k in keys]
        # The keys landed on more than one master: this really is a sharded cluster.
        owners = {client.get_node_from_key(k).name for k in keys}
        assert len(owners) == 3
    finally:
        client.close()


@pytest.mark.slow
def test_cluster_node_kill_and_restart(redis_cluster: RedisCluster):
    port = redis_cluster.ports[1]
    redis_cluster.kill(1)
    assert not redis_cluster.nodes[1].ping()
    redis_cluster.restart(1)
    assert redis_cluster.state_ok(port)
