"""Typed usage of the public API, checked by ``mypy --strict`` in ``nox -s lint``.

Not a test module (pytest does not collect it): a user's view of the types. A change that
breaks how users' code type-checks fails the lint session.
"""

from __future__ import annotations

from phoenixkit import __version__
from phoenixkit.batch import BatchReport, chunked, run_batches
from phoenixkit.breaker import CircuitBreaker, CircuitOpenError, RedisBreakerState
from phoenixkit.errors import ConfigurationError, MissingDependencyError, PhoenixError
from phoenixkit.ratelimit import (
    Decision,
    Lockout,
    Rate,
    RateLimiter,
    RateLimitExceeded,
    TieredRateLimiter,
    rate_limit_headers,
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
