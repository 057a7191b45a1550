"""get_or_set: one loader per key under concurrency (threads and tasks), fail-safe stale
values, early refresh, and L2 failures handled by policy."""

from __future__ import annotations

import asyncio
import threading

import pytest

from phoenixkit.cache import MemoryTier, RedisTier, TieredCache
from phoenixkit.errors import BackendUnavailableError
from phoenixkit.testing import FakeClock
from tests.cache.conftest import L2_ONLY, MakeCache
from tests.servers import free_port


def _wait_for_waiters(cache: TieredCache, key: str, n: int) -> None:
    while True:  # bounded by pytest-timeout; no wall-clock threshold
        call = cache._flight._calls.get(key)
        if call is not None and call.waiters >= n:
            return
        threading.Event().wait(0.001)


def test_a_thousand_threads_run_the_loader_once(make_cache: MakeCache) -> None:
    cache = make_cache()
    release = threading.Event()
    calls: list[int] = []

    def load() -> str:
        calls.append(1)
        release.wait()
        return "value"

    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get_or_set("cold", load)))
        for _ in range(1000)
    ]
    for t in threads:
        t.start()
    _wait_for_waiters(cache, "cold", 999)
    release.set()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert results == ["value"] * 1000


@pytest.mark.asyncio
async def test_a_thousand_tasks_run_the_loader_once(amake_cache: MakeCache) -> None:
    cache = amake_cache()
    release, started = asyncio.Event(), asyncio.Event()
    calls: list[int] = []

    async def load() -> str:
        calls.append(1)
        started.set()
        await release.wait()
        return "value"

    tasks = [asyncio.ensure_future(cache.aget_or_set("cold", load)) for _ in range(1000)]
    await started.wait()
    for _ in range(5):
        await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*tasks) == ["value"] * 1000
    assert len(calls) == 1


@pytest.mark.asyncio
async def test_a_cancelled_leader_does_not_cancel_its_waiters(amake_cache: MakeCache) -> None:
    cache = amake_cache()
    release, started = asyncio.Event(), asyncio.Event()
    calls: list[int] = []

    async def load() -> str:
        calls.append(1)
        started.set()
        await release.wait()
        return "value"

    leader = asyncio.ensure_future(cache.aget_or_set("k", load))
    await started.wait()
    follower = asyncio.ensure_future(cache.aget_or_set("k", load))
    await asyncio.sleep(0)
    leader.cancel()
    await asyncio.sleep(0)
    release.set()
    assert await follower == "value"
    assert leader.cancelled()
    assert len(calls) == 1
    assert await cache.aget("k") == "value"  # the load finished and was stored


def test_loader_errors_propagate_and_are_not_cached(make_cache: MakeCache) -> None:
    cache = make_cache()

    def boom() -> None:
        raise RuntimeError("db down")

    with pytest.raises(RuntimeError, match="db down"):
        cache.get_or_set("k", boom)
    assert cache.get_or_set("k", lambda: 1) == 1
    assert cache.stats().load_errors == 1


def test_fail_safe_serves_stale_values_within_the_window(
    make_cache: MakeCache, clock: FakeClock
) -> None:
    cache = make_cache(fail_safe_ttl=60)
    assert cache.get_or_set("k", lambda: "v1", ttl=10) == "v1"

    def boom() -> str:
        raise ConnectionError("db down")

    clock.advance(11)  # expired, within the fail-safe window
    assert cache.get("k") is None or cache.l2 is None  # a plain get never serves stale
    assert cache.get_or_set("k", boom, ttl=10) == "v1"
    assert cache.stats().stale_served == 1
    assert cache.get_or_set("k", lambda: "v2", ttl=10) == "v2"  # the loader works again
    clock.advance(75)  # past stale_until
    with pytest.raises(ConnectionError):
        cache.get_or_set("k", boom, ttl=10)


def test_tag_invalidated_entries_are_reloaded_not_served(make_cache: MakeCache) -> None:
    cache = make_cache()
    assert cache.get_or_set("k", lambda: "old", tags=["t"]) == "old"
    cache.invalidate_tags("t")
    assert cache.get_or_set("k", lambda: "new", tags=["t"]) == "new"
    assert cache.get("k") == "new"


