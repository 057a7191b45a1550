"""Typed usage of the public API, checked by ``mypy --strict`` in ``nox -s lint``.

Not a test module (pytest does not collect it): a user's view of the types. A change that
breaks how users' code type-checks fails the lint session.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from phoenixkit import __version__
from phoenixkit.batch import BatchReport, chunked, run_batches
from phoenixkit.breaker import CircuitBreaker, CircuitOpenError, RedisBreakerState
from phoenixkit.cache import (
    CachedFunction,
    CacheStats,
    InvalidKeyError,
    MemoryTier,
    RedisTier,
    TieredCache,
    ValueTooLargeError,
    cached,
    warm,
)
from phoenixkit.errors import ConfigurationError, MissingDependencyError, PhoenixError
from phoenixkit.integrations import asgi, wsgi
from phoenixkit.integrations.asgi import (
    CorrelationIdMiddleware,
    RateLimitMiddleware,
    RequestInfo,
    TimingMiddleware,
    api_key_header,
)
from phoenixkit.integrations.prometheus import PrometheusExporter
from phoenixkit.ratelimit import (
    Decision,
    Lockout,
    Rate,
    RateLimiter,
    RateLimitExceeded,
    TieredRateLimiter,
    rate_limit_headers,
)
from phoenixkit.replicas import (
    NoReplicaAvailable,
    PsycopgRouter,
    ReplicaRouter,
    RouterStatus,
    decode_token,
    encode_token,
)
from phoenixkit.resilience import resilient
from phoenixkit.serialization import Codec, JsonCodec, PickleCodec, Serializer, get_codec
from phoenixkit.testing import FakeClock

version: str = __version__

serializer = Serializer("json", compress_threshold=1024, accept=["msgpack"])
blob: bytes = serializer.dumps({"a": 1})
value: object = serializer.loads(blob)
signed = Serializer(PickleCodec(key=b"0123456789abcdef"))
codec: Codec = get_codec("json")
json_codec: Codec = JsonCodec()

clock = FakeClock(start=10.0)
now: float = clock()
later: float = clock.advance(5)
clock.sleep(1.5)
slept: list[float] = clock.sleeps


def handle(exc: PhoenixError) -> str:
    if isinstance(exc, MissingDependencyError):
        return exc.extra
    if isinstance(exc, ConfigurationError):
        return str(exc)
    return type(exc).__name__


limiter = RateLimiter("100/minute", backend="memory://", algorithm="sliding_window")
d: Decision = limiter.hit("k", cost=1)
limiter.peek("k")
limiter.reset("k")
tiers = TieredRateLimiter({"free": Rate.parse("10/minute", burst=2)})
tiers.hit("k", tier="free")
lock = Lockout(max_failures=5, window=900, block_for=1800)
lock.failure("k")
lock.success("k")
lock.check("k")
headers: dict[str, str] = rate_limit_headers(d, limiter.rate)

br = CircuitBreaker("payments", failure_rate_threshold=0.5, minimum_calls=10, window_size=100)
state: str = br.state


@br
def charge(amount: int) -> int:
    return amount


charged: int = charge(3)


@resilient(breaker=br, rate_limit=limiter, rate_limit_key="payments")
async def acharge(amount: int) -> int:
    return amount


def shared(url: str) -> CircuitBreaker:
    return CircuitBreaker("payments", state_storage=RedisBreakerState(url), sync_interval=0.5)


def rejected(exc: CircuitOpenError | RateLimitExceeded) -> float:
    return exc.retry_after


chunks: list[list[int]] = list(chunked(range(10), 3))
report: BatchReport = run_batches(range(10), lambda chunk: None, size=3, concurrency=2)
failed: list[int] = report.failed_indexes


cache = TieredCache(MemoryTier(maxsize=10_000, ttl=60), namespace="shop", fail_safe_ttl=300)
cache.set("user:1", {"name": "alice"}, ttl=30, tags=["user:1"])
cache_hit: object = cache.get("user:1", default=None)
cache_loaded: object = cache.get_or_set("price:1", lambda: 9.99, ttl=10, tags=("prices",))
cache_many: dict[str, object] = cache.get_many(["user:1", "price:1"])
cache.set_many({"a": 1, "b": 2}, ttl=60)
cache.delete("a")
cache.invalidate_tags("user:1", "prices")
cache_stats: CacheStats = cache.stats()
cache_ratio: float = cache_stats.hit_ratio
cache_l1_hits: int = cache_stats.tiers["l1"].hits
cache_warmed: int = warm(cache, ["x", "y"], lambda key: key.upper())


@cached(cache, ttl=60, tags=lambda user_id: [f"user:{user_id}"])
def cached_profile(user_id: int) -> dict[str, int]:
    return {"id": user_id}


@cached(cache, ttl=60)
async def cached_aprofile(user_id: int) -> dict[str, int]:
    return {"id": user_id}


typed_profile: CachedFunction[[int], dict[str, int]] = cached_profile
profile_one: dict[str, int] = cached_profile(1)
profile_key: str = cached_profile.cache_key(1)
profile_calls: int = cached_profile.stats().calls
cached_profile.invalidate(1)


async def use_cache_async() -> tuple[object, object, dict[str, object], dict[str, int]]:
    await cache.aset("k", 1, ttl=5)
    value: object = await cache.aget("k")
    got: object = await cache.aget_or_set("k2", lambda: 2)
    found: dict[str, object] = await cache.aget_many(["k", "k2"])
    await cache.adelete("k")
    await cache.ainvalidate_tags("t")
    one: dict[str, int] = await cached_aprofile(1)
    await cached_aprofile.ainvalidate(1)
    return value, got, found, one


def cache_with_redis(url: str) -> TieredCache:
    return TieredCache(MemoryTier(), RedisTier(url), namespace="shop", lock_lease=10.0)


cache_errors: tuple[type[Exception], ...] = (InvalidKeyError, ValueTooLargeError)


def use_replicas() -> tuple[str | None, int | None, list[tuple[object, ...]], str]:
    replicas = ReplicaRouter(
        primary="postgresql://app@db-primary/shop",
        replicas=["postgresql://app@db-replica/shop"],
        strategy="least_lag",
        max_lag_bytes=16 * 1024 * 1024,
        on_no_replica="primary",
        start=False,
    )
    with replicas.session() as routed:
        routed.commit()
        lsn_token: str | None = routed.token
    with replicas.use_primary(), replicas.session(token=lsn_token) as pinned_session:
        pinned_session.rollback()
    replica_status: RouterStatus = replicas.status()
    in_rotation: tuple[str, ...] = replica_status.in_rotation
    signed: str = encode_token("0/3000060", key=b"k")
    position: int | None = decode_token(signed, key=b"k")
    pg_router = PsycopgRouter("postgresql://app@db-primary/shop", ["postgresql://app@r/shop"])
    rows: list[tuple[object, ...]] = pg_router.read("SELECT 1")
    write_token: str = pg_router.write("SELECT 1")
    del in_rotation
    return lsn_token, position, rows, write_token


def no_replica(exc: NoReplicaAvailable) -> str:
    return str(exc)


async def _endpoint(scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})


def _wsgi_endpoint(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("204 No Content", [])
    return [b""]


def _by_user(info: RequestInfo) -> str | None:
    return info.header("x-user")


_limiter = RateLimiter("10/second")
_app: asgi.ASGIApp = RateLimitMiddleware(_endpoint, _limiter, key=None, trusted_proxies=())
_app = CorrelationIdMiddleware(TimingMiddleware(_app))
_app = RateLimitMiddleware(_app, _limiter, key=api_key_header("X-API-Key"), exempt=["/health"])
_app = asgi.ResponseCacheMiddleware(
    asgi.GZipMiddleware(asgi.ETagMiddleware(_app)), TieredCache(MemoryTier(maxsize=10, ttl=1))
)
_w: wsgi.WSGIApp = wsgi.CorrelationIdMiddleware(wsgi.TimingMiddleware(_wsgi_endpoint))
_w = wsgi.RateLimitMiddleware(_w, _limiter, key=_by_user, trusted_proxies=["10.0.0.0/8"])
_text: str = PrometheusExporter(_limiter).render()
_metrics: asgi.ASGIApp = PrometheusExporter(_limiter).asgi_app()
