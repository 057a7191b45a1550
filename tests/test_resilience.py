"""The resilience pipeline: fallback( retry( breaker( timeout( fn ) ) ) ), sync and async."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from phoenixkit.breaker import CircuitBreaker, CircuitOpenError
from phoenixkit.errors import ConfigurationError
from phoenixkit.resilience import Pipeline, resilient
from phoenixkit.retry import RetryPolicy
from phoenixkit.testing import FakeClock


def make(clock: FakeClock, **retry: Any) -> tuple[CircuitBreaker, RetryPolicy]:
    breaker = CircuitBreaker("dep", minimum_calls=2, window_size=2, open_duration=30.0, clock=clock)
    retry.setdefault("attempts", 3)
    retry.setdefault("wait", lambda n: 0.0)
    retry.setdefault("max_retry_after", 0.0)  # do not wait out the open circuit in tests
    return breaker, RetryPolicy(clock=clock, **retry)


def test_every_attempt_goes_through_the_breaker_and_the_fallback_catches_the_rest() -> None:
    clock = FakeClock()
    breaker, retry = make(clock)
    calls: list[str] = []

    @resilient(breaker=breaker, retry=retry, fallback=lambda exc: f"cached ({type(exc).__name__})")
    def price(sku: str) -> str:
        calls.append(sku)
        raise ConnectionError("pricing down")

    # attempt 1 and 2 fail and open the breaker (2 of 2); attempt 3 is rejected by it
    assert price("sku-1") == "cached (CircuitOpenError)"
    assert calls == ["sku-1", "sku-1"]
    assert breaker.state == "open"
    assert retry.stats().retries == 2
    # while open, the dependency is not called at all
    assert price("sku-2") == "cached (CircuitOpenError)"
    assert calls == ["sku-1", "sku-1"]


def test_success_passes_through_every_stage() -> None:
    clock = FakeClock()
    breaker, retry = make(clock)
    flaky = iter([ConnectionError("once"), None])

    def fetch(x: int) -> int:
        exc = next(flaky)
        if exc:
            raise exc
        return x * 2

    pipeline = Pipeline(breaker=breaker, retry=retry, fallback=lambda exc: -1)
    assert pipeline.call(fetch, 21) == 42
    assert breaker.stats().failures == 1
    assert breaker.stats().successes == 1


def test_without_fallback_the_last_exception_is_raised() -> None:
    clock = FakeClock()
    breaker, retry = make(clock, attempts=2)
    pipeline = Pipeline(breaker=breaker, retry=retry)

    def down() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        pipeline.call(down)
    with pytest.raises(CircuitOpenError):
        pipeline.call(down)


def test_fallback_on_limits_what_is_caught() -> None:
    pipeline = Pipeline(fallback=lambda exc: "fallback", fallback_on=(ConnectionError,))
    assert pipeline.call(lambda: (_ for _ in ()).throw(ConnectionError())) == "fallback"
    with pytest.raises(KeyError):
        pipeline.call(lambda: {}["missing"])


def test_sync_timeout_counts_as_a_failure_in_the_breaker() -> None:
    clock = FakeClock()
    breaker, retry = make(clock, attempts=1)
    release = threading.Event()

    def hangs() -> str:
        release.wait(5)
        return "late"

    pipeline = Pipeline(timeout=0.05, breaker=breaker, retry=retry)
    try:
        with pytest.raises(TimeoutError, match=r"took longer than 0\.05 s"):
            pipeline.call(hangs)
        assert breaker.stats().failures == 1
    finally:
        release.set()


@pytest.mark.asyncio
async def test_async_pipeline_in_the_same_order() -> None:
    clock = FakeClock()
    breaker, retry = make(clock)
    calls = 0

    async def cached(exc: BaseException) -> str:
        await asyncio.sleep(0)
        return "cached"

    @resilient(timeout=0.05, breaker=breaker, retry=retry, fallback=cached)
    async def slow() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(5)
        return "never"

    assert await slow() == "cached"
    assert calls == 2  # two timed-out attempts opened the breaker; the third was rejected
    assert breaker.state == "open"
    assert slow.__name__ == "slow"


@pytest.mark.asyncio
async def test_async_success_and_sync_fallback() -> None:
    pipeline = Pipeline(timeout=1.0, fallback=lambda exc: "sync fallback")

    async def ok() -> str:
        return "ok"

    async def boom() -> str:
        raise RuntimeError("boom")

    assert await pipeline.acall(ok) == "ok"
    assert await pipeline.acall(boom) == "sync fallback"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": 0}, "timeout must be a number of seconds > 0, got 0"),
        ({"timeout": "1"}, "timeout"),
        ({"breaker": object()}, "breaker must be a CircuitBreaker"),
        ({"retry": object()}, "retry must be a RetryPolicy"),
        ({"fallback": 3}, "fallback must be callable, got 3"),
        ({"rate_limit": object()}, "rate_limit must be a rate limiter"),
        ({"rate_limit_key": 3}, "rate_limit_key must be a str or a function"),
    ],
)
def test_bad_stages_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Pipeline(**kwargs)


# The rate-limit stage ---------------------------------------------------------------------------


def limiter(clock: FakeClock, rate: str = "2/minute") -> Any:
    import uuid

    from phoenixkit.ratelimit import RateLimiter

    return RateLimiter(rate, backend=f"memory://{uuid.uuid4().hex}", clock=clock)


def test_a_denied_attempt_never_reaches_the_breaker_or_the_function() -> None:
    from phoenixkit.ratelimit import RateLimitExceeded

    clock = FakeClock()
    breaker, _ = make(clock)
    calls: list[int] = []
    seen: list[BaseException] = []

    def fallback(exc: BaseException) -> str:
        seen.append(exc)
        return "later"

    @resilient(
        breaker=breaker, rate_limit=limiter(clock), rate_limit_key="pricing", fallback=fallback
    )
    def price(n: int) -> str:
        calls.append(n)
        return "now"

    assert [price(1), price(2), price(3)] == ["now", "now", "later"]
    assert calls == [1, 2]
    assert breaker.stats().calls == 2  # our own throttling is not the dependency failing
    assert breaker.stats().failures == 0
    assert isinstance(seen[0], RateLimitExceeded)
    assert seen[0].retry_after == pytest.approx(30.0)


def test_every_retry_spends_a_hit_and_the_retry_waits_out_the_limit() -> None:
    clock = FakeClock()
    breaker, retry = make(clock, attempts=4, max_retry_after=60.0)
    outcomes = iter([ConnectionError("1"), ConnectionError("2"), None])
    calls = 0

    def fetch() -> str:
        nonlocal calls
        calls += 1
        exc = next(outcomes)
        if exc:
            raise exc
        return "ok"

    pipeline = Pipeline(breaker=breaker, retry=retry, rate_limit=limiter(clock))
    assert pipeline.call(fetch) == "ok"
    assert calls == 3  # attempts 1, 2 and 4: attempt 3 was denied by the limiter
    assert 30.0 in [pytest.approx(s) for s in clock.sleeps]  # its retry_after, waited out
    assert breaker.stats().calls == 3


def test_the_key_can_depend_on_the_arguments() -> None:
    from phoenixkit.ratelimit import RateLimitExceeded

    clock = FakeClock()

    @resilient(rate_limit=limiter(clock, "1/minute"), rate_limit_key=lambda sku: f"sku:{sku}")
    def price(sku: str) -> str:
        return sku

    assert price("a") == "a"
    assert price("b") == "b"
    with pytest.raises(RateLimitExceeded) as info:
        price("a")
    assert info.value.key == "sku:a"


@pytest.mark.asyncio
async def test_async_pipeline_spends_hits_with_ahit() -> None:
    from phoenixkit.ratelimit import RateLimitExceeded

    clock = FakeClock()
    breaker, _ = make(clock)
    limit = limiter(clock)

    @resilient(breaker=breaker, rate_limit=limit, fallback=lambda exc: type(exc).__name__)
    async def price() -> str:
        await asyncio.sleep(0)
        return "now"

    assert [await price() for _ in range(3)] == ["now", "now", RateLimitExceeded.__name__]
    assert breaker.stats().calls == 2
    assert limit.stats().denied == 1
