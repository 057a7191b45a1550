"""Multi-tier cache: L1 in process, L2 on Redis, tags, stampede protection, fail-safe.

```
from phoenixkit.cache import TieredCache, MemoryTier, RedisTier, cached
cache = TieredCache(MemoryTier(maxsize=10_000, ttl=60), RedisTier("redis://..."), namespace="shop")
cache.set(key, value, ttl=None, tags=()); cache.get(key, default=None); cache.delete(key)
cache.get_or_set(key, loader, ttl=None, tags=())   # loader runs once per key under concurrency
cache.get_many(keys) -> dict; cache.set_many(mapping, ttl=None)
cache.invalidate_tags(*tags); cache.stats()         # hits, misses, hit_ratio, per tier
await cache.aget / aset / adelete / aget_or_set / aget_many / ainvalidate_tags
@cached(cache, ttl=60, tags=lambda user_id: [f"user:{user_id}"])   # def or async def
```

Decisions (freshness, early refresh, tag checks, keys) are pure code in
`phoenixkit.cache.core`; the tiers and `TieredCache` carry them out for sync and async callers.
"""

from __future__ import annotations

from phoenixkit.cache._timeouts import LoaderTimeoutError
from phoenixkit.cache.core import (
    MISSING,
    CacheError,
    Entry,
    InvalidKeyError,
    ValueTooLargeError,
    call_key,
    escape_key,
)
from phoenixkit.cache.decorators import CachedFunction, FunctionStats, cached, warm
from phoenixkit.cache.memory import MemoryTier
from phoenixkit.cache.redis import RedisTier
from phoenixkit.cache.singleflight import AsyncSingleFlight, SingleFlight
from phoenixkit.cache.stats import CacheStats, LatencySummary, TierStats
from phoenixkit.cache.tiered import TieredCache

__all__ = [
    "MISSING",
    "AsyncSingleFlight",
    "CacheError",
    "CacheStats",
    "CachedFunction",
    "Entry",
    "FunctionStats",
    "InvalidKeyError",
    "LatencySummary",
    "LoaderTimeoutError",
    "MemoryTier",
    "RedisTier",
    "SingleFlight",
    "TierStats",
    "TieredCache",
    "ValueTooLargeError",
    "cached",
    "call_key",
    "escape_key",
    "warm",
]
