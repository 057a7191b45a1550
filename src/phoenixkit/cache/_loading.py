"""`get_or_set` for `TieredCache`: read-through with one loader per key.

In a process, concurrent callers of one key share one loader call (`SingleFlight` for
threads, `AsyncSingleFlight` for tasks). Across processes, with ``lock_lease=`` seconds, the
first process to take a short Redis lock (``SET NX PX``, released only with its token) runs
the loader and renews the lease while the loader runs (`LeaseKeeper`); the others poll L2
until the value appears, for as long as the lock is held, and load themselves once it is
free without a value (its holder died, or L2 failed).

Tag markers are read before the loader runs, so an invalidation that happens while the value
is being computed makes the new entry stale at once rather than hiding the invalidation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from phoenixkit.cache._lease import LeaseKeeper, akeep_lease
from phoenixkit.cache._running import Running
from phoenixkit.cache._timeouts import (
    NO_TIMEOUTS,
    Timeouts,
    check_timeouts,
)
from phoenixkit.cache.core import MISSING, STALE, Entry
from phoenixkit.cache.singleflight import AsyncSingleFlight, SingleFlight

if TYPE_CHECKING:
    from collections.abc import Sequence

    from phoenixkit.cache._engine import CacheEngine, Judged
    from phoenixkit.cache.redis import RedisTier

__all__ = ["Loading"]

logger = logging.getLogger("phoenixkit.cache")

_POLL = 0.02  # seconds between L2 polls while another process holds the lock


class Loading(Running):
    """The loading half of `TieredCache` (a mixin; see the module docstring)."""

    if TYPE_CHECKING:  # provided by TieredCache
        _e: CacheEngine
        l2: RedisTier | None
        namespace: str

        def _fetch(self, keys: Sequence[str]) -> tuple[list[Judged] | None, int]: ...
        async def _afetch(self, keys: Sequence[str]) -> tuple[list[Judged] | None, int]: ...

    def __init__(self, timeouts: Timeouts = NO_TIMEOUTS) -> None:
        self._timeouts = timeouts
        self._flight = SingleFlight()
        self._aflight = AsyncSingleFlight()
        self._refreshing: set[str] = set()
        self._tasks: set[asyncio.Future[Any]] = set()

    def get_or_set(
        self,
        key: str,
        loader: Callable[[], Any],
        ttl: float | None = None,
        tags: Iterable[str] | Callable[[], Iterable[str]] = (),
        *,
        cache_if: Callable[[Any], bool] | None = None,
        soft_timeout: float | None = None,
        hard_timeout: float | None = None,
    ) -> Any:
        """The value under ``key``, loaded with ``loader()`` and stored on a miss.

        ``tags`` may be a callable returning them, called only when the loader runs.

        Concurrent callers of one key share one ``loader`` call. When the loader raises and
        a stale value is within ``fail_safe_ttl``, the stale value is served (and counted).
        ``cache_if(value)`` decides whether a loaded value is stored (None never is, unless
        the cache was built with ``cache_none=True``).

        ``soft_timeout`` / ``hard_timeout`` (seconds; default: the cache's) bound the wait for
        the loader: see `phoenixkit.cache._timeouts` and docs/cache.md.
        """
        timeouts = self._timeouts
        if soft_timeout is not None or hard_timeout is not None:
            timeouts = check_timeouts(soft_timeout, hard_timeout, timeouts)
        value, stale, due = self._e.read_l1(key)
        return self._after_l1(key, value, stale, due, loader, ttl, tags, cache_if, timeouts)

    def _after_l1(
        self,
        key: str,
        value: Any,
        stale: Entry | None,
        due: bool,
        loader: Callable[[], Any],
        ttl: float | None,
        tags: Iterable[str] | Callable[[], Iterable[str]],
        cache_if: Callable[[Any], bool] | None,
        timeouts: Timeouts = NO_TIMEOUTS,
    ) -> Any:
        """`get_or_set` once L1 answered (``value``: MISSING on a miss)."""
        if value is not MISSING:
            if due:
                self._refresh_later(key, loader, ttl, tags, cache_if)
            return value
        names = self._e.tags_of(tags)
        result, _ = self._flight.do(
            key, lambda: self._load(key, loader, ttl, names, cache_if, stale, timeouts)
        )
        return result

    async def aget_or_set(
        self,
        key: str,
        loader: Callable[[], Any],
        ttl: float | None = None,
        tags: Iterable[str] | Callable[[], Iterable[str]] = (),
        *,
        cache_if: Callable[[Any], bool] | None = None,
        soft_timeout: float | None = None,
        hard_timeout: float | None = None,
    ) -> Any:
        """Async twin of `get_or_set`; ``loader`` may be sync or async."""
        timeouts = self._timeouts
        if soft_timeout is not None or hard_timeout is not None:
            timeouts = check_timeouts(soft_timeout, hard_timeout, timeouts)
        value, stale, due = self._e.read_l1(key)
        return await self._aafter_l1(key, value, stale, due, loader, ttl, tags, cache_if, timeouts)

    async def _aafter_l1(
        self,
        key: str,
        value: Any,
        stale: Entry | None,
        due: bool,
        loader: Callable[[], Any],
        ttl: float | None,
        tags: Iterable[str] | Callable[[], Iterable[str]],
        cache_if: Callable[[Any], bool] | None,
        timeouts: Timeouts = NO_TIMEOUTS,
    ) -> Any:
        """`aget_or_set` once L1 answered (``value``: MISSING on a miss)."""
        if value is not MISSING:
            if due:
                self._arefresh_later(key, loader, ttl, tags, cache_if)
            return value
        names = self._e.tags_of(tags)
        result, _ = await self._aflight.do(
            key, lambda: self._aload(key, loader, ttl, names, cache_if, stale, timeouts)
        )
        return result

    # The leader's work -----------------------------------------------------------------

    def _l2_hit(
        self, key: str, fetched: tuple[list[Judged] | None, int]
    ) -> tuple[Any, Entry | None]:
        """(fresh L2 value or MISSING, a stale L2 entry for fail-safe); counts the lookup.

        ``fetched``: what `_fetch` returned (the judged entries and the L1 generation).
        """
        judged, since = fetched
        stale = None
        if judged is not None and judged[0] is not None and judged[0][1] == STALE:
            stale, judged = judged[0][0], [None]
        return self._e.finish_get(key, judged, None, since), stale

    def _load(
        self,
        key: str,
        loader: Callable[[], Any],
        ttl: float | None,
        tags: tuple[str, ...],
        cache_if: Callable[[Any], bool] | None,
        stale: Entry | None,
        timeouts: Timeouts = NO_TIMEOUTS,
    ) -> Any:
        value, l2_stale = self._l2_hit(key, self._fetch([key]))
        if value is not MISSING:
            return value
        stale = stale or l2_stale
        e, l2 = self._e, self.l2
        if e.lock_lease is None or l2 is None or not e.l2_usable():
            return self._run(key, loader, ttl, tags, cache_if, stale, timeouts)
        lock, token, lease = e.keys.lock(key), e.token(), math.ceil(e.lock_lease * 1000)
        held = self._acquire(lock, token, lease)
        while held is False:  # another process loads: wait for as long as it holds the lock
            deadline = e.clock() + e.lock_lease
            while e.clock() < deadline:
                e.clock.sleep(_POLL)
                fetched = self._fetch([key])
                judged = fetched[0]
                if judged is None:
                    return self._run(key, loader, ttl, tags, cache_if, stale, timeouts)
                if judged[0] is not None and judged[0][1] != STALE:
                    return self._l2_hit(key, fetched)[0]
            held = self._acquire(lock, token, lease)  # free once its holder is done or dead
        if held is None:  # L2 failed: load here
            return self._run(key, loader, ttl, tags, cache_if, stale, timeouts)
        keeper = LeaseKeeper(e, l2, lock, token, lease).start()
        try:
            found, _ = self._l2_hit(key, self._fetch([key]))  # loaded while we waited?
            if found is not MISSING:
                return found
            return self._run(key, loader, ttl, tags, cache_if, stale, timeouts)
        finally:
            keeper.stop()
            try:
                l2.release(lock, token)
            except e.errors as exc:
                logger.debug("cache lock release failed: %s", exc)

    def _acquire(self, lock: str, token: str, lease: int) -> bool | None:
        """Take the loader lock: True, False (held elsewhere) or None (L2 failed)."""
        assert self.l2 is not None
        try:
            return self.l2.acquire(lock, token, lease)
        except self._e.errors:
            return None

    async def _aacquire(self, lock: str, token: str, lease: int) -> bool | None:
        assert self.l2 is not None
        try:
            return await self.l2.aacquire(lock, token, lease)
        except self._e.errors:
            return None

    async def _aload(
        self,
        key: str,
        loader: Callable[[], Any],
        ttl: float | None,
        tags: tuple[str, ...],
        cache_if: Callable[[Any], bool] | None,
        stale: Entry | None,
        timeouts: Timeouts = NO_TIMEOUTS,
    ) -> Any:
        value, l2_stale = self._l2_hit(key, await self._afetch([key]))
        if value is not MISSING:
            return value
        stale = stale or l2_stale
        e, l2 = self._e, self.l2
        if e.lock_lease is None or l2 is None or not e.l2_usable():
            return await self._arun(key, loader, ttl, tags, cache_if, stale, timeouts)
        lock, token, lease = e.keys.lock(key), e.token(), math.ceil(e.lock_lease * 1000)
        held = await self._aacquire(lock, token, lease)
        while held is False:
            deadline = e.clock() + e.lock_lease
            while e.clock() < deadline:
                await e.clock.asleep(_POLL)
                fetched = await self._afetch([key])
                judged = fetched[0]
                if judged is None:
                    return await self._arun(key, loader, ttl, tags, cache_if, stale, timeouts)
                if judged[0] is not None and judged[0][1] != STALE:
                    return self._l2_hit(key, fetched)[0]
            held = await self._aacquire(lock, token, lease)
        if held is None:
            return await self._arun(key, loader, ttl, tags, cache_if, stale, timeouts)
        keeper = asyncio.ensure_future(akeep_lease(e, l2, lock, token, lease))
        try:
            found, _ = self._l2_hit(key, await self._afetch([key]))
            if found is not MISSING:
                return found
            return await self._arun(key, loader, ttl, tags, cache_if, stale, timeouts)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            try:
                await l2.arelease(lock, token)
            except e.errors as exc:
                logger.debug("cache lock release failed: %s", exc)

    # Early refresh in the background ---------------------------------------------------

    def _refresh_later(
        self,
        key: str,
        loader: Callable[[], Any],
        ttl: float | None,
        tags: Iterable[str] | Callable[[], Iterable[str]],
        cache_if: Callable[[Any], bool] | None,
    ) -> None:
        if key in self._refreshing:
            return
        self._refreshing.add(key)
        names = self._e.tags_of(tags)

        def refresh() -> None:
            try:
                self._flight.do(key, lambda: self._run(key, loader, ttl, names, cache_if, None))
            except Exception as exc:
                logger.warning("cache %s: background refresh of %r failed: %s",
                               self.namespace, key[:100], exc)  # fmt: skip
            finally:
                self._refreshing.discard(key)

        threading.Thread(target=refresh, name="phoenixkit-cache-refresh", daemon=True).start()

    def _arefresh_later(
        self,
        key: str,
        loader: Callable[[], Any],
        ttl: float | None,
        tags: Iterable[str] | Callable[[], Iterable[str]],
        cache_if: Callable[[Any], bool] | None,
    ) -> None:
        if key in self._refreshing:
            return
        self._refreshing.add(key)
        names = self._e.tags_of(tags)
        task = asyncio.ensure_future(
            self._aflight.do(key, lambda: self._arun(key, loader, ttl, names, cache_if, None))
        )
        self._tasks.add(task)

        def done(t: asyncio.Future[Any]) -> None:
            self._tasks.discard(t)
            self._refreshing.discard(key)
            if not t.cancelled() and t.exception() is not None:
                logger.warning("cache %s: background refresh of %r failed: %s",
                               self.namespace, key[:100], t.exception())  # fmt: skip

        task.add_done_callback(done)
