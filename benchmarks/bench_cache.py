"""The multi-tier cache beside the peers a user would pick instead.

- L1 hit ``get``: ``TieredCache.get`` (memory only) beside ``cachetools.TTLCache.get``
  (which is not thread-safe; ours takes a lock). Target: ours <= 1.5x the peer's time.
- L1 hit ``aget``: a batch of awaits on one loop, beside cashews ``mem://`` ``get`` (when
  cashews is installed; else the peer is a bare ``await`` of a dict lookup). Target: ours
  <= 0.5x cashews' time.
- ``@cached`` hit beside ``cachetools.cached(TTLCache)`` (no lock, no stats).
- On Redis (a redis-server of our own, see ``_redis.py``): an L2 hit (L1 holds 1 entry and
  two keys alternate, so every get misses L1) beside a raw redis-py ``GET`` + decode of the
  same bytes (Target: <= 1.15x); ``get_many`` of 100 keys from L2 (one ``MGET``) beside a raw
  ``MGET`` + decode of the same 100 values (Target: <= 1.3x).

Printed beside the table (not timed): the hit ratio on a Zipf (s = 1.0) trace over 100k keys
with L1 sized at 1% of the keys, ours beside ``cachetools.LRUCache`` of the same size.
Every case is checked once before it is measured (a fast wrong answer is never reported).
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import os
import random
from collections.abc import Iterator

import cachetools

from _harness import SMOKE_ENV, Case
from _redis import redis_url
from phoenixkit.cache import MemoryTier, RedisTier, TieredCache, cached
from phoenixkit.serialization import Serializer

ASYNC_BATCH = 1000
VALUE = {"id": 42, "name": "alice", "roles": ["admin", "ops"], "score": 9.5}


def _l1_get_case() -> Case:
    cache = TieredCache(MemoryTier(maxsize=1000, ttl=3600), namespace="bench")
    cache.set("user:42", VALUE)
    peer = cachetools.TTLCache(maxsize=1000, ttl=3600)
    peer["user:42"] = VALUE
    get, pget = cache.get, peer.get
    if get("user:42") != VALUE or pget("user:42") != VALUE:
        raise RuntimeError("L1 hit returned the wrong value")

    def ours() -> object:
        return get("user:42")

    def theirs() -> object:
        return pget("user:42")

    return Case("L1 hit: get(key)", ours, "cachetools.TTLCache.get", theirs)


def _cached_case() -> Case:
    cache = TieredCache(MemoryTier(maxsize=1000, ttl=3600), namespace="bench-deco")

    @cached(cache, ttl=3600)
    def ours_fn(user_id: int) -> dict[str, object]:
        return VALUE

    @cachetools.cached(cachetools.TTLCache(maxsize=1000, ttl=3600))
    def peer_fn(user_id: int) -> dict[str, object]:
        return VALUE

    if ours_fn(42) != VALUE or peer_fn(42) != VALUE or ours_fn.stats().loads != 1:
        raise RuntimeError("@cached did not cache")
    return Case(
        "@cached hit: f(42)",
        lambda: ours_fn(42),
        "cachetools.cached(TTLCache)",
        lambda: peer_fn(42),
    )


_CLOSE: list[object] = []  # peers to close before the loop goes


def _aget_case(loop: asyncio.AbstractEventLoop) -> Case:
    cache = TieredCache(MemoryTier(maxsize=1000, ttl=3600), namespace="bench-async")
    cache.set("user:42", VALUE)
    aget = cache.aget
    try:
        from cashews import Cache

        peer_cache = Cache()
        peer_cache.setup("mem://")
        loop.run_until_complete(peer_cache.set("user:42", VALUE, expire=3600))
        _CLOSE.append(peer_cache)
        peer_get = peer_cache.get
        peer_name = "cashews mem:// get"
    except ImportError:  # not a test dependency: the bare await is the floor
        store = {"user:42": VALUE}

        async def peer_get(key: str) -> object:
            return store.get(key)

        peer_name = "bare await of a dict lookup (cashews not installed)"

    async def ours_batch() -> int:
        n = 0
        for _ in range(ASYNC_BATCH):
            n += (await aget("user:42")) is VALUE
        return n

    async def peer_batch() -> int:
        n = 0
        for _ in range(ASYNC_BATCH):
            n += (await peer_get("user:42")) == VALUE
        return n

    def ours() -> object:
        return loop.run_until_complete(ours_batch())

    def theirs() -> object:
        return loop.run_until_complete(peer_batch())

    if ours() != ASYNC_BATCH or theirs() != ASYNC_BATCH:
        raise RuntimeError("an async batch missed")
    return Case(
        f"L1 hit: {ASYNC_BATCH} x await aget(key), one loop (per batch)",
        ours,
        peer_name,
        theirs,
        unit="gets",
        per_call=ASYNC_BATCH,
    )


def _l2_cases(url: str) -> Iterator[Case]:
    import redis

    tier = RedisTier(url)
    cache = TieredCache(MemoryTier(maxsize=1, ttl=3600), tier, namespace="bench-l2")
    keys = [f"user:{i}" for i in range(100)]
    cache.set_many(dict.fromkeys(keys, VALUE), ttl=3600)
    raw = redis.Redis.from_url(url)
    serializer = Serializer()
    raw_keys = [cache._e.keys.key(k) for k in keys]
    loads = serializer.loads
    alternate = itertools.cycle(["user:1", "user:2"])
    raw_alternate = itertools.cycle(raw_keys[1:3])

    def ours() -> object:
        return cache.get(next(alternate))

    def theirs() -> object:
        return loads(raw.get(next(raw_alternate)))

    if ours() != VALUE or theirs()[1] != VALUE:  # the raw side decodes the same envelope
        raise RuntimeError("L2 hit returned the wrong value")
    before = cache.stats().tiers["l2"].hits
    ours()
    if cache.stats().tiers["l2"].hits != before + 1:
        raise RuntimeError("the L2 case was answered by L1")
    yield Case("L2 hit: get(key) (L1 miss)", ours, "redis-py GET + decode", theirs)

    many = TieredCache(MemoryTier(maxsize=1000, ttl=3600), tier, namespace="bench-l2")

    def ours_many() -> object:
        many.l1.clear()  # every key misses L1: all 100 come from L2 (and are promoted)
        return many.get_many(keys)

    def theirs_many() -> object:
        return [loads(b) for b in raw.mget(raw_keys)]

    if len(ours_many()) != 100 or len(theirs_many()) != 100:  # type: ignore[arg-type]
        raise RuntimeError("get_many lost keys")
    yield Case(
        "L2 get_many(100 keys) (one MGET)",
        ours_many,
        "redis-py MGET + decode x100",
        theirs_many,
        unit="keys",
        per_call=100,
    )
    cache.close()
    many.close()
    raw.close()
    tier.backend.close()


def zipf_hit_ratios(requests: int, keys: int = 100_000, seed: int = 7) -> tuple[float, float]:
    """Hit ratios of ours (L1 via get_or_set) and cachetools.LRUCache, L1 = 1% of the keys."""
    rng = random.Random(seed)
    weights = list(itertools.accumulate(1.0 / (i + 1) for i in range(keys)))
    total = weights[-1]
    trace = [bisect.bisect_left(weights, rng.random() * total) for _ in range(requests)]
    size = keys // 100
    cache = TieredCache(MemoryTier(maxsize=size, ttl=3600), namespace="bench-zipf")
    for k in trace:
        key = str(k)
        cache.get_or_set(key, lambda k=k: k)
    lru: cachetools.LRUCache[int, int] = cachetools.LRUCache(maxsize=size)
    hits = 0
    for k in trace:
        if k in lru:
            hits += 1
            _ = lru[k]  # a read refreshes recency
        else:
            lru[k] = k
    return cache.stats().hit_ratio, hits / requests


def cases(quick: bool) -> Iterator[Case]:
    yield _l1_get_case()
    yield _cached_case()
    loop = asyncio.new_event_loop()
    try:
        yield _aget_case(loop)
    finally:
        for peer in _CLOSE:
            loop.run_until_complete(peer.close())  # type: ignore[attr-defined]
        _CLOSE.clear()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    with redis_url() as url:
        yield from _l2_cases(url)
    smoke = os.environ.get(SMOKE_ENV, "").strip() not in ("", "0")
    requests = 20_000 if smoke else 200_000 if quick else 1_000_000
    ours, lru = zipf_hit_ratios(requests)
    print(
        f"cache: Zipf(s=1.0) hit ratio, {requests:,} requests over 100,000 keys, L1 = 1,000: "
        f"ours {ours:.4f}, cachetools.LRUCache {lru:.4f}"
    )
