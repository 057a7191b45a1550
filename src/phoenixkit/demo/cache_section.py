"""The cache's part of the tour: hit ratio, one load under a stampede, tags, fail-safe.

Embedded: L1 only, on a `FakeClock`, so the report is the same every time. With ``--redis``:
two instances (as two processes of a service would have) share L2 on that server; the tour
shows L2 hits, invalidation across the instances and its measured latency.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
import uuid
from typing import TYPE_CHECKING

from phoenixkit.cache import MemoryTier, TieredCache, cached
from phoenixkit.testing import FakeClock

if TYPE_CHECKING:
    from phoenixkit.demo.tour import TourContext

__all__ = ["run_cache_section"]

PRODUCTS = 2_000
REQUESTS = 20_000


def _catalog(ctx: TourContext, cache: TieredCache) -> None:
    queries = [0]

    @cached(cache, ttl=300, tags=lambda product_id: [f"product:{product_id}"])
    def product(product_id: int) -> dict[str, object]:
        queries[0] += 1  # SELECT ... FROM products WHERE id = %s
        return {"id": product_id, "price": round(5 + product_id % 97 * 0.5, 2)}

    rng = random.Random(42)
    weights = [1 / (i + 1) for i in range(PRODUCTS)]  # Zipf (s = 1): a few hot products
    for product_id in rng.choices(range(PRODUCTS), weights, k=REQUESTS):
        product(product_id)
    stats = cache.stats()
    ctx.line(
        f"{REQUESTS:,} product reads (Zipf over {PRODUCTS:,} products, L1 holds 500): "
        f"{queries[0]:,} queries, hit ratio {stats.hit_ratio:.1%}"
    )
    before = queries[0]
    cache.invalidate_tags("product:0")
    product(0)
    product(1)
    ctx.line(
        f"invalidate_tags('product:0'): the next read of product 0 queries again "
        f"(+{queries[0] - before}), product 1 is still cached"
    )


def _stampede(ctx: TourContext, cache: TieredCache) -> None:
    release = threading.Event()
    loads = [0]

    def report() -> str:
        loads[0] += 1
        release.wait(5)
        return "daily report"

    threads = [
        threading.Thread(target=cache.get_or_set, args=("report:today", report)) for _ in range(200)
    ]
    for t in threads:
        t.start()
    while loads[0] == 0:
        time.sleep(0.001)
    time.sleep(0.05)  # let the others line up behind the first
    release.set()
    for t in threads:
        t.join()
    ctx.line(f"200 threads ask for a cold key at once: the loader ran {loads[0]} time(s)")


def _fail_safe(ctx: TourContext) -> None:
    clock = FakeClock()
    cache = TieredCache(
        MemoryTier(maxsize=100, ttl=60, clock=clock),
        namespace=f"demo{uuid.uuid4().hex[:8]}",
        fail_safe_ttl=600,
        clock=clock,
    )
    cache.get_or_set("fx:EURUSD", lambda: 1.0832, ttl=30)
    clock.advance(45)  # expired 15 s ago, and now the rates service is down

    def down() -> float:
        raise ConnectionError("rates service unreachable")

    value = cache.get_or_set("fx:EURUSD", down, ttl=30)
    ctx.line(
        f"fail-safe: the loader fails 15 s after expiry; served the stale {value} "
        f"(stale_served={cache.stats().stale_served})"
    )


def _shared(ctx: TourContext) -> None:
    assert ctx.redis_url is not None
    namespace = f"demo{uuid.uuid4().hex[:8]}"
    web = TieredCache(MemoryTier(maxsize=1000, ttl=60), ctx.redis_url, namespace=namespace)
    worker = TieredCache(MemoryTier(maxsize=1000, ttl=60), ctx.redis_url, namespace=namespace)
    ctx.line(f"L2 on Redis: two instances (web, worker) share namespace {namespace!r}")
    try:
        web.set_many({f"sku:{i}": {"stock": i} for i in range(100)})
        found = worker.get_many([f"sku:{i}" for i in range(100)])
        l2 = worker.stats().tiers["l2"]
        ctx.line(
            f"worker reads 100 keys web wrote: {len(found)} found in one round trip "
            f"(L2 hits {l2.hits}, p50 {l2.latency.p50 * 1e3:.2f} ms)"
        )
        samples = []
        for i in range(50):
            key = f"sku:{i}"
            worker.get(key)
            began = time.perf_counter()
            web.set(key, {"stock": -i})
            while key in worker.l1:
                time.sleep(0.0001)
            samples.append(time.perf_counter() - began)
        ctx.line(
            f"a write by web evicts the worker's L1 copy in {statistics.median(samples) * 1e3:.2f}"
            f" ms (median of 50; max {max(samples) * 1e3:.2f} ms)"
        )
        ctx.line(f"worker now reads sku:0 = {worker.get('sku:0')}")
        web.clear()
    finally:
        web.close()
        worker.close()


def run_cache_section(ctx: TourContext) -> None:
    """Read-through with @cached, a stampede, tags and fail-safe; L2 with --redis."""
    clock = FakeClock()
    cache = TieredCache(
        MemoryTier(maxsize=500, ttl=60, clock=clock),
        namespace=f"demo{uuid.uuid4().hex[:8]}",
        clock=clock,
    )
    ctx.line("L1 only (in process): 500 entries, 60 s TTL")
    _catalog(ctx, cache)
    _stampede(ctx, cache)
    _fail_safe(ctx)
    if ctx.redis_url:
        _shared(ctx)
