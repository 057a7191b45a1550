"""`get_or_set` for `TieredCache`: read-through with one loader per key.

In a process, concurrent callers of one key share one loader call (`SingleFlight` for
threads, `AsyncSingleFlight` for tasks). Across processes, with ``lock_lease=`` seconds, the
first process to take a short Redis lock (``SET NX PX``, released only with its token) runs
the loader; the others poll L2 until the value appears or the lease runs out, and then load
themselves. The lease must be longer than the loader takes, or two processes compute.

Tag markers are read before the loader runs, so an invalidation that happens while the value
is being computed makes the new entry stale at once rather than hiding the invalidation.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from phoenixkit.cache.core import MISSING, STALE, Entry
from phoenixkit.cache.singleflight import AsyncSingleFlight, SingleFlight

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from phoenixkit.cache._engine import CacheEngine, Judged
    from phoenixkit.cache.redis import RedisTier

__all__ = ["Loading"]

logger = logging.getLogger("phoenixkit.cache")

_POLL = 0.02  # seconds between L2 polls while another process holds the lock


class Loading:
    """The loading half of `TieredCache` (a mixin; see the module docstring)."""

    if TYPE_CHECKING:  # provided by TieredCache
        _e: CacheEngine
        l2: RedisTier | None
        namespace: str

        def _fetch(self, keys: Sequence[str]) -> list[Judged] | None: ...
        async def _afetch(self, keys: Sequence[str]) -> list[Judged] | None: ...
        def _markers(self, tags: Sequence[str], ttl: float) -> list[str] | None: ...
        async def _amarkers(self, tags: Sequence[str], ttl: float) -> list[str] | None: ...
        def _build(
            self,
            mapping: Mapping[str, Any],
            ttl: float,
            tags: Sequence[str],
            markers: Sequence[str] | None,
            delta: float = 0.0,
        ) -> list[tuple[str, Entry, tuple[str, bytes, int] | None]]: ...
        def _store(self, built: list[tuple[str, Entry, tuple[str, bytes, int] | None]]) -> None: ...
        async def _astore(
            self, built: list[tuple[str, Entry, tuple[str, bytes, int] | None]]
        ) -> None: ...

    def __init__(self) -> None:
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
    ) -> Any:
        """The value under ``key``, loaded with ``loader()`` and stored on a miss.

        ``tags`` may be a callable returning them, called only when the loader runs.

        Concurrent callers of one key share one ``loader`` call. When the loader raises and
        a stale value is within ``fail_safe_ttl``, the stale value is served (and counted).
        ``cache_if(value)`` decides whether a loaded value is stored (None never is, unless
        the cache was built with ``cache_none=True``).
        """
        value, stale, due = self._e.read_l1(key)
        return self._after_l1(key, value, stale, due, loader, ttl, tags, cache_if)

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
    ) -> Any:
        """`get_or_set` once L1 answered (``value``: MISSING on a miss)."""
        if value is not MISSING:
            if due:
                self._refresh_later(key, loader, ttl, tags, cache_if)
            return value
        names = self._e.tags_of(tags)
        result, _ = self._flight.do(
            key, lambda: self._load(key, loader, ttl, names, cache_if, stale)
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
    ) -> Any:
        """Async twin of `get_or_set`; ``loader`` may be sync or async."""
        value, stale, due = self._e.read_l1(key)
        return await self._aafter_l1(key, value, stale, due, loader, ttl, tags, cache_if)

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
    ) -> Any:
        """`aget_or_set` once L1 answered (``value``: MISSING on a miss)."""
        if value is not MISSING:
            if due:
                self._arefresh_later(key, loader, ttl, tags, cache_if)
            return value
        names = self._e.tags_of(tags)
        result, _ = await self._aflight.do(
            key, lambda: self._aload(key, loader, ttl, names, cache_if, stale)
        )
        return result

    # The leader's work -----------------------------------------------------------------

    def _l2_hit(self, key: str, judged: list[Judged] | None) -> tuple[Any, Entry | None]:
        """(fresh L2 value or MISSING, a stale L2 entry for fail-safe); counts the lookup."""
        stale = None
        if judged is not None and judged[0] is not None and judged[0][1] == STALE:
            stale, judged = judged[0][0], [None]
        return self._e.finish_get(key, judged, None), stale

    def _load(
        self,
        key: str,
        loader: Callable[[], Any],
        ttl: float | None,
        tags: tuple[str, ...],
        cache_if: Callable[[Any], bool] | None,
        stale: Entry | None,
    ) -> Any:
        value, l2_stale = self._l2_hit(key, self._fetch([key]))
        if value is not MISSING:
            return value
        stale = stale or l2_stale
        e, l2 = self._e, self.l2
        if e.lock_lease is None or l2 is None or not e.l2_usable():
            return self._run(key, loader, ttl, tags, cache_if, stale)
        lock, token, lease = e.keys.lock(key), e.token(), math.ceil(e.lock_lease * 1000)
        try:
            held = l2.acquire(lock, token, lease)
        except e.errors:
            held = False
        if not held:
            deadline = e.clock() + e.lock_lease
            while e.clock() < deadline:
                e.clock.sleep(_POLL)
                judged = self._fetch([key])
                if judged is None:
                    break
                if judged[0] is not None and judged[0][1] != STALE:
                    return self._l2_hit(key, judged)[0]
            return self._run(key, loader, ttl, tags, cache_if, stale)
        try:
            found, _ = self._l2_hit(key, self._fetch([key]))  # loaded while we waited?
            if found is not MISSING:
                return found
            return self._run(key, loader, ttl, tags, cache_if, stale)
        finally:
            try:
                l2.release(lock, token)
            except e.errors as exc:
                logger.debug("cache lock release failed: %s", exc)

    async def _aload(
        self,
        key: str,
        loader: Callable[[], Any],
        ttl: float | None,
        tags: tuple[str, ...],
        cache_if: Callable[[Any], bool] | None,
        stale: Entry | None,
    ) -> Any:
        value, l2_stale = self._l2_hit(key, await self._afetch([key]))
        if value is not MISSING:
            return value
        stale = stale or l2_stale
        e, l2 = self._e, self.l2
        if e.lock_lease is None or l2 is None or not e.l2_usable():
            return await self._arun(key, loader, ttl, tags, cache_if, stale)
        lock, token, lease = e.keys.lock(key), e.token(), math.ceil(e.lock_lease * 1000)
        try:
            held = await l2.aacquire(lock, token, lease)
        except e.errors:
            held = False
        if not held:
            deadline = e.clock() + e.lock_lease
            while e.clock() < deadline:
                await e.clock.asleep(_POLL)
                judged = await self._afetch([key])
                if judged is None:
                    break
                if judged[0] is not None and judged[0][1] != STALE:
                    return self._l2_hit(key, judged)[0]
            return await self._arun(key, loader, ttl, tags, cache_if, stale)
        try:
            found, _ = self._l2_hit(key, await self._afetch([key]))
            if found is not MISSING:
                return found
            return await self._arun(key, loader, ttl, tags, cache_if, stale)
        finally:
            try:
                await l2.arelease(lock, token)
            except e.errors as exc:
                logger.debug("cache lock release failed: %s", exc)

    def _run(
        self,
        key: str,
        loader: Callable[[], Any],
        ttl: float | None,
        tags: tuple[str, ...],
        cache_if: Callable[[Any], bool] | None,
        stale: Entry | None,
    ) -> Any:
        ttl_s = self._e.ttl_of(ttl)
        markers = self._markers(tags, ttl_s)
        began = self._e.clock()
        try:
            value = loader()
        except Exception as exc:
            return self._loader_failed(key, exc, stale)
        delta = self._loaded(began)
        if self._e.should_cache(value, cache_if):
            self._store(self._build({key: value}, ttl_s, tags, markers, delta))
        return value

    async def _arun(
        self,
        key: str,
        loader: Callable[[], Any],
        ttl: float | None,
        tags: tuple[str, ...],
        cache_if: Callable[[Any], bool] | None,
        stale: Entry | None,
    ) -> Any:
        ttl_s = self._e.ttl_of(ttl)
        markers = await self._amarkers(tags, ttl_s)
        began = self._e.clock()
        try:
            value = loader()
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:
            return self._loader_failed(key, exc, stale)
        delta = self._loaded(began)
        if self._e.should_cache(value, cache_if):
            await self._astore(self._build({key: value}, ttl_s, tags, markers, delta))
        return value

    def _loaded(self, began: float) -> float:
        delta = self._e.clock() - began  # the cache's clock: XFetch scales by it
        loader = self._e.stats.loader
        loader.hits += 1
        loader.samples.append(delta)
        return delta

    def _loader_failed(self, key: str, exc: Exception, stale: Entry | None) -> Any:
        stats = self._e.stats
        stats.loader.errors += 1
        if stale is None:
            raise exc
        stats.stale_served += 1
        logger.warning(
            "cache %s: loader for %r failed (%s: %s); serving a stale value",
            self.namespace, key[:100], type(exc).__name__, exc,
        )  # fmt: skip
        return stale.value

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
