"""Health probes: lag measured on the real replica (bytes and seconds, idle primary = no
lag), LSN order against PostgreSQL's own ``pg_wal_lsn_diff``, and the probe loops."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phoenixkit.errors import ConfigurationError
from phoenixkit.replicas.health import REPLICA_PROBE_SQL, HealthChecker, probe_from_row
from phoenixkit.replicas.policy import Probe, format_lsn, parse_lsn
from phoenixkit.testing import FakeClock
from tests.servers import PostgresServer

LSNS = st.integers(min_value=0, max_value=2**64 - 1)


# Pure: a probe row -> Probe -----------------------------------------------------------------


def test_caught_up_replica_has_no_lag_however_old_its_last_transaction() -> None:
    # An idle primary: the last replayed transaction is an hour old, nothing is pending.
    probe = probe_from_row((True, "0/500", "0/500", 3600.0), primary_lsn=0x500)
    assert (probe.lag_bytes, probe.lag_seconds, probe.replay_lsn) == (0, 0.0, 0x500)
    # The primary unknown this round: received == replayed still means caught up.
    assert probe_from_row((True, "0/500", "0/500", 3600.0), primary_lsn=None).lag_seconds == 0.0


def test_lagging_replica_reports_both_lags() -> None:
    probe = probe_from_row((True, "0/500", "0/900", 7.5), primary_lsn=0x1000)
    assert (probe.lag_bytes, probe.lag_seconds) == (0x1000 - 0x500, 7.5)


def test_no_replayed_transaction_yet_leaves_seconds_unknown() -> None:
    probe = probe_from_row((True, "0/500", "0/900", None), primary_lsn=0x1000)
    assert probe.lag_seconds is None
    assert probe.lag_bytes == 0xB00


def test_a_server_not_in_recovery() -> None:
    assert probe_from_row((False, None, None, None), primary_lsn=5) == Probe(
        ok=True, in_recovery=False, lag_bytes=0, lag_seconds=0.0
    )


# Real PostgreSQL ----------------------------------------------------------------------------


@settings(max_examples=60)
@given(LSNS, LSNS)
def test_lsn_order_matches_pg_wal_lsn_diff(pg_primary: PostgresServer, a: int, b: int) -> None:
    diff = pg_primary.scalar(
        "SELECT pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)", (format_lsn(a), format_lsn(b))
    )
    assert Decimal(diff) == a - b
    text = pg_primary.scalar("SELECT %s::pg_lsn::text", (format_lsn(a),))
    assert parse_lsn(text) == a


def _checker(primary: PostgresServer, replica: PostgresServer) -> tuple[HealthChecker, list[Any]]:
    seen: list[Any] = []

    def fetch() -> Sequence[Any]:
        return replica.execute(REPLICA_PROBE_SQL)[0]

    checker = HealthChecker(
        {"r": fetch}, primary.current_lsn, lambda n, p: seen.append((n, p)), clock=FakeClock()
    )
    return checker, seen


def test_lag_is_measured_on_the_real_replica(
    pg_primary: PostgresServer, pg_replica: PostgresServer, items_table: None
) -> None:
    checker, seen = _checker(pg_primary, pg_replica)
    pg_replica.wait_caught_up()
    idle = checker.probe_now()["r"]
    assert idle.ok
    assert idle.in_recovery
    assert (idle.lag_bytes, idle.lag_seconds) == (0, 0.0)
    pg_replica.pause_replay()
    try:
        pg_primary.execute("INSERT INTO replicas_items (name) VALUES ('lag')")
        pg_primary.execute("SELECT pg_sleep(0.05)")
        pg_primary.execute("INSERT INTO replicas_items (name) VALUES ('lag')")
        target = pg_primary.current_lsn()
        for _ in range(200):  # received (not replayed): wait for the WAL to arrive
            if pg_replica.has_received(target):
                break
            pg_primary.execute("SELECT pg_sleep(0.01)")
        behind = checker.probe_now()["r"]
        assert behind.lag_bytes is not None
        assert behind.lag_bytes > 0
        assert behind.lag_seconds is not None
        assert behind.lag_seconds > 0
        assert behind.replay_lsn is not None
        assert behind.replay_lsn < parse_lsn(target)
    finally:
        pg_replica.resume_replay()
    pg_replica.wait_caught_up()
    again = checker.probe_now()["r"]
    assert (again.lag_bytes, again.lag_seconds) == (0, 0.0)
    assert [name for name, _ in seen] == ["r", "r", "r"]
    assert checker.rounds == 3
    assert checker.last_round_at == 0.0


def test_an_unreachable_replica_and_primary_make_failed_probes() -> None:
    def refuse() -> Sequence[Any]:
        raise ConnectionRefusedError("connection refused\nmore detail")

    def primary_down() -> str:
        raise ConnectionRefusedError("primary down")

    checker = HealthChecker({"r": refuse}, primary_down, lambda n, p: None)
    probe = checker.probe_now()["r"]
    assert probe == Probe(ok=False, error="ConnectionRefusedError: connection refused")


def test_interval_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="interval"):
        HealthChecker({}, lambda: "0/0", lambda n, p: None, interval=-1)


# The loops ---------------------------------------------------------------------------------


def test_the_thread_probes_until_stopped() -> None:
    enough = threading.Event()

    def on_probe(name: str, probe: Probe) -> None:
        if checker.rounds >= 2:
            enough.set()

    checker = HealthChecker(
        {"r": lambda: (True, "0/1", "0/1", None)}, lambda: "0/1", on_probe, interval=0.001
    )
    checker.start()
    checker.start()  # idempotent
    assert enough.wait(10)
    checker.stop()
    assert not checker.running
    assert checker.rounds >= 3


@pytest.mark.asyncio
async def test_the_asyncio_task_probes_until_stopped() -> None:
    clock = FakeClock()
    found: list[Probe] = []
    checker = HealthChecker(
        {"r": lambda: (True, "0/1", "0/1", None)},
        lambda: "0/1",
        lambda n, p: found.append(p),
        interval=5.0,
        clock=clock,
    )
    task = checker.start_async()
    assert checker.start_async() is task
    for _ in range(1000):
        if len(found) >= 3:
            break
        await asyncio.sleep(0.001)
    assert checker.running
    await checker.astop()
    assert task.done()
    assert not checker.running
    assert len(found) >= 3
    assert all(p.lag_bytes == 0 for p in found)
    assert clock.sleeps[:3] == [5.0, 5.0, 5.0]
