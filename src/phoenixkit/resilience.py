"""A resilience pipeline: fallback, retry, rate limit, breaker and timeout in one decorator.

```
@resilient(timeout=2.0, breaker=CircuitBreaker("pricing"), retry=RetryPolicy(attempts=3),
           rate_limit=RateLimiter("50/second"), fallback=lambda exc: cached_price())
async def price(sku: str) -> Price: ...
```

The order is fixed, from the outside in, as Polly and resilience4j recommend::

    fallback( retry( rate limit( breaker( timeout( your function ) ) ) ) )

- **timeout** is innermost: each attempt gets its own time limit, and a timed-out attempt
  counts as a failure in the breaker (`asyncio.timeout` for ``async def``; for ``def`` the
  call runs in a worker thread and is abandoned, not stopped, when its time is up).
- **breaker** sees every attempt, so a failing dependency opens it quickly; while it is open,
  attempts fail at once with `CircuitOpenError`, whose ``retry_after`` the retry honours.
- **rate limit** spends one hit of the limiter (``rate_limit_key``: a string, or a
  function of the call's arguments) per attempt, retries included, so retries cannot push
  the dependency past its rate. A denied attempt raises
  `~phoenixkit.ratelimit.RateLimitExceeded` before the breaker sees it: our own throttling
  is not the dependency's failure. Its ``retry_after`` is honoured by the retry.
- **retry** retries attempts that failed for a passing reason, within its attempts,
  deadline and budget.
- **fallback** is outermost: when everything above failed, it turns the last exception
  into a value (a cached one, a default) or re-raises.

Every stage is optional. Sync and async share the stages' own logic; this module only
nests them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import math
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, ParamSpec, TypeVar

from phoenixkit._wrap import wrap_sync_or_async
from phoenixkit.breaker import CircuitBreaker
from phoenixkit.errors import ConfigurationError
from phoenixkit.retry import RetryPolicy

__all__ = ["Pipeline", "resilient"]

P = ParamSpec("P")
R = TypeVar("R")

_EXECUTOR_LOCK = threading.Lock()
_EXECUTOR: concurrent.futures.ThreadPoolExecutor | None = None


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    global _EXECUTOR
    with _EXECUTOR_LOCK:
        if _EXECUTOR is None:
            _EXECUTOR = concurrent.futures.ThreadPoolExecutor(
                max_workers=32, thread_name_prefix="phoenixkit-timeout"
            )
        return _EXECUTOR


class Pipeline:
    """The stages, applied in the documented order by `call`, `acall` and as a decorator.

    ``fallback(exc)`` receives the final exception when it is one of ``fallback_on`` and
    returns the value to use instead (for ``async def`` it may also be a coroutine
    function).
    """

    def __init__(
        self,
        *,
        timeout: float | None = None,
        breaker: CircuitBreaker | None = None,
        retry: RetryPolicy | None = None,
        rate_limit: Any = None,
        rate_limit_key: str | Callable[..., str] = "default",
        fallback: Callable[[BaseException], Any] | None = None,
        fallback_on: Iterable[type[BaseException]] = (Exception,),
    ) -> None:
        if rate_limit is not None and not (
            callable(getattr(rate_limit, "hit", None))
            and callable(getattr(rate_limit, "ahit", None))
        ):
            raise ConfigurationError(
                "rate_limit must be a rate limiter (hit/ahit, e.g. RateLimiter), "
                f"got {rate_limit!r}"
            )
        if not (isinstance(rate_limit_key, str) or callable(rate_limit_key)):
            raise ConfigurationError(
                f"rate_limit_key must be a str or a function of the call's arguments, "
                f"got {rate_limit_key!r}"
            )
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not 0 < timeout < math.inf
        ):
            raise ConfigurationError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        if breaker is not None and not isinstance(breaker, CircuitBreaker):
            raise ConfigurationError(f"breaker must be a CircuitBreaker, got {breaker!r}")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ConfigurationError(f"retry must be a RetryPolicy, got {retry!r}")
        if fallback is not None and not callable(fallback):
            raise ConfigurationError(f"fallback must be callable, got {fallback!r}")
        self.timeout = timeout
        self.breaker = breaker
        self.retry = retry
        self.rate_limit = rate_limit
        self.rate_limit_key = rate_limit_key
        self.fallback = fallback
        self.fallback_on = tuple(fallback_on)

    # sync ---------------------------------------------------------------------------------

    def _timed(self, fn: Callable[..., R], args: Any, kwargs: Any) -> R:
        if self.timeout is None:
            return fn(*args, **kwargs)
        future = _executor().submit(fn, *args, **kwargs)
        try:
            return future.result(timeout=self.timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"{_name(fn)} took longer than {self.timeout} s") from None

    def _key(self, args: Any, kwargs: Any) -> str:
        key = self.rate_limit_key
        return key if isinstance(key, str) else key(*args, **kwargs)

    def _limited(self, attempt: Callable[..., R], args: Any, kwargs: Any) -> R:
        key = self._key(args, kwargs)
        decision = self.rate_limit.hit(key)
        if not decision.allowed:
            raise _exceeded(key, decision)
        return attempt(args, kwargs)

    def call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``fn`` through every configured stage."""
        attempt: Callable[..., R] = functools.partial(self._timed, fn)
        if self.breaker is not None:
            attempt = functools.partial(self.breaker.call, attempt)
        if self.rate_limit is not None:
            attempt = functools.partial(self._limited, attempt)
        try:
            if self.retry is not None:
                return self.retry.call(attempt, args, kwargs)
            return attempt(args, kwargs)
        except self.fallback_on as exc:
            if self.fallback is None:
                raise
            result: R = self.fallback(exc)
            return result

    # async --------------------------------------------------------------------------------

    async def _atimed(self, fn: Callable[..., Awaitable[R]], args: Any, kwargs: Any) -> R:
        if self.timeout is None:
            return await fn(*args, **kwargs)
        try:
            return await asyncio.wait_for(fn(*args, **kwargs), self.timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"{_name(fn)} took longer than {self.timeout} s") from None

    async def _alimited(self, attempt: Callable[..., Awaitable[R]], args: Any, kwargs: Any) -> R:
        key = self._key(args, kwargs)
        decision = await self.rate_limit.ahit(key)
        if not decision.allowed:
            raise _exceeded(key, decision)
        return await attempt(args, kwargs)

    async def acall(self, fn: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn`` through every configured stage."""
        attempt: Callable[..., Awaitable[R]] = functools.partial(self._atimed, fn)
        if self.breaker is not None:
            attempt = functools.partial(self.breaker.acall, attempt)
        if self.rate_limit is not None:
            attempt = functools.partial(self._alimited, attempt)
        try:
            if self.retry is not None:
                return await self.retry.acall(attempt, args, kwargs)
            return await attempt(args, kwargs)
        except self.fallback_on as exc:
            if self.fallback is None:
                raise
            value = self.fallback(exc)
            if inspect.isawaitable(value):
                value = await value
            result: R = value
            return result

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate a ``def`` or ``async def`` function."""
        return wrap_sync_or_async(fn, self.call, self.acall)


def _exceeded(key: str, decision: Any) -> Exception:
    from phoenixkit.ratelimit import RateLimitExceeded

    return RateLimitExceeded(key, decision)


def _name(fn: Any) -> str:
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn))


def resilient(
    *,
    timeout: float | None = None,
    breaker: CircuitBreaker | None = None,
    retry: RetryPolicy | None = None,
    rate_limit: Any = None,
    rate_limit_key: str | Callable[..., str] = "default",
    fallback: Callable[[BaseException], Any] | None = None,
    fallback_on: Iterable[type[BaseException]] = (Exception,),
) -> Pipeline:
    """A `Pipeline` to use as a decorator: ``@resilient(timeout=2, breaker=br, retry=p)``."""
    return Pipeline(
        timeout=timeout,
        breaker=breaker,
        retry=retry,
        rate_limit=rate_limit,
        rate_limit_key=rate_limit_key,
        fallback=fallback,
        fallback_on=fallback_on,
    )