def test_refresh_ahead_reloads_in_the_background(make_cache: MakeCache, clock: FakeClock) -> None:
    cache = make_cache(refresh_ahead=0.5)
    assert cache.get_or_set("k", lambda: "v1", ttl=10) == "v1"
    clock.advance(6)
    refreshed = threading.Event()

    def load() -> str:
        refreshed.set()
        return "v2"

    assert cache.get_or_set("k", load, ttl=10) == "v1"  # served at once
    assert refreshed.wait(10)
    while cache._refreshing:
        threading.Event().wait(0.001)
    assert cache.get("k") == "v2"


@pytest.mark.asyncio
async def test_xfetch_refreshes_early_in_a_task(amake_cache: MakeCache, clock: FakeClock) -> None:
    draw = [0.0]  # decide() gets 1 - rand(): 1.0 (never early), then 1e-9 (ln = -20.7)
    cache = amake_cache(beta=1.0, rand=lambda: draw[0])

    async def slow() -> str:
        clock.advance(2)  # a 2 s computation (on the cache's clock): delta = 2
        return "v1"

    assert await cache.aget_or_set("k", slow, ttl=50) == "v1"
    clock.advance(35)
    assert await cache.aget_or_set("k", lambda: "v2", ttl=50) == "v1"  # a lucky draw
    assert not cache._tasks
    draw[0] = 1.0 - 1e-9  # 35 + 2 * 20.7 >= 50: due
    assert await cache.aget_or_set("k", lambda: "v2", ttl=50) == "v1"  # early, in the back
    await asyncio.gather(*cache._tasks)
    assert await cache.aget("k") == "v2"


def _dead_tier() -> RedisTier:
    return RedisTier(f"redis://127.0.0.1:{free_port()}/0?socket_connect_timeout=0.2")


def test_a_dead_l2_degrades_to_l1_and_counts(clock: FakeClock) -> None:
    cache = TieredCache(MemoryTier(clock=clock), _dead_tier(), invalidation=False, clock=clock)
    cache.set("k", "v")  # L1 only: a lost write, counted
    assert cache.get("k") == "v"
    assert cache.get_or_set("x", lambda: 1) == 1
    s = cache.stats()
    assert s.lost_writes >= 1
    assert s.degraded
    assert s.tiers["l2"].errors >= 1
    errors = s.tiers["l2"].errors
    cache.get("nope")  # skipped while degraded: no new error, no new round trip
    assert cache.stats().tiers["l2"].errors == errors
    clock.advance(1.5)  # retry_interval passed: probed again
    cache.get("nope")
    assert cache.stats().tiers["l2"].errors == errors + 1


def test_a_dead_l2_raises_when_asked_to(clock: FakeClock) -> None:
    cache = TieredCache(l2=_dead_tier(), on_l2_error="raise", invalidation=False, clock=clock)
    with pytest.raises(BackendUnavailableError, match="failed during set"):
        cache.set("k", "v")
    clock.advance(2)
    with pytest.raises(BackendUnavailableError, match="failed during get"):
        cache.get("k")


def test_stale_l1_copy_served_when_l2_fails(clock: FakeClock) -> None:
    cache = TieredCache(
        MemoryTier(clock=clock), _dead_tier(), invalidation=False, clock=clock, fail_safe_ttl=30
    )
    cache.set("k", "v", ttl=5)
    clock.advance(6)
    assert cache.get("k") == "v"
    assert cache.stats().stale_served == 1


@L2_ONLY
def test_fail_safe_serves_a_stale_l2_copy(make_cache: MakeCache, clock: FakeClock) -> None:
    cache = make_cache(fail_safe_ttl=60)
    cache.get_or_set("k", lambda: "v1", ttl=10)
    clock.advance(11)
    cache.l1.clear()  # another process, or an L1 eviction: only L2 has it

    def boom() -> str:
        raise ConnectionError("db down")

    assert cache.get_or_set("k", boom, ttl=10) == "v1"
    assert cache.stats().stale_served == 1


def test_jitter_shortens_ttls(make_cache: MakeCache, clock: FakeClock) -> None:
    cache = make_cache(jitter=0.5, rand=lambda: 0.999)  # TTLs cut by ~50%
    cache.set("k", "v", ttl=10)
    clock.advance(5.1)
    assert cache.get("k") is None
    steady = make_cache(jitter=0.5, rand=lambda: 0.0)  # a draw of 0: the full TTL
    steady.set("j", "v", ttl=10)
    assert steady.get("j") == "v"
