"""Breaker state shared on real Redis and Redis Cluster.

The Lua script is checked step by step against the pure core (the reference model: the
same transitions, generations and durations), then breakers in threads and in separate
processes share one state: one opens the circuit for all, only ``half_open_max_calls``
probes run across the fleet, and a killed Redis degrades to local decisions and back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import multiprocessing
import threading
import time
import uuid
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from phoenixkit.breaker import CircuitBreaker, CircuitOpenError, RedisBreakerState
from phoenixkit.breaker.core import (
    CLOSED,
    DISABLED,
    FORCED_OPEN,
    HALF_OPEN,
    OPEN,
    BreakerConfig,
    BreakerCore,
    Permit,
)
from phoenixkit.breaker.shared import SharedView
from phoenixkit.errors import BackendUnavailableError, ConfigurationError
from phoenixkit.testing import FakeClock
from tests.servers import RedisServer


@pytest.fixture(params=["redis", "cluster"])
def shared_url(request: pytest.FixtureRequest) -> str:
    server = request.getfixturevalue(
        {"redis": "redis_server", "cluster": "redis_cluster"}[request.param]
    )
    return str(server.url)


def unique(prefix: str = "br") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class Boom(Exception):
    pass


def fail() -> None:
    raise Boom


def ok() -> str:
    return "ok"


# The script against the pure core ------------------------------------------------------------


class SharedModel:
    """What the shared state must do: before every op the core's time-driven transitions,
    then the op, with the pure core's own rules for probes, backoff and jitter."""

    def __init__(self, config: BreakerConfig, draw: float) -> None:
        self.core = BreakerCore(config, random=lambda: draw)
        self.config = config

    def op(self, now: float, op: str, *args: Any) -> tuple[str, int, float, bool, bool]:
        core = self.core
        core.poll(now)
        admitted = probe = False
        if op == "acquire":
            if core.state in (CLOSED, DISABLED):
                admitted = True
            elif core.state == HALF_OPEN and core.probes_issued < self.config.half_open_max_calls:
                core.probes_issued += 1
                admitted = probe = True
        elif op == "trip":
            if core.state == CLOSED and args[0] == core.generation:
                core.trip(now)
        elif op == "record":
            if core.state == HALF_OPEN and args[0] == core.generation:
                core.record(Permit(args[0], True), now, bool(args[1]), bool(args[2]))
        elif op == "release":
            core.release(Permit(args[0], True))
        elif op == "force":
            core.force(args[0], now)
        c = self.config
        remaining = 0.0
        if core.state == OPEN:
            remaining = core.opened_at + core.open_for - now
        elif core.state == HALF_OPEN:
            wait = c.max_wait_in_half_open
            remaining = c.open_duration if wait is None else core.half_open_since + wait - now
        elif core.state == FORCED_OPEN:
            remaining = math.inf
        return core.state, core.generation, remaining, admitted, probe


CONFIGS = st.builds(
    BreakerConfig,
    failure_rate_threshold=st.sampled_from([0.5, 1.0]),
    slow_call_rate_threshold=st.sampled_from([0.5, 1.0]),
    slow_call_duration=st.sampled_from([None, 1.0]),
    minimum_calls=st.just(1),
    window_size=st.just(10),
    open_duration=st.sampled_from([0.0, 10.0, 30.0]),
    open_duration_multiplier=st.sampled_from([1.0, 2.0, 10.0]),
    max_open_duration=st.sampled_from([None, 100.0]),
    jitter=st.sampled_from([0.0, 0.2]),
    half_open_max_calls=st.integers(1, 3),
    max_wait_in_half_open=st.sampled_from([None, 5.0, 20.0, 100.0]),
)


