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
    ],
)
def test_bad_stages_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Pipeline(**kwargs)
