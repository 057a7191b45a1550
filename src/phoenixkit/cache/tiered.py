"""`TieredCache`: L1 (memory) in front of L2 (Redis), for sync and async callers.

Reads go L1 -> L2 (a fresh L2 hit is promoted into L1); writes go to both (write-through)
and tell the other instances to drop their L1 copies. `get_or_set` runs the loader once per
key per process under concurrency (threads and tasks), optionally once across processes with
a Redis lock (``lock_lease=``), refreshes early in the background (XFetch ``beta=`` or
``refresh_ahead=``) and, when the loader or L2 fails, serves a stale value for up to
``fail_safe_ttl`` seconds after expiry. Every step but the I/O is `CacheEngine`'s, shared by
both paths; the async methods (``aget``, ``aset``...) differ from the sync ones only by
``await``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from phoenixkit._clock import Clock
from phoenixkit.cache._engine import CacheEngine, Judged
from phoenixkit.cache._loading import Loading
from phoenixkit.cache._warming import Warming
from phoenixkit.cache.core import MISSING, Entry, check_key
from phoenixkit.cache.invalidation import InvalidationListener
from phoenixkit.cache.memory import MemoryTier
from phoenixkit.cache.stats import CacheStats
from phoenixkit.errors import ConfigurationError

__all__ = ["TieredCache"]


class TieredCache(Loading, Warming):
    """A cache of L1 (`MemoryTier`) and, optionally, L2 (`RedisTier`, or a Redis URL).

    ``l2`` may be None or a ``memory://`` URL (L1 only). ``ttl`` is the default freshness
    (seconds); ``fail_safe_ttl`` how long past expiry a stale value may still be served when
    the loader or L2 fails; ``jitter`` shortens each TTL by up to that fraction. Keys live
    under ``namespace`` and ``version`` (bump the version to drop every entry of a release).
    ``invalidation`` (default: on when there is an L2) broadcasts writes to other instances.
    ``on_l2_error``: ``"degrade"`` (serve from L1 / loader, count and log) or ``"raise"``.
    """

    def __init__(
        self,
        l1: MemoryTier | None = None,
        l2: Any = None,
        *,
        namespace: str = "default",
        version: int | str = 1,
        ttl: float = 300.0,
        fail_safe_ttl: float = 0.0,
        jitter: float = 0.0,
        beta: float = 0.0,
        refresh_ahead: float | None = None,
        cache_none: bool = False,
        max_value_size: int = 8 * 1024 * 1024,
        on_l2_error: str = "degrade",
        retry_interval: float = 1.0,
        lock_lease: float | None = None,
        invalidation: bool | None = None,
        clock: Clock | None = None,
        wall: Callable[[], float] | None = None,
        rand: Callable[[], float] | None = None,
    ) -> None:
        self._e = e = CacheEngine(
            l1, l2, namespace=namespace, version=version, ttl=ttl, fail_safe_ttl=fail_safe_ttl,
            jitter=jitter, beta=beta, refresh_ahead=refresh_ahead, cache_none=cache_none,
            max_value_size=max_value_size, on_l2_error=on_l2_error,
            retry_interval=retry_interval, lock_lease=lock_lease, clock=clock, wall=wall,
            rand=rand,
        )  # fmt: skip
        super().__init__()
        self.l1, self.l2, self.namespace = e.l1, e.l2, e.namespace
        self._channel = e.keys.channel()
        self._listener: InvalidationListener | None = None
        if invalidation is None:
            invalidation = self.l2 is not None
        if invalidation:
            if self.l2 is None:
                raise ConfigurationError("invalidation across instances needs an L2 (Redis)")
            try:
                client = self.l2.backend.client
            except ConfigurationError as exc:
                raise ConfigurationError(
                    f"{exc}; the invalidation listener needs a sync client "
                    "(or pass invalidation=False)"
                ) from None
            self._listener = InvalidationListener(
                client, self._channel, e.instance, e.apply, e.flush, e.errors
            ).start()

    # Reads -----------------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        """The value under ``key``, or ``default`` on a miss (a cached None is a hit)."""
        value, stale, _ = self._e.read_l1(key)
        if value is not MISSING:
            return value
        value = self._e.finish_get(key, self._fetch([key]), stale)
        return default if value is MISSING else value

    async def aget(self, key: str, default: Any = None) -> Any:
        value, stale, _ = self._e.read_l1(key)
        if value is not MISSING:
            return value
        value = self._e.finish_get(key, await self._afetch([key]), stale)
        return default if value is MISSING else value

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The values found for ``keys`` (misses are left out); L2 in one round trip."""
        found, missed, stale = self._many_l1(keys)
        if missed:
            self._e.finish_many(missed, self._fetch(missed), stale, found)
        return found

    async def aget_many(self, keys: Iterable[str]) -> dict[str, Any]:
        found, missed, stale = self._many_l1(keys)
        if missed:
            self._e.finish_many(missed, await self._afetch(missed), stale, found)
        return found

    def _many_l1(self, keys: Iterable[str]) -> tuple[dict[str, Any], list[str], dict[str, Entry]]:
        found: dict[str, Any] = {}
        missed: list[str] = []
        stale: dict[str, Entry] = {}
        e = self._e
        unique = [k if k.__class__ is str else check_key(k) for k in dict.fromkeys(keys)]
        now = e.clock()
        for key, entry in zip(unique, e.l1.get_many(unique), strict=True):
            value, old, _ = e.judge_l1(entry, now)
            if value is MISSING:
                missed.append(key)
                if old is not None:
                    stale[key] = old
            else:
                found[key] = value
        return found, missed, stale

    def _fetch(self, keys: Sequence[str]) -> list[Judged] | None:
        """L2's judged entries for ``keys``, or None when L2 failed or is being skipped."""
        e, l2 = self._e, self.l2
        if l2 is None or (e.stats.degraded and not e.l2_usable()):
            return None
        began = time.perf_counter()
        try:
            entries = e.decode(l2.get_many([e.keys.key(k) for k in keys]))
            tag_keys = e.tag_keys(entries)
            markers = l2.markers(tag_keys) if tag_keys else []
        except e.errors as exc:
            e.l2_failed(exc, "get")
            return None
        e.l2_ok(began)
        return e.judge(entries, tag_keys, markers)

    async def _afetch(self, keys: Sequence[str]) -> list[Judged] | None:
        e, l2 = self._e, self.l2
        if l2 is None or (e.stats.degraded and not e.l2_usable()):
            return None
        began = time.perf_counter()
        try:
            entries = e.decode(await l2.aget_many([e.keys.key(k) for k in keys]))
            tag_keys = e.tag_keys(entries)
            markers = await l2.amarkers(tag_keys) if tag_keys else []
        except e.errors as exc:
            e.l2_failed(exc, "get")
            return None
        e.l2_ok(began)
        return e.judge(entries, tag_keys, markers)

    # Writes ----------------------------------------------------------------------------

    def set(self, key: str, value: Any, ttl: float | None = None, tags: Iterable[str] = ()) -> None:
        """Store ``value`` in L1 and L2 for ``ttl`` seconds (default: the cache's)."""
        self.set_many({check_key(key): value}, ttl, tags)

    async def aset(
        self, key: str, value: Any, ttl: float | None = None, tags: Iterable[str] = ()
    ) -> None:
        await self.aset_many({check_key(key): value}, ttl, tags)

    def set_many(
        self, mapping: Mapping[str, Any], ttl: float | None = None, tags: Iterable[str] = ()
    ) -> None:
        """Store every item (one L2 round trip); nothing is written if one item is bad."""
        tags = self._e.tags_of(tags)
        ttl_s = self._e.ttl_of(ttl)
        markers = self._markers(tags, ttl_s)
        self._store(self._build(mapping, ttl_s, tags, markers))

    async def aset_many(
        self, mapping: Mapping[str, Any], ttl: float | None = None, tags: Iterable[str] = ()
    ) -> None:
        tags = self._e.tags_of(tags)
        ttl_s = self._e.ttl_of(ttl)
        markers = await self._amarkers(tags, ttl_s)
        await self._astore(self._build(mapping, ttl_s, tags, markers))

    def _build(
        self,
        mapping: Mapping[str, Any],
        ttl: float,
        tags: Sequence[str],
        markers: Sequence[str] | None,
        delta: float = 0.0,
    ) -> list[tuple[str, Entry, tuple[str, bytes, int] | None]]:
        out = []
        for key, value in mapping.items():
            entry, item = self._e.build(check_key(key), value, ttl, tags, markers, delta)
            out.append((key, entry, item))
        return out

    def _markers(self, tags: Sequence[str], ttl: float) -> list[str] | None:
        """The L2 tag markers a new entry records (None: no L2 to record them on)."""
        e, l2 = self._e, self.l2
        if l2 is None or not e.l2_usable():
            return None
        if not tags:
            return []
        try:
            keys = [e.keys.tag(t) for t in tags]
            return l2.ensure_markers(keys, e.token(), e.tag_marker_ttl_ms(ttl))
        except e.errors as exc:
            e.l2_failed(exc, "set")
            return None

    async def _amarkers(self, tags: Sequence[str], ttl: float) -> list[str] | None:
        e, l2 = self._e, self.l2
        if l2 is None or not e.l2_usable():
            return None
        if not tags:
            return []
        try:
            keys = [e.keys.tag(t) for t in tags]
            return await l2.aensure_markers(keys, e.token(), e.tag_marker_ttl_ms(ttl))
        except e.errors as exc:
            e.l2_failed(exc, "set")
            return None

    def _store(self, built: list[tuple[str, Entry, tuple[str, bytes, int] | None]]) -> None:
        e, l2 = self._e, self.l2
        items = [item for _, _, item in built if item is not None]
        e.l1.set_many((key, entry) for key, entry, _ in built)
        if l2 is None:
            return
        if len(items) < len(built):
            e.lost_write(len(built) - len(items))
            return
        began = time.perf_counter()
        try:
            l2.set_many(items)
            if self._listener is not None:
                l2.publish(self._channel, e.keys_message([k for k, _, _ in built]))
        except e.errors as exc:
            self._failed_store(built, exc)
            return
        e.l2_ok(began)

    async def _astore(self, built: list[tuple[str, Entry, tuple[str, bytes, int] | None]]) -> None:
        e, l2 = self._e, self.l2
        items = [item for _, _, item in built if item is not None]
        e.l1.set_many((key, entry) for key, entry, _ in built)
        if l2 is None:
            return
        if len(items) < len(built):
            e.lost_write(len(built) - len(items))
            return
        began = time.perf_counter()
        try:
            await l2.aset_many(items)
            if self._listener is not None:
                await l2.apublish(self._channel, e.keys_message([k for k, _, _ in built]))
        except e.errors as exc:
            self._failed_store(built, exc)
            return
        e.l2_ok(began)

    def _failed_store(
        self, built: list[tuple[str, Entry, tuple[str, bytes, int] | None]], exc: BaseException
    ) -> None:
        e = self._e
        if e.on_l2_error == "raise":  # the caller learns it failed: leave no L1 copy either
            e.l1.delete_many([k for k, _, _ in built])
        else:
            e.lost_write(len(built))
        e.l2_failed(exc, "set")

    def delete(self, key: str) -> None:
        """Drop ``key`` from L1 and L2 (and from the other instances' L1)."""
        self.delete_many([check_key(key)])

    async def adelete(self, key: str) -> None:
        await self.adelete_many([check_key(key)])

    def delete_many(self, keys: Iterable[str]) -> None:
        e, l2 = self._e, self.l2
        keys = [check_key(k) for k in keys]
        e.l1.delete_many(keys)
        if l2 is None or not keys:
            return
        try:
            l2.delete_many([e.keys.key(k) for k in keys])
            if self._listener is not None:
                l2.publish(self._channel, e.keys_message(keys))
        except e.errors as exc:
            e.lost_write(len(keys))
            e.l2_failed(exc, "delete")

    async def adelete_many(self, keys: Iterable[str]) -> None:
        e, l2 = self._e, self.l2
        keys = [check_key(k) for k in keys]
        e.l1.delete_many(keys)
        if l2 is None or not keys:
            return
        try:
            await l2.adelete_many([e.keys.key(k) for k in keys])
            if self._listener is not None:
                await l2.apublish(self._channel, e.keys_message(keys))
        except e.errors as exc:
            e.lost_write(len(keys))
            e.l2_failed(exc, "delete")

    def invalidate_tags(self, *tags: str) -> None:
        """Make every entry carrying one of ``tags`` stale, here, in L2 and elsewhere."""
        e, l2 = self._e, self.l2
        names = e.tags_of(tags)
        e.l1.bump(names)
        if l2 is None or not names:
            return
        try:
            l2.replace_markers([e.keys.tag(t) for t in names], e.token())
            if self._listener is not None:
                l2.publish(self._channel, e.tags_message(names))
        except e.errors as exc:
            e.lost_write(len(names))
            e.l2_failed(exc, "invalidate_tags")

    async def ainvalidate_tags(self, *tags: str) -> None:
        e, l2 = self._e, self.l2
        names = e.tags_of(tags)
        e.l1.bump(names)
        if l2 is None or not names:
            return
        try:
            await l2.areplace_markers([e.keys.tag(t) for t in names], e.token())
            if self._listener is not None:
                await l2.apublish(self._channel, e.tags_message(names))
        except e.errors as exc:
            e.lost_write(len(names))
            e.l2_failed(exc, "invalidate_tags")

    def clear(self) -> None:
        """Drop every entry of the namespace (every version), in L1, L2 and elsewhere."""
        e, l2 = self._e, self.l2
        e.l1.clear()
        if l2 is not None:
            try:
                l2.clear(e.keys.pattern)
                if self._listener is not None:
                    l2.publish(self._channel, e.clear_message())
            except e.errors as exc:
                e.l2_failed(exc, "clear")

    async def aclear(self) -> None:
        e, l2 = self._e, self.l2
        e.l1.clear()
        if l2 is not None:
            try:
                await l2.aclear(e.keys.pattern)
                if self._listener is not None:
                    await l2.apublish(self._channel, e.clear_message())
            except e.errors as exc:
                e.l2_failed(exc, "clear")

    # Life cycle ------------------------------------------------------------------------

    def stats(self) -> CacheStats:
        """Hits, misses, hit ratio, per tier counters and latency, fail-safe counters."""
        return self._e.stats.snapshot()

    @property
    def invalidation_connected(self) -> bool:
        """True while this instance listens to its invalidation channel."""
        return self._listener is not None and self._listener.connected.is_set()

    def close(self) -> None:
        """Stop the invalidation listener (the shared Redis backend stays open)."""
        if self._listener is not None:
            self._listener.close()

    def __enter__(self) -> TieredCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TieredCache({self.l1!r}, {self.l2!r}, namespace={self.namespace!r})"
