"""Retry policies: attempts, exceptions, full-jitter waits, deadlines, Retry-After, budgets."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from phoenixkit.breaker import CircuitOpenError
from phoenixkit.errors import ConfigurationError
from phoenixkit.retry import RetryBudget, RetryPolicy, full_jitter, retry, retry_after_of
from phoenixkit.testing import FakeClock

ONE = lambda: 1.0  # noqa: E731 - the top of every jitter range: deterministic waits


class Flaky:
    """Fails ``failures`` times with ``exc``, then returns ``value``."""

    def __init__(self, failures: int, exc: BaseException | None = None, value: Any = "ok"):
        self.failures = failures
        self.exc = exc or ConnectionError("down")
        self.value = value
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc
        return self.value

    async def acall(self) -> Any:
        await asyncio.sleep(0)
        return self()


def policy(clock: FakeClock, **kwargs: Any) -> RetryPolicy:
    kwargs.setdefault("wait", full_jitter(1.0, 8.0, random=ONE))
    return RetryPolicy(clock=clock, **kwargs)


def test_success_needs_no_retry_and_no_sleep() -> None:
    clock = FakeClock()
    p = policy(clock, attempts=3)
    assert p.call(Flaky(0)) == "ok"
    assert clock.sleeps == []
    assert p.stats().calls == 1
    assert p.stats().retries == 0


def test_retries_then_recovers_with_exponential_waits() -> None:
    clock = FakeClock()
    p = policy(clock, attempts=4, on=(ConnectionError,))
    fn = Flaky(3)
    assert p.call(fn) == "ok"
    assert fn.calls == 4
    assert clock.sleeps == [1.0, 2.0, 4.0]
    stats = p.stats()
    assert (stats.retries, stats.recovered, stats.exhausted) == (3, 1, 0)


def test_gives_up_after_attempts_with_the_last_exception() -> None:
    clock = FakeClock()
    p = policy(clock, attempts=3)
    fn = Flaky(10, ValueError("nope 3"))
    with pytest.raises(ValueError, match="nope"):
        p.call(fn)
    assert fn.calls == 3
    assert p.stats().exhausted == 1


def test_only_chosen_exceptions_are_retried() -> None:
    clock = FakeClock()
    p = policy(clock, attempts=5, on=(ConnectionError,), unless=(ConnectionRefusedError,))
    for exc in (ValueError("x"), ConnectionRefusedError("refused")):
        fn = Flaky(1, exc)
        with pytest.raises(type(exc)):
            p.call(fn)
        assert fn.calls == 1
    refuse = policy(clock, attempts=5, predicate=lambda e: "retry" in str(e))
    fn = Flaky(1, OSError("do not"))
    with pytest.raises(OSError, match="do not"):
        refuse.call(fn)
    assert fn.calls == 1
    assert refuse.call(Flaky(2, OSError("please retry"))) == "ok"


def test_a_retryable_error_after_a_non_retryable_one_stops() -> None:
    clock = FakeClock()
    p = policy(clock, attempts=5, on=(ConnectionError,))
    errors = [ConnectionError("a"), KeyError("b"), ConnectionError("c")]

    def fn() -> str:
        raise errors.pop(0)

    with pytest.raises(KeyError):
        p.call(fn)
    assert len(errors) == 1


def test_deadline_stops_before_a_wait_would_pass_it() -> None:
    clock = FakeClock()
    p = policy(clock, attempts=10, deadline=5.0)
    fn = Flaky(100)
    with pytest.raises(ConnectionError):
        p.call(fn)
    # waits 1, 2 (3 s spent); the next (4) would end at 7 > 5
    assert clock.sleeps == [1.0, 2.0]
    assert fn.calls == 3


def test_retry_after_is_honoured_and_capped() -> None:
    clock = FakeClock()
    p = policy(clock, attempts=3, max_retry_after=30.0)
    fn = Flaky(2, CircuitOpenError("payments", "open", 12.5))
    assert p.call(fn) == "ok"
    assert clock.sleeps == [12.5, 12.5]
    capped = policy(clock, attempts=2, max_retry_after=3.0)
    clock.sleeps.clear()
    assert capped.call(Flaky(1, CircuitOpenError("p", "open", 999.0))) == "ok"
    assert clock.sleeps == [3.0]


def test_retry_after_header_of_an_http_response() -> None:
    request = httpx.Request("GET", "http://127.0.0.1/")
    for header, expected in (("7", 7.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("soon", None)):
        response = httpx.Response(429, headers={"Retry-After": header}, request=request)
        exc = httpx.HTTPStatusError("429", request=request, response=response)
        assert retry_after_of(exc) == expected
    assert retry_after_of(ValueError()) is None


@given(st.integers(1, 200), st.floats(0.0, 1.0))
def test_full_jitter_stays_in_its_range(n: int, r: float) -> None:
    wait = full_jitter(0.5, 30.0, random=lambda: r)(n)
    assert 0.0 <= wait <= min(30.0, 0.5 * 2 ** min(n - 1, 64))


def test_budget_caps_retries_to_a_share_of_calls() -> None:
    clock = FakeClock()
    budget = RetryBudget(0.2, min_retries=0, window=10, clock=clock)
    p = policy(clock, attempts=2, budget=budget, wait=lambda n: 0.0)
    attempts = 0
    for _ in range(100):
        fn = Flaky(100)
        with pytest.raises(ConnectionError):
            p.call(fn)
        attempts += fn.calls
    retries = attempts - 100
    assert retries <= 20  # at most 20% of 100 calls
    assert retries >= 19
    assert p.stats().budget_denied == 100 - retries
    clock.advance(11)  # the window has passed: the budget refills with new calls
    assert p.call(Flaky(0)) == "ok"


def test_budget_is_shared_and_thread_safe() -> None:
    clock = FakeClock()
    budget = RetryBudget(0.5, min_retries=0, window=60, clock=clock)
    p = policy(clock, attempts=2, budget=budget, wait=lambda n: 0.0)
    lock = threading.Lock()
    total = [0]

    def worker() -> None:
        for _ in range(200):
            fn = Flaky(100)
            with pytest.raises(ConnectionError):
                p.call(fn)
            with lock:
                total[0] += fn.calls - 1

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert total[0] <= 400  # 50% of 800 calls


@pytest.mark.asyncio
async def test_async_policy_and_decorator() -> None:
    clock = FakeClock()
    p = policy(clock, attempts=3)
    fn = Flaky(2)
    assert await p.acall(fn.acall) == "ok"
    assert clock.sleeps == [1.0, 2.0]

    @p
    async def decorated(x: int) -> int:
        """Doc."""
        await asyncio.sleep(0)
        return x * 2

    assert await decorated(21) == 42
    assert decorated.__doc__ == "Doc."


@pytest.mark.asyncio
async def test_concurrent_async_calls_keep_their_own_state() -> None:
    clock = FakeClock()
    p = policy(clock, attempts=3, wait=lambda n: 0.0)
    flakies = [Flaky(i % 3) for i in range(30)]
    results = await asyncio.gather(*(p.acall(f.acall) for f in flakies))
    assert results == ["ok"] * 30
    assert [f.calls for f in flakies] == [i % 3 + 1 for i in range(30)]


@pytest.mark.asyncio
async def test_cancellation_is_not_retried() -> None:
    clock = FakeClock()
    p = policy(clock, attempts=5)
    calls = 0

    async def cancelled() -> None:
        nonlocal calls
        calls += 1
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await p.acall(cancelled)
    assert calls == 1


def test_sync_decorator_keeps_the_function() -> None:
    clock = FakeClock()

    @retry(2, on=(KeyError,), clock=clock, wait=lambda n: 0.0)
    def lookup(d: dict[str, int], key: str) -> int:
        """Look up."""
        return d[key]

    assert lookup({"a": 1}, "a") == 1
    assert lookup.__name__ == "lookup"
    assert lookup.__doc__ == "Look up."


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attempts": 0}, "attempts must be an int >= 1, got 0"),
        ({"attempts": True}, "attempts"),
        ({"deadline": -1}, "deadline must be a number >= 0, got -1"),
        ({"on": [ValueError, "x"]}, "on must be exception classes"),
    ],
)
def test_bad_policy_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RetryPolicy(**kwargs)


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: full_jitter(-1.0), "initial must be a number >= 0, got -1.0"),
        (lambda: full_jitter(1.0, 2.0, 0.5), "base must be >= 1"),
        (lambda: RetryBudget(-0.1), "ratio must be a number >= 0"),
        (lambda: RetryBudget(0.1, window=0), "window must be an int >= 1, got 0"),
        (lambda: RetryBudget(0.1, min_retries=-1), "min_retries"),
    ],
)
def test_bad_helper_arguments(factory: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        factory()