class ScriptMatchesCore(RuleBasedStateMachine):
    url = ""

    @initialize(config=CONFIGS, draw=st.sampled_from([0.0, 0.5, 0.99]))
    def start(self, config: BreakerConfig, draw: float) -> None:
        self.clock = FakeClock(1_000_000.0)
        self.store = RedisBreakerState(self.url, clock=self.clock)
        self.name = unique("model")
        self.config = config
        self.draw = draw
        wait = config.max_wait_in_half_open
        # The shared state bounds the wait for probes even when the breaker does not.
        model_config = dataclasses.replace(
            config, max_wait_in_half_open=self.store.probe_timeout if wait is None else wait
        )
        self.model = SharedModel(model_config, draw)
        view = self.store.run(self.name, config, "sync")
        self.epoch = view.generation  # the script's generations start at its own epoch
        self.last: SharedView = view

    def both(self, op: str, *args: Any) -> None:
        now = self.clock()
        model_args = list(args)
        script_args = list(args)
        if op in ("trip", "record", "release"):  # a generation: the model's and the script's
            script_args[0] = args[0] + self.epoch
        want = self.model.op(now, op, *model_args)
        got = self.store.run(
            self.name, self.config, op, *script_args, jitter_draw=self.config.jitter * self.draw
        )
        self.last = got
        assert got.state == want[0], (op, got, want)
        assert got.generation - self.epoch == want[1], (op, got, want)
        if math.isinf(want[2]):
            assert math.isinf(got.remaining)
        else:
            assert got.remaining == pytest.approx(want[2], abs=1e-5), (op, got, want)
        assert (got.admitted, got.probe) == (want[3], want[4]), (op, got, want)

    def gen(self, stale: bool) -> int:
        g = self.model.core.generation
        return g - 1 if stale else g

    @rule(seconds=st.sampled_from([0.0, 0.5, 1.0, 5.0, 10.0, 30.0, 200.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def acquire(self) -> None:
        self.both("acquire")

    @rule(stale=st.booleans())
    def trip(self, stale: bool) -> None:
        self.both("trip", self.gen(stale))

    @rule(stale=st.booleans(), failure=st.booleans(), slow=st.booleans())
    def record(self, stale: bool, failure: bool, slow: bool) -> None:
        self.both("record", self.gen(stale), int(failure), int(slow))

    @rule(stale=st.booleans())
    def release(self, stale: bool) -> None:
        self.both("release", self.gen(stale))

    @rule(state=st.sampled_from([CLOSED, OPEN, HALF_OPEN, FORCED_OPEN, DISABLED]))
    def force(self, state: str) -> None:
        self.both("force", state)

    @invariant()
    def probes_never_exceed_the_cap(self) -> None:
        if hasattr(self, "model"):
            assert self.model.core.probes_issued <= self.config.half_open_max_calls


def test_the_script_follows_the_pure_core(shared_url: str) -> None:
    ScriptMatchesCore.url = shared_url
    runner = ScriptMatchesCore.TestCase
    runner.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
    runner().runTest()


# The store itself ------------------------------------------------------------------------------


def test_keys_are_hash_tagged_and_odd_names_hashed(redis_server: Any) -> None:
    store = RedisBreakerState(redis_server.url)
    assert store.key("payments") == "{pk:breaker:payments}"
    odd = store.key("a{b}\nc" + "x" * 10_000)
    assert odd.startswith("{pk:breaker:sha256:")
    assert odd.endswith("}")
    assert odd.count("{") == 1
    assert len(odd) < 100
    assert store.key("a{b}") != store.key("a{c}")


def test_state_needs_redis_and_sane_settings(redis_server: Any) -> None:
    with pytest.raises(ConfigurationError, match="Redis"):
        RedisBreakerState("memory://x")
    with pytest.raises(ConfigurationError, match="ttl"):
        RedisBreakerState(redis_server.url, ttl=0)
    with pytest.raises(ConfigurationError, match="sync_interval"):
        CircuitBreaker("x", state_storage=redis_server.url, sync_interval=0)
    with pytest.raises(ConfigurationError, match="on_storage_error"):
        CircuitBreaker("x", state_storage=redis_server.url, on_storage_error="ignore")
    store = RedisBreakerState(redis_server.url)
    with pytest.raises(ConfigurationError, match="op"):
        store.run("x", BreakerConfig(), "explode")


def test_expiry_is_always_set_and_hand_set_states_persist(redis_server: Any) -> None:
    import redis

    client = redis.Redis.from_url(redis_server.url)
    store = RedisBreakerState(redis_server.url, ttl=60)
    name, config = unique(), BreakerConfig(open_duration=600.0)
    store.run(name, config, "sync")
    assert 0 < client.pttl(store.key(name)) <= 60_000
    store.run(name, config, "force", OPEN)  # open outlives its open time
    assert 600_000 < client.pttl(store.key(name)) <= 661_000
    store.run(name, config, "force", FORCED_OPEN)
    assert client.ttl(store.key(name)) == -1
    store.run(name, config, "force", CLOSED)
    assert 0 < client.pttl(store.key(name)) <= 60_000
    store.delete(name)
    assert not client.exists(store.key(name))


def test_server_time_drives_the_open_period(redis_server: Any) -> None:
    # No injected clock: the script reads Redis TIME.
    store = RedisBreakerState(redis_server.url)
    name, config = unique(), BreakerConfig(open_duration=0.2, half_open_max_calls=1)
    assert store.run(name, config, "force", OPEN).state == OPEN
    assert store.run(name, config, "acquire").admitted is False
    time.sleep(0.25)
    view = store.run(name, config, "acquire")
    assert (view.state, view.admitted, view.probe) == (HALF_OPEN, True, True)


# Breakers sharing one state --------------------------------------------------------------------


def pair(url: str, clock: FakeClock, **kw: Any) -> tuple[CircuitBreaker, CircuitBreaker]:
    """Two breakers of one name on one shared state, as two processes would have."""
    name = unique()
    store = RedisBreakerState(url, clock=clock)
    config: dict[str, Any] = {
        "minimum_calls": 4,
        "window_size": 4,
        "open_duration": 30.0,
        "half_open_max_calls": 2,
        "sync_interval": 1.0,
        "clock": clock,
    }
    config.update(kw)
    return (
        CircuitBreaker(name, state_storage=store, **config),
        CircuitBreaker(name, state_storage=store, **config),
    )


def test_one_process_opening_opens_it_for_all(shared_url: str) -> None:
    clock = FakeClock(100.0)
    a, b = pair(shared_url, clock)
    assert b.call(ok) == "ok"  # b has looked at the shared state: closed
    for _ in range(4):
        with pytest.raises(Boom):
            a.call(fail)
    assert a.state == OPEN
    with pytest.raises(CircuitOpenError):
        a.call(ok)
    assert b.call(ok) == "ok"  # b's last look is younger than sync_interval
    clock.advance(1.0)
    with pytest.raises(CircuitOpenError) as info:
        b.call(ok)
    assert info.value.state == OPEN
    assert info.value.retry_after == pytest.approx(29.0, abs=1e-3)
    assert b.stats().rejected == 1


def test_only_the_probe_cap_runs_across_breakers_and_success_closes_for_all(
    shared_url: str,
) -> None:
    clock = FakeClock(100.0)
    a, b = pair(shared_url, clock)
    a.open()
    clock.advance(30.0)
    started = threading.Event()
    release = threading.Event()
    admitted: list[str] = []

    def probe(who: str) -> str:
        admitted.append(who)
        started.set()
        release.wait(5)
        return who

    threads = [
        threading.Thread(target=lambda br=br, w=w: br.call(probe, w))
        for br, w in ((a, "a1"), (b, "b1"))
    ]
    for t in threads:
        t.start()
    started.wait(5)
    time.sleep(0.05)
    # Both probes are out (one per breaker): a third caller, on either, is turned away.
    for br in (a, b):
        with pytest.raises(CircuitOpenError) as info:
            br.call(ok)
        assert info.value.state == HALF_OPEN
    release.set()
    for t in threads:
        t.join(5)
    assert sorted(admitted) == ["a1", "b1"]
    assert a.refresh() == CLOSED
    assert b.refresh() == CLOSED
    assert b.call(ok) == "ok"


def test_failed_probes_reopen_for_all_with_backoff(shared_url: str) -> None:
    clock = FakeClock(100.0)
    a, b = pair(shared_url, clock, half_open_max_calls=1, open_duration_multiplier=2.0)
    a.open()
    clock.advance(30.0)
    with pytest.raises(Boom):
        b.call(fail)  # b's probe fails: open again, for 60 s this time
    clock.advance(1.0)
    for br in (a, b):
        with pytest.raises(CircuitOpenError) as info:
            br.call(ok)
        assert info.value.retry_after == pytest.approx(59.0, abs=1e-3)


def test_an_ignored_probe_is_given_back_to_the_fleet(shared_url: str) -> None:
    clock = FakeClock(100.0)
    a, b = pair(shared_url, clock, half_open_max_calls=1, ignore_exceptions=(KeyError,))

    def ignored() -> None:
        raise KeyError("not the dependency's fault")

    a.force_open()
    a.half_open()
    with pytest.raises(KeyError):
        a.call(ignored)
    assert b.call(ok) == "ok"  # the probe came back: b may take it (and closes the circuit)
    assert a.refresh() == CLOSED


def test_a_probe_that_never_reports_does_not_hold_the_fleet_forever(shared_url: str) -> None:
    clock = FakeClock(100.0)
    store = RedisBreakerState(shared_url, clock=clock, probe_timeout=20.0)
    name, config = unique(), BreakerConfig(open_duration=30.0, half_open_max_calls=1)
    store.run(name, config, "force", OPEN)
    clock.advance(30.0)
    taken = store.run(name, config, "acquire")
    assert (taken.state, taken.probe) == (HALF_OPEN, True)  # ... and its process dies
    clock.advance(19.0)
    assert not store.run(name, config, "acquire").admitted  # the fleet waits for it
    clock.advance(1.0)
    assert store.run(name, config, "sync").state == OPEN  # probe_timeout: open again
    clock.advance(30.0)
    fresh = store.run(name, config, "acquire")
    assert (fresh.state, fresh.probe) == (HALF_OPEN, True)
    with pytest.raises(ConfigurationError, match="probe_timeout"):
        RedisBreakerState(shared_url, probe_timeout=0)


def test_hand_set_states_reach_every_breaker(shared_url: str) -> None:
    clock = FakeClock(100.0)
    a, b = pair(shared_url, clock)
    a.force_open()
    clock.advance(1.0)
    with pytest.raises(CircuitOpenError) as info:
        b.call(ok)
    assert info.value.state == FORCED_OPEN
    assert math.isinf(info.value.retry_after)
    b.disable()
    clock.advance(1.0)
    for _ in range(10):
        with pytest.raises(Boom):
            a.call(fail)
    assert a.state == DISABLED
    b.close()
    clock.advance(1.0)
    assert a.state == CLOSED


def test_listeners_hear_transitions_made_elsewhere(shared_url: str) -> None:
    clock = FakeClock(100.0)
    a, b = pair(shared_url, clock)
    heard: list[tuple[str, str]] = []

    class Listener:
        def state_change(self, cb: Any, old: Any, new: Any) -> None:
            heard.append((old.name, new.name))

    b.add_listener(Listener())
    b.call(ok)
    a.open()
    clock.advance(1.0)
    with pytest.raises(CircuitOpenError):
        b.call(ok)
    assert heard == [(CLOSED, OPEN)]


def test_a_stale_window_cannot_reopen_a_recovered_circuit(shared_url: str) -> None:
    clock = FakeClock(100.0)
    a, b = pair(shared_url, clock, half_open_max_calls=1, open_duration=0.5)
    b.call(ok)  # b looks at the shared state now, and next in sync_interval (1 s)
    for _ in range(2):  # b's window fills with failures of the old closed period
        with pytest.raises(Boom):
            b.call(fail)
    a.open()
    clock.advance(0.6)
    a.call(ok)  # a's probe succeeds: closed again, a new generation
    with pytest.raises(Boom):
        b.call(fail)  # b's window trips, but on a generation that is gone
    assert b.stats().transitions == 0  # b never opened, not even for a moment
    assert b.refresh() == CLOSED
    assert a.refresh() == CLOSED
    assert b.stats().window_calls == 0  # b took on the new closed period


@pytest.mark.asyncio
async def test_acall_shares_the_state_without_blocking_the_loop(shared_url: str) -> None:
    clock = FakeClock(100.0)
    a, b = pair(shared_url, clock, half_open_max_calls=1)

    async def afail() -> None:
        raise Boom

    async def aok() -> str:
        await asyncio.sleep(0)
        return "ok"

    for _ in range(4):
        with pytest.raises(Boom):
            await a.acall(afail)
    clock.advance(1.0)
    with pytest.raises(CircuitOpenError):
        await b.acall(aok)
    clock.advance(30.0)
    assert await b.acall(aok) == "ok"
    assert await a.arefresh() == CLOSED
    assert a._shared is not None
    await a._shared.storage.backend.aclose()  # this loop's client, before the loop closes


# A killed Redis ----------------------------------------------------------------------------------


def test_redis_down_degrades_to_local_decisions_and_back(
    redis_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    if not isinstance(redis_server, RedisServer):
        pytest.skip("needs a local redis-server that the test can kill (an env URL was given)")
    url = redis_server.url + "?socket_timeout=0.5&socket_connect_timeout=0.5"
    clock = FakeClock(100.0)
    a, b = pair(url, clock)
    strict = CircuitBreaker(a.name, state_storage=url, on_storage_error="raise", clock=clock)
    assert a.call(ok) == "ok"
    redis_server.kill()
    try:
        clock.advance(1.0)
        with caplog.at_level(logging.WARNING, logger="phoenixkit.breaker"):
            for _ in range(3):  # local decisions: the window still trips the breaker
                with pytest.raises(Boom):
                    a.call(fail)
                clock.advance(1.0)
        assert a.state == OPEN
        with pytest.raises(CircuitOpenError):
            a.call(ok)
        stats = a.stats()
        assert stats.storage_degraded
        assert stats.storage_errors >= 1
        unavailable = [r for r in caplog.records if "unavailable" in r.getMessage()]
        assert len(unavailable) == 1  # logged once per transition, not per call
        with pytest.raises(BackendUnavailableError):
            strict.call(ok)
    finally:
        redis_server.restart()
    clock.advance(1.0)
    assert b.call(ok) == "ok"  # the shared state never heard of a's local opening
    assert a.refresh() == CLOSED
    assert not a.stats().storage_degraded
    assert any("is back" in r.getMessage() for r in caplog.records)


# Separate processes ----------------------------------------------------------------------------


def _process_probes(url: str, name: str, ready: Any, go: Any, out: Any) -> None:
    br = CircuitBreaker(
        name, state_storage=url, half_open_max_calls=3, open_duration=0.3, sync_interval=0.05
    )
    assert br.refresh() == OPEN  # this process has seen the circuit open
    ready.put(True)

    def work() -> tuple[float, float]:
        started = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process here
        time.sleep(0.02)
        return started, time.monotonic()

    go.wait(10)
    calls: list[tuple[float, float]] = []
    rejected = 0
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        try:
            calls.append(br.call(work))
        except CircuitOpenError:
            rejected += 1
            time.sleep(0.002)
    out.put((calls, rejected, br.refresh()))


def test_four_processes_run_only_the_probe_cap_then_close(shared_url: str) -> None:
    name = unique("fleet")
    store = RedisBreakerState(shared_url)
    config = BreakerConfig(half_open_max_calls=3, open_duration=0.3)
    ctx = multiprocessing.get_context("spawn")
    ready, go, out = ctx.Queue(), ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_process_probes, args=(shared_url, name, ready, go, out))
        for _ in range(4)
    ]
    # Open for long enough that every process sees it open (a process learns of an
    # opening within sync_interval), then reopen for a short time and let them go.
    assert store.run(name, BreakerConfig(open_duration=60.0), "force", OPEN).state == OPEN
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=60)
    assert store.run(name, config, "force", OPEN).state == OPEN
    go.set()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(10)
        assert p.exitcode == 0
    assert all(state == CLOSED for _, _, state in results)
    assert sum(r for _, r, _ in results) > 0  # turned away while open and while probes ran
    calls = sorted(c for found, _, _ in results for c in found)
    assert len(calls) > 3
    # The first three calls are the fleet's probes; the circuit closes only once all three
    # are done, so every other call, in any process, started after the last probe ended.
    probes, others = calls[:3], calls[3:]
    last_probe_end = max(end for _, end in probes)
    assert all(start >= last_probe_end for start, _ in others), (probes, others[:3])
