"""Running a loader for `TieredCache`: call it, store its value, fail safe, time it out.

The leader of a key (see `phoenixkit.cache._loading`) ends here. `_run` calls the loader
and stores its value; when it raises and a stale value is at hand, the stale value is served
(fail-safe). With a soft or hard timeout (`phoenixkit.cache._timeouts`) the loader runs on a
worker thread (or in a task of its own) and the caller stops waiting at the timeout, while
the loader goes on and stores its value when done.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from phoenixkit.cache._timeouts import NO_TIMEOUTS, LoaderTimeoutError, Timeouts, timeout_for
from phoenixkit.cache.core import Entry

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from phoenixkit.cache._engine import CacheEngine

__all__ = ["Running"]

logger = logging.getLogger("phoenixkit.cache")


class _Outcome:
    __slots__ = ("abandoned", "done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        self.abandoned = False


class Running:
    """The loader-running half of `TieredCache` (a mixin; see the module docstring)."""

    if TYPE_CHECKING:  # provided by TieredCache
        _e: CacheEngine
        namespace: str
        _tasks: set[asyncio.Future[Any]]

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

    def _run(
        self,
        key: str,
        loader: Callable[[], Any],
        ttl: float | None,
        tags: tuple[str, ...],
        cache_if: Callable[[Any], bool] | None,
        stale: Entry | None,
        timeouts: Timeouts = NO_TIMEOUTS,
    ) -> Any:
        """Run the loader and store its value; with a timeout, on a worker thread."""
        wait = timeout_for(timeouts, stale is not None)
        if wait is None:
            return self._complete(key, loader, ttl, tags, cache_if, stale)
        box = _Outcome()

        def work() -> None:
            try:
                box.value = self._complete(key, loader, ttl, tags, cache_if, stale)
            except BaseException as exc:
                box.error = exc
                if box.abandoned:
                    self._background_failed(key, exc)
            finally:
                box.done.set()

        threading.Thread(target=work, name="phoenixkit-cache-load", daemon=True).start()
        if not box.done.wait(wait):
            box.abandoned = True
            if not box.done.is_set():
                return self._timed_out(key, stale, wait)
        if box.error is not None:
            raise box.error
        return box.value

    def _complete(
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
        timeouts: Timeouts = NO_TIMEOUTS,
    ) -> Any:
        wait = timeout_for(timeouts, stale is not None)
        if wait is None:
            return await self._acomplete(key, loader, ttl, tags, cache_if, stale)
        task = asyncio.ensure_future(self._acomplete(key, loader, ttl, tags, cache_if, stale))
        self._tasks.add(task)
        abandoned: list[bool] = []

        def done(t: asyncio.Future[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None and abandoned:
                self._background_failed(key, t.exception())

        task.add_done_callback(done)
        try:
            return await asyncio.wait_for(asyncio.shield(task), wait)
        except asyncio.TimeoutError:
            abandoned.append(True)
            return self._timed_out(key, stale, wait)

    async def _acomplete(
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

    def _timed_out(self, key: str, stale: Entry | None, wait: float) -> Any:
        """The loader ran past ``wait`` seconds: serve ``stale`` or raise; it goes on."""
        stats = self._e.stats
        stats.load_timeouts += 1
        if stale is not None:
            stats.stale_served += 1
            logger.info(
                "cache %s: loader for %r still running after %g s; serving a stale value, "
                "refreshing in the background", self.namespace, key[:100], wait,
            )  # fmt: skip
            return stale.value
        raise LoaderTimeoutError(
            f"cache {self.namespace!r}: the loader for key {key[:100]!r} ran past "
            f"hard_timeout={wait:g} s and no stale value was at hand; it goes on in the "
            "background and stores its value when done"
        )

    def _background_failed(self, key: str, exc: BaseException | None) -> None:
        logger.warning("cache %s: loader for %r failed after its caller timed out: %s",
                       self.namespace, key[:100], exc)  # fmt: skip

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
