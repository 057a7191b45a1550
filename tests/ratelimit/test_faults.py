"""Redis SIGKILLed under load: the degradation policy holds, nothing but the documented error
leaks out, and the limiter is back on Redis within 2 s of the restart."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from phoenixkit._backends import RedisBackend
from phoenixkit.errors import BackendUnavailableError
from phoenixkit.ratelimit import Decision, Lockout, RateLimiter
from tests.servers import RedisServer, make_workdir, remove_workdir

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture(scope="module")
def victim() -> Iterator[RedisServer]:
    """A Redis of our own: killing the session's server would hurt other tests."""
    from tests.servers import ServerUnavailable

    workdir = make_workdir("ratelimit-victim")
    try:
        server = RedisServer(workdir).start()
    except ServerUnavailable as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()
    remove_workdir(workdir)


class Load:
    """Threads hitting a limiter until stopped; every outcome is recorded by phase."""

    def __init__(self, limiter: RateLimiter, threads: int = 4) -> None:
        self.limiter = limiter
        self.phase = "up"
        self.outcomes: dict[str, list[Decision | BaseException]] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        while not self._stop.is_set():
            phase = self.phase
            try:
                outcome: Decision | BaseException = self.limiter.hit(f"k{uuid.uuid4().hex[:4]}")
            except BaseException as exc:
                outcome = exc
            with self._lock:
                self.outcomes.setdefault(phase, []).append(outcome)
            time.sleep(0.001)

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()


def _wait(predicate: Any, timeout: float) -> float:
    began = time.monotonic()
    while not predicate():
        assert time.monotonic() - began < timeout, f"not within {timeout} s"
        time.sleep(0.01)
    return time.monotonic() - began


def _outage(victim: RedisServer, policy: str) -> tuple[RateLimiter, Load, float]:
    backend = RedisBackend(victim.url + "?socket_timeout=0.5&socket_connect_timeout=0.5")
    limiter = RateLimiter(
        "1000/second",
        backend=backend,
        on_backend_error=policy,
        workers=4,
        retry_interval=0.2,
        name=f"f{uuid.uuid4().hex[:8]}",
    )
    with Load(limiter) as load:
        time.sleep(0.3)
        load.phase = "down"
        victim.kill()
        time.sleep(0.6)
        load.phase = "restarting"
        victim.restart()
        recovered = _wait(lambda: not limiter.stats().degraded, timeout=10)
        load.phase = "back"
        time.sleep(0.3)
    backend.close()
    return limiter, load, recovered


