"""``@cached``: a function's results in a `TieredCache`, for ``def`` and ``async def``.

The key of a call is the function's module and qualname, a version and its arguments bound
to their names (defaults applied), sorted and encoded by type (`phoenixkit.cache.core.
call_key`); ``self``/``cls`` are left out and no object's ``repr`` is ever used: an
argument that cannot be encoded raises `InvalidKeyError` (pass ``key=`` instead). Concurrent
calls with one key run the function once (`TieredCache.get_or_set`).

```
@cached(cache, ttl=60, tags=lambda user_id: [f"user:{user_id}"])
def profile(user_id: int) -> dict: ...

profile(42); profile.invalidate(42); profile.cache_key(42); profile.stats()
await aprofile.ainvalidate(42)   # from async code
```
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ParamSpec, Protocol, TypeVar, cast

from phoenixkit._wrap import wrap_sync_or_async
from phoenixkit.cache._timeouts import check_timeouts
from phoenixkit.cache.core import MISSING, InvalidKeyError, call_key
from phoenixkit.cache.tiered import TieredCache
from phoenixkit.errors import ConfigurationError

__all__ = ["CachedFunction", "FunctionStats", "cached", "warm"]

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


@dataclass(frozen=True)
class FunctionStats:
    """Calls of a decorated function, and how many of them ran it (``loads``)."""

    calls: int
    loads: int

    @property
    def hits(self) -> int:
        return self.calls - self.loads


class CachedFunction(Protocol[P, R_co]):
    """What ``@cached`` returns: the function, plus its key, invalidation and stats."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...

    def cache_key(self, *args: P.args, **kwargs: P.kwargs) -> str: ...

    def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> None: ...

    async def ainvalidate(self, *args: P.args, **kwargs: P.kwargs) -> None: ...

    def stats(self) -> FunctionStats: ...


class _Counter:
    # Plain increments (no lock): the hit path stays cheap; a snapshot taken during a
    # concurrent call may be off by one.
    def __init__(self) -> None:
        self.calls = 0
        self.loads = 0


def cached(
    cache: TieredCache,
    ttl: float | None = None,
    *,
    tags: Callable[..., Iterable[str]] | Iterable[str] | None = None,
    key: Callable[..., str] | None = None,
    version: int | str = 1,
    condition: Callable[[Any], bool] | None = None,
    soft_timeout: float | None = None,
    hard_timeout: float | None = None,
) -> Callable[[Callable[P, R]], CachedFunction[P, R]]:
    """Cache the results of a ``def`` or ``async def`` function in ``cache``.

    ``ttl``: seconds (default: the cache's). ``tags``: tags of every result, or a callable
    taking the function's arguments and returning them. ``key``: a callable taking the
    function's arguments and returning the key (instead of the built one). ``version``:
    bump it when the function's results change shape. ``condition(result)``: store the
    result only when true (None is stored only by a cache built with ``cache_none=True``).
    ``soft_timeout`` / ``hard_timeout``: loader timeouts (default: the cache's), as for
    `TieredCache.get_or_set`.
    """
    if not isinstance(cache, TieredCache):
        raise ConfigurationError(f"@cached needs a TieredCache, got {cache!r}")
    timeouts = check_timeouts(soft_timeout, hard_timeout, cache._timeouts)

    def decorate(fn: Callable[P, R]) -> CachedFunction[P, R]:
        sig = inspect.signature(fn)
        names = list(sig.parameters)
        drop = names[0] if names and names[0] in ("self", "cls") else None
        qualname = f"{fn.__module__}.{fn.__qualname__}"
        counter = _Counter()
        # Keys of calls made only of positional str/int arguments are remembered (a bounded
        # dict): str and int never compare equal to each other, so no two calls can meet.
        memo: dict[tuple[Any, ...], str] = {}

        def built_key(*args: Any, **kwargs: Any) -> str:
            if key is not None:
                built = key(*args, **kwargs)
                if not isinstance(built, str):
                    raise InvalidKeyError(f"key= of {qualname} returned {built!r}, not a str")
                return built
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            items = [(n, v) for n, v in bound.arguments.items() if n != drop]
            return call_key(qualname, items, version)

        def key_of(*args: Any, **kwargs: Any) -> str:
            if kwargs or key is not None:
                return built_key(*args, **kwargs)
            memo_key = args[1:] if drop is not None else args
            for a in memo_key:
                if a.__class__ is not str and a.__class__ is not int:
                    return built_key(*args)
            found = memo.get(memo_key)
            if found is None:
                found = built_key(*args)
                if len(memo) >= 4096:
                    memo.clear()
                memo[memo_key] = found
            return found

        def tags_of(*args: Any, **kwargs: Any) -> Iterable[str] | Callable[[], Iterable[str]]:
            if tags is None:
                return ()
            if callable(tags):
                return lambda: tags(*args, **kwargs)  # only when the function runs
            return tags

        def counted(call: Callable[[], Any]) -> Callable[[], Any]:
            def load() -> Any:
                counter.loads += 1
                return call()

            return load

        engine = cache._e

        def call(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            counter.calls += 1
            k = key_of(*args, **kwargs)
            value, stale, due = engine.read_l1(k)
            if value is not MISSING and not due:  # the hit path: nothing else built
                return value
            return cache._after_l1(
                k, value, stale, due, counted(lambda: f(*args, **kwargs)), ttl,
                tags_of(*args, **kwargs), condition, timeouts,
            )  # fmt: skip

        async def acall(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            counter.calls += 1
            k = key_of(*args, **kwargs)
            value, stale, due = engine.read_l1(k)
            if value is not MISSING and not due:
                return value
            return await cache._aafter_l1(
                k, value, stale, due, counted(lambda: f(*args, **kwargs)), ttl,
                tags_of(*args, **kwargs), condition, timeouts,
            )  # fmt: skip

        wrapper: Any = wrap_sync_or_async(fn, call, acall)
        wrapper.cache_key = key_of

        async def ainvalidate(*args: Any, **kwargs: Any) -> None:
            await cache.adelete(key_of(*args, **kwargs))

        wrapper.invalidate = lambda *a, **kw: cache.delete(key_of(*a, **kw))
        wrapper.ainvalidate = ainvalidate
        wrapper.stats = lambda: FunctionStats(counter.calls, counter.loads)
        return cast("CachedFunction[P, R]", wrapper)

    return decorate


def warm(
    cache: TieredCache,
    keys: Iterable[str],
    loader: Callable[[str], Any],
    ttl: float | None = None,
    tags: Iterable[str] = (),
    *,
    force: bool = False,
) -> int:
    """Preload ``keys`` into ``cache`` with ``loader(key)`` (see `TieredCache.warm`)."""
    return cache.warm(keys, loader, ttl, tags, force=force)
