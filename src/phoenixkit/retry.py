"""Retry policies on tenacity: full-jitter backoff, attempts and deadlines, Retry-After, budgets.

```
@retry(attempts=4, on=(ConnectionError, TimeoutError), deadline=10.0)
def fetch(): ...

policy = RetryPolicy(attempts=3, budget=RetryBudget(ratio=0.1))
policy.call(fn, *args); await policy.acall(afn, *args)
```

- The first attempt calls the function directly: tenacity's machinery (about 10 µs) is paid
  only once a call has failed, so the success path costs almost nothing.
- Each call gets a fresh tenacity ``Retrying`` / ``AsyncRetrying`` (a shared one is unsafe
  under concurrency).
- Waits are "full jitter" exponential (``random() * min(maximum, initial * base**n)``),
  never shorter than an exception's Retry-After, never past the deadline.
- A `RetryBudget` caps retries to a share of recent calls, so that retries cannot multiply
  the load on a dependency that is already failing.
"""

from __future__ import annotations

import datetime
import random as _random
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, ParamSpec, TypeVar, overload

import tenacity

from phoenixkit._clock import Clock, monotonic_clock
from phoenixkit._wrap import wrap_sync_or_async
from phoenixkit.breaker.core import TimeWindow
from phoenixkit.errors import ConfigurationError

__all__ = [
    "RetryBudget",
    "RetryPolicy",
    "RetryStats",
    "full_jitter",
    "retry",
    "retry_after_of",
]

P = ParamSpec("P")
R = TypeVar("R")

Wait = Callable[[int], float]
"""Seconds to wait before retry number ``n`` (1 for the first retry)."""


