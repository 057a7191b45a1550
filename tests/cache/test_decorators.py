"""@cached on def and async def: keys from module + qualname + arguments, tags, conditions,
per-function stats; warm()."""

from __future__ import annotations

import pytest

from phoenixkit.cache import InvalidKeyError, TieredCache, cached, warm
from phoenixkit.errors import ConfigurationError
from tests.cache.conftest import MakeCache


def test_sync_function_runs_once_per_arguments(make_cache: MakeCache) -> None:
    cache = make_cache()
    runs: list[int] = []

    @cached(cache, ttl=60, tags=lambda user_id, detail=False: [f"user:{user_id}"])
    def profile(user_id: int, detail: bool = False) -> dict[str, object]:
        runs.append(user_id)
        return {"id": user_id, "detail": detail}

    assert profile(1) == {"id": 1, "detail": False}
    assert profile(1) == profile(user_id=1) == profile(1, detail=False)  # one key
    assert profile(2) == {"id": 2, "detail": False}
    assert runs == [1, 2]
    assert profile.stats().calls == 5
    assert profile.stats().loads == 2
    assert profile.stats().hits == 3
    assert profile.__name__ == "profile"
    cache.invalidate_tags("user:1")
    profile(1)
    assert runs == [1, 2, 1]
    profile.invalidate(2)
    profile(2)
    assert runs == [1, 2, 1, 2]
    key = profile.cache_key(1)
    assert key.startswith(f"{__name__}.test_sync_function_runs_once_per_arguments.")
    assert "profile|v1|" in key


@pytest.mark.asyncio
async def test_async_function(amake_cache: MakeCache) -> None:
    cache = amake_cache()
    runs: list[str] = []

    @cached(cache, tags=["sku"])
    async def price(sku: str) -> float:
        runs.append(sku)
        return 9.99

    assert await price("a") == 9.99
    assert await price("a") == 9.99
    assert runs == ["a"]
    await price.ainvalidate("a")
    await price("a")
    assert runs == ["a", "a"]
    await cache.ainvalidate_tags("sku")
    await price("a")
    assert len(runs) == 3


def test_methods_never_key_on_self(make_cache: MakeCache) -> None:
    cache = make_cache()

    class Repo:
        def __init__(self) -> None:
            self.runs = 0

        def __repr__(self) -> str:
            raise AssertionError("repr must never be used for a key")

        @cached(cache)
        def find(self, item_id: int) -> int:
            self.runs += 1
            return item_id * 10

    one, two = Repo(), Repo()
    assert one.find(3) == 30
    assert two.find(3) == 30  # same key: self is left out
    assert one.runs + two.runs == 1


def test_unkeyable_arguments_and_key_override(make_cache: MakeCache) -> None:
    cache = make_cache()

    class Opaque:
        pass

    @cached(cache)
    def f(thing: object) -> int:
        return 1

    with pytest.raises(InvalidKeyError, match="thing=Opaque"):
        f(Opaque())

    @cached(cache, key=lambda thing: "custom-key")
    def g(thing: object) -> int:
        return 2

    assert g(Opaque()) == 2
    assert cache.get("custom-key") == 2

    @cached(cache, key=lambda x: 5)  # type: ignore[arg-type,return-value]
    def h(x: int) -> int:
        return x

    with pytest.raises(InvalidKeyError):
        h(1)
    with pytest.raises(ConfigurationError):
        cached("not a cache")  # type: ignore[arg-type]


def test_condition_decides_what_is_stored(make_cache: MakeCache) -> None:
    cache = make_cache()
    runs: list[int] = []

    @cached(cache, condition=lambda result: result["ok"])
    def fetch(n: int) -> dict[str, bool]:
        runs.append(n)
        return {"ok": n > 0}

    fetch(0)
    fetch(0)
    fetch(1)
    fetch(1)
    assert runs == [0, 0, 1]


def test_versions_change_keys(make_cache: MakeCache) -> None:
    cache = make_cache()

    def f(x: int) -> int:
        return x

    assert cached(cache, version=1)(f).cache_key(1) != cached(cache, version=2)(f).cache_key(1)


def test_warm_preloads_in_one_write(make_cache: MakeCache) -> None:
    cache: TieredCache = make_cache()
    loaded: list[str] = []

    def load(key: str) -> str:
        loaded.append(key)
        return key * 2

    assert warm(cache, ["a", "b", "a"], load, ttl=30, tags=["warm"]) == 2
    assert cache.get_many(["a", "b"]) == {"a": "aa", "b": "bb"}
    assert warm(cache, ["a", "c"], load) == 1
    assert loaded == ["a", "b", "c"]
    cache.invalidate_tags("warm")
    assert cache.get("a") is None
    assert cache.get("c") == "cc"
