"""A replica SIGKILLed under a read load, then restarted: no user read fails, the replica is
evicted at once (by the failed read) and readmitted after ``readmit_after`` healthy probes,
on fresh pooled connections.

The replica killed here is this module's own (``pg_primary.create_replica()``), so the
session-wide ``pg_replica`` stays up for the other tests.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from phoenixkit.replicas import ReplicaRouter
from phoenixkit.testing import FakeClock
from tests.replicas.conftest import where
from tests.servers import PostgresServer

CYCLES = 10_000  # the figure: 0 stale reads over 10k write-then-read cycles


@pytest.fixture(scope="module")
def own_replica(pg_primary: PostgresServer) -> Iterator[PostgresServer]:
    replica = pg_primary.create_replica()
    yield replica
    replica.destroy()


def test_killed_replica_fails_over_and_comes_back(
    pg_primary: PostgresServer, own_replica: PostgresServer, items_table: None
) -> None:
    own_replica.wait_caught_up()
    with ReplicaRouter(
        pg_primary.sqlalchemy_url,
        {"victim": own_replica.sqlalchemy_url},
        evict_after=2,
        readmit_after=3,
        start=False,
        clock=FakeClock(),
    ) as router:
        failed = 0
        failover_seconds = []
        for i in range(200):
            if i == 50:
                own_replica.kill()
            began = time.perf_counter()
            try:
                with router.session() as s:
                    assert s.execute(sa.text("SELECT count(*) FROM replicas_items")).scalar() >= 0
            except Exception:
                failed += 1
            if i == 50:
                failover_seconds.append(time.perf_counter() - began)
        assert failed == 0
        status = router.status()
        victim = status.node("victim")
        assert not victim.in_rotation
        assert "a read failed" in victim.reason
        assert (status.failovers, victim.evictions, victim.read_failures) == (1, 1, 1)
        assert victim.reads == 51  # 50 before the kill, and the one that failed over
        assert status.spills == 149  # every read since went to the primary
        print(f"failover of one read after SIGKILL: {failover_seconds[0] * 1000:.1f} ms")

        router.health.probe_now()  # still down: still out
        assert not router.status().node("victim").in_rotation
        own_replica.start()
        own_replica.wait_caught_up()
        for probe in range(3):
            assert not router.status().node("victim").in_rotation, probe
            router.health.probe_now()
        assert router.status().node("victim").in_rotation
        assert router.status().node("victim").readmissions == 1
        with router.session() as s:  # fresh connections to the restarted server
            assert where(s) is True


def test_probes_evict_a_dead_replica_within_one_interval(
    pg_primary: PostgresServer, own_replica: PostgresServer, items_table: None
) -> None:
    """With the health thread running (real clock, 0.1 s interval), no reads at all."""
    if not own_replica.process.alive:
        own_replica.start()
    own_replica.wait_caught_up()
    with ReplicaRouter(
        pg_primary.sqlalchemy_url,
        {"victim": own_replica.sqlalchemy_url},
        evict_after=1,
        readmit_after=2,
        probe_interval=0.1,
    ) as router:
        assert router.health.running
        assert router.status().in_rotation == ("victim",)
        rounds = router.health.rounds
        own_replica.kill()
        killed = time.perf_counter()
        deadline = killed + 10
        while router.status().in_rotation and time.perf_counter() < deadline:
            time.sleep(0.005)
        took = time.perf_counter() - killed
        assert router.status().in_rotation == ()
        # Evicted by the first probe round after the kill (evict_after=1).
        assert router.health.rounds - rounds <= 2
        print(f"eviction by probe after SIGKILL: {took * 1000:.0f} ms (interval 100 ms)")
        own_replica.start()
        own_replica.wait_caught_up()
        deadline = time.perf_counter() + 10
        while not router.status().in_rotation and time.perf_counter() < deadline:
            time.sleep(0.01)
        assert router.status().in_rotation == ("victim",)
    assert not router.health.running


@pytest.mark.slow
def test_no_stale_read_with_replay_paused_on_one_of_two_replicas(
    pg_primary: PostgresServer,
    pg_replica: PostgresServer,
    own_replica: PostgresServer,
    items_table: None,
) -> None:
    """Write then read (carrying the token) 10,000 times while ``pg_replica`` replays
    nothing; the other replica streams and serves the reads it has replayed the write for.
    No read misses its own write."""
    if not own_replica.process.alive:
        own_replica.start()
    own_replica.wait_caught_up()
    pg_replica.wait_caught_up()
    with ReplicaRouter(
        pg_primary.sqlalchemy_url,
        {"paused": pg_replica.sqlalchemy_url, "streaming": own_replica.sqlalchemy_url},
        start=False,
        clock=FakeClock(),
        max_lag_bytes=None,
        max_lag_seconds=None,
    ) as router:
        pg_replica.pause_replay()
        try:
            stale = 0
            token = None
            insert = sa.text("INSERT INTO replicas_items (name) VALUES (:n) RETURNING id")
            read = sa.text("SELECT name FROM replicas_items WHERE id = :id")  # the primary key
            for i in range(CYCLES):
                with router.session(token=token) as s:
                    item_id = s.execute(insert, {"n": f"two-{i}"}).scalar()
                    s.commit()
                    token = s.token
                with router.session(token=token) as s:
                    stale += s.execute(read, {"id": item_id}).scalar() != f"two-{i}"
            status = router.status()
        finally:
            pg_replica.resume_replay()
    streaming, primary = status.node("streaming").reads, status.consistency_reads
    print(f"{CYCLES} write-then-read cycles: streaming replica {streaming}, primary {primary}")
    assert stale == 0
    assert status.node("paused").reads == 0
    # No probe ran after the first: each read asked the streaming replica live
    # (check_replay) and went there when it had replayed the write, else to the primary.
    assert status.node("streaming").reads > 0
    assert status.node("streaming").reads + status.consistency_reads == CYCLES
    assert status.replay_checks >= CYCLES


@pytest.mark.asyncio
async def test_async_reads_fail_over_when_the_replica_is_killed(
    pg_primary: PostgresServer, own_replica: PostgresServer, items_table: None
) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    if not own_replica.process.alive:
        own_replica.start()
    own_replica.wait_caught_up()
    primary = create_async_engine(pg_primary.sqlalchemy_url)
    replica = create_async_engine(own_replica.sqlalchemy_url)
    router = ReplicaRouter(primary, {"victim": replica}, readmit_after=2, start=False)
    try:
        failed = 0
        for i in range(60):
            if i == 20:
                own_replica.kill()
            try:
                async with router.async_session() as s:
                    await s.execute(sa.text("SELECT count(*) FROM replicas_items"))
            except Exception:
                failed += 1
        assert failed == 0
        status = router.status()
        assert status.failovers == 1
        assert status.node("victim").reads == 21
        own_replica.start()
        own_replica.wait_caught_up()
        for _ in range(2):
            router.health.probe_now()
        assert router.status().in_rotation == ("victim",)
        async with router.async_session() as s:  # the pool was invalidated: fresh connections
            assert (await s.execute(sa.text("SELECT pg_is_in_recovery()"))).scalar() is True
    finally:
        router.close()
        await primary.dispose()
        await replica.dispose()


def test_psycopg_reads_fail_over_when_the_replica_is_killed(
    pg_primary: PostgresServer, own_replica: PostgresServer, items_table: None
) -> None:
    from phoenixkit.replicas.psycopg import PsycopgRouter

    if not own_replica.process.alive:
        own_replica.start()
    own_replica.wait_caught_up()
    with PsycopgRouter(
        pg_primary.url, {"victim": own_replica.url}, readmit_after=2, start=False
    ) as router:
        failed = 0
        for i in range(60):
            if i == 20:
                own_replica.kill()
            try:
                router.read("SELECT count(*) FROM replicas_items")
            except Exception:
                failed += 1
        assert failed == 0
        status = router.status()
        assert status.failovers == 1
        assert status.node("victim").reads == 21
        assert status.spills == 39
        own_replica.start()
        own_replica.wait_caught_up()
        for _ in range(2):
            router.health.probe_now()
        assert router.status().in_rotation == ("victim",)
        assert router.read("SELECT pg_is_in_recovery()") == [(True,)]


def test_failover_inside_a_begin_block_keeps_the_transaction(
    pg_primary: PostgresServer, own_replica: PostgresServer, items_table: None
) -> None:
    if not own_replica.process.alive:
        own_replica.start()
    own_replica.wait_caught_up()
    with ReplicaRouter(
        pg_primary.sqlalchemy_url, {"victim": own_replica.sqlalchemy_url}, start=False
    ) as router:
        with router.session() as s:
            assert where(s) is True  # a pooled connection to the victim now exists
        own_replica.kill()
        with router.session() as s, s.begin():
            assert where(s) is False  # failed on the victim, retried on the primary
            s.execute(sa.text("INSERT INTO replicas_items (name) VALUES ('in-begin')"))
        with router.session() as s:  # the block committed on the primary
            count = s.execute(
                sa.text("SELECT count(*) FROM replicas_items WHERE name = 'in-begin'")
            ).scalar()
            assert count >= 1
        assert router.status().failovers == 1
    own_replica.start()