def full_jitter(
    initial: float = 0.1,
    maximum: float = 10.0,
    base: float = 2.0,
    *,
    random: Callable[[], float] = _random.random,
) -> Wait:
    """Exponential backoff with full jitter: ``random() * min(maximum, initial * base**(n-1))``."""
    for name, value in (("initial", initial), ("maximum", maximum), ("base", base)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ConfigurationError(f"full_jitter: {name} must be a number >= 0, got {value!r}")
    if base < 1:
        raise ConfigurationError(f"full_jitter: base must be >= 1, got {base!r}")

    def wait(n: int) -> float:
        ceiling = maximum if n > 64 else min(maximum, initial * base ** (n - 1))
        return random() * ceiling

    return wait


def retry_after_of(exc: BaseException) -> float | None:
    """Seconds an exception asks to wait: its ``retry_after`` attribute (phoenixkit's
    `CircuitOpenError`, rate-limit errors), or the Retry-After header of an HTTP response it
    carries (``exc.response.headers``, as in httpx and requests): seconds or an HTTP date."""
    value = getattr(exc, "retry_after", None)
    if value is None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
        try:
            value = headers.get("Retry-After") if headers is not None else None
        except Exception:  # odd header objects: no hint
            return None
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if value >= 0 else None
    text = str(value).strip()
    if text.isdigit():
        return float(text)
    try:  # an HTTP date: the wall clock is what the server meant here
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    delta = (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
    return max(0.0, delta)


class RetryBudget:
    """Allow retries to be at most ``ratio`` of the calls of the last ``window`` seconds, plus
    ``min_retries`` per window, so retries cannot amplify an outage. Thread-safe; one
    budget may be shared by several policies (per dependency)."""

    def __init__(
        self,
        ratio: float = 0.1,
        *,
        min_retries: int = 10,
        window: int = 10,
        clock: Clock = monotonic_clock,
    ) -> None:
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not ratio >= 0:
            raise ConfigurationError(f"RetryBudget: ratio must be a number >= 0, got {ratio!r}")
        if isinstance(min_retries, bool) or not isinstance(min_retries, int) or min_retries < 0:
            raise ConfigurationError(
                f"RetryBudget: min_retries must be an int >= 0, got {min_retries!r}"
            )
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ConfigurationError(f"RetryBudget: window must be an int >= 1, got {window!r}")
        self.ratio = float(ratio)
        self.min_retries = min_retries
        self.clock = clock
        # One window counts both: an event is a call, a marked ("failure") event a retry.
        self._events = TimeWindow(window)
        self._lock = threading.Lock()

    def record_call(self) -> None:
        with self._lock:
            self._events.add(0, self.clock())

    def try_retry(self) -> bool:
        """Take one retry from the budget if there is one left."""
        with self._lock:
            now = self.clock()
            events = self._events
            events.expire(now)
            retries = events.failures
            calls = events.calls - retries
            if retries >= self.min_retries + self.ratio * calls:
                return False
            events.add(1, now)
            return True


@dataclass(frozen=True)
class RetryStats:
    """Counters since the policy was built."""

    calls: int
    retries: int
    recovered: int  # calls that succeeded after at least one retry
    exhausted: int  # calls that failed after their retries
    budget_denied: int


class RetryPolicy:
    """Retry a call on chosen exceptions, with full-jitter backoff (see `phoenixkit.retry`).

    ``attempts`` counts the first call. ``on`` lists retryable exception types, ``unless``
    types never retried (and winning); ``predicate(exc)`` may refuse a retry. ``deadline``
    (seconds, from the first attempt) stops retrying when the next wait would pass it.
    ``retry_after`` reads an exception's wish to wait (`retry_after_of`); the wait is the
    longer of it and the backoff, capped by ``max_retry_after``.
    """

    def __init__(
        self,
        *,
        attempts: int = 3,
        on: Iterable[type[BaseException]] = (Exception,),
        unless: Iterable[type[BaseException]] = (),
        predicate: Callable[[BaseException], bool] | None = None,
        wait: Wait | None = None,
        deadline: float | None = None,
        retry_after: Callable[[BaseException], float | None] | None = retry_after_of,
        max_retry_after: float = 60.0,
        budget: RetryBudget | None = None,
        clock: Clock = monotonic_clock,
    ) -> None:
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ConfigurationError(f"attempts must be an int >= 1, got {attempts!r}")
        if deadline is not None and (
            isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or deadline < 0
        ):
            raise ConfigurationError(f"deadline must be a number >= 0, got {deadline!r}")
        self.attempts = attempts
        self.on = _types(on, "on")
        self.unless = _types(unless, "unless")
        self.predicate = predicate
        self.wait = wait if wait is not None else full_jitter()
        self.deadline = deadline
        self.retry_after = retry_after
        self.max_retry_after = max_retry_after
        self.budget = budget
        self.clock = clock
        self._lock = threading.Lock()
        self._calls = self._retries = self._recovered = self._exhausted = self._denied = 0

    # The decisions, shared by the sync and async paths -------------------------------------

    def _retryable(self, exc: BaseException) -> bool:
        if not isinstance(exc, self.on) or isinstance(exc, self.unless):
            return False
        return self.predicate is None or bool(self.predicate(exc))

    def _next_wait(self, exc: BaseException, retry_number: int, started: float) -> float | None:
        """Seconds to wait before retry ``retry_number``, or None to give up."""
        if retry_number >= self.attempts or not self._retryable(exc):
            return None
        wait = self.wait(retry_number)
        hint = self.retry_after(exc) if self.retry_after is not None else None
        if hint is not None:
            wait = max(wait, min(hint, self.max_retry_after))
        if self.deadline is not None and self.clock() - started + wait > self.deadline:
            return None
        if self.budget is not None and not self.budget.try_retry():
            with self._lock:
                self._denied += 1
            return None
        return wait

    def _tenacity_args(self, started: float, first_wait: float) -> dict[str, Any]:
        """A fresh tenacity configuration for one call whose first attempt has failed."""
        decided: dict[int, float | None] = {0: first_wait}

        def decide(state: tenacity.RetryCallState) -> float | None:
            # tenacity's attempt n is our attempt n + 1: its first is our first retry.
            n = state.attempt_number
            if n not in decided:
                exc = state.outcome.exception() if state.outcome else None
                decided[n] = None if exc is None else self._next_wait(exc, n + 1, started)
            return decided[n]

        def count(state: tenacity.RetryCallState) -> None:
            with self._lock:
                self._retries += 1

        return {
            "stop": lambda state: decide(state) is None,
            "wait": lambda state: decide(state) or 0.0,
            "retry": tenacity.retry_if_exception(lambda exc: True),
            "before": count,
            "reraise": True,
        }

    def _start(self) -> float:
        with self._lock:
            self._calls += 1
        if self.budget is not None:
            self.budget.record_call()
        return self.clock()

    def _finish(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self._recovered += 1
            else:
                self._exhausted += 1

    # Sync and async ----------------------------------------------------------------------

    def call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``fn``; on a retryable failure, retry it through a fresh tenacity loop."""
        started = self._start()
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            first_wait = self._next_wait(exc, 1, started)
            if first_wait is None:
                if self._retryable(exc) and self.attempts > 1:
                    self._finish(False)
                raise
        self.clock.sleep(first_wait)
        retrying = tenacity.Retrying(
            sleep=self.clock.sleep, **self._tenacity_args(started, first_wait)
        )
        try:
            result = retrying(fn, *args, **kwargs)
        except Exception:
            self._finish(False)
            raise
        self._finish(True)
        return result

    async def acall(self, fn: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)`` with the same policy (a fresh AsyncRetrying)."""
        started = self._start()
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            first_wait = self._next_wait(exc, 1, started)
            if first_wait is None:
                if self._retryable(exc) and self.attempts > 1:
                    self._finish(False)
                raise
        await self.clock.asleep(first_wait)
        retrying = tenacity.AsyncRetrying(
            sleep=self.clock.asleep, **self._tenacity_args(started, first_wait)
        )
        try:
            result: R = await retrying(fn, *args, **kwargs)
        except Exception:
            self._finish(False)
            raise
        self._finish(True)
        return result

    @overload
    def __call__(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]: ...

    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate a ``def`` or ``async def`` function."""
        return wrap_sync_or_async(fn, self.call, self.acall)

    def stats(self) -> RetryStats:
        with self._lock:
            return RetryStats(
                calls=self._calls,
                retries=self._retries,
                recovered=self._recovered,
                exhausted=self._exhausted,
                budget_denied=self._denied,
            )


def _types(types: Iterable[type[BaseException]], what: str) -> tuple[type[BaseException], ...]:
    found = tuple(types)
    bad = [t for t in found if not (isinstance(t, type) and issubclass(t, BaseException))]
    if bad:
        raise ConfigurationError(f"{what} must be exception classes, got {bad!r}")
    return found


def retry(
    attempts: int = 3,
    *,
    on: Iterable[type[BaseException]] = (Exception,),
    **options: Any,
) -> RetryPolicy:
    """A `RetryPolicy`, usable as a decorator: ``@retry(attempts=4, on=(ConnectionError,))``."""
    return RetryPolicy(attempts=attempts, on=on, **options)
