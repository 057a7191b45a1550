"""The distributed loader lock keeps its lease while a slow loader runs (real Redis).

The lease is short (0.15 s) and the loader blocks until the lease has been renewed several
times over, so without renewal the lock would have run out and let the second cache in.
Progress is observed through counters (the leader's renewals, the waiter's first look),
never timed.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import pytest

from phoenixkit._backends import RedisBackend, get_backend
from phoenixkit.cache import MemoryTier, TieredCache
from tests.cache.conftest import L2_ONLY

LEASE = 0.15


def _until(predicate: Any) -> None:
    while not predicate():  # bounded by pytest-timeout
        threading.Event().wait(0.002)


async def _auntil(predicate: Any) -> None:
    while True:  # bounded by pytest-timeout
        if predicate():
            return
        await asyncio.sleep(0.002)


def _caches(url: str) -> tuple[TieredCache, TieredCache]:
    namespace = f"lease{uuid.uuid4().hex[:8]}"
    a = TieredCache(MemoryTier(), url, namespace=namespace, lock_lease=LEASE, invalidation=False)
    b = TieredCache(MemoryTier(), url, namespace=namespace, lock_lease=LEASE, invalidation=False)
    return a, b


@L2_ONLY
def test_a_loader_slower_than_the_lease_keeps_the_lock(backend_url: str) -> None:
    a, b = _caches(backend_url)
    release, started = threading.Event(), threading.Event()
    calls: list[str] = []
    results: dict[str, Any] = {}

    def slow() -> str:
        calls.append("a")
        started.set()
        release.wait(60)
        return "from a"

    def second() -> str:
        calls.append("b")
        return "from b"

    ta = threading.Thread(target=lambda: results.update(a=a.get_or_set("k", slow)))
    ta.start()
    started.wait(60)
    tb = threading.Thread(target=lambda: results.update(b=b.get_or_set("k", second)))
    tb.start()
    _until(lambda: b.stats().tiers["l2"].misses >= 1)  # b looked, and now waits on the lock
    # Ten more renewals (one per LEASE / 3) while b waits: over three leases.
    renewals = a.stats().lock_renewals
    _until(lambda: a.stats().lock_renewals >= renewals + 10)
    assert calls == ["a"]  # b is still waiting: the lock outlived its first lease
    lock = a._e.keys.lock("k")
    assert a.l2 is not None
    assert a.l2.backend.client.exists(lock) == 1
    release.set()
    ta.join(60)
    tb.join(60)
    assert results == {"a": "from a", "b": "from a"}
    assert calls == ["a"]
    assert a.l2.backend.client.exists(lock) == 0  # released with its token
    a.close()
    b.close()


@L2_ONLY
def test_a_lock_whose_holder_stopped_renewing_frees_the_waiters(backend_url: str) -> None:
    a, b = _caches(backend_url)
    assert a.l2 is not None
    lock = a._e.keys.lock("k")
    assert a.l2.acquire(lock, "a dead holder", int(LEASE * 1000))  # never renewed
    assert b.get_or_set("k", lambda: "from b") == "from b"
    assert not a.l2.extend(lock, "a dead holder", 1000)  # not ours any more
    a.close()
    b.close()


@L2_ONLY
@pytest.mark.asyncio
async def test_the_async_leader_renews_its_lease(backend_url: str) -> None:
    a, b = _caches(backend_url)
    release = asyncio.Event()
    calls: list[str] = []

    async def slow() -> str:
        calls.append("a")
        await release.wait()
        return "from a"

    async def second() -> str:
        calls.append("b")
        return "from b"

    leader = asyncio.ensure_future(a.aget_or_set("k", slow))
    await _auntil(lambda: bool(calls))
    waiter = asyncio.ensure_future(b.aget_or_set("k", second))
    await _auntil(lambda: b.stats().tiers["l2"].misses >= 1)
    renewals = a.stats().lock_renewals
    await _auntil(lambda: a.stats().lock_renewals >= renewals + 10)
    assert calls == ["a"]
    release.set()
    assert await leader == "from a"
    assert await waiter == "from a"
    assert calls == ["a"]
    a.close()
    b.close()
    backend = get_backend(backend_url)
    assert isinstance(backend, RedisBackend)
    await backend.aclose()
