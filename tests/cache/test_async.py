"""The async twins over every backend: the same behaviour as the sync API, on the loop's
own Redis client."""

from __future__ import annotations

import pytest

from phoenixkit.cache import InvalidKeyError
from phoenixkit.testing import FakeClock
from tests.cache.conftest import MakeCache

pytestmark = pytest.mark.asyncio


async def test_aset_aget_adelete(amake_cache: MakeCache) -> None:
    cache = amake_cache()
    assert await cache.aget("k", "dflt") == "dflt"
    await cache.aset("k", [1, "two"])
    assert await cache.aget("k") == [1, "two"]
    await cache.adelete("k")
    assert await cache.aget("k") is None


async def test_sync_writes_are_async_reads(amake_cache: MakeCache) -> None:
    writer, reader = amake_cache(), amake_cache()
    writer.set("k", "v")
    expected = "v" if writer.l2 is not None else None
    assert await reader.aget("k") == expected
    await writer.aset_many({"a": 1, "b": 2})
    found = await reader.aget_many(["a", "b", "c"])
    assert found == ({"a": 1, "b": 2} if writer.l2 is not None else {})


async def test_aget_or_set_takes_sync_and_async_loaders(amake_cache: MakeCache) -> None:
    cache = amake_cache()

    async def aload() -> int:
        return 7

    assert await cache.aget_or_set("a", aload) == 7
    assert await cache.aget_or_set("a", aload) == 7
    assert await cache.aget_or_set("s", lambda: 8) == 8
    assert cache.stats().loads == 2


async def test_atags_and_aclear(amake_cache: MakeCache, clock: FakeClock) -> None:
    cache, other = amake_cache(), amake_cache()
    await cache.aset("u1", "alice", tags=["user:1"])
    await cache.aset("u2", "bob", tags=["user:2"])
    await cache.ainvalidate_tags("user:1")
    assert await cache.aget("u1") is None
    assert await cache.aget("u2") == "bob"
    other.l1.clear()
    assert await other.aget("u2") == ("bob" if cache.l2 is not None else None)
    await cache.aclear()
    other.l1.clear()
    assert await cache.aget_many(["u1", "u2"]) == {}
    assert await other.aget("u2") is None
    clock.advance(1)


async def test_async_bad_keys(amake_cache: MakeCache) -> None:
    cache = amake_cache()
    with pytest.raises(InvalidKeyError):
        await cache.aset(1, "v")  # type: ignore[arg-type]
    with pytest.raises(InvalidKeyError):
        await cache.aget_or_set(None, lambda: 1)  # type: ignore[arg-type]


async def test_awarm_loads_only_what_is_missing(amake_cache: MakeCache) -> None:
    cache = amake_cache()
    await cache.aset("k1", "cached")
    loaded: list[str] = []

    async def load(key: str) -> str:
        loaded.append(key)
        return key.upper()

    assert await cache.awarm(["k1", "k2", "k3"], load) == 2
    assert loaded == ["k2", "k3"]
    assert await cache.aget_many(["k1", "k2", "k3"]) == {"k1": "cached", "k2": "K2", "k3": "K3"}
    assert await cache.awarm(["k1"], load, force=True) == 1
    assert await cache.aget("k1") == "K1"