@pytest.mark.parametrize("policy", ["fail_open", "fail_closed", "local"])
def test_policy_holds_while_redis_is_killed(victim: RedisServer, policy: str) -> None:
    limiter, load, recovered = _outage(victim, policy)
    # Recovery time is reported, not asserted (machines are noisy); _wait bounds a hang.
    print(f"recovered {recovered:.3f} s after the restart")
    for phase, outcomes in load.outcomes.items():
        leaked = [o for o in outcomes if isinstance(o, BaseException)]
        assert not leaked, (phase, leaked[:3])
    down = [o for o in load.outcomes["down"] if isinstance(o, Decision)]
    assert down
    if policy == "fail_open":
        assert all(d.allowed for d in down)
    elif policy == "fail_closed":
        assert not any(d.allowed for d in down)
        assert all(d.retry_after > 0 for d in down)
    else:  # local, at limit / workers: 250 per second per key
        assert all(d.limit == 250 for d in down[len(down) // 2 :])
    assert all(isinstance(o, Decision) and o.allowed for o in load.outcomes["back"])
    stats = limiter.stats()
    assert stats.fallbacks >= 1
    assert stats.recoveries == stats.fallbacks
    assert not stats.degraded
    assert stats.backend_errors >= 1


def test_raise_policy_leaks_only_the_documented_error(victim: RedisServer) -> None:
    _limiter, load, _ = _outage(victim, "raise")
    down = load.outcomes["down"]
    errors = [o for o in down if isinstance(o, BaseException)]
    assert errors
    assert all(isinstance(e, BackendUnavailableError) for e in errors), errors[:3]
    assert all(isinstance(o, Decision) and o.allowed for o in load.outcomes["back"])


@pytest.mark.asyncio
async def test_async_path_falls_back_and_recovers(victim: RedisServer) -> None:
    backend = RedisBackend(victim.url)
    limiter = RateLimiter(
        "5/minute", backend=backend, on_backend_error="local", workers=5, retry_interval=0.1
    )
    key = uuid.uuid4().hex
    assert (await limiter.ahit(key)).limit == 5
    victim.kill()
    local = [await limiter.ahit(key) for _ in range(3)]
    assert [d.allowed for d in local] == [True, False, False]  # 5 / 5 workers = 1
    victim.restart()
    await asyncio.sleep(0.15)
    back = await limiter.ahit(key)
    assert back.limit == 5
    assert back.allowed
    assert limiter.stats().recoveries == 1
    await backend.aclose()


# Lockout ----------------------------------------------------------------------------------


class LockoutLoad(Load):
    """Threads checking and failing logins on a lockout until stopped."""

    def __init__(self, lock: Lockout, threads: int = 4) -> None:
        self.lock = lock
        super().__init__(None, threads)  # type: ignore[arg-type]

    def _run(self) -> None:
        while not self._stop.is_set():
            phase = self.phase
            key = f"login:{uuid.uuid4().hex[:3]}"
            outcome: Decision | BaseException
            try:
                outcome = self.lock.check(key)
                if outcome.allowed:
                    outcome = self.lock.failure(key)
            except BaseException as exc:
                outcome = exc
            with self._lock:
                self.outcomes.setdefault(phase, []).append(outcome)
            time.sleep(0.001)


def _answers(lock: Lockout) -> bool:
    try:
        lock.check("probe")
    except BackendUnavailableError:
        return False
    return True


def _lockout_outage(victim: RedisServer, policy: str) -> tuple[Lockout, LockoutLoad, float]:
    backend = RedisBackend(victim.url + "?socket_timeout=0.5&socket_connect_timeout=0.5")
    lock = Lockout(
        4, 60, 60, backend=backend, on_backend_error=policy, workers=2, retry_interval=0.2,
        name=f"l{uuid.uuid4().hex[:8]}",
    )  # fmt: skip
    with LockoutLoad(lock) as load:
        time.sleep(0.3)
        load.phase = "down"
        victim.kill()
        time.sleep(0.6)
        load.phase = "restarting"
        victim.restart()
        if policy == "raise":  # never degraded: back when a call stops raising
            recovered = _wait(lambda: _answers(lock), timeout=5)
        else:
            recovered = _wait(lambda: not lock.stats().degraded, timeout=10)
        load.phase = "back"
        time.sleep(0.3)
    backend.close()
    return lock, load, recovered


@pytest.mark.parametrize("policy", ["fail_closed", "local", "raise"])
def test_lockout_policy_holds_while_redis_is_killed(victim: RedisServer, policy: str) -> None:
    lock, load, recovered = _lockout_outage(victim, policy)
    # Recovery time is reported, not asserted (machines are noisy); _wait bounds a hang.
    print(f"recovered {recovered:.3f} s after the restart")
    down = load.outcomes["down"]
    leaked = [o for o in down if isinstance(o, BaseException)]
    if policy == "raise":
        assert leaked
        assert all(isinstance(e, BackendUnavailableError) for e in leaked), leaked[:3]
    else:
        assert not leaked, leaked[:3]
        decisions = [o for o in down if isinstance(o, Decision)]
        assert decisions
        if policy == "fail_closed":
            assert not any(d.allowed for d in decisions)
            assert all(d.retry_after > 0 for d in decisions)
        else:  # a local lockout at max_failures // workers = 2
            assert all(d.limit == 2 for d in decisions[len(decisions) // 2 :])
        stats = lock.stats()
        assert stats.fallbacks >= 1
        assert stats.recoveries == stats.fallbacks
        assert not stats.degraded
    for phase in ("back",):  # ("up" holds calls that began before the kill and ended after)
        outcomes = load.outcomes[phase]
        odd = [o for o in outcomes if not (isinstance(o, Decision) and o.limit == 4)]
        assert not odd, (phase, len(outcomes), odd[:3])


def test_lockout_local_policy_blocks_at_its_share(victim: RedisServer) -> None:
    backend = RedisBackend(victim.url + "?socket_connect_timeout=0.5")
    lock = Lockout(
        4, 60, 60, backend=backend, on_backend_error="local", workers=2, retry_interval=60,
        name=f"s{uuid.uuid4().hex[:8]}",
    )  # fmt: skip
    assert lock.failure("mallory").remaining == 3  # on Redis
    victim.kill()
    try:
        assert lock.failure("mallory").allowed  # local: 1 of 2
        blocked = lock.failure("mallory")  # 2 of 2: blocked in this process
        assert (blocked.allowed, blocked.limit) == (False, 2)
        assert not lock.check("mallory").allowed
        assert lock.check("trent").allowed
    finally:
        victim.restart()
        backend.close()


@pytest.mark.asyncio
async def test_lockout_async_path_falls_back_and_recovers(victim: RedisServer) -> None:
    backend = RedisBackend(victim.url + "?socket_connect_timeout=0.5")
    lock = Lockout(2, 60, 60, backend=backend, on_backend_error="fail_closed", retry_interval=0.1)
    key = uuid.uuid4().hex
    assert (await lock.acheck(key)).allowed
    victim.kill()
    closed = [await lock.afailure(key), await lock.acheck(key), await lock.asuccess(key)]
    assert not any(d.allowed for d in closed)
    victim.restart()
    await asyncio.sleep(0.15)
    assert (await lock.acheck(key)).allowed
    stats = lock.stats()
    assert (stats.fallbacks, stats.recoveries, stats.degraded) == (1, 1, False)
    await backend.aclose()
