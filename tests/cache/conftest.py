"""Caches over every backend (memory://, Redis, Cluster), each in a namespace of its own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio

from phoenixkit._backends import RedisBackend, get_backend
from phoenixkit.cache import MemoryTier, TieredCache
from phoenixkit.testing import FakeClock

MakeCache = Callable[..., TieredCache]

L2_ONLY = pytest.mark.parametrize("backend_url", ["redis", "cluster"], indirect=True)
"""Run a test over Redis and Cluster only (what it checks lives in L2)."""


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_000_000.0)


def _factory(url: str, clock: FakeClock, made: list[TieredCache]) -> MakeCache:
    namespace = f"t{uuid.uuid4().hex[:10]}"

    def make(**options: Any) -> TieredCache:
        l1 = options.pop("l1", None) or MemoryTier(
            maxsize=options.pop("maxsize", 1000), ttl=options.pop("l1_ttl", 60), clock=clock
        )
        options.setdefault("namespace", namespace)
        options.setdefault("clock", clock)
        options.setdefault("wall", clock)
        cache = TieredCache(l1, None if url.startswith("memory") else url, **options)
        made.append(cache)
        return cache

    return make


@pytest.fixture
def make_cache(backend_url: str, clock: FakeClock) -> Iterator[MakeCache]:
    """Build caches sharing one namespace on ``backend_url`` (closed afterwards)."""
    made: list[TieredCache] = []
    yield _factory(backend_url, clock, made)
    for c in made:
        c.close()


@pytest_asyncio.fixture
async def amake_cache(backend_url: str, clock: FakeClock) -> AsyncIterator[MakeCache]:
    """`make_cache` for async tests: the loop's Redis client is closed afterwards."""
    made: list[TieredCache] = []
    yield _factory(backend_url, clock, made)
    for c in made:
        c.close()
    backend = get_backend(backend_url)
    if isinstance(backend, RedisBackend):
        await backend.aclose()
