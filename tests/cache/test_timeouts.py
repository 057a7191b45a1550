"""Loader timeouts (soft / hard), sync and async, over every backend.

Loaders block on events the test controls; the timeouts are short, and nothing is asserted
about how long anything took: only which value (or error) came back and what was stored.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from phoenixkit.cache import LoaderTimeoutError, TieredCache, cached
from phoenixkit.errors import ConfigurationError
from phoenixkit.testing import FakeClock
from tests.cache.conftest import MakeCache

SHORT = 0.01


def _until(predicate: Callable[[], bool]) -> None:
    while not predicate():  # bounded by pytest-timeout
        threading.Event().wait(0.002)


def _stale_cache(make_cache: MakeCache, clock: FakeClock, **options: Any) -> TieredCache:
    cache = make_cache(fail_safe_ttl=600, **options)
    cache.set("k", "old", ttl=10)
    clock.advance(11)  # expired, within the fail-safe window: a stale value is at hand
    return cache


def _blocked(release: threading.Event, value: str = "new") -> Callable[[], str]:
    def load() -> str:
        release.wait(60)
        return value

    return load


def test_soft_timeout_serves_stale_and_refreshes_in_the_background(
    make_cache: MakeCache, clock: FakeClock
) -> None:
    cache = _stale_cache(make_cache, clock)
    release = threading.Event()
    assert cache.get_or_set("k", _blocked(release), soft_timeout=SHORT) == "old"
    stats = cache.stats()
    assert (stats.load_timeouts, stats.stale_served) == (1, 1)
    release.set()  # the loader finishes and stores its value for the next reader
    _until(lambda: cache.get("k") == "new")
    assert cache.stats().loads == 1


def test_soft_timeout_without_a_stale_value_waits_for_the_loader(make_cache: MakeCache) -> None:
    cache = make_cache()
    started, release = threading.Event(), threading.Event()

    def load() -> str:
        started.set()
        release.wait(60)
        return "v"

    def let_go() -> None:
        started.wait(60)
        threading.Event().wait(5 * SHORT)  # past the soft timeout
        release.set()

    threading.Thread(target=let_go).start()
    assert cache.get_or_set("k", load, soft_timeout=SHORT) == "v"
    assert cache.stats().load_timeouts == 0


def test_hard_timeout_raises_without_stale_and_the_loader_still_stores(
    make_cache: MakeCache,
) -> None:
    cache = make_cache()
    release = threading.Event()
    with pytest.raises(LoaderTimeoutError, match="hard_timeout"):
        cache.get_or_set("k", _blocked(release, "late"), hard_timeout=SHORT)
    assert cache.stats().load_timeouts == 1
    release.set()
    _until(lambda: cache.get("k") == "late")


def test_hard_timeout_serves_stale_when_there_is_one(
    make_cache: MakeCache, clock: FakeClock
) -> None:
    cache = _stale_cache(make_cache, clock, hard_timeout=SHORT)  # the cache's default
    release = threading.Event()
    assert cache.get_or_set("k", _blocked(release)) == "old"
    release.set()
    _until(lambda: cache.get("k") == "new")


def test_a_fast_loader_is_not_disturbed(make_cache: MakeCache, clock: FakeClock) -> None:
    cache = _stale_cache(make_cache, clock)
    assert cache.get_or_set("k", lambda: "new", soft_timeout=30, hard_timeout=60) == "new"
    assert cache.stats().load_timeouts == 0

    def fail() -> str:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):  # errors reach the caller as before
        cache.get_or_set("other", fail, hard_timeout=60)


def test_cached_takes_timeouts(make_cache: MakeCache) -> None:
    cache = make_cache()
    release = threading.Event()

    @cached(cache, hard_timeout=SHORT)
    def slow(x: int) -> int:
        release.wait(60)
        return x * 2

    with pytest.raises(LoaderTimeoutError):
        slow(21)
    release.set()
    _until(lambda: slow(21) == 42)


@pytest.mark.parametrize(
    ("soft", "hard"), [(0, None), (-1, None), (None, float("inf")), (5, 5), (6, 5), ("1", None)]
)
def test_bad_timeouts_are_refused(make_cache: MakeCache, soft: Any, hard: Any) -> None:
    with pytest.raises(ConfigurationError):
        make_cache(soft_timeout=soft, hard_timeout=hard)
    cache = make_cache()
    with pytest.raises(ConfigurationError):
        cache.get_or_set("k", lambda: 1, soft_timeout=soft, hard_timeout=hard)


@pytest.mark.asyncio
async def test_async_soft_and_hard_timeouts(amake_cache: MakeCache, clock: FakeClock) -> None:
    cache = _stale_cache(amake_cache, clock)
    release = asyncio.Event()

    async def load() -> str:
        await release.wait()
        return "new"

    assert await cache.aget_or_set("k", load, soft_timeout=SHORT) == "old"
    with pytest.raises(LoaderTimeoutError):
        await cache.aget_or_set("cold", load, hard_timeout=SHORT)
    assert cache.stats().load_timeouts == 2
    release.set()
    while True:  # the loaders finish in the background (bounded by pytest-timeout)
        if await cache.aget("k") == "new" and await cache.aget("cold") == "new":
            break
        await asyncio.sleep(0.002)
